"""Batch Review's one part in detail: the part selector with Previous / Next, the image with its
boxes, the Grad-CAM and anomaly map, and the models' numbers."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from inspection import Inspector
from ui import overlay
from ui.batch_resources import explanation, stored_image
from ui.batch_table import box_tuples, item_label, neighbours
from ui.batch_triage import open_item
from ui.controls import scale_note, show_colorbar


def choose_part(filtered: pd.DataFrame, visible_ids: list[int]) -> tuple[int, int | None]:
    """The part selector and Previous / Next buttons; returns (current id, next id or None)."""
    if st.session_state.get("batch_item") not in visible_ids:
        st.session_state.pop("batch_item", None)
    by_id = filtered.set_index("item_id")
    current = st.selectbox(
        "Part",
        visible_ids,
        format_func=lambda i: item_label(by_id.loc[i]),
        key="batch_item",
        help="Parts in the table's order (riskiest first). Use Previous / Next to step through.",
    )
    previous_id, next_id = neighbours(visible_ids, current)
    nav = st.columns([1, 1, 4])
    nav[0].button(
        "Previous",
        disabled=previous_id is None,
        on_click=open_item,
        args=(previous_id,),
        key="batch_previous",
        icon=":material/arrow_back:",
    )
    nav[1].button(
        "Next",
        disabled=next_id is None,
        on_click=open_item,
        args=(next_id,),
        key="batch_next",
        icon=":material/arrow_forward:",
    )
    nav[2].caption(f"Part {visible_ids.index(current) + 1} of {len(visible_ids)}")
    return current, next_id


def show_part(item: pd.Series, engine_key: str, engine: Inspector | None) -> None:
    """The image with boxes, its heatmaps (when the run exists) and the models' numbers."""
    image = stored_image(item["image_path"])
    boxes = box_tuples(item["boxes"])
    view = st.columns(3 if engine is not None and engine.detector is not None else 2)
    view[0].image(overlay.draw_boxes(image, boxes), caption="Image with boxes", width="stretch")
    if engine is not None:
        cam, anomaly_map = explanation(engine_key, item["sha256"], item["image_path"], engine)
        view[1].image(
            overlay.draw_boxes(overlay.blend(image, cam, "jet", 0.45), boxes),
            caption="Grad-CAM of the most probable defect class",
            width="stretch",
        )
        show_colorbar("jet", scale_note("image"), where=view[1])
        if anomaly_map is not None:
            scale = max(2 * (engine.threshold or float(anomaly_map.max()) or 1.0), 1e-6)
            view[2].image(
                overlay.blend(image, (anomaly_map / scale).clip(0, 1), "inferno", 0.6),
                caption="Autoencoder error map (0 to twice the threshold)",
                width="stretch",
            )
            show_colorbar(
                "inferno", "Absolute: 1 = twice the run's anomaly threshold.", where=view[2]
            )
    else:
        view[1].info("No heatmap: the batch's classifier run is gone.")

    m = st.columns(4)
    m[0].metric("Predicted", item["predicted_class"], border=True)
    m[1].metric("P(defect)", f"{item['defect_probability']:.3f}", border=True)
    anomaly_text = "n/a" if pd.isna(item["anomaly_score"]) else f"{item['anomaly_score']:.4g}"
    flag_text = {True: "flagged", False: "not flagged"}.get(item["anomaly_flag"])
    m[2].metric("Anomaly score", anomaly_text, delta=flag_text, delta_color="off", border=True)
    m[3].metric("Risk", f"{item['risk_score']:.3f}", border=True)
    if item["disagree"]:
        st.warning(
            "The classifier and the autoencoder disagree on this part.", icon=":material/help:"
        )
