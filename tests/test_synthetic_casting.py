"""Synthetic casting parts: determinism, exact masks, defect sizes, layouts and the CLI."""

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from synthetic import writer
from synthetic.__main__ import main as synthetic_main
from synthetic.casting import (
    AREA_RANGE,
    DEFECT_TYPES,
    CastingOptionError,
    UnknownDefectError,
    render_part,
)
from synthetic.writer import generate_casting_dataset, plan_dataset


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _read_annotations(root: Path) -> list[dict[str, str]]:
    with open(root / "annotations.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("casting") / "set"
    generate_casting_dataset(out, n=30, size=96, seed=5, test_frac=0.25, workers=1)
    return out


def test_same_seed_writes_the_same_bytes(tmp_path, small_set):
    generate_casting_dataset(tmp_path / "again", n=30, size=96, seed=5, test_frac=0.25, workers=1)
    assert _tree_bytes(tmp_path / "again") == _tree_bytes(small_set)


def test_worker_processes_write_the_same_bytes_as_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "PARALLEL_MIN_IMAGES", 0)
    generate_casting_dataset(tmp_path / "one", n=8, size=64, seed=2, workers=1)
    generate_casting_dataset(tmp_path / "two", n=8, size=64, seed=2, workers=2)
    assert _tree_bytes(tmp_path / "one") == _tree_bytes(tmp_path / "two")


def test_different_seeds_give_different_images():
    first, _ = render_part(0)
    second, _ = render_part(1)
    assert first.shape == second.shape == (300, 300)
    assert np.mean(first != second) > 0.5


def test_a_generator_seed_is_reproducible():
    first, _ = render_part(np.random.default_rng(7), size=128, defect="scratch")
    second, _ = render_part(np.random.default_rng(7), size=128, defect="scratch")
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("defect", DEFECT_TYPES)
def test_mask_is_exactly_where_the_defect_changed_the_part(defect):
    for seed in range(3):
        clean, empty = render_part(seed)
        damaged, mask = render_part(seed, defect=defect)
        assert not empty.any()
        assert set(np.unique(mask)) == {0, 255}
        np.testing.assert_array_equal(damaged != clean, mask > 0)


@pytest.mark.parametrize("defect", DEFECT_TYPES)
def test_each_defect_covers_a_tenth_to_three_percent_of_the_image(defect):
    low, high = AREA_RANGE
    for seed in range(10, 16):
        _, mask = render_part(seed, defect=defect)
        assert low <= np.mean(mask > 0) <= high, f"{defect} seed {seed}"


def test_good_parts_are_not_blank_and_vary():
    images = [render_part(seed)[0] for seed in range(4)]
    for image in images:
        part = image[100:200, 100:200].astype(float)
        background = image[:15, :15].astype(float)
        assert part.std() > 8
        assert part.mean() > background.mean() + 30
    assert len({image.tobytes() for image in images}) == 4


def test_unknown_defect_is_refused_by_name():
    with pytest.raises(UnknownDefectError, match="crack"):
        render_part(0, defect="crack")


def test_library_refuses_too_few_images_before_writing(tmp_path):
    with pytest.raises(CastingOptionError, match="n=1"):
        generate_casting_dataset(tmp_path / "one", n=1)
    assert not (tmp_path / "one").exists()


def test_plan_has_the_kaggle_defect_share_and_balanced_types():
    plan = plan_dataset(700, seed=0, test_frac=0.2)
    kinds = [kind for _, _, _, kind, _ in plan]
    assert 0.54 < np.mean([bool(k) for k in kinds]) < 0.60
    counts = [kinds.count(t) for t in DEFECT_TYPES]
    assert max(counts) - min(counts) <= 1
    assert 0.18 < np.mean([split == "test" for _, split, _, _, _ in plan]) < 0.22


def test_class_folders_hold_every_image_once(small_set):
    train = list((small_set / "train").glob("*/*.png"))
    test = list((small_set / "test").glob("*/*.png"))
    assert len(train) + len(test) == 30
    assert {p.parent.name for p in train + test} == {"def_front", "ok_front"}
    assert test and all(p.name.startswith("cast_") for p in train + test)


