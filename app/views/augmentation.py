"""Augmentation Comparison: the same images explained by runs trained under different recipes."""

import numpy as np
import pandas as pd
import streamlit as st
from ui import figures, overlay
from ui.classifier_resources import cams, reference_scale
from ui.controls import defect_index, method_select, scale_note, scale_select, show_colorbar
from ui.gallery import choose_dataset, filter_items, picked_from_row
from ui.resources import RunRef
from ui.sidebar import pick_runs
from ui.study import show_study

from explain.evaluation import evaluate_image
from explain.metrics import disagreement
from explain.study import load_study
from store import weights_dir

BOX_METRICS = ("energy_inside", "box_iou", "off_part_energy", "entropy", "blobs")
TABLE_METRICS = (
    "energy_inside",
    "pointing_hit",
    "box_iou",
    "box_hit@0.5",
    "off_part_energy",
    "entropy",
    "blobs",
)

st.title("Augmentation Comparison")
st.caption(
    "One column per run (one augmentation recipe each), one row per image: the defect-class "
    "heatmap of each run. Images where the runs disagree most come first."
)

refs = pick_runs("classifier")
if not refs:
    st.info("Pick at least one classifier run in the sidebar.", icon=":material/arrow_back:")
    st.stop()
with st.sidebar:
    method = method_select(key="compare_method")
    scale = scale_select(key="compare_scale")
    count = st.slider(
        "Images",
        2,
        32,
        8,
        key="compare_count",
        help="How many images of the filtered gallery to compare (test split first).",
    )
    opacity = st.slider(
        "Opacity", 0.0, 1.0, 0.5, 0.05, key="compare_opacity", help="Heatmap share of each pixel."
    )
    order = st.selectbox(
        "Order",
        ["most disagreement", "least disagreement", "gallery order"],
        key="compare_order",
        help="Disagreement: mean over run pairs of 1 - correlation between their heatmaps.",
    )

ds = choose_dataset(prefix="compare_")
if ds is None:
    st.stop()
items = filter_items(ds, prefix="compare_", defects_first=True).head(count)
if items.empty:
    st.warning("No image matches these filters.", icon=":material/filter_alt_off:")
    st.stop()
picked = [picked_from_row(ds, row) for _, row in items.iterrows()]
images = [p.image for p in picked]


def run_heatmaps(ref: RunRef, shown_scale: str) -> list[np.ndarray]:
    """Defect-class heatmaps of every image for one run (grouped by target class)."""
    targets = [defect_index(ref, p.defect_type) for p in picked]
    out: list[np.ndarray] = [np.zeros(0)] * len(picked)
    for target in sorted(set(targets)):
        chosen = [i for i, t in enumerate(targets) if t == target]
        found = cams(ref, [images[i] for i in chosen], method, None, target, scale=shown_scale)
        for i, heat in zip(chosen, found, strict=True):
            out[i] = heat
    return out


def run_scale(ref: RunRef) -> tuple[str, str]:
    """The scale this run's maps are drawn on, and the legend's words for it."""
    if scale == "image":
        return "image", scale_note("image")
    notes = [reference_scale(ref, method, None, defect_index(ref, p.defect_type)) for p in picked]
    if any(reference is None for reference, _ in notes):
        return "image", f"no run-wide scale ({notes[0][1]}): per image"
    return "absolute", scale_note("absolute", notes[0][1])


with st.spinner(f"Computing {len(refs) * len(picked)} heatmaps…"):
    scales = {ref.name: run_scale(ref) for ref in refs}
    heatmaps = {ref.name: run_heatmaps(ref, scales[ref.name][0]) for ref in refs}


scores = [disagreement([heatmaps[r.name][i] for r in refs]) for i in range(len(picked))]
rank = list(range(len(picked)))
if order != "gallery order":
    rank.sort(key=lambda i: scores[i], reverse=order == "most disagreement")

st.subheader("Heatmap quality per run", anchor=False)
st.caption(
    "Localization against the masks (defective images): energy inside the defect, pointing "
    "game, best box IoU. Noise without labels: energy off the part, entropy (1 = flat), blobs "
    "above the Otsu cut; on good parts the defect heatmap's mean intensity should stay low."
)
records = []
for ref in refs:
    for p, heat in zip(picked, heatmaps[ref.name], strict=True):
        mask = None if p.mask is None else p.mask > 0
        values = evaluate_image(heat, p.image, mask, threshold="otsu", min_area=16)
        records.append({"run": ref.name, "image": p.name, "defective": mask is not None, **values})
frame = pd.DataFrame(records)
shown_metrics = [m for m in BOX_METRICS if m in frame and frame[m].notna().any()]
cols = st.columns(3)
for j, metric in enumerate(shown_metrics):
    cols[j % 3].plotly_chart(
        figures.metric_boxes(frame.dropna(subset=[metric]), metric), key=f"compare_box_{metric}"
    )
summary = frame.groupby("run")[[c for c in TABLE_METRICS if c in frame]].mean()
good = frame[~frame["defective"]]
if not good.empty:
    summary["mean intensity (good parts)"] = good.groupby("run")["mean_intensity"].mean()
summary["images"] = frame.groupby("run").size()
st.dataframe(summary.style.format(precision=3), key="compare_table")
st.caption(
    f"These {len(picked)} images and one run per recipe: a difference here may be the seed's. "
    "The study below answers with several seeds and the whole test split."
)
show_study(load_study(weights_dir()))

st.subheader("Side by side", anchor=False)
width = max(len(refs) + 1, 5)  # thumbnails, not posters, however few runs
header = st.columns(width)
header[0].markdown("**Image** (truth outlined)")
for col, ref in zip(header[1:], refs, strict=False):
    col.markdown(
        f"**{ref.name}**  \n<small>{ref.info.get('aug', '?')}</small>", unsafe_allow_html=True
    )
    show_colorbar("jet", scales[ref.name][1].replace("Run-wide scale: ", ""), where=col)
for i in rank:
    p = picked[i]
    row = st.columns(width)
    shown = p.image if p.mask is None else overlay.outline_mask(p.image, p.mask)
    row[0].image(shown, width="stretch")
    row[0].caption(f"{p.name} · {p.defect_type or p.label} · disagreement {scores[i]:.2f}")
    for col, ref in zip(row[1:], refs, strict=False):
        col.image(overlay.blend(p.image, heatmaps[ref.name][i], "jet", opacity), width="stretch")
