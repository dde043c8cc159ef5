import argparse

import pytest

import store
from store.tracking import add_wandb_argument, parse_bool, start_tracking


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], False), (["--wandb"], True), (["--wandb", "True"], True), (["--wandb", "false"], False)],
)
def test_wandb_flag_accepts_bare_and_true_false_forms(argv, expected):
    parser = argparse.ArgumentParser()
    add_wandb_argument(parser)
    assert parser.parse_args(argv).wandb is expected


def test_wandb_flag_rejects_other_words():
    with pytest.raises(argparse.ArgumentTypeError, match="expected True or False"):
        parse_bool("maybe")


def test_disabled_tracking_is_a_silent_no_op():
    tracker = start_tracking(False, "x", {}, store.create_run_dir("x"), "train")
    tracker.log({"loss": 1.0})
    assert tracker.info() == {"enabled": False}
    assert tracker.keras_callback() is None


def test_offline_tracking_leaves_its_metrics_on_disk(monkeypatch, isolated_dirs):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run_dir = store.create_run_dir("tracked")
    tracker = start_tracking(True, "tracked", {"lr": 0.1}, run_dir, "train")
    tracker.log({"loss": 0.5}, step=1)
    info = tracker.info()
    tracker.finish()
    assert info["enabled"] and info["mode"] == "offline"
    assert list((isolated_dirs / "wandb").rglob("*.wandb"))
