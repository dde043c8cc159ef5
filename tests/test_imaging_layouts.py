"""discover: class folders, MVTec and CSV manifests become one DatasetSpec, or a clear error."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from imaging import DatasetError, discover


def write_image(path: Path, value: int = 128, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)
    return path


def kaggle_tree(root: Path, n: int = 3) -> Path:
    """The casting set's shape: train|test/def_front|ok_front, file names like the real ones."""
    for split in ("train", "test"):
        for i in range(n):
            write_image(root / split / "def_front" / f"cast_def_0_{i}.jpeg", 40)
            write_image(root / split / "ok_front" / f"cast_ok_0_{i}.jpeg", 200)
    return root


def mvtec_tree(root: Path) -> Path:
    for i in range(3):
        write_image(root / "train" / "good" / f"{i:03d}.png")
        write_image(root / "test" / "good" / f"{i:03d}.png")
        for defect in ("crack", "hole"):
            write_image(root / "test" / defect / f"{i:03d}.png", 30)
            write_image(root / "ground_truth" / defect / f"{i:03d}_mask.png", 255)
    return root


# --- class folders --------------------------------------------------------------------------


def test_kaggle_tree_parses(tmp_path):
    root = kaggle_tree(tmp_path / "casting")
    (root / "masks" / "train").mkdir(parents=True)  # generator extras are not splits
    spec = discover(root)
    assert spec.layout == "class_folders"
    assert spec.class_names == ["ok_front", "def_front"] and spec.normal_class == "ok_front"
    assert spec.counts() == {
        "train": {"def_front": 3, "ok_front": 3},
        "test": {"def_front": 3, "ok_front": 3},
    }
    items = spec.items
    assert list(items.columns) == [
        "path", "label", "split", "is_defect", "defect_type", "mask_path",
    ]  # fmt: skip
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in items["path"])
    assert (items["is_defect"] == (items["label"] == "def_front")).all()
    assert set(items.loc[~items["is_defect"], "defect_type"]) == {""}
    assert items["mask_path"].isna().all()


def test_split_returns_one_split_and_labels_index_classes(tmp_path):
    spec = discover(kaggle_tree(tmp_path))
    test = spec.split("test")
    assert len(test) == 6 and set(test["split"]) == {"test"}
    np.testing.assert_array_equal(spec.labels_to_index(["def_front", "ok_front"]), [1, 0])
    with pytest.raises(DatasetError, match="not classes of this data set"):
        spec.labels_to_index(["scratch"])


def test_single_class_folder_is_refused(tmp_path):
    for i in range(2):
        write_image(tmp_path / "train" / "ok_front" / f"{i}.png")
    with pytest.raises(DatasetError, match=r"expected 2 classes, found 1 in train/: ok_front"):
        discover(tmp_path)


def test_class_folder_without_images_is_refused(tmp_path):
    kaggle_tree(tmp_path)
    (tmp_path / "test" / "def_front").joinpath("readme.txt").write_text("x")
    for image in (tmp_path / "test" / "def_front").glob("*.jpeg"):
        image.unlink()
    with pytest.raises(DatasetError, match=r"test/def_front/ holds no images"):
        discover(tmp_path)


def test_folder_without_splits_is_refused(tmp_path):
    write_image(tmp_path / "pictures" / "a.png")
    with pytest.raises(DatasetError, match="no train/, val/ or test/ folder"):
        discover(tmp_path)


def test_classes_without_a_normal_class_are_refused(tmp_path):
    for name in ("scratch", "dent"):
        write_image(tmp_path / "train" / name / "a.png")
    with pytest.raises(DatasetError, match="no normal class"):
        discover(tmp_path)


