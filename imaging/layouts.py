"""Data-set layouts on disk (class folders, MVTec AD, CSV manifest) -> one `DatasetSpec`.

Discovery only lists files and checks the structure (classes, splits, masks, manifest rows); it
never decodes pixels, so it is fast on thousands of images. Bad pixels are `read_image`'s job.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from imaging.decode import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
ITEM_COLUMNS = ("path", "label", "split", "is_defect", "defect_type", "mask_path")
BOX_COLUMNS = ("path", "x_min", "y_min", "x_max", "y_max", "defect_type")
# A box in annotations.csv and manifests: pixel corners, x_min < x_max and y_min < y_max.
BOX_COORDS = ("x_min", "y_min", "x_max", "y_max")
MANIFEST_NAME = "manifest.csv"
ANNOTATIONS_NAME = "annotations.csv"
_SHOWN = 5


class DatasetError(ValueError):
    """A data set whose layout, classes, splits, masks or manifest rows cannot be used."""


def is_normal_class(name: str) -> bool:
    """Folder/label names that mean 'no defect': ok*, good, normal (any case)."""
    low = name.lower()
    return low.startswith("ok") or low in ("good", "normal")


def _listing(values: Sequence[str], limit: int = _SHOWN) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" ... and {len(values) - limit} more" if len(values) > limit else "")


@dataclass(frozen=True, eq=False)
class DatasetSpec:
    """What a data set holds: one row per image in `items`, one row per defect box in `boxes`."""

    root: Path
    layout: str
    items: pd.DataFrame
    boxes: pd.DataFrame = field(default_factory=lambda: _empty_boxes())
    class_names: list[str] = field(default_factory=list)
    normal_class: str = ""

    @property
    def splits(self) -> list[str]:
        """Splits present, in train/val/test order."""
        present = set(self.items["split"])
        return [s for s in SPLITS if s in present]

    def split(self, name: str) -> pd.DataFrame:
        """The items of one split (a copy with a fresh index)."""
        name = _SPLIT_ALIASES.get(name.lower(), name)
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
                f"labels {_listing(unknown)} are not classes of this data set "
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
        _check_fraction("fraction", fraction)
        train = self.items[self.items["split"] == "train"]
        classes = sorted(set(train["label"]))
        if len(classes) < 2:
            raise DatasetError(
                f"expected 2 classes in train/ to split off a validation set, found "
                f"{len(classes)}: {', '.join(classes) or 'none'}; for MVTec use "
                "spec.classifier_split() to split test/ into train/val/test"
            )
        val_index = _stratified_pick(train, fraction, seed)
        items = self.items.copy()
        items.loc[val_index, "split"] = "val"
        log.info(
            "moved %d of %d training images to val (seed %d)", len(val_index), len(train), seed
        )
        return replace(self, items=items)

    def classifier_split(
        self, val_fraction: float = 0.2, test_fraction: float = 0.3, seed: int = 0
    ) -> DatasetSpec:
        """Stratified train/val/test split of test/ alone, for layouts whose train/ has no defects.

        MVTec's train/ holds only good parts, so a classifier must learn from test/; the
        original train/ images are left out (they would swamp the few defects).
        """
        _check_fraction("val_fraction", val_fraction)
        _check_fraction("test_fraction", test_fraction)
        if val_fraction + test_fraction >= 1.0:
            raise DatasetError("val_fraction + test_fraction must leave some images for training")
        pool = self.items[self.items["split"] == "test"]
        classes = sorted(set(pool["label"]))
        if len(classes) < 2:
            raise DatasetError(
                f"expected 2 classes in test/ to make a classifier split, found {len(classes)}: "
                f"{', '.join(classes) or 'none'}"
            )
        items = pool.copy()
        items["split"] = "train"
        test_index = _stratified_pick(items, test_fraction, seed)
        items.loc[test_index, "split"] = "test"
        rest = items[items["split"] == "train"]
        val_index = _stratified_pick(rest, val_fraction / (1.0 - test_fraction), seed + 1)
        items.loc[val_index, "split"] = "val"
        items = items.reset_index(drop=True)
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
            width, height = _dimensions(path)
            rows.append(f"{_relative(path, self.root)}\t{width}x{height}\t{label}\t{split}")
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


def discover(root: str | Path) -> DatasetSpec:
    """Read a data set's layout: a CSV manifest, an MVTec AD tree or class folders."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DatasetError(f"{root}: expected a folder or a .csv manifest")
        return _discover_csv(root)
    root = root.resolve()
    if (root / MANIFEST_NAME).is_file():
        return _discover_csv(root / MANIFEST_NAME)
    if _looks_like_mvtec(root):
        return _discover_mvtec(root)
    return _discover_class_folders(root)


