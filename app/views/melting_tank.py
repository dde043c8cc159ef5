"""Melting Tank: the sensor series with NG periods and the LSTM's NG probability."""

from datetime import timedelta

import numpy as np
import pandas as pd
import streamlit as st
from ui import figures, owned
from ui.melting_resources import demo_series, ng_probability, uploaded_series
from ui.series import series_figure
from ui.sidebar import pick_run

from meltingtank import thresholds

ROW_CHOICES = [10_000, 50_000, 100_000, 250_000, 500_000, 835_200]
SENSORS = ("MELT_TEMP", "MOTORSPEED")

st.title("Melting Tank")
st.caption(
    "A melting tank logged every 6 seconds (KAMP schema). Red bands are NG periods from the "
    "quality label; the bottom panel is the LSTM's NG probability for each step."
)

PAGE = "melt"  # every control's value lives in owned.settings(PAGE): see ui/owned.py
ref = pick_run("lstm")
source = st.sidebar.segmented_control(
    "Series",
    ["Demo", "Upload"],
    default=owned.value(PAGE, "source", "Demo"),
    required=True,
    key="melt_source",
    help="The deterministic synthetic demo series, or your own KAMP-schema CSV. Window and "
    "threshold carry over between series; the window start is kept per series.",
    **owned.keep(PAGE, "source", "melt_source"),
)
if source == "Demo":
    rows = st.sidebar.select_slider(
        "Rows",
        ROW_CHOICES,
        value=owned.value(PAGE, "rows", ROW_CHOICES[-1]),
        format_func=lambda n: f"{n:,}",
        key="melt_rows",
        **owned.keep(PAGE, "rows", "melt_rows"),
        help="Length of the demo series (835,200 rows = the full KAMP log, about 58 days).",
    )
    with st.spinner(f"Generating {rows:,} rows…"):
        frame = demo_series(rows)
    source_key = f"demo:{rows}"
else:
    upload = st.sidebar.file_uploader(
        "KAMP CSV",
        type=["csv"],
        key="melt_upload",
        help="Columns STD_DT, MELT_TEMP, MOTORSPEED, TAG (OK/NG or 1/0); others are kept. "
        "Up to 1,000,000 rows.",
    )
    if upload is None:
        st.info("Upload a KAMP-schema CSV in the sidebar.", icon=":material/upload:")
        st.stop()
    from meltingtank.loader import KampFormatError

    try:
        frame = uploaded_series(upload.file_id, upload.name, upload.getvalue())
    except KampFormatError as exc:
        st.error(f"Could not use **{upload.name}**:\n\n{exc}", icon=":material/error:")
        st.stop()
    source_key = f"upload:{upload.file_id}"

missing = [c for c in SENSORS if c not in frame]
if missing:
    st.error(f"The series has no {', '.join(missing)} column.", icon=":material/error:")
    st.stop()

probability = None
if ref is not None:
    with st.spinner("Running the LSTM over the series…"):
        probability = ng_probability(ref, source_key, frame)

has_time = "STD_DT" in frame
times = frame["STD_DT"].to_numpy() if has_time else np.arange(len(frame))
labels = (frame["TAG"].to_numpy() == "NG") if "TAG" in frame else None

SPANS = {"All": None, "1 week": 7 * 86_400, "1 day": 86_400, "6 hours": 21_600, "1 hour": 3_600}
STEP_SECONDS = 6  # KAMP logs a reading every 6 s; used when the series has no timestamps
span_name = st.segmented_control(
    "Window",
    list(SPANS),
    default=owned.value(PAGE, "span", "1 day"),
    required=True,
    key="melt_span",
    **owned.keep(PAGE, "span", "melt_span"),
    help="How much of the series to show. Shorter windows show raw detail; the chart only "
    "ever draws the rows inside the window (downsampled when there are many).",
)
span = SPANS[span_name]
if has_time:
    first, last = pd.Timestamp(times[0]), pd.Timestamp(times[-1])
    width = None if span is None else pd.Timedelta(seconds=span)
else:
    first, last = 0, len(frame) - 1
    width = None if span is None else span // STEP_SECONDS
if width is None or last - width <= first:
    lo, hi = 0, len(frame)
