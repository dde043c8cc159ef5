"""Which images the autoencoder may learn from: good parts only, and proven so.

An autoencoder that sees defects learns to rebuild them and stops flagging them, so training
refuses (listing the files) when any training image is known to be defective:
- an explicit `--images` list that includes files the data set labels defective;
- a file in the normal folder that annotations.csv gives a defect label, type or mask
  (mislabelled folder, or the annotation is newer than the folder sort);
- a byte-identical copy of a defective image sitting in the normal folder.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from imaging.layouts import ANNOTATIONS_NAME, is_normal_class

log = logging.getLogger(__name__)
_LISTED = 20


class TrainingSetError(ValueError):
    """The requested training images are not a clean set of good parts."""


class DefectInTrainingError(TrainingSetError):
    """Defective images were found among the training images; `.paths` lists them."""

    def __init__(self, reason: str, paths: Sequence[str], fix: str) -> None:
        self.paths = list(paths)
        shown = "\n  ".join(self.paths[:_LISTED])
        more = f"\n  ... and {len(self.paths) - _LISTED} more" if len(self.paths) > _LISTED else ""
        super().__init__(f"refusing to train: {len(self.paths)} {reason}:\n  {shown}{more}\n{fix}")


def _flagged(items: pd.DataFrame) -> pd.Series:
    """Rows the data set itself marks defective (label, annotation defect type, or mask)."""
    defect_type = items["defect_type"].fillna("").astype(str).str.strip() != ""
    has_mask = items["mask_path"].notna() & (items["mask_path"].astype(str) != "")
    return items["is_defect"].astype(bool) | defect_type | has_mask


def _annotated_defects(root: Path, paths: Sequence[str]) -> list[str]:
    """Training paths that the data set's annotations.csv marks defective.

    Read here rather than trusted to the joined items: discovery labels by folder, so a
    defect annotation on a file in the normal folder would otherwise go unnoticed.
    """
    source = Path(root) / ANNOTATIONS_NAME
    if not source.is_file():
        return []
    table = pd.read_csv(source, dtype=str, keep_default_na=False)
    if "path" not in table:
        raise TrainingSetError(f"{source}: no 'path' column, so it cannot vouch for any image")
    flagged = pd.Series(False, index=table.index)
    if "label" in table:
        flagged |= ~table["label"].map(lambda v: v == "" or is_normal_class(v))
    for column in ("defect_type", "mask_path"):
        if column in table:
            flagged |= table[column].str.strip() != ""
    bad = {str((Path(root) / p).resolve()) for p in table.loc[flagged, "path"]}
    return [p for p in paths if str(Path(p).resolve()) in bad]


def _digest(path: str) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def _check_duplicates_of_defects(train_paths: Sequence[str], items: pd.DataFrame) -> None:
    defect_paths = items.loc[_flagged(items), "path"].unique()
    if len(defect_paths) == 0:
        return
    defect_hashes = {_digest(p): p for p in defect_paths}
    copies = [p for p in train_paths if _digest(p) in defect_hashes]
    if copies:
        raise DefectInTrainingError(
            "training images are byte-identical copies of images labelled defective",
            copies,
            "remove the copies from the normal folder (or fix their label) and train again",
        )


def select_training_paths(spec, images: Sequence[str | Path] | None = None) -> list[str]:
    """Good training images of a data set (imaging.DatasetSpec), checked for defects.

    Without `images`, the normal class of the train split (class folders: e.g. train/ok_front;
    MVTec: train/good). With `images`, exactly those files, each of which the data set must
    label as a good part.
    """
    items = spec.items
    flagged = _flagged(items)
    if images is None:
        chosen = items[(items["split"] == "train") & (items["label"] == spec.normal_class)]
        if chosen.empty:
            raise TrainingSetError(
                f"{spec.root}: no training images of the normal class {spec.normal_class!r} "
                "in the train split; the autoencoder needs good parts to learn from"
            )
        paths = chosen["path"].tolist()
    else:
        by_path = {str(Path(p).resolve()): i for i, p in items["path"].items()}
        wanted = [str(Path(p).resolve()) for p in images]
        unknown = [p for p in wanted if p not in by_path]
        if unknown:
            raise TrainingSetError(
                f"{len(unknown)} training images are not part of {spec.root}, so they cannot be "
                f"checked for defects: {', '.join(unknown[:_LISTED])}; add them to the data set "
                "or train on the data set's normal folder"
            )
        defective = [p for p in wanted if flagged.loc[by_path[p]]]
        if defective:
            raise DefectInTrainingError(
                "of the requested training images are labelled defective",
                defective,
                "train on good parts only: drop them from --images",
            )
        in_test = [p for p in wanted if items.loc[by_path[p], "split"] == "test"]
        if in_test:
            raise TrainingSetError(
                f"{len(in_test)} training images belong to the test split, which would inflate "
                f"the evaluation: {', '.join(in_test[:_LISTED])}; pick train or val images"
            )
        paths = [items.loc[by_path[p], "path"] for p in wanted]
    annotated = _annotated_defects(spec.root, paths)
    if annotated:
        raise DefectInTrainingError(
            f"training images (class {spec.normal_class!r}) are marked defective in "
            f"{ANNOTATIONS_NAME}",
            annotated,
            f"move them to a defect folder or correct {ANNOTATIONS_NAME}, then train again",
        )
    _check_duplicates_of_defects(paths, items)
    log.info("training set: %d good images from %s", len(paths), spec.root)
    return paths
