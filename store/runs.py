"""The run-folder format: the one place that knows what lives in weights/<name>/.

A run folder holds `model.keras`, `run.json` (what was trained, how, on what, with which
preprocessing), `history.csv` (per-epoch metrics) and `metrics.json` (test metrics), plus any
named arrays a detector needs beside its model (e.g. PatchCore's memory bank), each one
`<name>.npy` written and read without pickles.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from store.paths import repo_root, weights_dir

KINDS = ("classifier", "autoencoder", "lstm")
MODEL_FILE = "model.keras"
INFO_FILE = "run.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
# run.json key of the guard rails' verdict (classification.guards): {ok, warnings, checks}.
HEALTH_KEY = "health"
_ARRAY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TRACKED_PACKAGES = ("tensorflow-cpu", "keras", "numpy", "opencv-python-headless", "albumentations")


class RunError(Exception):
    """A run folder is missing, malformed or cannot be created."""


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise RunError(
            f"run name {name!r} is not allowed: use letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def create_run_dir(name: str, root: Path | None = None) -> Path:
    """Make a fresh run folder; a name clash gets a suffix (-2, -3, ...) instead of overwriting."""
    _check_name(name)
    root = Path(root) if root is not None else weights_dir()
    root.mkdir(parents=True, exist_ok=True)
    candidate, n = root / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = root / f"{name}-{n}"


@contextmanager
def run_folder(name: str, root: Path | None = None) -> Iterator[Path]:
    """A fresh run folder that is removed again if the block fails before run.json is written.

    A folder without run.json is debris: `list_runs` skips it and it would push the next run
    of the same name to `-2`. Trainers write run.json last, so its presence marks success.
    """
    run_dir = create_run_dir(name, root)
    try:
        yield run_dir
    except BaseException:
        if not (run_dir / INFO_FILE).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def save_model(run_dir: Path, model: Any) -> Path:
    """Write model.keras for inference: weights and graph, no optimizer state (a third the size)."""
    import keras

    # Rebuilt from the layer graph alone: no compile config, so no training-only custom losses.
    bare = keras.Model.from_config(model.get_config())
    bare.set_weights(model.get_weights())
    path = Path(run_dir) / MODEL_FILE
    bare.save(path)
    return path


def provenance() -> dict[str, Any]:
    """Git commit, creation time and library versions, recorded in every run."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo_root(),
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    versions = {"python": platform.python_version()}
    for pkg in _TRACKED_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return {
        "git_commit": commit or None,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions,
    }


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a run file")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    tmp.replace(path)


def write_run_info(run_dir: Path, info: dict[str, Any]) -> None:
    """Write run.json; `kind` and `name` are required, provenance is added when absent."""
    kind = info.get("kind")
    if kind not in KINDS:
        raise RunError(f"run.json needs kind in {KINDS}, got {kind!r}")
    full = {"name": Path(run_dir).name, **provenance(), **info}
    _write_json(Path(run_dir) / INFO_FILE, full)


def health_record(warnings: Sequence[str], checks: dict[str, Any]) -> dict[str, Any]:
    """The guard rails' verdict as run.json stores it under HEALTH_KEY.

    `warnings` are sentences for a person (empty when the run looks sound); `checks` holds the
    measured values behind them (JSON-serialisable).
    """
    if isinstance(warnings, str) or not all(isinstance(w, str) and w for w in warnings):
        raise ValueError(f"health warnings must be a list of non-empty sentences, got {warnings!r}")
    if not isinstance(checks, dict):
        raise ValueError(f"health checks must be a dict, got {type(checks).__name__}")
    return {"ok": not warnings, "warnings": list(warnings), "checks": checks}


def run_warnings(info: dict[str, Any]) -> list[str]:
    """The guard-rail warnings recorded in a run.json (none for runs trained before guards)."""
    health = info.get(HEALTH_KEY)
    if not isinstance(health, dict):
        return []
    return [w for w in health.get("warnings") or [] if isinstance(w, str)]


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    """Write metrics.json (test metrics, confusion matrix, ...)."""
    _write_json(Path(run_dir) / METRICS_FILE, metrics)


