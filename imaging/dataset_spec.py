"""`DatasetSpec`, what a data set holds whatever its layout, and `build_spec`, the checks every
layout's items pass before they become one (classes per split, one normal class, column order)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from imaging.layout_files import dimensions, relative
from imaging.layout_terms import (
    BOX_COLUMNS,
    ITEM_COLUMNS,
    SPLIT_ALIASES,
    SPLITS,
    DatasetError,
    empty_boxes,
    is_normal_class,
    listing,
)
from imaging.splits import split_test_for_classifier, take_val_from_train

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class DatasetSpec:
    """What a data set holds: one row per image in `items`, one row per defect box in `boxes`."""

    root: Path
    layout: str
    items: pd.DataFrame
    boxes: pd.DataFrame = field(default_factory=lambda: empty_boxes())
    class_names: list[str] = field(default_factory=list)
    normal_class: str = ""

    @property
    def splits(self) -> list[str]:
        """Splits present, in train/val/test order."""
        present = set(self.items["split"])
        return [s for s in SPLITS if s in present]

    def split(self, name: str) -> pd.DataFrame:
        """The items of one split (a copy with a fresh index)."""
        name = SPLIT_ALIASES.get(name.lower(), name)
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}: use one of {', '.join(SPLITS)}")
        return self.items[self.items["split"] == name].reset_index(drop=True)

    def labels_to_index(self, labels: Iterable[str]) -> np.ndarray:
        """Class names -> int64 indices into `class_names`."""
        index = {name: i for i, name in enumerate(self.class_names)}
        labels = list(labels)
        unknown = sorted({str(lab) for lab in labels if lab not in index})
        if unknown:
            raise DatasetError(
                f"labels {listing(unknown)} are not classes of this data set "
                f"({', '.join(self.class_names)})"
            )
        return np.array([index[lab] for lab in labels], dtype=np.int64)

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {label: n}}, for run.json and summaries."""
        grouped = self.items.groupby(["split", "label"]).size()
        return {
            split: {label: int(n) for (s, label), n in grouped.items() if s == split}
            for split in self.splits
        }

    def with_val_split(self, fraction: float = 0.2, seed: int = 0) -> DatasetSpec:
        """Move a stratified `fraction` of train to val, unless a val split already exists."""
        if "val" in self.splits:
            return self
        return replace(self, items=take_val_from_train(self.items, fraction, seed))

    def classifier_split(
        self, val_fraction: float = 0.2, test_fraction: float = 0.3, seed: int = 0
    ) -> DatasetSpec:
        """Stratified train/val/test split of test/ alone, for layouts whose train/ has no defects.

        MVTec's train/ holds only good parts, so a classifier must learn from test/; the
        original train/ images are left out (they would swamp the few defects).
        """
        items = split_test_for_classifier(self.items, val_fraction, test_fraction, seed)
        boxes = self.boxes[self.boxes["path"].isin(set(items["path"]))].reset_index(drop=True)
        return replace(self, items=items, boxes=boxes)

    def as_binary(self, defect_label: str = "defect") -> DatasetSpec:
        """Every defect class becomes `defect_label` (defect_type keeps the original)."""
        items = self.items.copy()
        items.loc[items["is_defect"], "label"] = defect_label
        return replace(self, items=items, class_names=[self.normal_class, defect_label])

    def fingerprint(self) -> str:
        """Hash of relative paths, labels, splits and image dimensions (width x height).

        Identical on every machine for the same files: no compressed byte sizes (a PNG's size
        follows the codec and the CPU's rounding of the rendered pixels) and no pixel values
        (hashing floats is brittle); dimensions come from the headers, so it stays fast.
        Pixel content is compared within a tolerance by `pixel_stats`.
        """
        digest = hashlib.sha256()
        rows = []
        for path, label, split in zip(
            self.items["path"], self.items["label"], self.items["split"], strict=True
        ):
            width, height = dimensions(path)
            rows.append(f"{relative(path, self.root)}\t{width}x{height}\t{label}\t{split}")
        for row in sorted(rows):
            digest.update(row.encode("utf-8") + b"\n")
        return digest.hexdigest()[:16]

    def pixel_stats(self) -> dict[str, dict[str, float]]:
        """Per split: images and mean / standard deviation of their grayscale pixels (0-255).

        Recorded next to the fingerprint; two copies of a data set rendered on different CPUs
        agree within a fraction of a grey level, a changed generator or file does not.
        """
        from imaging.decode import read_image, to_gray

        stats = {}
        for split in self.splits:
            total = total_sq = count = 0.0
            for path in self.split(split)["path"]:
                gray = to_gray(read_image(path)).astype(np.float64)
                total += gray.sum()
                total_sq += np.square(gray).sum()
                count += gray.size
            mean = total / count
            stats[split] = {
                "images": int((self.items["split"] == split).sum()),
                "mean": round(float(mean), 3),
                "std": round(float(np.sqrt(max(total_sq / count - mean * mean, 0.0))), 3),
            }
        return stats

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{split}: " + " ".join(f"{k}={v}" for k, v in per.items())
            for split, per in self.counts().items()
        )
        return (
            f"DatasetSpec(root={str(self.root)!r}, layout={self.layout!r}, "
            f"images={len(self.items)}, boxes={len(self.boxes)}, {counts})"
        )