# --- shared helpers ------------------------------------------------------------------------


def _empty_boxes() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=object if c in ("path", "defect_type") else float) for c in BOX_COLUMNS}
    )


def _given(value: object) -> bool:
    """A non-empty string (pandas turns None into NaN in string columns)."""
    return isinstance(value, str) and value != ""


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < float(value) < 1.0:
        raise DatasetError(f"{name} must be between 0 and 1 (exclusive), got {value}")


def _stratified_pick(frame: pd.DataFrame, fraction: float, seed: int) -> list:
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


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _dimensions(path: str) -> tuple[int, int]:
    """(width, height) from the image header, (-1, -1) when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return -1, -1


def _is_image(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
    )


def _images_in(folder: Path, root: Path) -> list[Path]:
    """Image files directly in `folder`; other files are reported, not silently dropped."""
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    images = [p for p in files if _is_image(p)]
    others = [p.name for p in files if p.is_file() and p not in images]
    if others:
        log.warning(
            "%s: ignoring %d non-image files (%s); accepted: %s",
            _relative(str(folder), root),
            len(others),
            _listing(others),
            " ".join(IMAGE_EXTENSIONS),
        )
    if not images:
        raise DatasetError(
            f"{_relative(str(folder), root)}/ holds no images ({' '.join(IMAGE_EXTENSIONS)})"
        )
    return images


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


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


def _finish(
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
    boxes = _empty_boxes() if boxes is None or boxes.empty else boxes[list(BOX_COLUMNS)]
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


# --- class folders -------------------------------------------------------------------------


def _split_folders(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for sub in _subdirs(root):
        split = _SPLIT_ALIASES.get(sub.name.lower())
        if split is None:
            continue
        if split in found:
            raise DatasetError(
                f"{root}: both {found[split].name}/ and {sub.name}/ look like the {split} split; "
                "keep one"
            )
        found[split] = sub
    return found


def _discover_class_folders(root: Path) -> DatasetSpec:
    splits = _split_folders(root)
    if not splits:
        subdirs = [p.name for p in _subdirs(root)]
        if not subdirs:
            raise DatasetError(
                f"{root}: no data set found; expected train/<class>/ and test/<class>/ folders, "
                f"an MVTec tree or a {MANIFEST_NAME}"
            )
        raise DatasetError(
            f"{root}: no train/, val/ or test/ folder (found: {_listing(subdirs)}); expected "
            "train/<class>/* and test/<class>/*"
        )
    ignored = [p.name for p in _subdirs(root) if p not in splits.values()]
    if ignored:
        log.info("%s: ignoring non-split folders %s", root, ", ".join(ignored))
    rows = []
    for split, folder in splits.items():
        classes = _subdirs(folder)
        if not classes:
            raise DatasetError(
                f"{folder.name}/ holds no class folders (expected {folder.name}/<class>/*)"
            )
        for class_dir in classes:
            for image in _images_in(class_dir, root):
                rows.append({"path": str(image), "label": class_dir.name, "split": split})
    items = pd.DataFrame(rows)
    boxes = None
    if (root / ANNOTATIONS_NAME).is_file():
        items, boxes = _join_annotations(root, items)
    return _finish(root, "class_folders", items, boxes)


def _join_annotations(root: Path, items: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Masks, defect types and boxes from the synthetic generator's annotations.csv."""
    source = root / ANNOTATIONS_NAME
    table = _read_csv(source)
    if "path" not in table:
        raise DatasetError(f"{source}: no 'path' column (columns: {', '.join(table.columns)})")
    table["path"] = [str((root / p).resolve()) if p else "" for p in table["path"]]
    known = set(items["path"])
    stray = table.loc[~table["path"].isin(known), "path"]
    if len(stray):
        log.warning(
            "%s: %d rows name images not in the class folders (%s)",
            source,
            len(stray),
            _listing([_relative(p, root) for p in stray.unique()]),
        )
    boxes = _boxes_from(table, source, first_row=2)
    boxes = boxes[boxes["path"].isin(known)]
    table = table[table["path"].isin(known)]
    items = items.copy()
    if "defect_type" in table:
        types = table[table["defect_type"] != ""].groupby("path")["defect_type"].first()
        items["defect_type"] = items["path"].map(types).fillna("")
    if "mask_path" in table:
        masks = table[table["mask_path"] != ""].groupby("path")["mask_path"].first()
        items["mask_path"] = items["path"].map(
            lambda p: str((root / masks[p]).resolve()) if p in masks.index else None
        )
        _check_masks(items, root, source)
    return items, boxes