else:
    if has_time:
        low, high = first.to_pydatetime(), (last - width).to_pydatetime()
        wanted = owned.value(PAGE, f"start_{source_key}", low)
        if not low <= wanted <= high:  # a shorter window or another series: start again
            st.caption("Window start reset to the series' beginning (it was outside this range).")
            wanted = owned.settings(PAGE)[f"start_{source_key}"] = low
        start = st.slider(
            "Window start",
            min_value=low,
            max_value=high,
            value=wanted,
            step=timedelta(minutes=10),
            format="YYYY-MM-DD HH:mm",
            key=f"melt_start_{source_key}",
            help="Slide the window along the series (kept per series).",
            **owned.keep(PAGE, f"start_{source_key}", f"melt_start_{source_key}"),
        )
        lo = int(np.searchsorted(times, np.datetime64(start)))
        hi = int(np.searchsorted(times, np.datetime64(start + width.to_pytimedelta()), "right"))
    else:
        wanted = owned.value(PAGE, f"start_{source_key}", 0)
        if not 0 <= wanted <= len(frame) - width:
            st.caption("Window start reset to the series' beginning (it was outside this range).")
            wanted = owned.settings(PAGE)[f"start_{source_key}"] = 0
        lo = st.slider(
            "Window start (row)",
            0,
            len(frame) - width,
            wanted,
            key=f"melt_start_{source_key}",
            help="Slide the window along the series (kept per series).",
            **owned.keep(PAGE, f"start_{source_key}", f"melt_start_{source_key}"),
        )
        hi = lo + width
hi = max(hi, lo + 2)

threshold = None
if probability is not None:
    default = float(ref.info.get("threshold", 0.5))
    threshold = st.sidebar.slider(
        "NG threshold",
        0.0,
        1.0,
        owned.value(PAGE, f"threshold_{ref.name}", default),
        0.01,
        key=f"melt_threshold_{ref.name}",
        **owned.keep(PAGE, f"threshold_{ref.name}", f"melt_threshold_{ref.name}"),
        help=f"Probability at or above which a step is called NG (the run chose {default:.2f}).",
    )

view = slice(lo, hi)
shown = hi - lo
st.caption(
    f"Showing {shown:,} of {len(frame):,} rows"
    + (" (downsampled to about 2,000 points per line)" if shown > 2000 else " (raw)")
)
st.plotly_chart(
    series_figure(
        times[view],
        {c: frame[c].to_numpy(dtype=float)[view] for c in SENSORS},
        None if labels is None else labels[view],
        None if probability is None else probability[view],
        threshold,
    ),
    key="melt_chart",
)

if probability is None:
    st.info("Pick an LSTM run to see NG probabilities and the confusion matrix.")
    st.stop()
if labels is None:
    st.info("This series has no TAG column, so there is nothing to score the LSTM against.")
    st.stop()

scored = np.isfinite(probability)
table = thresholds.table(labels[scored], probability[scored], threshold)
st.subheader("At this threshold", anchor=False)
st.caption(
    f"Over all {int(scored.sum()):,} scored steps (the first window of each series has no "
    "prediction). NG is the positive class; OK-positive figures are given as the KAMP "
    "reference reported them."
)
ng, ok = table["ng_positive"], table["ok_positive"]
cols = st.columns(4)
predicted_ng = int(np.sum(probability[scored] >= threshold))
cols[0].metric(
    "NG precision",
    f"{ng['precision']:.1%}" if predicted_ng else "n/a",
    help="Share of steps called NG that are NG; n/a when no step is called NG.",
    border=True,
)
cols[1].metric("NG recall", f"{ng['recall']:.1%}", border=True)
cols[2].metric("NG F1", f"{ng['f1']:.3f}", border=True)
cols[3].metric("Accuracy", f"{table['accuracy']:.2%}", border=True)
left, right = st.columns([1, 1])
cm = table["confusion_matrix"]
left.plotly_chart(figures.confusion_matrix(cm["matrix"], cm["labels"]), key="melt_confusion")
right.dataframe(
    pd.DataFrame(
        {"NG positive": ng, "OK positive": ok},
    ).T.style.format("{:.4f}"),
    key="melt_scores",
)
