"""Every consumer of a classifier run decides at the run's saved threshold: change it and the
verdicts change. Uses a copy of the committed demo_flip run on the committed sample images."""

import shutil

import numpy as np
import pytest

import store
from classification.inference import predict_images
from classification.predict import main as predict_main
from classification.train import main as train_main
from inspection import Inspector
from store.thresholds import save_threshold, threshold_record

SAMPLES = sorted((store.repo_root() / "samples" / "casting" / "test").rglob("*.png"))
pytestmark = pytest.mark.skipif(
    not (store.repo_root() / "weights" / "demo_flip" / "model.keras").exists(),
    reason="demo_flip is not committed",
)


@pytest.fixture
def flip_copy(isolated_dirs):
    target = store.weights_dir() / "demo_flip"
    shutil.copytree(store.repo_root() / "weights" / "demo_flip", target)
    return target


def _cut_between_verdicts(probabilities: np.ndarray) -> tuple[float, int]:
    """A threshold just above the lowest flagged probability, and how many it would pass."""
    p = np.sort(probabilities)
    gaps = np.diff(p)
    i = int(np.argmax(gaps))  # the widest gap: a cut that is not a rounding coin-flip
    return float((p[i] + p[i + 1]) / 2), i + 1


def test_predict_and_inspection_follow_the_saved_threshold(flip_copy):
    before = predict_images(flip_copy, SAMPLES)
    assert before.attrs["threshold"] == store.thresholds.run_threshold(
        store.load_run(flip_copy).info
    )
    p = before["defect_probability"].to_numpy()
    for cut in (0.0, 1.0):  # everything flagged, then nothing flagged but p == 1
        save_threshold(flip_copy, threshold_record(cut, f"fixed:{cut}", split="test"))
        frame = predict_images(flip_copy, SAMPLES)
        assert frame["is_defect"].tolist() == (p >= cut).tolist()
    cut, n_below = _cut_between_verdicts(p)
    save_threshold(flip_copy, threshold_record(cut, "manual", split="test"))
    after = predict_images(flip_copy, SAMPLES)
    assert int((~after["is_defect"]).sum()) == n_below
    assert (after["predicted_class"] == np.where(p >= cut, "def_front", "ok_front")).all()

    inspector = Inspector.from_runs(store.load_run(flip_copy))
    assert inspector.defect_threshold == cut
    from imaging import read_image

    rows = inspector.score([read_image(path) for path in SAMPLES])
    assert [r["predicted_class"] for r in rows] == after["predicted_class"].tolist()
    save_threshold(flip_copy, threshold_record(0.0, "fixed:0", split="test"))
    rows = Inspector.from_runs(store.load_run(flip_copy)).score([read_image(SAMPLES[0])])
    assert rows[0]["predicted_class"] == "def_front"


def test_predict_cli_threshold_overrides_and_bad_values_exit_2(flip_copy, tmp_path, capsys):
    out = tmp_path / "p.csv"
    args = ["--run", str(flip_copy), "--images", str(SAMPLES[0]), "--out", str(out)]
    assert predict_main([*args, "--threshold", "0"]) == 0
    assert "defect threshold 0 " in capsys.readouterr().out
    assert predict_main([*args, "--threshold", "1.5"]) == 2
    assert "--threshold 1.5" in capsys.readouterr().err


def test_train_refuses_a_bad_threshold_policy_before_any_work(tmp_path, capsys):
    assert train_main(["--data", str(tmp_path), "--threshold", "recall:2"]) == 2
    assert "recall:2" in capsys.readouterr().err
    assert not store.weights_dir().exists() or not any(store.weights_dir().iterdir())