def _check_masks(items: pd.DataFrame, root: Path, source: Path) -> None:
    missing = [
        _relative(m, root) for m in items["mask_path"] if _given(m) and not Path(m).is_file()
    ]
    if missing:
        raise DatasetError(f"{source}: {len(missing)} mask files are missing: {_listing(missing)}")


# --- MVTec AD ------------------------------------------------------------------------------


def _looks_like_mvtec(root: Path) -> bool:
    if (root / "ground_truth").is_dir():
        return True
    train = root / "train"
    return (
        train.is_dir()
        and [p.name for p in _subdirs(train)] == ["good"]
        and (root / "test" / "good").is_dir()
    )


def _discover_mvtec(root: Path) -> DatasetSpec:
    if not (root / "train" / "good").is_dir():
        raise DatasetError(f"{root}: MVTec layout needs train/good/ (found ground_truth/)")
    if not (root / "test").is_dir():
        raise DatasetError(f"{root}: MVTec layout needs test/good/ and test/<defect>/")
    rows = []
    for split in ("train", "test"):
        for class_dir in _subdirs(root / split):
            label = class_dir.name
            if split == "train" and label != "good":
                raise DatasetError(
                    f"train/{label}/: MVTec's train/ holds only good parts; move defects to test/"
                )
            for image in _images_in(class_dir, root):
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
        f"{_relative(p, root)} (expected {_relative(m, root)})"
        for p, m in zip(items["path"], items["mask_path"], strict=True)
        if _given(m) and not Path(m).is_file()
    ]
    if missing:
        raise DatasetError(
            f"{root}: {len(missing)} defect images have no mask: {_listing(missing)}"
        )
    if "good" not in set(items["label"]):
        raise DatasetError(f"{root}: no good images in train/good/ or test/good/")
    return _finish(root, "mvtec", items)


# --- CSV manifest --------------------------------------------------------------------------


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{path}: not a readable CSV file ({exc})") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    return table


def _rows(frame: pd.DataFrame, mask: pd.Series, first_row: int) -> str:
    """CSV line numbers (header is line 1) of the rows where mask holds."""
    return _listing([str(i + first_row) for i in np.flatnonzero(mask.to_numpy())], limit=8)


