"""Anomaly: an autoencoder trained on good parts only; what it cannot rebuild is suspicious."""

import numpy as np
import streamlit as st
from ui import figures, overlay, owned
from ui.anomaly_resources import anomaly, anomaly_scores
from ui.controls import show_colorbar
from ui.gallery import choose_dataset, choose_image
from ui.sidebar import pick_run

from anomaly.localize import mask_to_boxes, predicted_mask
from classification.metrics import binary_report
from inspection.risk import verdict_outcome
from store.thresholds import decide

st.title("Anomaly")
st.caption(
    "The autoencoder learned to rebuild good parts only. Where a part differs from anything "
    "good it has seen, the reconstruction error rises; the image score is the mean of the "
    "highest errors, and a score above the threshold flags the part."
)

ref = pick_run("autoencoder")
if ref is None:
    st.stop()
recorded = ref.info.get("threshold")

st.subheader("Scores over a data set", anchor=False)
ds = choose_dataset(st.sidebar, prefix="anomaly_")
scores = labels = None
if ds is not None:
    split = st.sidebar.selectbox(
        "Split",
        ["test", "all"],
        key="anomaly_split",
        help="Score the test split (held out from training) or every image in the data set. "
        "The threshold you set is kept when you change the split.",
    )
    items = ds.items if split == "all" else ds.items[ds.items["split"] == "test"]
    if items.empty:
        items, split = ds.items, "all (no test split)"
    with st.spinner(f"Scoring {len(items)} images…"):
        scores = anomaly_scores(ref, items["path"].tolist())
    labels = items["is_defect"].to_numpy(bool)

if scores is not None and len(scores):
    low, high = float(scores.min()), float(scores.max())
    default = float(recorded) if recorded is not None else float(np.median(scores))
    # The threshold is owned by the page (per run), not by the slider: a split with another
    # score range redraws the slider around the same value instead of resetting it.
    wanted = owned.value("anomaly", f"threshold_{ref.name}", default)
    span = max(high, default, wanted) - min(low, default, wanted)
    threshold = st.slider(
        "Threshold",
        min_value=min(low, default, wanted) - 0.05 * span,
        max_value=max(high, default, wanted) + 0.05 * span,
        value=wanted,
        step=span / 200 if span > 0 else 0.01,
        format="%.4g",
        key=f"anomaly_threshold_{ref.name}",
        help="Scores at or above the threshold are flagged. The run's own threshold is the default "
        f"({ref.info.get('threshold_method', 'recorded')}).",
        **owned.keep("anomaly", f"threshold_{ref.name}", f"anomaly_threshold_{ref.name}"),
    )
    report = binary_report(labels, scores, threshold, positive="defect", negative="good")
    where = f"{ds.name}, {split} split, {len(scores)} images"
    st.caption(
        f"Measured on **{where}** at the threshold above. The sidebar's figure is the run's "
        "own, from its training report on its own test split, so the two can differ."
    )
    n_flagged = int(decide(scores, threshold).sum())
    cols = st.columns(5)
    cols[0].metric(
        "Precision",
        f"{report['precision']:.1%}" if n_flagged else "n/a",
        help="Share of flagged images that are defective; n/a when nothing is flagged.",
        border=True,
    )
    cols[1].metric("Recall", f"{report['recall']:.1%}", border=True)
    cols[2].metric("F1", f"{report['f1']:.3f}", border=True)
    cols[3].metric("Flagged", f"{n_flagged} / {len(scores)}", border=True)
    auroc = report["roc_auc"]
    cols[4].metric(
        f"Image AUROC ({split})",
        "n/a" if auroc is None else f"{auroc:.3f}",
        help=f"Over {where}.",
        border=True,
    )
    hist, matrix = st.columns([2, 1])
    hist.plotly_chart(figures.score_histogram(scores, labels, threshold), key="anomaly_histogram")
    matrix.plotly_chart(
        figures.confusion_matrix(
            report["confusion_matrix"]["matrix"], report["confusion_matrix"]["labels"]
        ),
        key="anomaly_confusion",
    )
else:
    threshold = float(recorded) if recorded is not None else 0.0

st.subheader("One image", anchor=False)
with st.expander("Image", expanded=True, icon=":material/image:"):
    picked = choose_image(upload_key="anomaly_upload")
if picked is None:
    st.stop()

score, maps, recon = anomaly(ref, [picked.image])
score, error = float(score[0]), maps[0]
flagged = bool(decide(score, threshold))
pixel_threshold = ref.info.get("pixel_threshold")
regions = []
if flagged and pixel_threshold is not None:
    # the run's pixel threshold (calibrated on good parts) on the map over the original image
    scale_px = (error.shape[0] / ref.info["img_size"]) ** 2
    min_area = int(round(ref.info.get("score", {}).get("min_box_area", 4) * scale_px))
    regions = mask_to_boxes(predicted_mask(error, pixel_threshold), error, max(1, min_area))
cols = st.columns(3)
with cols[0]:
    st.markdown("**Image**")
    shown = picked.image if picked.mask is None else overlay.outline_mask(picked.image, picked.mask)
    if regions:
        shown = overlay.draw_boxes(shown, [(r.x_min, r.y_min, r.x_max, r.y_max) for r in regions])
    st.image(shown, width="stretch")
    found = (
        f" · {len(regions)} predicted defect region(s) boxed"
        if regions
        else (" · no pixel threshold in this run" if pixel_threshold is None else "")
    )
    st.caption(f"{picked.name} · truth: {picked.label or 'unknown'}{found}")
with cols[1]:
    if ref.info.get("model") in ("patchcore", "padim"):
        st.markdown("**Model input** (no reconstruction: patch features are compared)")
    else:
        st.markdown("**Reconstruction** (model input size)")
    st.image(np.clip(recon[0] * 255, 0, 255).astype(np.uint8), width="stretch")
with cols[2]:
    st.markdown("**Error map** over the image")
    scale = max(2 * threshold, 1e-6)
    st.image(
        overlay.blend(picked.image, np.clip(error / scale, 0, 1), "inferno", 0.6), width="stretch"
    )
    show_colorbar(
        "inferno",
        f"Absolute: 1 = {scale:.3g} (twice the threshold); peak {float(error.max()):.3g}.",
    )

truth = None if picked.label is None else bool(picked.defect_type or picked.mask is not None)
outcome = verdict_outcome(flagged, truth)
st.metric(
    "Score",
    f"{score:.4g}",
    delta=f"{'above' if flagged else 'below'} threshold {threshold:.4g}" + outcome.suffix,
    delta_color="normal" if outcome.good else ("off" if outcome.good is None else "inverse"),
    delta_arrow="up" if flagged else "down",
    border=True,
    help="Mean of the highest error pixels; above the threshold means anomalous.",
)
