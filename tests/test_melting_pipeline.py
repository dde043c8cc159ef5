"""A tiny end-to-end run: train (1 epoch), then predict one row per input row from the run."""

import json

import numpy as np
import pytest

import store
from meltingtank import inference, predict, train
from meltingtank.loader import load_kamp_csv
from synthetic.melting import generate_series, write_csv

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("melting_pipeline")]  # trains LSTMs


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("melting")
    csv = write_csv(generate_series(12_000, seed=5), root / "tank.csv")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEFECTLENS_WEIGHTS", str(root / "weights"))
        code = train.main(
            ["--csv", str(csv), "--name", "tiny", "--epochs", "1", "--batch-size", "256",
             "--baseline", "logreg"]
        )  # fmt: skip
    assert code == 0
    return root / "weights" / "tiny", csv


def test_run_records_scaler_window_and_threshold(tiny_run):
    info = json.loads((tiny_run[0] / "run.json").read_text())
    assert info["kind"] == "lstm" and info["window"] == 10
    assert info["features"] == ["MELT_TEMP", "MOTORSPEED"]
    assert len(info["scaler"]["min"]) == len(info["scaler"]["max"]) == 2
    assert 0 <= info["threshold"] <= 1 and info["threshold_method"] == "f1"


def test_run_scaler_is_fitted_on_training_rows(tiny_run):
    info = json.loads((tiny_run[0] / "run.json").read_text())
    frame = load_kamp_csv(tiny_run[1])
    start, stop = info["split"]["rows"]["train"]
    assert info["scaler"]["max"][0] == frame["MELT_TEMP"].iloc[start:stop].max()


def test_metrics_hold_both_tables_the_curve_and_the_baseline(tiny_run):
    metrics = json.loads((tiny_run[0] / "metrics.json").read_text())
    assert {"ng_positive", "ok_positive", "accuracy", "confusion_matrix", "pr_curve"} <= set(
        metrics
    )
    assert metrics["baseline"]["model"] == "logreg"


def test_metrics_record_every_confusion_matrix_with_its_labels(tiny_run):
    metrics = json.loads((tiny_run[0] / "metrics.json").read_text())
    for name, part in (
        ("lstm", metrics),
        ("lstm@0.5", metrics["at_0_5"]),
        ("baseline", metrics["baseline"]),
        ("baseline@0.5", metrics["baseline"]["at_0_5"]),
    ):
        cm = part["confusion_matrix"]
        assert {k: v for k, v in cm.items() if k != "matrix"} == {
            "labels": ["NG", "OK"],
            "rows": "true class",
            "columns": "predicted class",
            "positive_class": "NG",
        }, name
        (ng_ng, ng_ok), (ok_ng, ok_ok) = cm["matrix"]
        # rows are the true class: the NG row holds every NG window
        assert ng_ng + ng_ok == metrics["ng_windows"], name
        assert ng_ng + ng_ok + ok_ng + ok_ok == metrics["windows"], name
        assert part["accuracy"] == pytest.approx((ng_ng + ok_ok) / metrics["windows"]), name
        if ng_ng + ng_ok:
            assert part["ng_positive"]["recall"] == pytest.approx(ng_ng / (ng_ng + ng_ok)), name


def test_every_epoch_is_checkpointed(tiny_run):
    assert (tiny_run[0] / "checkpoints" / "epoch_001.keras").exists()
    assert (tiny_run[0] / "model.keras").exists()


def test_predict_series_gives_one_row_per_input_row(tiny_run):
    frame = load_kamp_csv(tiny_run[1])
    preds = inference.predict_series(tiny_run[0], frame)
    assert len(preds) == len(frame)
    assert (preds["STD_DT"] == frame["STD_DT"]).all()
    assert preds["ng_probability"].iloc[:9].isna().all()
    assert preds["ng_probability"].iloc[9:].between(0, 1).all()
    assert preds["prediction"].iloc[9:].isin(["OK", "NG"]).all()


def test_predictions_match_the_model_on_the_same_window(tiny_run):
    run = store.load_run(tiny_run[0])
    frame = load_kamp_csv(tiny_run[1]).iloc[:50]
    preds = inference.predict_series(run, frame)
    scaled = np.asarray(
        (frame[["MELT_TEMP", "MOTORSPEED"]].to_numpy() - run.info["scaler"]["min"])
        / (np.array(run.info["scaler"]["max"]) - run.info["scaler"]["min"]),
        dtype=np.float32,
    )
    direct = run.load_model().predict(scaled[30:40][None], verbose=0).ravel()[0]
    assert preds["ng_probability"].iloc[39] == pytest.approx(direct, abs=1e-5)


def test_predict_cli_writes_a_csv(tiny_run, tmp_path, capsys):
    out = tmp_path / "p.csv"
    code = predict.main(["--run", str(tiny_run[0]), "--csv", str(tiny_run[1]), "--out", str(out)])
    assert code == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("STD_DT,NUM,ng_probability,prediction,window_complete")
    assert lines[0].endswith(",warnings")
    assert len(lines) == 12_001


def test_log_shorter_than_the_window_is_refused(tiny_run):
    frame = load_kamp_csv(tiny_run[1]).iloc[:5]
    with pytest.raises(inference.PredictionError, match="5 rows, fewer than the 10"):
        inference.predict_series(tiny_run[0], frame)


def test_log_without_the_trained_features_is_refused(tiny_run):
    frame = load_kamp_csv(tiny_run[1]).drop(columns=["MOTORSPEED"])
    with pytest.raises(inference.PredictionError, match="MOTORSPEED"):
        inference.predict_series(tiny_run[0], frame)
