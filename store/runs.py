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
import subprocess
from collections.abc import Sequence
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
            import keras

            self._model = keras.saving.load_model(
                self.model_path, custom_objects=custom_objects, safe_mode=True, compile=False
            )
        return self._model


def _read_info(path: Path) -> dict[str, Any]:
    info_path = path / INFO_FILE
    if not info_path.exists():
        raise RunError(f"{path} is not a run folder: it has no {INFO_FILE}")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(f"{info_path} is not valid JSON ({exc}); fix or delete the run") from exc
    if info.get("kind") not in KINDS:
        raise RunError(f"{info_path} has kind {info.get('kind')!r}; expected one of {KINDS}")
    return info


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
