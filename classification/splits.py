"""Train / validation / test splits for a classifier from any discovered data-set layout.

Class folders and CSV manifests usually bring train and test splits; a missing test split is
held out of train, a missing validation split too (both stratified). MVTec has only good parts
in train/, so the classifier splits its test/ instead (DatasetSpec.classifier_split).
"""

from __future__ import annotations

import dataclasses
import logging

from sklearn.model_selection import train_test_split

from classification.smalldata import MIN_VAL_PER_CLASS
from classification.smalldata import val_fraction as small_set_val_fraction
from imaging import DatasetError, DatasetSpec

log = logging.getLogger(__name__)


def _hold_out_test(spec: DatasetSpec, fraction: float, seed: int) -> DatasetSpec:
    train = spec.items[spec.items["split"] == "train"]
    counts = train["label"].value_counts()
    n_test = max(len(counts), round(len(train) * fraction))
    if counts.min() < 2 or n_test >= len(train):
        raise DatasetError(
            f"{spec.root}: no test split and too few images to hold one out "
            f"({dict(counts)}); add a test/ folder or more images per class"
        )
    _, test = train_test_split(train, test_size=n_test, random_state=seed, stratify=train["label"])
    items = spec.items.copy()
    items.loc[test.index, "split"] = "test"
    return dataclasses.replace(spec, items=items)


def classifier_splits(
    spec: DatasetSpec, val_fraction: float = 0.15, test_fraction: float = 0.2, seed: int = 0
) -> tuple[DatasetSpec, list[str]]:
    """A spec with train, val and test splits, plus notes on what was split off (run.json)."""
    notes = []
    train_classes = set(spec.items.loc[spec.items["split"] == "train", "label"])
    if len(train_classes) < 2:
        spec = spec.classifier_split(
            val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
        )
        notes.append(
            f"train/ holds one class only: stratified split of test/ into train, "
            f"val ({val_fraction:.0%}) and test ({test_fraction:.0%})"
        )
    else:
        if "test" not in spec.splits:
            spec = _hold_out_test(spec, test_fraction, seed)
            notes.append(f"no test split: held out a stratified {test_fraction:.0%} of train")
        if "val" not in spec.splits:
            train = spec.items.loc[spec.items["split"] == "train", "label"]
            fraction = small_set_val_fraction(train.value_counts().to_dict(), val_fraction)
            spec = spec.with_val_split(fraction, seed)
            raised = (
                f" (raised from {val_fraction:.0%} to keep at least {MIN_VAL_PER_CLASS} "
                "images of the smallest class)"
                if fraction > val_fraction
                else ""
            )
            notes.append(f"no val split: held out a stratified {fraction:.0%} of train{raised}")
    for note in notes:
        log.info("%s: %s", spec.root, note)
    return spec, notes
