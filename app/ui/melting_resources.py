"""The melting-tank series, cached: the synthetic demo series, an uploaded KAMP CSV and the
LSTM's NG probability per row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from ui.resources import RunRef

# Series are large (835,200 rows): cache_resource hands out the same frame without copying;
# pages treat them as read-only.


@st.cache_resource(show_spinner=False, max_entries=3)
def demo_series(rows: int, seed: int = 0) -> pd.DataFrame:
    """The deterministic synthetic KAMP-schema series."""
    from synthetic.melting import generate_series

    return generate_series(rows, seed=seed)


@st.cache_resource(show_spinner="Reading the CSV…", max_entries=3)
def uploaded_series(file_id: str, name: str, _data: bytes) -> pd.DataFrame:
    """An uploaded CSV validated by the melting-tank loader (raises KampFormatError)."""
    import io

    from meltingtank.loader import MAX_UPLOAD_ROWS, load_kamp_csv

    buffer = io.BytesIO(_data)
    buffer.name = name
    return load_kamp_csv(buffer, max_rows=MAX_UPLOAD_ROWS)


@st.cache_resource(show_spinner=False, max_entries=6)
def _ng_probability(run_key: str, source_key: str, _ref: RunRef, _frame: pd.DataFrame):
    from meltingtank.inference import predict_series

    predicted = predict_series(_ref.run(), _frame)
    if len(predicted) == len(_frame):
        values = predicted["ng_probability"].to_numpy(dtype=np.float64)
    else:
        merged = _frame[["STD_DT"]].merge(
            predicted[["STD_DT", "ng_probability"]], on="STD_DT", how="left"
        )
        values = merged["ng_probability"].to_numpy(dtype=np.float64)
    values.setflags(write=False)
    return values


def ng_probability(ref: RunRef, source_key: str, frame: pd.DataFrame) -> np.ndarray:
    """The LSTM's NG probability per row of the series (NaN where no window ends yet)."""
    return _ng_probability(ref.key, source_key, ref, frame)
