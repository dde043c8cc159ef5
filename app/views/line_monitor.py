"""Line Monitor: what the line service (python -m serve) decided, live from the review log."""

import pandas as pd
import plotly.express as px
import streamlit as st
from ui import overlay
from ui.batch_resources import find_run, inspector, inspector_key, thumbnail

import store
from store.line import DEFECT_RISK, LineLog
from store.review import default_url


@st.cache_resource(show_spinner=False, max_entries=4)
def _line_log(url: str, images_dir: str) -> LineLog:
    return LineLog(url, images_dir)


def line_log() -> LineLog:
    """The review log the service writes to ($DEFECTLENS_DB_URL or SQLite in the data folder)."""
    return _line_log(default_url(), str(store.data_dir() / "review_images"))


st.title("Line Monitor")
st.caption(
    "Parts scored by the line service (`python -m serve`, docs/serve.md) as they arrive: "
    "verdicts with Grad-CAM, the alert feed and the defect rate per hour. Every part is also "
    "a line batch in Batch Review, ready for a reviewer's decision."
)

refresh = st.sidebar.select_slider(
    "Refresh every (s)",
    options=[2, 5, 10, 30, 60],
    value=5,
    key="line_refresh",
    help="How often this page reads the review log again (only the live part reruns).",
)
n_parts = st.sidebar.slider(
    "Latest parts shown",
    4,
    48,
    12,
    step=4,
    key="line_parts",
    help="The newest parts across all stations (or the chosen one).",
)
heatmaps = st.sidebar.toggle(
    "Grad-CAM on thumbnails",
    value=True,
    key="line_heatmaps",
    help="Blend the classifier's Grad-CAM into each thumbnail (needs the part's run here).",
)


def station_filter(log: LineLog) -> str | None:
    stations = sorted(b for b in log.batches().station.dropna().unique())
    choice = st.sidebar.selectbox(
        "Station",
        ["All stations", *stations],
        key="line_station",
        help="Show one station's traffic, or every station's.",
    )
    return None if choice == "All stations" else choice


def part_tile(column, part: pd.Series) -> None:
    engine = key = None
    if heatmaps:
        classifier = find_run(part.classifier_run, "classifier")
        if classifier is not None:
            autoencoder = find_run(part.autoencoder_run, "autoencoder")
            engine = inspector(classifier, autoencoder)
            key = inspector_key(classifier, autoencoder)
    try:
        image = thumbnail(key or "plain", part.sha256, part.image_path, engine)
    except (ValueError, OSError):
        column.warning(f"{part.file_name}: stored image unreadable")
        return
    if part.risk_score is not None and part.risk_score >= DEFECT_RISK:
        image = overlay.draw_boxes(image, [(0, 0, image.shape[1] - 1, image.shape[0] - 1)])
    verdict = part.predicted_class or "error"
    risk = "n/a" if pd.isna(part.risk_score) else f"{part.risk_score:.2f}"
    column.image(image, width="stretch")
    column.caption(f"**{verdict}** · risk {risk} · {part.station} · item {part.item_id}")


@st.fragment(run_every=refresh)
def live(log: LineLog, station: str | None) -> None:
    parts = log.recent_parts(limit=n_parts, station=station)
    if parts.empty:
        st.info(
            "No line traffic yet. Start the service (`make serve`) and send parts to "
            "`POST /v1/inspect`; they appear here within one refresh."
        )
        return
    rates = log.defect_rate_per_hour(hours=24)
    if station is not None:
        rates = rates[rates.station == station]
    alerts = log.recent_alerts(limit=20)
    if station is not None:
        alerts = alerts[alerts.station == station]
    last_hour = rates[rates.hour == rates.hour.max()] if not rates.empty else rates
    a, b, c = st.columns(3)
    a.metric("Parts, latest hour", int(last_hour.parts.sum()) if not rates.empty else 0)
    defects = int(last_hour.defects.sum()) if not rates.empty else 0
    parts_hour = int(last_hour.parts.sum()) if not rates.empty else 0
    b.metric("Defect rate, latest hour", f"{defects / parts_hour:.1%}" if parts_hour else "n/a")
    c.metric("Alerts, last 24 h", int(rates.alerts.sum()) if not rates.empty else 0)

    st.subheader("Latest parts")
    columns = st.columns(4)
    for i, (_, part) in enumerate(parts.iterrows()):
        part_tile(columns[i % 4], part)

    left, right = st.columns([3, 2])
    with left:
        st.subheader("Defect rate per hour")
        if rates.empty:
            st.caption("No parts in the last 24 hours.")
        else:
            figure = px.bar(
                rates,
                x="hour",
                y="defect_rate",
                color="station",
                barmode="group",
                hover_data=["parts", "defects", "alerts"],
                labels={"defect_rate": f"share of parts with risk >= {DEFECT_RISK}"},
            )
            figure.update_yaxes(tickformat=".0%", rangemode="tozero")
            st.plotly_chart(figure, key="line_rate_chart")
    with right:
        st.subheader("Alert feed")
        if alerts.empty:
            st.caption("No alerts yet.")
        else:
            st.dataframe(
                alerts[["seq", "created", "station", "file_name", "risk_score", "predicted_class"]],
                hide_index=True,
                key="line_alert_table",
            )


live(line_log(), station_filter(line_log()))