def test_annotations_csv_joins_masks_types_and_boxes(tmp_path):
    root = kaggle_tree(tmp_path, n=2)
    defect = "train/def_front/cast_def_0_0.jpeg"
    write_image(root / "masks" / "train" / "cast_def_0_0_mask.png", 255)
    pd.DataFrame(
        [
            [defect, "train", "def_front", "blowhole", "masks/train/cast_def_0_0_mask.png",
             1, 1, 3, 3],
            [defect, "train", "def_front", "blowhole", "masks/train/cast_def_0_0_mask.png",
             5, 5, 7, 8],
            ["train/ok_front/cast_ok_0_0.jpeg", "train", "ok_front", "", "", "", "", "", ""],
        ],
        columns=["path", "split", "label", "defect_type", "mask_path",
                 "x_min", "y_min", "x_max", "y_max"],
    ).to_csv(root / "annotations.csv", index=False)  # fmt: skip
    spec = discover(root)
    row = spec.items.set_index("path").loc[str(root / defect)]
    assert row["defect_type"] == "blowhole"
    assert row["mask_path"] == str(root / "masks" / "train" / "cast_def_0_0_mask.png")
    assert len(spec.boxes) == 2 and set(spec.boxes["path"]) == {str(root / defect)}
    assert spec.boxes.iloc[1][["x_min", "y_min", "x_max", "y_max"]].tolist() == [5, 5, 7, 8]


def test_annotations_naming_a_missing_mask_are_refused(tmp_path):
    root = kaggle_tree(tmp_path, n=1)
    pd.DataFrame(
        {
            "path": ["train/def_front/cast_def_0_0.jpeg"],
            "split": ["train"],
            "label": ["def_front"],
            "defect_type": ["scratch"],
            "mask_path": ["masks/train/cast_def_0_0_mask.png"],
        }
    ).to_csv(root / "annotations.csv", index=False)
    with pytest.raises(DatasetError, match=r"1 mask files are missing: masks/train/cast_def_0_0"):
        discover(root)


def test_with_val_split_is_stratified_and_reproducible(tmp_path):
    spec = discover(kaggle_tree(tmp_path, n=10))
    split = spec.with_val_split(0.2, seed=1)
    assert split.counts()["val"] == {"def_front": 2, "ok_front": 2}
    assert split.counts()["train"] == {"def_front": 8, "ok_front": 8}
    again = spec.with_val_split(0.2, seed=1)
    pd.testing.assert_frame_equal(split.items, again.items)
    assert split.with_val_split(0.5) is split  # a val split exists: nothing moves


def test_fingerprint_follows_files_and_labels_not_location(tmp_path):
    first = discover(kaggle_tree(tmp_path / "a"))
    second = discover(kaggle_tree(tmp_path / "b"))
    assert first.fingerprint() == second.fingerprint()
    write_image(tmp_path / "b" / "test" / "ok_front" / "cast_ok_0_0.jpeg", 200, size=16)
    assert discover(tmp_path / "b").fingerprint() != first.fingerprint()
    assert first.as_binary().fingerprint() != first.fingerprint()


def test_fingerprint_ignores_compressed_bytes_and_pixel_stats_see_the_pixels(tmp_path):
    """What differs between machines (PNG compression of the same render, a grey level of
    rounding) leaves the record alone; a different image does not."""
    root = tmp_path / "set"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label, value in (("def_front", 40), ("ok_front", 200)):
            img = np.full((12, 20), value, np.uint8)
            img[2:5, 3:9] = 90
            path = root / split / label / "a.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path, compress_level=0)
    first = discover(root)
    fingerprint, stats = first.fingerprint(), first.pixel_stats()
    assert stats["train"]["images"] == 2
    assert stats["train"]["mean"] == pytest.approx((40 * 222 + 200 * 222 + 90 * 36) / 480, 1e-4)
    sizes = {}
    for path in first.items["path"]:  # other compressed bytes, pixels off by up to one level
        pixels = np.asarray(Image.open(path)).astype(np.int16)
        noisy = np.clip(pixels + rng.integers(-1, 2, pixels.shape), 0, 255).astype(np.uint8)
        sizes[path] = Path(path).stat().st_size
        Image.fromarray(noisy).save(path, compress_level=9)
    assert all(Path(p).stat().st_size != n for p, n in sizes.items())
    again = discover(root)
    assert again.fingerprint() == fingerprint
    for split in ("train", "test"):
        assert again.pixel_stats()[split]["mean"] == pytest.approx(stats[split]["mean"], abs=0.5)
        assert again.pixel_stats()[split]["std"] == pytest.approx(stats[split]["std"], abs=0.5)
    write_image(Path(first.items["path"][0]), 255, size=12)  # another image, other size
    assert discover(root).fingerprint() != fingerprint
    assert discover(root).pixel_stats()["test"]["mean"] != pytest.approx(stats["test"]["mean"])