def _boxes_from(table: pd.DataFrame, source: Path, first_row: int) -> pd.DataFrame:
    present = [c for c in BOX_COORDS if c in table]
    if not present:
        return _empty_boxes()
    if len(present) != 4:
        raise DatasetError(
            f"{source}: box columns need all of {', '.join(BOX_COORDS)}; found {', '.join(present)}"
        )
    coords = table[list(BOX_COORDS)].replace("", np.nan)
    filled = coords.notna()
    partial = filled.any(axis=1) & ~filled.all(axis=1)
    if partial.any():
        raise DatasetError(
            f"{source}: rows {_rows(table, partial, first_row)} have an incomplete box"
        )
    numbers = coords.apply(pd.to_numeric, errors="coerce")
    bad = filled.all(axis=1) & (
        numbers.isna().any(axis=1)
        | (numbers["x_min"] >= numbers["x_max"])
        | (numbers["y_min"] >= numbers["y_max"])
        | (numbers[["x_min", "y_min"]] < 0).any(axis=1)
    )
    if bad.any():
        raise DatasetError(
            f"{source}: rows {_rows(table, bad, first_row)} have invalid boxes (need numbers "
            "with 0 <= x_min < x_max and 0 <= y_min < y_max)"
        )
    has_box = filled.all(axis=1)
    boxes = numbers[has_box].astype(float)
    boxes.insert(0, "path", table.loc[has_box, "path"])
    boxes["defect_type"] = table.loc[has_box, "defect_type"] if "defect_type" in table else ""
    return boxes.reset_index(drop=True)


def _discover_csv(csv_path: Path) -> DatasetSpec:
    csv_path = csv_path.resolve()
    base = csv_path.parent
    table = _read_csv(csv_path)
    missing_cols = [c for c in ("path", "label") if c not in table]
    if missing_cols:
        raise DatasetError(
            f"{csv_path}: missing column(s) {', '.join(missing_cols)} (found: "
            f"{', '.join(table.columns)}); a manifest needs path,label[,split]"
        )
    if table.empty:
        raise DatasetError(f"{csv_path}: the manifest has no rows")
    first_row = 2
    table["path"] = table["path"].str.strip()
    table["label"] = table["label"].str.strip()
    for column, what in (("path", "an empty path"), ("label", "an empty label")):
        empty = table[column] == ""
        if empty.any():
            raise DatasetError(f"{csv_path}: rows {_rows(table, empty, first_row)} have {what}")
    table["path"] = [str((base / p).resolve()) for p in table["path"]]
    bad_ext = ~table["path"].map(lambda p: Path(p).suffix.lower() in IMAGE_EXTENSIONS)
    if bad_ext.any():
        raise DatasetError(
            f"{csv_path}: rows {_rows(table, bad_ext, first_row)} name files that are not "
            f"images ({' '.join(IMAGE_EXTENSIONS)})"
        )
    exists = {p: Path(p).is_file() for p in table["path"].unique()}
    missing = ~table["path"].map(exists)
    if missing.any():
        names = _listing([_relative(p, base) for p in table.loc[missing, "path"].unique()])
        raise DatasetError(
            f"{csv_path}: rows {_rows(table, missing, first_row)} name missing files ({names})"
        )
    if "split" in table:
        table["split"] = table["split"].str.strip().str.lower()
        mapped = table["split"].map(lambda s: _SPLIT_ALIASES.get(s, "train" if s == "" else None))
        unknown = mapped.isna()
        if unknown.any():
            raise DatasetError(
                f"{csv_path}: rows {_rows(table, unknown, first_row)} have unknown split "
                f"names {_listing(sorted(set(table.loc[unknown, 'split'])))}; use "
                f"{', '.join(SPLITS)}"
            )
        table["split"] = mapped
    else:
        table["split"] = "train"
    conflicts = table.groupby("path")[["label", "split"]].nunique().max(axis=1) > 1
    if conflicts.any():
        clash = table["path"].isin(set(conflicts[conflicts].index))
        raise DatasetError(
            f"{csv_path}: rows {_rows(table, clash, first_row)} give the same image different "
            "labels or splits"
        )
    boxes = _boxes_from(table, csv_path, first_row)
    columns = ["path", "label", "split"] + [c for c in ("defect_type", "mask_path") if c in table]
    items = table[columns].drop_duplicates("path").reset_index(drop=True)
    if "mask_path" in items:
        items["mask_path"] = [str((base / m).resolve()) if m else None for m in items["mask_path"]]
        _check_masks(items, base, csv_path)
    return _finish(base, "csv", items, boxes)
