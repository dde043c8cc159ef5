"""Splitting a data set's items: a stratified validation set taken from train/, and a
train/val/test split of test/ alone for layouts (MVTec) whose train/ holds no defects."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from imaging.layout_terms import DatasetError

log = logging.getLogger(__name__)


def check_fraction(name: str, value: float) -> None:
    """Refuse a fraction outside (0, 1)."""
    if not 0.0 < float(value) < 1.0:
        raise DatasetError(f"{name} must be between 0 and 1 (exclusive), got {value}")


def stratified_pick(frame: pd.DataFrame, fraction: float, seed: int) -> list:
    """Index labels of a per-class random `fraction`, at least one per class of 2+ images."""
    rng = np.random.default_rng(seed)
    picked: list = []
    for label in sorted(set(frame["label"])):
        index = np.array(sorted(frame.index[frame["label"] == label]))
        n = len(index)
        k = int(round(n * fraction))
        k = min(max(k, 1), n - 1) if n >= 2 else 0
        picked.extend(index[rng.permutation(n)[:k]].tolist())
    return sorted(picked)


def take_val_from_train(items: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """`items` with a stratified `fraction` of the train split moved to val."""
    check_fraction("fraction", fraction)
    train = items[items["split"] == "train"]
    classes = sorted(set(train["label"]))
    if len(classes) < 2:
        raise DatasetError(
            f"expected 2 classes in train/ to split off a validation set, found "
            f"{len(classes)}: {', '.join(classes) or 'none'}; for MVTec use "
            "spec.classifier_split() to split test/ into train/val/test"
        )
    val_index = stratified_pick(train, fraction, seed)
    items = items.copy()
    items.loc[val_index, "split"] = "val"
    log.info("moved %d of %d training images to val (seed %d)", len(val_index), len(train), seed)
    return items


def split_test_for_classifier(
    items: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
) -> pd.DataFrame:
    """The test split's items alone, stratified into train/val/test (a fresh index)."""
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise DatasetError("val_fraction + test_fraction must leave some images for training")
    pool = items[items["split"] == "test"]
    classes = sorted(set(pool["label"]))
    if len(classes) < 2:
        raise DatasetError(
            f"expected 2 classes in test/ to make a classifier split, found {len(classes)}: "
            f"{', '.join(classes) or 'none'}"
        )
    items = pool.copy()
    items["split"] = "train"
    test_index = stratified_pick(items, test_fraction, seed)
    items.loc[test_index, "split"] = "test"
    rest = items[items["split"] == "train"]
    val_index = stratified_pick(rest, val_fraction / (1.0 - test_fraction), seed + 1)
    items.loc[val_index, "split"] = "val"
    return items.reset_index(drop=True)