def confusion_record(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], positive_class: str | None
) -> dict[str, Any]:
    """A confusion matrix as every trainer stores it in metrics.json.

    Counts with rows the true class and columns the predicted one, both in `labels` order,
    and the class counted as positive (for several defect classes it may be "any defect").
    """
    counts = [[int(v) for v in row] for row in matrix]
    n = len(labels)
    if len(counts) != n or any(len(row) != n for row in counts):
        raise ValueError(f"confusion matrix must be {n} x {n} for labels {list(labels)}")
    return {
        "labels": [str(x) for x in labels],
        "matrix": counts,
        "rows": "true class",
        "columns": "predicted class",
        "positive_class": positive_class,
    }


def read_confusion(metrics: dict[str, Any], labels: Sequence[str] = ()) -> dict[str, Any] | None:
    """The confusion record of a metrics.json section (see `confusion_record`), or None.

    Older runs stored a bare list with the labels beside it (`confusion_labels`, or `labels`
    for LSTM runs); it is converted, with `labels` (then indices) when none that fit were stored.
    """
    found = metrics.get("confusion_matrix")
    if isinstance(found, dict):
        return found if found.get("matrix") else None
    if not found:
        return None
    names = metrics.get("confusion_labels") or metrics.get("labels") or labels
    if len(names) != len(found):
        names = [str(i) for i in range(len(found))]
    return confusion_record(found, names, metrics.get("positive_class"))


def _array_path(run_dir: Path, name: str) -> Path:
    if not _ARRAY_RE.match(name):
        raise RunError(f"array name {name!r} is not allowed: use lower-case letters, digits, '_'")
    return Path(run_dir) / f"{name}.npy"


def save_array(run_dir: Path, name: str, array: Any) -> Path:
    """Write `<name>.npy` into the run folder (plain numeric array, no pickle)."""
    import numpy as np

    path = _array_path(run_dir, name)
    data = np.asarray(array)
    if data.dtype == object:
        raise RunError(f"array {name!r} holds Python objects; only numeric arrays are stored")
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, data, allow_pickle=False)
    tmp.replace(path)
    return path


def write_history(run_dir: Path, history: pd.DataFrame | dict[str, list]) -> None:
    """Write history.csv, one row per epoch."""
    frame = pd.DataFrame(history)
    if "epoch" not in frame.columns:
        frame.insert(0, "epoch", range(1, len(frame) + 1))
    frame.to_csv(Path(run_dir) / HISTORY_FILE, index=False)


@dataclass
class Run:
    """A run folder on disk; the model is loaded on first use (Keras safe mode)."""

    path: Path
    info: dict[str, Any]
    _model: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def kind(self) -> str:
        return self.info["kind"]

    @property
    def warnings(self) -> list[str]:
        """Guard-rail warnings recorded at training time (see `health_record`)."""
        return run_warnings(self.info)

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def metrics(self) -> dict[str, Any]:
        path = self.path / METRICS_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def history(self) -> pd.DataFrame:
        path = self.path / HISTORY_FILE
        return pd.read_csv(path) if path.exists() else pd.DataFrame()

    def check_complete(self) -> Run:
        """Refuse a run.json that lacks what inference with this kind of run reads."""
        _check_fields(self.path / INFO_FILE, self.info, complete=True)
        return self

    def load_array(self, name: str) -> Any:
        """A named array of the run (`save_array`), loaded without pickles."""
        import numpy as np

        path = _array_path(self.path, name)
        if not path.exists():
            raise RunError(f"run {self.name!r} has no {path.name} in {self.path}")
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise RunError(f"{path} is not a plain numeric array ({exc})") from exc

    def load_model(self, custom_objects: dict[str, Any] | None = None) -> Any:
        """Load model.keras once with safe_mode=True (no arbitrary code, no pickles)."""
        if self._model is None:
            if not self.model_path.exists():
                raise RunError(f"run {self.name!r} has no {MODEL_FILE} in {self.path}")
            if self.model_path.stat().st_size == 0:
                raise RunError(
                    f"run {self.name!r}: {self.model_path} is empty (0 bytes); "
                    "retrain the run or restore the file"
                )
            import keras

            try:
                self._model = keras.saving.load_model(
                    self.model_path, custom_objects=custom_objects, safe_mode=True, compile=False
                )
            except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad archive
                reason = " ".join(str(exc).split())[:200]
                raise RunError(
                    f"run {self.name!r}: {self.model_path} is corrupt or not a Keras model "
                    f"({type(exc).__name__}: {reason}); retrain the run or restore the file"
                ) from None
        return self._model