def _normal_of(labels: Iterable[str], where: str) -> str:
    labels = sorted(set(labels))
    normal = [lab for lab in labels if is_normal_class(lab)]
    if not normal:
        raise DatasetError(
            f"no normal class in {where} (found: {', '.join(labels)}): name the defect-free "
            "class ok*, good or normal"
        )
    if len(normal) > 1:
        raise DatasetError(
            f"more than one normal class in {where}: {', '.join(normal)}; keep exactly one "
            "class named ok*, good or normal"
        )
    return normal[0]


def build_spec(
    root: Path, layout: str, items: pd.DataFrame, boxes: pd.DataFrame | None = None
) -> DatasetSpec:
    """Check classes per split, fill is_defect/defect_type, order columns and classes."""
    for split in SPLITS:
        labels = sorted(set(items.loc[items["split"] == split, "label"]))
        if labels and len(labels) < 2 and not (layout == "mvtec" and split == "train"):
            raise DatasetError(
                f"expected 2 classes, found {len(labels)} in {split}/: {', '.join(labels)}"
            )
    train_labels = set(items.loc[items["split"] == "train", "label"])
    if train_labels:
        unseen = sorted(set(items["label"]) - train_labels)
        if unseen and layout != "mvtec":
            raise DatasetError(
                f"classes {', '.join(unseen)} have images in val/test but none in train/"
            )
    normal = _normal_of(items["label"], f"{root}")
    items = items.copy()
    items["is_defect"] = items["label"] != normal
    if "defect_type" not in items:
        items["defect_type"] = ""
    items["defect_type"] = items["defect_type"].fillna("").astype(str)
    missing_type = items["is_defect"] & (items["defect_type"] == "")
    items.loc[missing_type, "defect_type"] = items.loc[missing_type, "label"]
    items.loc[~items["is_defect"], "defect_type"] = ""
    if "mask_path" not in items:
        items["mask_path"] = None
    items["mask_path"] = items["mask_path"].astype(object).where(items["mask_path"].notna(), None)
    order = items["split"].map({s: i for i, s in enumerate(SPLITS)})
    items = items.assign(_order=order).sort_values(["_order", "path"], kind="stable")
    items = items[list(ITEM_COLUMNS)].reset_index(drop=True)
    items["is_defect"] = items["is_defect"].astype(bool)
    class_names = [normal] + sorted(set(items["label"]) - {normal})
    boxes = empty_boxes() if boxes is None or boxes.empty else boxes[list(BOX_COLUMNS)]
    spec = DatasetSpec(
        root=root,
        layout=layout,
        items=items,
        boxes=boxes.reset_index(drop=True),
        class_names=class_names,
        normal_class=normal,
    )
    log.info("discovered %r", spec)
    return spec
