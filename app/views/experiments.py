"""Experiments: compare runs side by side: metrics, training curves, confusion matrices."""

import pandas as pd
import streamlit as st
from ui import figures, operating
from ui.resources import RunRef, runs
from ui.sidebar import flagged_label, no_runs_message, show_warnings

import store
from classification.evaluation import decisions
from store.thresholds import describe_threshold, run_threshold

st.title("Experiments")
st.caption("Compare runs: test metrics, training curves, confusion matrices and W&B links.")

KINDS = {"classifier": "Classifiers", "autoencoder": "Autoencoders", "lstm": "LSTMs"}
CONFIG_KEYS = ("model", "aug", "img_size", "epochs", "batch_size", "lr", "seed", "window")

kind = st.sidebar.segmented_control(
    "Run kind",
    list(KINDS),
    format_func=KINDS.get,
    default="classifier",
    required=True,
    key="experiments_kind",
    help="Which kind of run to compare.",
)
found = runs(kind)
if not found:
    no_runs_message(kind)
    st.stop()

names = [r.name for r in found]
by_name = {r.name: r for r in found}
chosen = st.sidebar.multiselect(
    "Runs",
    names,
    default=names[:8],
    key=f"experiments_runs_{kind}",
    help="Runs to compare (newest first); ⚠️ marks a run whose guard rails fired.",
    format_func=lambda n: flagged_label(by_name[n]),
)
selected: list[RunRef] = [r for r in found if r.name in chosen]
if not selected:
    st.info("Pick at least one run in the sidebar.", icon=":material/arrow_back:")
    st.stop()


def _metrics_row(ref: RunRef) -> dict:
    row = {"run": ref.name}
    if "health" in ref.info:
        row["health"] = "⚠️ flagged" if ref.warnings else "ok"
    for key in CONFIG_KEYS:
        value = ref.info.get(key)
        if isinstance(value, dict):
            row.update(
                {f"{key}.{k}": v for k, v in value.items() if isinstance(v, int | float | str)}
            )
        elif value is not None:
            row[key] = value
    if "mask_supervision" in ref.info:  # classifier runs since mask supervision (issue #21)
        masks = ref.info["mask_supervision"]
        row["masks"] = f"{masks['masked']} masked, {masks['layer']}" if masks else "labels only"
    summary = ref.info.get("summary") or {}
    row.update({k: v for k, v in summary.items() if isinstance(v, int | float)})
    if ref.info.get("threshold") is not None:
        row["threshold"] = ref.info["threshold"]
    return row


st.subheader("Metrics", anchor=False)
table = pd.DataFrame([_metrics_row(r) for r in selected])
numeric = [
    c
    for c in table.columns
    if c.split(".")[0] not in CONFIG_KEYS and c != "run" and pd.api.types.is_numeric_dtype(table[c])
]
for ref in selected:
    show_warnings(ref, st)
st.dataframe(
    table.style.format(precision=4, subset=numeric).highlight_max(
        subset=[c for c in numeric if c != "threshold"], color="#d7ecd9"
    ),
    hide_index=True,
    key="experiments_table",
)

st.subheader("Training curves", anchor=False)
histories = {r.name: r.run().history for r in selected}
histories = {n: h for n, h in histories.items() if not h.empty}
if histories:
    columns = sorted(
        {
            c
            for h in histories.values()
            for c in h.columns
            if c != "epoch" and not c.startswith("val_")
        }
        | {c[4:] for h in histories.values() for c in h.columns if c.startswith("val_")}
    )
    default = "loss" if "loss" in columns else columns[0]
    metric = st.selectbox(
        "Curve",
        columns,
        index=columns.index(default),
        key="experiments_curve",
        help="Training metric (solid) and its validation counterpart (dashed).",
    )
    st.plotly_chart(figures.training_curves(histories, metric), key="experiments_curves")
else:
    st.info("None of the selected runs has a history.csv.", icon=":material/info:")

st.subheader("Confusion matrices", anchor=False)


def _confusion(ref: RunRef) -> dict | None:
    """The confusion record of metrics.json (older runs' bare lists are converted)."""
    return store.read_confusion(ref.run().metrics, ref.class_names)


matrices = [(r, cm) for r in selected if (cm := _confusion(r)) is not None]
if matrices:
    grid = st.columns(min(3, len(matrices)))
    for i, (ref, cm) in enumerate(matrices):
        positive = cm.get("positive_class")
        title = ref.name + (f" (positive: {positive})" if positive else "")
        with grid[i % len(grid)]:
            st.plotly_chart(
                figures.confusion_matrix(cm["matrix"], cm["labels"], title),
                key=f"experiments_cm_{ref.name}",
            )
else:
    st.info(
        "None of the selected runs has a confusion matrix in metrics.json.",
        icon=":material/info:",
    )

if kind == "classifier":
    st.subheader("Operating point", anchor=False)
    st.caption(
        "Each run decides 'defective' when its summed defect probability reaches its threshold "
        "(chosen on validation data when it was trained). Curves and figures are on the test "
        "split; the cross marks each run's operating point. Error analysis has the images."
    )
    a, b = st.columns(2)
    focus_name = a.selectbox(
        "Run to tune",
        [r.name for r in selected],
        key="experiments_focus",
        help="The run whose threshold the slider moves.",
    )
    also = b.multiselect(
        "Also draw the curves of",
        [r.name for r in selected if r.name != focus_name],
        key="experiments_also",
        help="Other selected runs, each at its own saved threshold (each predicts its test "
        "split once).",
    )
    focus = next(r for r in selected if r.name == focus_name)
    drawn = [focus, *(r for r in selected if r.name in also)]
    frames = {r.name: f for r in drawn if (f := operating.split_frame(r)) is not None}
    if focus_name in frames:
        threshold = operating.threshold_slider(focus, key_prefix="experiments")
        points = {
            r.name: threshold if r.name == focus_name else run_threshold(r.info)
            for r in drawn
            if r.name in frames
        }
        roc, pr = operating.curve_figures(frames, points)
        left, right = st.columns(2)
        left.plotly_chart(roc, key="experiments_roc")
        right.plotly_chart(pr, key="experiments_pr")
        operating.live_figures(focus, frames[focus_name], threshold)
        decided = decisions(focus.run(), frames[focus_name], threshold)
        labels = focus.class_names
        live = [
            [int(((decided.label == t) & (decided.predicted_class == p)).sum()) for p in labels]
            for t in labels
        ]
        left, right = st.columns(2)
        left.plotly_chart(
            figures.confusion_matrix(live, labels, f"{focus_name} at {threshold:.3f} (test)"),
            key="experiments_live_cm",
        )
        with right:
            st.markdown(f"**Saved threshold:** {describe_threshold(focus.info)}")
            operating.save_button(focus, frames[focus_name], threshold, "experiments")
            operating.report_button(focus, "experiments")

st.subheader("Tracking", anchor=False)
for ref in selected:
    wandb = ref.info.get("wandb") or {}
    if wandb.get("url"):
        st.link_button(f"{ref.name} on W&B", wandb["url"], icon=":material/open_in_new:")
    elif wandb.get("enabled"):
        st.markdown(
            f"**{ref.name}**: logged offline to `{wandb.get('dir')}`; "
            "upload with `wandb sync` from that folder."
        )
    else:
        st.markdown(f"**{ref.name}**: not tracked (train with `--wandb` to log it).")
