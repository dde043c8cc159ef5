"""The threshold record in run.json: round trip, history, the 0.5 default of older runs."""

import pytest

import store
from store.thresholds import (
    DEFAULT_THRESHOLD,
    describe_threshold,
    run_threshold,
    save_threshold,
    threshold_record,
    threshold_source,
)


def _classifier_run(tmp_path, **extra):
    run_dir = store.create_run_dir("cls", root=tmp_path)
    store.write_run_info(run_dir, {"kind": "classifier", "class_names": ["ok", "def"], **extra})
    return run_dir


def test_a_run_without_a_threshold_decides_at_one_half_and_says_so(tmp_path):
    info = store.load_run(_classifier_run(tmp_path)).info
    assert run_threshold(info) == DEFAULT_THRESHOLD == 0.5
    assert threshold_source(info) is None
    assert "default" in describe_threshold(info)


def test_saved_thresholds_round_trip_through_run_json_with_history(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFECTLENS_USER", "qa-anna")
    run_dir = _classifier_run(tmp_path)
    first = threshold_record(0.3125, "f1", precision=0.75, recall=1.0)
    save_threshold(run_dir, first)
    save_threshold(run_dir, threshold_record(0.2, "manual", split="test", set_by="qa-ben"))
    info = store.load_run(run_dir).info
    assert run_threshold(info) == 0.2
    assert [r["value"] for r in info["threshold_history"]] == [0.3125, 0.2]
    assert info["threshold_history"][0]["set_by"] == "qa-anna"
    assert info["threshold_history"][0]["recall"] == 1.0
    current = threshold_source(info)
    assert (current["policy"], current["split"], current["set_by"]) == ("manual", "test", "qa-ben")
    assert current["set_at"].endswith("+00:00")
    assert info["class_names"] == ["ok", "def"]  # the rest of run.json is untouched


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_threshold_values_outside_zero_one_are_refused(bad):
    with pytest.raises(ValueError, match="between 0 and 1"):
        threshold_record(bad, "fixed:x")


def test_only_classifier_runs_take_a_saved_threshold(tmp_path):
    run_dir = store.create_run_dir("ae", root=tmp_path)
    store.write_run_info(run_dir, {"kind": "autoencoder", "threshold": 0.01})
    with pytest.raises(store.RunError, match="autoencoder"):
        save_threshold(run_dir, threshold_record(0.2, "fixed:0.2"))
