"""No leakage: training-only scaler, windows inside one split, SMOTE on training windows only."""

import numpy as np
import pandas as pd
import pytest

from meltingtank.windowing import (
    WindowingError,
    all_windows,
    apply_minmax,
    prepare,
    smote_balance,
    time_split,
    window_ends,
    windows_at,
)

FEATURES = ["MELT_TEMP", "MOTORSPEED"]


def _frame(rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tags = np.where(rng.random(rows) < 0.1, "NG", "OK")
    return pd.DataFrame(
        {
            "MELT_TEMP": rng.normal(500, 5, rows),
            "MOTORSPEED": rng.normal(1400, 30, rows),
            "TAG": tags,
        }
    )


def test_scaler_sees_training_rows_only():
    frame = _frame()
    frame.loc[900:, "MELT_TEMP"] = 9999.0  # an extreme held-out value must not move the scaler
    data = prepare(frame, FEATURES, window=10, val_split=0.3, smote=False)
    train = frame.iloc[data.rows["train"].start : data.rows["train"].stop]
    assert data.scaler["max"][0] == pytest.approx(train["MELT_TEMP"].max())
    assert data.scaler["min"][1] == pytest.approx(train["MOTORSPEED"].min())


def test_splits_are_consecutive_and_in_time_order():
    rows = time_split(1000, val_split=0.3, test_share=0.5)
    assert (rows["train"].stop, rows["val"].start) == (700, 700)
    assert (rows["val"].stop, rows["test"].start, rows["test"].stop) == (850, 850, 1000)


@pytest.mark.parametrize("window", [1, 7, 10])
def test_no_window_crosses_a_split_boundary(window):
    data = prepare(_frame(), FEATURES, window=window, val_split=0.3, test_share=0.5, smote=False)
    for split, rows in data.rows.items():
        ends = data.ends[split]
        assert ends.min() - window + 1 >= rows.start and ends.max() < rows.stop


def test_windows_straddling_a_boundary_are_dropped():
    data = prepare(_frame(), FEATURES, window=10, val_split=0.3, test_share=0.5, smote=False)
    used = sum(len(e) for e in data.ends.values())
    assert used == 1000 - 3 * 9  # each of the 3 splits loses window - 1 leading rows


def test_window_label_is_the_tag_of_its_last_row():
    frame = _frame()
    data = prepare(frame, FEATURES, window=10, val_split=0.3, smote=False)
    expected = (frame["TAG"].to_numpy()[data.ends["val"]] == "NG").astype(int)
    np.testing.assert_array_equal(data.y["val"], expected)


def test_window_holds_the_readings_up_to_its_last_row():
    scaled = np.arange(40, dtype=np.float32).reshape(20, 2)
    x = windows_at(scaled, np.array([4, 19]), window=5)
    np.testing.assert_array_equal(x[0], scaled[0:5])
    np.testing.assert_array_equal(x[1], scaled[15:20])
    np.testing.assert_array_equal(all_windows(scaled, 5)[15], scaled[15:20])


def test_smote_never_touches_validation_or_test_windows():
    frame = _frame(2000)
    plain = prepare(frame, FEATURES, window=10, val_split=0.3, test_share=0.5, smote=False)
    balanced = prepare(frame, FEATURES, window=10, val_split=0.3, test_share=0.5, smote=True)
    for split in ("val", "test"):
        np.testing.assert_array_equal(balanced.x[split], plain.x[split])
        np.testing.assert_array_equal(balanced.y[split], plain.y[split])


def test_smote_balances_training_windows_and_keeps_the_originals():
    frame = _frame(2000)
    plain = prepare(frame, FEATURES, window=10, val_split=0.3, smote=False)
    balanced = prepare(frame, FEATURES, window=10, val_split=0.3, smote=True)
    ng, ok = int(balanced.y["train"].sum()), int((balanced.y["train"] == 0).sum())
    assert ng == ok
    n = len(plain.y["train"])
    np.testing.assert_array_equal(balanced.x["train"][:n], plain.x["train"])


def test_smote_skips_a_split_without_enough_ng():
    x = np.zeros((10, 3, 2), np.float32)
    y = np.array([1] + [0] * 9, np.int8)
    x_out, y_out = smote_balance(x, y)
    assert len(y_out) == 10


def test_scaling_maps_training_range_to_unit_interval():
    scaled = apply_minmax(np.array([[0.0, 5.0], [10.0, 5.0]]), {"min": [0, 5], "max": [10, 5]})
    np.testing.assert_allclose(scaled, [[0, 0], [1, 0]])


def test_window_ends_of_a_range():
    np.testing.assert_array_equal(window_ends(range(10, 15), 3), [12, 13, 14])


def test_unknown_feature_is_refused():
    with pytest.raises(WindowingError, match="INSP"):
        prepare(_frame(), ["MELT_TEMP", "INSP"])


def test_too_short_log_is_refused():
    with pytest.raises(WindowingError, match="window"):
        prepare(_frame(20), FEATURES, window=10, val_split=0.3)
