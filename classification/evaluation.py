"""A classifier run on its own data splits: predictions, operating point, metrics.

The run's split is rebuilt exactly as training made it (classification.splits with the run's
seed and validation fraction) and checked against the recorded data fingerprint, so "the test
split" always means the images the run never saw. The Experiments page, the inspection report
and `python -m classification.threshold` share these functions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from classification.metrics import classification_report
from classification.operating_point import Choice, choose_threshold, defect_scores
from classification.predict import predict_images
from classification.splits import classifier_splits
from imaging import DatasetSpec, discover
from store import Run, load_run, write_metrics, write_run_info
from store.thresholds import threshold_record, with_threshold

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ["path", "label", "is_defect", "defect_type", "mask_path"]


class EvaluationError(ValueError):
    """A run whose data cannot be found or no longer matches what it was trained on."""


def _as_run(run: str | Path | Run) -> Run:
    run = run if isinstance(run, Run) else load_run(run)
    if run.kind != "classifier":
        raise EvaluationError(f"run {run.name!r} is a {run.kind} run; pick a classifier run")
    return run


def run_spec(run: str | Path | Run, data: str | Path | None = None) -> DatasetSpec:
    """The run's data set with train/val/test split as in training (fingerprint checked)."""
    run = _as_run(run)
    recorded = run.info.get("data") or {}
    root = data or recorded.get("root")
    if not root or not Path(root).exists():
        raise EvaluationError(
            f"run {run.name!r} was trained on {root or 'an unrecorded data set'}, which is not "
            "here; pass the data set folder (--data DIR)"
        )
    spec, _ = classifier_splits(
        discover(root), val_fraction=run.info.get("val_split", 0.15), seed=run.info.get("seed", 0)
    )
    expected = recorded.get("fingerprint")
    if expected and spec.fingerprint() != expected:
        raise EvaluationError(
            f"{root} is not the data run {run.name!r} was trained on (fingerprint "
            f"{spec.fingerprint()}, recorded {expected}); pass the original data set (--data DIR)"
        )
    return spec


def predict_split(
    run: str | Path | Run, split: str = "test", data: str | Path | None = None
) -> pd.DataFrame:
    """One row per image of a split: truth (label, type, mask) and the run's probabilities.

    Columns: path, label, is_defect, defect_type, mask_path, p_<class>..., defect_probability.
    Decisions are left to the caller (the threshold may change after this is cached).
    """
    if split not in SPLITS:
        raise EvaluationError(f"split {split!r}: choose one of {', '.join(SPLITS)}")
    run = _as_run(run)
    items = run_spec(run, data).split(split).reset_index(drop=True)
    if items.empty:
        raise EvaluationError(f"run {run.name!r}: the {split} split of its data set is empty")
    frame = predict_images(run, list(items["path"]))
    failed = frame["status"] != "ok"
    if failed.any():
        names = ", ".join(frame.loc[failed, "file"].head(3))
        raise EvaluationError(f"{int(failed.sum())} {split} images could not be read ({names})")
    names = list(run.info["class_names"])
    out = items[[c for c in SPLIT_COLUMNS if c in items]].copy()
    for name in names:
        out[f"p_{name}"] = frame[f"p_{name}"].to_numpy()
    out["defect_probability"] = frame["defect_probability"].to_numpy()
    return out


def probabilities_of(frame: pd.DataFrame, class_names: list[str]) -> np.ndarray:
    """The (N, classes) probability matrix of a `predict_split` frame."""
    return frame[[f"p_{c}" for c in class_names]].to_numpy(dtype=np.float64)


def true_indices(frame: pd.DataFrame, class_names: list[str]) -> np.ndarray:
    return np.array([class_names.index(c) for c in frame["label"]], dtype=np.int64)


def split_report(run: Run, frame: pd.DataFrame, threshold: float | None) -> dict[str, Any]:
    """classification_report of a `predict_split` frame at `threshold` (argmax when None)."""
    names = list(run.info["class_names"])
    return classification_report(
        true_indices(frame, names),
        probabilities_of(frame, names),
        names,
        run.info["normal_class"],
        threshold=threshold,
    )


def choose_on_validation(
    run: Run, policy: str, val: pd.DataFrame | None = None, data: str | Path | None = None
) -> Choice:
    """The threshold `policy` picks on the run's validation split."""
    val = predict_split(run, "val", data) if val is None else val
    names = list(run.info["class_names"])
    score = defect_scores(probabilities_of(val, names), names, run.info["normal_class"])
    return choose_threshold(val["is_defect"].to_numpy(bool), score, policy)


def calibrate_run(
    run: str | Path | Run,
    policy: str = "f1",
    data: str | Path | None = None,
    set_by: str | None = None,
) -> dict[str, Any]:
    """Choose the run's threshold on validation, record it, rewrite metrics.json at it.

    run.json gets a new threshold record (history kept) and its summary at the operating point;
    metrics.json keeps its training fields and gets the test figures at the threshold, with
    the argmax figures alongside. Returns the new test report.
    """
    run = _as_run(run)
    choice = choose_on_validation(run, policy, data=data)
    test = predict_split(run, "test", data)
    report = split_report(run, test, choice.threshold)
    record = threshold_record(
        choice.threshold, choice.policy, "validation", choice.precision, choice.recall, set_by
    )
    old = run.metrics
    kept = {k: old[k] for k in ("best_epoch", "epochs_run", "train_seconds") if k in old}
    write_metrics(run.path, {"split": "test", **report, **kept})
    info = with_threshold(run.info, record)
    info["summary"] = summary_of(report)
    write_run_info(run.path, info)
    run.info = info
    return report


def summary_of(report: dict[str, Any]) -> dict[str, Any]:
    """The run.json summary: test figures at the operating point (metrics.json has the rest)."""
    return {k: report[k] for k in ("accuracy", "macro_f1", "defect_f1", "roc_auc")}
