"""CAM Inspector: where does the classifier look on one image?"""

from pathlib import Path

import streamlit as st
from ui import figures, overlay
from ui.classifier_resources import SMOOTH_NOISE, cams, probabilities, raw_cams, reference_scale
from ui.controls import (
    METHODS,
    class_index,
    layer_select,
    look_controls,
    method_select,
    scale_note,
    scale_select,
    show_colorbar,
    target_select,
)
from ui.gallery import choose_image
from ui.sidebar import pick_run

from explain.heatscale import evidence

st.title("CAM Inspector")
st.caption(
    "Pick a classifier and an image: the heatmap shows which pixels drove the decision, "
    "mapped back onto the original image."
)

ref = pick_run("classifier")
if ref is None:
    st.stop()
with st.sidebar:
    method = method_select()
    layer = layer_select(ref, method)
    target = target_select(ref)
    scale = scale_select()
    colormap, opacity = look_controls()

with st.expander("Image", expanded=True, icon=":material/image:"):
    picked = choose_image(upload_key="cam_upload")
if picked is None:
    st.stop()

probs = probabilities(ref, [picked.image])[0]
index = class_index(ref, target, probs)
with st.spinner("Computing heatmap…"):
    raw = raw_cams(ref, [picked.image], method, layer, index)[0]
    reference, calibration = (None, None)
    if scale == "absolute":
        reference, calibration = reference_scale(ref, method, layer, index)
        if reference is None:
            st.warning(
                f"No run-wide scale at this layer/class ({calibration}); showing per-image.",
                icon=":material/warning:",
            )
            scale = "image"
    heat = cams(ref, [picked.image], method, layer, index, scale=scale)[0]
found = evidence(raw, reference)
blended = overlay.blend(picked.image, heat, colormap, opacity)

predicted = ref.class_names[int(probs.argmax())]
left, middle, right = st.columns([1, 1, 1])
with left:
    st.markdown(
        "**Image**" + (" with ground truth" if picked.mask is not None or picked.boxes else "")
    )
    shown = picked.image
    if picked.mask is not None:
        shown = overlay.outline_mask(shown, picked.mask)
    if picked.boxes:
        shown = overlay.draw_boxes(shown, picked.boxes, overlay.TRUTH_COLOR)
    st.image(shown, width="stretch")
    truth = picked.label or "unknown"
    if picked.defect_type:
        truth += f" ({picked.defect_type})"
    st.caption(
        f"{picked.name} · truth: {truth} · {picked.image.shape[1]}×{picked.image.shape[0]} px"
    )
with middle:
    method_label = next(k for k, v in METHODS.items() if v == method)
    st.markdown(
        f"**{method_label}** for *{ref.class_names[index]}*" + (f" · `{layer}`" if layer else "")
    )
    st.image(blended, width="stretch")
    show_colorbar(colormap, scale_note(scale, calibration))
    if found.blank:
        st.warning(
            f"No evidence to show: {found.message}. The map is empty, not a finding; try the "
            "recommended layer or another class.",
            icon=":material/visibility_off:",
        )
    if method == "smoothgrad":
        st.caption(
            f"SmoothGrad here uses noise of {SMOOTH_NOISE:.0%} of the image range: at the "
            "usual 20 % the noisy copies no longer look like castings and the model's "
            "gradient piles up in the image corners (zero padding), not on the defect."
        )
    st.download_button(
        "Download overlay (PNG)",
        overlay.png_bytes(blended),
        file_name=f"{Path(picked.name).stem}_{method}_{ref.name}.png",
        mime="image/png",
        key="cam_download",
        icon=":material/download:",
        help="The overlay at the original image resolution.",
    )
with right:
    correct = picked.label is None or picked.label == predicted
    st.metric(
        "Prediction",
        predicted,
        delta=None
        if picked.label is None
        else ("matches truth" if correct else "differs from truth"),
        delta_color="normal" if correct else "inverse",
        delta_arrow="off",
        border=True,
    )
    st.plotly_chart(
        figures.probability_bars(probs, ref.class_names, ref.normal_class),
        key="cam_probs",
        config={"displayModeBar": False},
    )
    share = f"{found.positive_share:.1%} of pixels with any heat"
    if reference:
        st.caption(f"Peak heat {found.peak / reference:.2f} of the run-wide reference; {share}")
    else:
        st.caption(f"Raw peak heat {found.peak:.3g} (model units); {share}")
