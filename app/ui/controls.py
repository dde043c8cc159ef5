"""Heatmap controls shared by the explanation pages (method, layer, target, look)."""

from __future__ import annotations

import streamlit as st

from ui.classifier_resources import candidate_layers
from ui.overlay import COLORMAPS
from ui.resources import RunRef

METHODS = {
    "Grad-CAM": "gradcam",
    "Grad-CAM++": "gradcam++",
    "HiResCAM": "hirescam",
    "XGradCAM": "xgradcam",
    "EigenCAM": "eigencam",
    "Score-CAM": "scorecam",
    "LayerCAM": "layercam",
    "SmoothGrad": "smoothgrad",
}
LAYERLESS = {"smoothgrad", "saliency"}
PREDICTED = "predicted class"


def method_select(where=st, key: str = "cam_method") -> str:
    """The CAM method's explain name (e.g. "gradcam")."""
    label = where.selectbox(
        "Method",
        list(METHODS),
        key=key,
        help="Grad-CAM weighs feature maps by pooled gradients; Grad-CAM++ handles several "
        "defects better; HiResCAM multiplies gradients and activations position by position "
        "(faithful to a pooling head); XGradCAM normalises the weights by the activations; "
        "EigenCAM needs no gradients and shows the dominant pattern, whatever the class; "
        "Score-CAM uses no gradients (slower); LayerCAM keeps fine detail "
        "in early layers; SmoothGrad averages input gradients over noisy copies.",
        persist_state="session",
    )
    return METHODS[label]


def layer_select(ref: RunRef, method: str, where=st, key: str = "cam_layer") -> str | None:
    """A convolutional layer to explain, listed input to output as "block · kind"; the run's
    recorded CAM layer (else the last candidate) is the default and marked recommended."""
    from explain.layer_labels import label_layers

    if method in LAYERLESS:
        where.caption("SmoothGrad works on the input pixels: no layer to choose.")
        return None
    layers = candidate_layers(ref)
    if not layers:
        return None
    default = ref.info.get("cam_layer")
    recommended = default if default in layers else layers[-1]
    labels = {label.path: label.text for label in label_layers(layers, recommended)}
    state_key = f"{key}_{ref.name}"
    if state_key in st.session_state and st.session_state[state_key] not in layers:
        del st.session_state[state_key]
    return where.selectbox(
        "Layer",
        layers,
        index=layers.index(recommended),
        format_func=labels.get,
        key=state_key,
        help="Which convolutional layer's activations to explain, numbered from the input. "
        "The recommended one (the run's CAM layer) is coarse but class-specific; earlier ones "
        "are sharper but noisier, and some hold no positive evidence at all.",
    )


SCALE_LABELS = {"Per image": "image", "Run-wide": "absolute"}


def scale_select(where=st, key: str = "cam_scale") -> str:
    """ "image" (1 = hottest pixel of this image) or "absolute" (one scale for the run)."""
    label = where.segmented_control(
        "Heat scale",
        list(SCALE_LABELS),
        default="Run-wide",
        required=True,
        key=key,
        help="Per image: every map is stretched so its hottest pixel is red, which makes a "
        "good part with no defect evidence look as hot as a defective one. Run-wide: one "
        "scale for every image, calibrated on the run's validation images, so strength is "
        "comparable and good parts look cold.",
    )
    return SCALE_LABELS[label]


def scale_note(scale: str, calibration: str | None = None) -> str:
    if scale == "absolute":
        return f"Run-wide scale: {calibration}."
    return "Per-image scale: 1 = the hottest pixel of this image (strengths not comparable)."


def show_colorbar(colormap: str, note: str, where=st) -> None:
    """The colour legend under a heatmap: 0 on the left, 1 on the right, and what 1 means."""
    from ui.overlay import colorbar

    where.image(colorbar(colormap), width="stretch", caption=None)
    where.caption(f"Colour scale: 0 (left) to 1 (right). {note}")


def target_select(ref: RunRef, where=st, key: str = "cam_target") -> str:
    """Class to explain: the predicted one, or any class by name."""
    options = [PREDICTED, *ref.class_names]
    state_key = f"{key}_{ref.name}"
    if state_key in st.session_state and st.session_state[state_key] not in options:
        del st.session_state[state_key]
    return where.selectbox(
        "Target class",
        options,
        key=state_key,
        help="Explain the class the model predicted, or ask where it sees any other class.",
    )


def look_controls(where=st) -> tuple[str, float]:
    """Colormap and opacity for overlays."""
    colormap = where.selectbox(
        "Colormap",
        list(COLORMAPS),
        key="cam_colormap",
        help="Colours for the heatmap (low to high).",
        persist_state="session",
    )
    opacity = where.slider(
        "Opacity",
        0.0,
        1.0,
        0.45,
        0.05,
        key="cam_opacity",
        help="How much of each pixel the heatmap covers.",
        persist_state="session",
    )
    return colormap, opacity


def class_index(ref: RunRef, target: str, probs) -> int:
    """Index of the class to explain for one image."""
    if target == PREDICTED:
        return int(probs.argmax())
    return ref.class_names.index(target)


def defect_index(ref: RunRef, defect_type: str | None = None) -> int:
    """The class whose heatmap means "defect here": the image's own defect type if the run
    knows it, else the run's defect class, else the first class that is not normal."""
    from explain.targets import defect_class_index

    found = defect_class_index(ref.info, defect_type or "")
    if found >= 0:
        return found
    return next((i for i, n in enumerate(ref.class_names) if n != ref.normal_class), 0)
