"""Error analysis: the test images a classifier gets wrong, with their heatmaps and boxes."""

from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st
from ui import operating
from ui.figures import MARGIN
from ui.resources import runs
from ui.sidebar import pick_run

from classification.evaluation import VIEWS, decisions, recall_by_type, select_errors
from store.thresholds import decide, run_threshold

st.title("Error Analysis")
st.caption(
    "Every test image of a classifier run, decided at a threshold: click a confusion-matrix "
    "cell or pick false negatives, false positives or the least confident, and see each image "
    "with the run's Grad-CAM heatmap, its boxes (amber) and the true defect outline (green)."
)

ref = pick_run("classifier")
if ref is None:
    st.stop()
threshold = operating.threshold_slider(ref, st.sidebar, key_prefix="errors")
frame = operating.split_frame(ref)
if frame is None:
    st.stop()
decided = decisions(ref.run(), frame, threshold)

VIEW_LABELS = {
    "cell": "Confusion-matrix cell",
    "false negatives": "False negatives (escapes)",
    "false positives": "False positives (false alarms)",
    "least confident": "Least confident",
}
left, right = st.columns([1, 1])
with left:
    operating.clickable_matrix(ref, decided, "errors")
with right:
    view = st.radio(
        "Show",
        VIEWS,
        format_func=VIEW_LABELS.get,
        key="errors_view",
        horizontal=True,
        help="A cell of the matrix (click one), the escapes, the false alarms, or the images "
        "closest to the threshold.",
    )
    types = sorted(t for t in decided["defect_type"].dropna().unique() if t)
    chosen_types = st.multiselect(
        "Defect types",
        types,
        key="errors_types",
        help="Keep defective images of these types only (empty: all images).",
    )
    order = st.selectbox(
        "Sort by",
        ["probability, high first", "probability, low first"],
        key="errors_order",
        disabled=view == "least confident",
        help="Defect probability order (least confident is always closest to the threshold).",
    )
    limit = st.slider(
        "Images shown", 4, 48, 12, 4, key="errors_limit", help="Heatmaps are drawn for these."
    )

cell = st.session_state.get(operating.CELL_KEY)
if view == "cell" and cell is None:
    st.info("Click a cell of the confusion matrix.", icon=":material/touch_app:")
    st.stop()
true_class, predicted_class = cell if view == "cell" else (None, None)
chosen = select_errors(decided, view, true_class, predicted_class, chosen_types, order)
title = f"true {true_class}, predicted {predicted_class}" if view == "cell" else VIEW_LABELS[view]
st.subheader(f"{title}: {len(chosen)} images", anchor=False)
listing = pd.DataFrame(
    {
        "file": [Path(p).name for p in chosen["path"]],
        "true": chosen["label"],
        "defect type": chosen["defect_type"],
        "p(defect)": chosen["defect_probability"],
        "predicted": chosen["predicted_class"],
        "outcome": chosen["outcome"],
    }
)
st.dataframe(
    listing.style.format({"p(defect)": "{:.3f}"}), hide_index=True, key="errors_table", height=220
)
shown = chosen.head(limit)
if len(shown):
    pictures = operating.evidence(ref, shown, threshold)
    grid = st.columns(4)
    for i, (row, picture) in enumerate(zip(shown.itertuples(), pictures, strict=True)):
        kind = f" · {row.defect_type}" if row.defect_type else ""
        grid[i % 4].image(
            picture,
            caption=f"{Path(row.path).name}{kind} · p {row.defect_probability:.3f} · {row.outcome}",
            width="stretch",
        )

st.subheader("Recall per defect type", anchor=False)
per_type = recall_by_type(decided)
if per_type.empty:
    st.info("The test split has no defective images.", icon=":material/info:")
else:
    a, b = st.columns([1, 1])
    a.dataframe(per_type.style.format({"recall": "{:.1%}"}), hide_index=True, key="errors_per_type")
    fig = px.bar(per_type, x="recall", y="defect_type", orientation="h", range_x=[0, 1])
    fig.update_layout(margin=MARGIN, height=80 + 30 * len(per_type), yaxis_title="")
    b.plotly_chart(fig, key="errors_per_type_chart")

st.subheader("Same image, two runs", anchor=False)
others = [r for r in runs("classifier") if r.name != ref.name]
if not others or chosen.empty:
    st.info(
        "Needs a second classifier run and at least one image in the list above.",
        icon=":material/info:",
    )
    st.stop()
c1, c2 = st.columns(2)
other_name = c1.selectbox(
    "Compare with run",
    [r.name for r in others],
    key="errors_other_run",
    help="Another classifier run, decided at its own saved threshold.",
)
other = next(r for r in others if r.name == other_name)
path = c2.selectbox(
    "Image",
    list(chosen["path"]),
    format_func=lambda p: Path(p).name,
    key="errors_compare_image",
    help="One of the images listed above.",
)
row = chosen[chosen["path"] == path]
other_frame = operating.split_frame(other)
left, right = st.columns(2)
for column, run_ref, at in ((left, ref, threshold), (right, other, run_threshold(other.info))):
    p = (
        float(row["defect_probability"].iloc[0])
        if run_ref is ref
        else (
            float(other_frame.loc[other_frame["path"] == path, "defect_probability"].iloc[0])
            if other_frame is not None and (other_frame["path"] == path).any()
            else None
        )
    )
    verdict = "n/a" if p is None else ("defective" if decide(p, at) else "good")
    column.image(
        operating.evidence(run_ref, row, at)[0],
        caption=f"{run_ref.name}: {verdict} at {at:.3f}" + ("" if p is None else f" (p {p:.3f})"),
        width="stretch",
    )
