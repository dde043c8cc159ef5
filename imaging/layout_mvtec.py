"""The MVTec AD layout: train/good/*, test/good/*, test/<defect>/* and a mask per defect image in
ground_truth/<defect>/<stem>_mask.png."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imaging.dataset_spec import DatasetSpec, build_spec
from imaging.layout_files import images_in, relative, subdirs
from imaging.layout_terms import DatasetError, given, listing


def looks_like_mvtec(root: Path) -> bool:
    """A ground_truth/ folder, or a train/ holding only good/ beside a test/good/."""
    if (root / "ground_truth").is_dir():
        return True
    train = root / "train"
    return (
        train.is_dir()
        and [p.name for p in subdirs(train)] == ["good"]
        and (root / "test" / "good").is_dir()
    )


def discover_mvtec(root: Path) -> DatasetSpec:
    """One item per image in train/ and test/; every defect image must have its mask."""
    if not (root / "train" / "good").is_dir():
        raise DatasetError(f"{root}: MVTec layout needs train/good/ (found ground_truth/)")
    if not (root / "test").is_dir():
        raise DatasetError(f"{root}: MVTec layout needs test/good/ and test/<defect>/")
    rows = []
    for split in ("train", "test"):
        for class_dir in subdirs(root / split):
            label = class_dir.name
            if split == "train" and label != "good":
                raise DatasetError(
                    f"train/{label}/: MVTec's train/ holds only good parts; move defects to test/"
                )
            for image in images_in(class_dir, root):
                mask = None
                if label != "good":
                    mask = root / "ground_truth" / label / f"{image.stem}_mask.png"
                rows.append(
                    {
                        "path": str(image),
                        "label": label,
                        "split": split,
                        "defect_type": "" if label == "good" else label,
                        "mask_path": str(mask) if mask is not None else None,
                    }
                )
    items = pd.DataFrame(rows)
    missing = [
        f"{relative(p, root)} (expected {relative(m, root)})"
        for p, m in zip(items["path"], items["mask_path"], strict=True)
        if given(m) and not Path(m).is_file()
    ]
    if missing:
        raise DatasetError(f"{root}: {len(missing)} defect images have no mask: {listing(missing)}")
    if "good" not in set(items["label"]):
        raise DatasetError(f"{root}: no good images in train/good/ or test/good/")
    return build_spec(root, "mvtec", items)
