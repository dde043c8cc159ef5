"""Training refuses any image known to be defective, and lists it."""

import pandas as pd
import pytest
from test_anomaly_pipeline import make_dataset

from anomaly.calibration import split_good
from anomaly.normal_set import DefectInTrainingError, TrainingSetError, select_training_paths
from imaging import discover


@pytest.fixture
def data(tmp_path):
    return make_dataset(tmp_path / "data")


def test_the_normal_train_folder_is_the_default_training_set(data):
    paths = select_training_paths(discover(data))
    assert len(paths) == 14
    assert all("/train/ok_front/" in p for p in paths)


def test_explicit_defect_images_are_refused_and_listed(data):
    defect = data / "train" / "def_front" / "def_front_00.png"
    good = data / "train" / "ok_front" / "ok_front_00.png"
    with pytest.raises(DefectInTrainingError, match="def_front_00.png") as info:
        select_training_paths(discover(data), [good, defect])
    assert info.value.paths == [str(defect.resolve())]


def test_a_normal_file_annotated_as_defective_is_refused(data):
    table = pd.read_csv(data / "annotations.csv", keep_default_na=False)
    row = table["path"] == "train/ok_front/ok_front_03.png"
    table.loc[row, "defect_type"] = "scratch"
    table.to_csv(data / "annotations.csv", index=False)
    with pytest.raises(DefectInTrainingError, match="annotations.csv") as info:
        select_training_paths(discover(data))
    assert [p.split("/")[-1] for p in info.value.paths] == ["ok_front_03.png"]


def test_a_copy_of_a_defect_image_in_the_normal_folder_is_refused(data):
    source = data / "train" / "def_front" / "def_front_01.png"
    (data / "train" / "ok_front" / "looks_fine.png").write_bytes(source.read_bytes())
    with pytest.raises(DefectInTrainingError, match="byte-identical") as info:
        select_training_paths(discover(data))
    assert info.value.paths[0].endswith("looks_fine.png")


def test_test_split_images_cannot_be_trained_on(data):
    with pytest.raises(TrainingSetError, match="test split"):
        select_training_paths(discover(data), [data / "test" / "ok_front" / "ok_front_00.png"])


def test_good_images_split_into_disjoint_train_statistics_and_threshold_sets():
    paths = [f"img{i}.png" for i in range(20)]
    split = split_good(paths, calib_frac=0.2, seed=0)
    assert (len(split.train), len(split.stats), len(split.threshold)) == (16, 2, 2)
    assert not set(split.train) & (set(split.stats) | set(split.threshold))
    assert not set(split.stats) & set(split.threshold)


def test_too_few_good_images_are_refused():
    with pytest.raises(TrainingSetError, match="at least 8"):
        split_good(["a.png"] * 3, calib_frac=0.2, seed=0)