# --- MVTec ----------------------------------------------------------------------------------


def test_mvtec_tree_parses_with_masks(tmp_path):
    root = mvtec_tree(tmp_path / "bottle")
    spec = discover(root)
    assert spec.layout == "mvtec"
    assert spec.class_names == ["good", "crack", "hole"]
    assert spec.counts()["train"] == {"good": 3}
    defects = spec.items[spec.items["is_defect"]]
    assert len(defects) == 6 and set(defects["defect_type"]) == {"crack", "hole"}
    assert all(Path(m).name == Path(p).stem + "_mask.png" for p, m in
               zip(defects["path"], defects["mask_path"], strict=True))  # fmt: skip
    assert spec.items.loc[~spec.items["is_defect"], "mask_path"].isna().all()


def test_mvtec_missing_mask_is_refused(tmp_path):
    root = mvtec_tree(tmp_path)
    (root / "ground_truth" / "hole" / "001_mask.png").unlink()
    with pytest.raises(
        DatasetError,
        match=r"no mask: test/hole/001.png \(expected ground_truth/hole/001_mask.png\)",
    ):
        discover(root)


def test_mvtec_val_split_points_to_classifier_split(tmp_path):
    spec = discover(mvtec_tree(tmp_path))
    with pytest.raises(DatasetError, match="classifier_split"):
        spec.with_val_split(0.2)
    split = spec.classifier_split(val_fraction=0.34, test_fraction=0.34, seed=0)
    assert split.counts() == {
        "train": {"crack": 1, "good": 1, "hole": 1},
        "val": {"crack": 1, "good": 1, "hole": 1},
        "test": {"crack": 1, "good": 1, "hole": 1},
    }


# --- CSV manifest ---------------------------------------------------------------------------


def write_manifest(folder: Path, rows: list[str]) -> Path:
    path = folder / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_manifest_with_boxes_parses(tmp_path):
    write_image(tmp_path / "img" / "a.png", 30)
    write_image(tmp_path / "img" / "b.png", 200)
    write_image(tmp_path / "img" / "c.png", 30)
    write_image(tmp_path / "img" / "d.png", 200)
    write_manifest(
        tmp_path,
        [
            "path,label,split,x_min,y_min,x_max,y_max",
            "img/a.png,scratch,train,1,1,4,4",
            "img/a.png,scratch,train,5,5,7,7",
            "img/b.png,OK,train,,,,",
            "img/c.png,scratch,test,0,0,2,3",
            "img/d.png,OK,test,,,,",
        ],
    )
    spec = discover(tmp_path)  # the folder holding manifest.csv
    assert spec.layout == "csv" and spec.class_names == ["OK", "scratch"]
    assert len(spec.items) == 4 and spec.items["path"].is_unique
    assert len(spec.boxes) == 3
    assert spec.boxes["path"].tolist().count(str(tmp_path / "img" / "a.png")) == 2
    assert discover(tmp_path / "manifest.csv").fingerprint() == spec.fingerprint()


def test_csv_rows_naming_missing_files_are_refused_with_row_numbers(tmp_path):
    write_image(tmp_path / "a.png")
    write_manifest(tmp_path, ["path,label", "a.png,ok", "gone.png,dent", "a.png,ok"])
    with pytest.raises(DatasetError, match=r"rows 3 name missing files \(gone.png\)"):
        discover(tmp_path)


def test_csv_unknown_split_names_are_refused(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png")
    write_manifest(tmp_path, ["path,label,split", "a.png,ok,train", "b.png,dent,holdout"])
    with pytest.raises(DatasetError, match=r"rows 3 have unknown split names holdout"):
        discover(tmp_path)


def test_csv_without_label_column_is_refused(tmp_path):
    write_image(tmp_path / "a.png")
    with pytest.raises(DatasetError, match=r"missing column\(s\) label"):
        discover(write_manifest(tmp_path, ["path,class", "a.png,ok"]))


def test_csv_inverted_box_is_refused(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png")
    write_manifest(
        tmp_path,
        ["path,label,x_min,y_min,x_max,y_max", "a.png,ok,,,,", "b.png,dent,5,1,2,4"],
    )
    with pytest.raises(DatasetError, match=r"rows 3 have invalid boxes"):
        discover(tmp_path)