def _read_info(path: Path) -> dict[str, Any]:
    info_path = path / INFO_FILE
    if not info_path.exists():
        raise RunError(f"{path} is not a run folder: it has no {INFO_FILE}")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(f"{info_path} is not valid JSON ({exc}); fix or delete the run") from exc
    if not isinstance(info, dict):
        raise RunError(f"{info_path} holds a {type(info).__name__}, not an object; fix or delete")
    if info.get("kind") not in KINDS:
        raise RunError(f"{info_path} has kind {info.get('kind')!r}; expected one of {KINDS}")
    _check_fields(info_path, info)
    return info


# What inference reads from run.json, per kind, and the type each must have.
_REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "classifier": {"class_names": list, "normal_class": str, "preprocess": dict},
    "autoencoder": {"preprocess": dict},
    "lstm": {"features": list, "window": int, "scaler": dict},
}


def _check_fields(info_path: Path, info: dict[str, Any], complete: bool = False) -> None:
    """Refuse a run.json whose inference fields have the wrong type (or, if `complete`, lack)."""
    for key, kind in _REQUIRED[info["kind"]].items():
        if key not in info:
            if not complete:
                continue
            raise RunError(f"{info_path} lacks {key!r}, which a {info['kind']} run needs; retrain")
        value = info[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise RunError(
                f"{info_path}: {key!r} should be a {kind.__name__}, found "
                f"{type(value).__name__} {value!r:.60}; fix the file or retrain"
            )
    if info["kind"] == "classifier" and "class_names" in info:
        names = info["class_names"]
        if len(names) < 2 or not all(isinstance(n, str) for n in names):
            raise RunError(f"{info_path}: 'class_names' must list at least 2 class names")
        if "normal_class" in info and info["normal_class"] not in names:
            raise RunError(
                f"{info_path}: normal_class {info['normal_class']!r} is not one of {names}"
            )
    if info["kind"] == "lstm" and {"scaler", "features", "window"} <= info.keys():
        scaler, n = info["scaler"], len(info["features"])
        for key in ("min", "max"):
            values = scaler.get(key)
            if not isinstance(values, list) or len(values) != n:
                raise RunError(
                    f"{info_path}: scaler {key!r} must list {n} numbers (one per feature)"
                )
        if info["window"] < 1:
            raise RunError(f"{info_path}: 'window' must be >= 1, found {info['window']}")


def load_run(name_or_path: str | Path, root: Path | None = None) -> Run:
    """Open a run by name (under weights/) or by folder path."""
    candidate = Path(name_or_path)
    if not candidate.is_dir():
        candidate = (Path(root) if root is not None else weights_dir()) / str(name_or_path)
    if not candidate.is_dir():
        known = ", ".join(r.name for r in list_runs(root=root)) or "none"
        raise RunError(f"no run named {str(name_or_path)!r}; runs found: {known}")
    return Run(path=candidate, info=_read_info(candidate))


def list_runs(kind: str | None = None, root: Path | None = None) -> list[Run]:
    """Every valid run folder (optionally of one kind), newest first; broken folders are skipped."""
    root = Path(root) if root is not None else weights_dir()
    if kind is not None and kind not in KINDS:
        raise RunError(f"unknown run kind {kind!r}; expected one of {KINDS}")
    runs = []
    for path in sorted(root.glob("*/")) if root.is_dir() else []:
        try:
            run = Run(path=path, info=_read_info(path))
        except RunError:
            continue
        if kind is None or run.kind == kind:
            runs.append(run)
    runs.sort(key=lambda r: r.info.get("created") or "", reverse=True)
    return runs
