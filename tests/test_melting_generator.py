"""The synthetic melting-tank series: KAMP schema, deterministic, NG near the real rate."""

import argparse

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from meltingtank.baseline import baseline_probabilities, fit_baseline
from meltingtank.loader import load_kamp_csv
from meltingtank.windowing import prepare
from synthetic.melting import COLUMNS, add_arguments, generate_series, main


def test_columns_follow_the_kamp_schema():
    frame = generate_series(500, seed=0)
    assert list(frame.columns) == list(COLUMNS)
    assert set(frame["TAG"]) <= {"OK", "NG"}


def test_readings_are_six_seconds_apart():
    steps = generate_series(500, seed=0)["STD_DT"].diff().dropna()
    assert (steps == pd.Timedelta(seconds=6)).all()


def test_same_seed_gives_the_same_series():
    pd.testing.assert_frame_equal(generate_series(3000, seed=7), generate_series(3000, seed=7))


def test_another_seed_gives_another_series():
    a, b = generate_series(3000, seed=1), generate_series(3000, seed=2)
    assert not np.array_equal(a["MELT_TEMP"].to_numpy(), b["MELT_TEMP"].to_numpy())


def test_ng_rate_is_near_the_real_one():
    rate = (generate_series(200_000, seed=0)["TAG"] == "NG").mean()
    assert 0.008 < rate < 0.017


def test_ng_is_learnable_from_past_readings_but_not_trivially():
    frame = generate_series(60_000, seed=3)
    data = prepare(frame, ["MELT_TEMP", "MOTORSPEED"], window=10, val_split=0.3, smote=False)
    model = fit_baseline("hgb", data.x["train"], data.y["train"])
    y = data.y["val"]
    ap = average_precision_score(y, baseline_probabilities(model, data.x["val"]))
    assert 5 * y.mean() < ap < 0.95


def test_cli_writes_a_file_the_loader_accepts(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = main(parser.parse_args(["--out", str(tmp_path / "m.csv"), "--rows", "2000"]))
    loaded = load_kamp_csv(out)
    assert len(loaded) == 2000
    assert "2,000 rows" in capsys.readouterr().out


def test_zero_rows_is_refused():
    with pytest.raises(ValueError, match="rows"):
        generate_series(0)
