"""Experiments: compare runs side by side: metrics, training curves, confusion matrices."""

import pandas as pd
import streamlit as st
from ui import figures
from ui.resources import RunRef, runs
from ui.sidebar import flagged_label, no_runs_message, show_warnings

import store

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