def test_annotations_match_images_masks_and_boxes(small_set):
    rows = _read_annotations(small_set)
    assert {row["path"] for row in rows} == {
        str(p.relative_to(small_set)) for p in small_set.glob("t*/*/*.png")
    }
    for row in rows:
        image = cv2.imread(str(small_set / row["path"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (96, 96) and image.dtype == np.uint8
        assert row["split"] == Path(row["path"]).parts[0]
        assert row["label"] == Path(row["path"]).parts[1]
        if row["label"] == "ok_front":
            assert row["defect_type"] == row["mask_path"] == row["x_min"] == ""
            continue
        assert row["defect_type"] in DEFECT_TYPES
        mask = cv2.imread(str(small_set / row["mask_path"]), cv2.IMREAD_UNCHANGED) > 0
        x0, y0, x1, y1 = (int(row[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
        assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 96
        crop = mask[y0:y1, x0:x1]
        # Tight box: mask pixels touch all four sides.
        assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()


def test_boxes_cover_every_mask_component(small_set):
    rows = _read_annotations(small_set)
    for mask_path in {row["mask_path"] for row in rows if row["mask_path"]}:
        mask = cv2.imread(str(small_set / mask_path), cv2.IMREAD_UNCHANGED)
        covered = np.zeros(mask.shape, bool)
        boxes = [row for row in rows if row["mask_path"] == mask_path]
        for row in boxes:
            covered[
                int(row["y_min"]) : int(row["y_max"]), int(row["x_min"]) : int(row["x_max"])
            ] = 1
        count, _ = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
        assert len(boxes) == count - 1
        assert covered[mask > 0].all()


def test_mvtec_tree_links_the_same_files(small_set):
    rows = _read_annotations(small_set)
    mvtec = small_set / "mvtec"
    for row in rows:
        source = small_set / row["path"]
        if row["defect_type"]:
            twin = mvtec / "test" / row["defect_type"] / source.name
            mask_twin = mvtec / "ground_truth" / row["defect_type"] / f"{source.stem}_mask.png"
            assert mask_twin.read_bytes() == (small_set / row["mask_path"]).read_bytes()
        else:
            twin = mvtec / row["split"] / "good" / source.name
        assert twin.read_bytes() == source.read_bytes()
        assert os.path.samefile(twin, source) or twin.stat().st_nlink == 1
    assert {p.name for p in (mvtec / "train").iterdir()} == {"good"}


def test_types_classes_get_one_folder_per_defect_type(tmp_path):
    out = tmp_path / "types"
    synthetic_main(
        ["casting", "--out", str(out), "--n", "24", "--size", "64", "--classes", "types"]
    )
    folders = {p.name for p in out.glob("t*/*") if p.is_dir()}
    assert folders == {"good", *DEFECT_TYPES}
    for row in _read_annotations(out):
        assert row["label"] == (row["defect_type"] or "good")


def test_cli_prints_a_summary(tmp_path, capsys):
    synthetic_main(["casting", "--out", str(tmp_path / "cli"), "--n", "6", "--size", "64"])
    out = capsys.readouterr().out
    assert "Wrote 6 synthetic castings" in out and "def_front" in out and "ok_front" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "1"], "--n 1: need at least 2 images"),
        (["--size", "32"], "--size 32: use at least 64"),
        (["--test-frac", "1.5"], "--test-frac 1.5"),
        (["--classes", "colours"], "invalid choice: 'colours'"),
    ],
)
def test_cli_refuses_bad_options(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        synthetic_main(["casting", "--out", str(tmp_path / "bad"), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_cli_refuses_a_non_empty_folder_unless_told_to_overwrite(tmp_path, capsys):
    out = tmp_path / "used"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit):
        synthetic_main(["casting", "--out", str(out), "--n", "4", "--size", "64"])
    assert "is not empty" in capsys.readouterr().err
    synthetic_main(["casting", "--out", str(out), "--n", "4", "--size", "64", "--overwrite"])
    synthetic_main(["casting", "--out", str(out), "--n", "3", "--size", "64", "--overwrite"])
    assert (out / "notes.txt").read_text() == "keep me"
    assert len(list(out.glob("t*/*/*.png"))) == 3


def test_sheet_command_writes_a_labelled_png(tmp_path):
    target = tmp_path / "sheet.png"
    synthetic_main(
        ["sheet", "--out", str(target), "--per-row", "1", "--size", "96", "--tile", "64"]
    )
    sheet = cv2.imread(str(target), cv2.IMREAD_COLOR)
    assert sheet.shape[0] > 7 * 64 and sheet.shape[1] > 2 * 64
    red = (sheet[..., 2] > 180) & (sheet[..., 1] < 90) & (sheet[..., 0] < 90)
    assert red.any()


def test_dispatcher_offers_the_melting_generator(capsys):
    with pytest.raises(SystemExit) as exit_info:
        synthetic_main(["melting", "--help"])
    assert exit_info.value.code == 0
    assert "--out" in capsys.readouterr().out
