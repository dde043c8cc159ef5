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

from classification.inference import predict_images
from classification.metrics import classification_report
from classification.operating_point import Choice, choose_threshold, decide_classes, defect_scores
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
    counts, expected = recorded.get("counts"), recorded.get("fingerprint")
    if counts and spec.counts() != counts:
        raise EvaluationError(
            f"{root} is not the data run {run.name!r} was trained on (split counts "
            f"{spec.counts()}, recorded {counts}); pass the original data set (--data DIR)"
        )
    if expected and spec.fingerprint() != expected:
        # The fingerprint hashes file sizes, which a re-encoded copy of the same set changes.
        log.warning(
            "%s: same files and split counts as run %s was trained on, but fingerprint %s "
            "differs from the recorded %s (re-encoded images?)",
            root,
            run.name,
            spec.fingerprint(),
            expected,
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


# ---------------------------------------------------------------- error analysis

OUTCOMES = ("TP", "FP", "FN", "TN")
VIEWS = ("false negatives", "false positives", "least confident", "cell")


def decisions(run: Run, frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """A `predict_split` frame with predicted_class, flagged and outcome (TP/FP/FN/TN) at
    `threshold`, and margin = |defect_probability - threshold| (small = least confident)."""
    names = list(run.info["class_names"])
    normal = run.info["normal_class"]
    predicted = decide_classes(probabilities_of(frame, names), names, normal, threshold)
    out = frame.copy()
    out["predicted_class"] = [names[i] for i in predicted]
    out["flagged"] = out["predicted_class"] != normal
    truth = out["is_defect"].astype(bool)
    out["outcome"] = np.select(
        [truth & out["flagged"], ~truth & out["flagged"], truth & ~out["flagged"]],
        ["TP", "FP", "FN"],
        "TN",
    )
    out["margin"] = (out["defect_probability"] - threshold).abs()
    return out


def select_errors(
    decided: pd.DataFrame,
    view: str,
    true_class: str | None = None,
    predicted_class: str | None = None,
    defect_types: list[str] | None = None,
    order: str = "probability, high first",
    limit: int | None = None,
) -> pd.DataFrame:
    """The images of one error-analysis view of a `decisions` frame, filtered and sorted.

    view: "cell" (one confusion-matrix cell: `true_class` x `predicted_class`), "false
    negatives", "false positives" or "least confident" (closest to the threshold first).
    `defect_types` keeps defective images of those types (good parts have no type and are
    kept only when the filter is empty).
    """
    if view == "cell":
        if true_class is None or predicted_class is None:
            raise EvaluationError("a confusion-matrix cell needs a true and a predicted class")
        keep = (decided["label"] == true_class) & (decided["predicted_class"] == predicted_class)
    elif view == "false negatives":
        keep = decided["outcome"] == "FN"
    elif view == "false positives":
        keep = decided["outcome"] == "FP"
    elif view == "least confident":
        keep = pd.Series(True, index=decided.index)
    else:
        raise EvaluationError(f"view {view!r}: choose one of {', '.join(VIEWS)}")
    if defect_types:
        keep &= decided["defect_type"].isin(defect_types)
    chosen = decided[keep]
    if view == "least confident":
        chosen = chosen.sort_values("margin", kind="stable")
    elif order == "probability, low first":
        chosen = chosen.sort_values("defect_probability", kind="stable")
    else:
        chosen = chosen.sort_values("defect_probability", ascending=False, kind="stable")
    return chosen if limit is None else chosen.head(limit)


def recall_by_type(decided: pd.DataFrame) -> pd.DataFrame:
    """Defect recall per defect type at the decisions' threshold: type, images, found, recall."""
    defects = decided[decided["is_defect"].astype(bool)]
    if defects.empty:
        return pd.DataFrame(columns=["defect_type", "images", "found", "recall"])
    table = (
        defects.groupby("defect_type")["flagged"]
        .agg(images="size", found="sum")
        .reset_index()
        .astype({"found": int})
    )
    table["recall"] = table["found"] / table["images"]
    return table.sort_values(["recall", "defect_type"]).reset_index(drop=True)


def worst_errors(decided: pd.DataFrame, n: int = 8) -> pd.DataFrame:
    """The most confident mistakes: escapes with the lowest, false alarms with the highest p."""
    wrong = decided[decided["outcome"].isin(["FN", "FP"])].copy()
    wrong["badness"] = np.where(
        wrong["outcome"] == "FN", 1 - wrong["defect_probability"], wrong["defect_probability"]
    )
    return wrong.sort_values("badness", ascending=False, kind="stable").head(n)
