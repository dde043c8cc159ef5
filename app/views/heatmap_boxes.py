"""Heatmap to Boxes: threshold a heatmap into defect boxes, check them, export pseudo-labels."""

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from ui import overlay
from ui.classifier_resources import box_head_maps, box_head_stamp, cams, probabilities
from ui.controls import defect_index, layer_select, method_select, scale_note, show_colorbar
from ui.dataset_resources import read_upload
from ui.gallery import Picked, choose_dataset, choose_image, filter_items, picked_from_row
from ui.resources import image_key
from ui.sidebar import pick_run

from classification.decision_rule import (
    defect_probability,
    run_predicted_classes,
    run_predicted_defective,
)
from explain import cam_to_boxes
from explain.boxes import merge_boxes
from explain.boxhead import INFO_KEY as BOX_HEAD_KEY
from explain.boxhead import head_boxes
from explain.metrics import box_iou, match_instances
from explain.pseudolabels import ImageLabels, boxes_table, coco_json, select_for_export

HEATMAP_STEP, HEAD_STEP = "Heatmap", "Box head"

st.title("Heatmap to Boxes")
st.caption(
    "The defect class's heatmap is thresholded (Otsu, or a fraction of its peak); connected "
    "hot regions larger than the minimum area become boxes. A run with a box head (trained "
    "on defect masks, `python -m classification.boxhead`) can draw the boxes from the head's "
    "defect map instead, keeping only regions the hot heatmap touches: tighter boxes, one per "
    "pinhole. "
    "Amber: the boxes. Each defect instance (a connected piece of the mask) is green when a "
    "box covers at least half of it, red when no box does (docs/metrics.md)."
)

ref = pick_run("classifier")
if ref is None:
    st.stop()
with st.sidebar:
    method = method_select()
    layer = layer_select(ref, method)
    mode = st.segmented_control(
        "Threshold",
        ["Otsu", "Fixed"],
        default="Otsu",
        required=True,
        key="boxes_mode",
        help="Otsu picks the cut that best separates hot from cold pixels per image; Fixed "
        "keeps pixels above a fraction of the heatmap's peak.",
    )
    fraction = st.slider(
        "Fraction of peak",
        0.05,
        0.95,
        0.5,
        0.05,
        key="boxes_fraction",
        disabled=mode == "Otsu",
        help="Pixels hotter than this share of the heatmap's maximum form the regions.",
    )
    min_area = st.slider(
        "Minimum area (px)",
        0,
        2000,
        40,
        10,
        key="boxes_min_area",
        help="Regions with fewer pixels (at the original image size) are dropped.",
    )
    merge = st.slider(
        "Merge gap (px)",
        0,
        50,
        0,
        1,
        key="boxes_merge",
        help="Merge boxes that overlap or lie within this many pixels (0: one box per region).",
    )
    has_head = box_head_stamp(ref) is not None
    box_step = st.segmented_control(
        "Box step",
        [HEATMAP_STEP, HEAD_STEP],
        default=HEAD_STEP if has_head else HEATMAP_STEP,
        required=True,
        key=f"boxes_step_{has_head}",
        disabled=not has_head,
        help="Heatmap: boxes around the heatmap's hot regions. Box head: boxes around the "
        "regions of the run's box head (trained on defect masks) that the hot heatmap "
        "touches; it follows each defect's outline. "
        + (
            "Both are drawn on the image."
            if has_head
            else f"Run {ref.name} has no box head: train one with `python -m "
            f"classification.boxhead --run {ref.name} --data DIR` on data with defect masks."
        ),
    )
threshold = "otsu" if mode == "Otsu" else float(fraction)


def step_boxes(heat: np.ndarray, head_map: np.ndarray | None) -> list:
    """One image's boxes: the heatmap's own, or the box head's gated by the heatmap."""
    if head_map is None:
        return cam_to_boxes(heat, threshold=threshold, min_area=min_area, merge=merge or None)
    found = head_boxes(
        head_map, heat, threshold=ref.info[BOX_HEAD_KEY]["threshold"], min_area=min_area,
        gate=threshold,
    )  # fmt: skip
    return merge_boxes(found, gap=merge) if merge else found


def boxes_for(images: list[np.ndarray], defect_types: list[str]) -> list[list]:
    """Boxes of the chosen step for each image (cached heatmaps and head maps, cheap boxes)."""
    targets = [defect_index(ref, kind) for kind in defect_types]
    found: list[list] = [[] for _ in images]
    for target in sorted(set(targets)):
        chosen = [i for i, t in enumerate(targets) if t == target]
        subset = [images[i] for i in chosen]
        heats = cams(ref, subset, method, layer, target)
        heads = box_head_maps(ref, subset) if box_step == HEAD_STEP else None
        for j, (i, heat) in enumerate(zip(chosen, heats, strict=True)):
            found[i] = step_boxes(heat, heads[j] if heads is not None else None)
    return found


def file_label(p: Picked) -> str:
    """Gallery files by their path inside the data set (as COCO expects), uploads by name."""
    if p.path and ds is not None and Path(p.path).is_relative_to(ds.root):
        return str(Path(p.path).relative_to(ds.root))
    return p.name


with st.expander("Image", expanded=True, icon=":material/image:"):
    picked = choose_image(upload_key="boxes_upload")

if picked is not None:
    target = defect_index(ref, picked.defect_type)
    heat = cams(ref, [picked.image], method, layer, target)[0]
    head_map = box_head_maps(ref, [picked.image])
    head_map = head_map[0] if head_map is not None else None
    by_step = {HEATMAP_STEP: step_boxes(heat, None)}
    if head_map is not None:
        by_step[HEAD_STEP] = step_boxes(heat, head_map)
    boxes = by_step[box_step]
    probs = probabilities(ref, [picked.image])[0]
    truth_mask = None
    if picked.mask is not None:
        truth_mask = (picked.mask if picked.mask.ndim == 2 else picked.mask[..., 0]) > 0
    matches = {
        name: match_instances([b.as_tuple() for b in found], truth_mask)
        for name, found in by_step.items()
        if truth_mask is not None
    }
    match = matches.get(box_step)

    def boxes_image(found: list, step_match) -> np.ndarray:
        shown = picked.image
        if step_match is not None:
            pairs = list(zip(step_match.instances, step_match.found, strict=True))
            shown = overlay.outline_mask(shown, picked.mask)
            shown = overlay.draw_boxes(shown, [b for b, ok in pairs if ok], overlay.TRUTH_COLOR)
            shown = overlay.draw_boxes(
                shown, [b for b, ok in pairs if not ok], overlay.MISSED_COLOR
            )
        else:
            shown = overlay.draw_boxes(shown, picked.boxes, overlay.TRUTH_COLOR)
        return overlay.draw_boxes(shown, [b.as_tuple() for b in found], overlay.PRED_COLOR)

    # One box step: heatmap | boxes | table. Both: heatmap | heatmap boxes | head boxes, and
    # the table and counts of the chosen step below them, full width.
    panels = st.columns([1, 1, 1] if len(by_step) > 1 else [1, 1, 1.2])
    left = panels[0]
    box_panels = panels[1:] if len(by_step) > 1 else panels[1:2]
    right = st.container() if len(by_step) > 1 else panels[-1]
    with left:
        st.markdown(f"**Heatmap** ({ref.class_names[target]}, p = {probs[target]:.1%})")
        st.image(overlay.blend(picked.image, heat, "jet", 0.45), width="stretch")
        show_colorbar("jet", scale_note("image") + " Boxes use this per-image scale.")
    n_truth = len(match.instances) if match else len(picked.boxes)
    for column, (name, found) in zip(box_panels, by_step.items(), strict=True):
        with column:
            chosen = " (chosen)" if len(by_step) > 1 and name == box_step else ""
            st.markdown(
                f"**{name} boxes**{chosen} · {len(found)} found, {n_truth} defect instances "
                "in the truth"
            )
            st.image(boxes_image(found, matches.get(name)), width="stretch")
            if len(by_step) > 1 and matches.get(name) is not None:
                m = matches[name]
                st.caption(f"{sum(m.found)} of {len(m.instances)} instances found")
    truth_boxes = match.instances if match else list(picked.boxes)
    rows = [
        {
            "#": i + 1,
            "box (x0, y0, x1, y1)": f"{b.x_min}, {b.y_min}, {b.x_max}, {b.y_max}",
            "area": b.area,
            "peak heat": b.score,
            "instances covered": sum(i in c for c in match.covered_by) if match else "n/a",
            "best IoU": (
                f"{max(box_iou(b.as_tuple(), g) for g in truth_boxes):.2f}"
                if truth_boxes
                else "n/a (no defect)"
            ),
        }
        for i, b in enumerate(boxes)
    ]
    with right:
        chosen_step = f" · {box_step.lower()} step" if len(by_step) > 1 else ""
        st.markdown(f"**Boxes found** (original pixels{chosen_step})")
        if rows:
            st.dataframe(
                pd.DataFrame(rows).style.format(precision=2),
                hide_index=True,
                key="boxes_table",
            )
        else:
            st.info("No region passes the threshold and minimum area.", icon=":material/crop_free:")
        if match is not None and match.instances:
            c1, c2 = st.columns(2)
            c1.metric(
                "Instances found",
                f"{sum(match.found)} of {len(match.instances)}",
                help="A defect instance counts as found when one box covers at least half of "
                "its pixels (a box over more than half the image finds nothing).",
                border=True,
            )
            c2.metric(
                "Boxes on a defect",
                f"{sum(match.box_correct)} of {len(boxes)}" if boxes else "n/a",
                help="Boxes that cover at least one defect instance.",
                border=True,
            )
        elif match is not None or picked.label == ref.normal_class:
            st.caption(
                "A good part: no defect instances, so recall is n/a; every box here is a "
                "false alarm."
            )

st.divider()
st.subheader("Export boxes for a folder", anchor=False)
st.caption(
    "Pseudo-labels for a future detector: the same settings applied to every image of the "
    "gallery filter or of an uploaded set, as CSV (one row per box) and COCO JSON. Only "
    "parts the classifier calls defective get boxes; a good part's defect heatmap is not a "
    "defect."
)
source = st.segmented_control(
    "Images",
    ["Gallery filter", "Uploaded files"],
    default="Gallery filter",
    required=True,
    key="boxes_export_source",
    help="Export the images matching the gallery filters, or a set you upload here.",
)
batch: list[Picked] = []
problems: list[str] = []
ds = None
if source == "Gallery filter":
    ds = choose_dataset(prefix="export_")
    if ds is not None:
        items = filter_items(ds, prefix="export_")
        limit = st.number_input(
            "At most",
            1,
            max(1, len(items)),
            min(len(items), 200) or 1,
            key="boxes_export_limit",
            help="How many of the matching images to export (test split first).",
        )
        rows_to_read = items.head(int(limit))
else:
    uploads = st.file_uploader(
        "Images to export",
        type=["png", "jpg", "jpeg", "bmp", "tif", "tiff"],
        accept_multiple_files=True,
        key="boxes_export_uploads",
        help="Any number of images; unreadable files are listed and skipped.",
    )
    rows_to_read = None

negatives = st.toggle(
    "Include parts predicted good as negatives",
    value=False,
    key="boxes_export_negatives",
    help="Boxes come only from parts the classifier calls defective at the run's threshold. "
    "With this on, parts predicted good are listed as images without annotations (COCO "
    "negatives).",
)
if st.button("Compute boxes", key="boxes_export_run", icon=":material/play_arrow:"):
    from imaging import ImageError

    if source == "Gallery filter" and ds is not None:
        batch = [picked_from_row(ds, row) for _, row in rows_to_read.iterrows()]
    elif source == "Uploaded files":
        for upload in uploads or []:
            try:
                image = read_upload(upload.getvalue(), upload.name)
            except ImageError as exc:
                problems.append(f"{exc.source}: {exc.reason}")
                continue
            batch.append(Picked(image=image, name=upload.name, key=image_key(image)))
    records: list[ImageLabels] = []
    progress = st.progress(0.0, text="Computing heatmaps…")
    step = 16
    for start in range(0, len(batch), step):
        chunk = batch[start : start + step]
        probs = probabilities(ref, [p.image for p in chunk])
        defective = run_predicted_defective(probs, ref.info)  # the run's operating point
        classes = run_predicted_classes(probs, ref.info)
        p_defect = defect_probability(probs, ref.class_names, ref.normal_class)
        flagged = [i for i, d in enumerate(defective) if d]  # heatmaps only where it matters
        found = boxes_for(
            [chunk[i].image for i in flagged], [chunk[i].defect_type for i in flagged]
        )
        boxes_of = dict(zip(flagged, found, strict=True))
        for i, p in enumerate(chunk):
            records.append(
                ImageLabels(
                    file=file_label(p),
                    width=int(p.image.shape[1]),
                    height=int(p.image.shape[0]),
                    label=ref.class_names[defect_index(ref, p.defect_type)],
                    predicted_class=classes[i],
                    defect_probability=float(p_defect[i]),
                    predicted_defect=bool(defective[i]),
                    boxes=tuple(boxes_of.get(i, ())),
                )
            )
        progress.progress(min(1.0, (start + step) / max(1, len(batch))), text="Computing heatmaps…")
    progress.empty()
    st.session_state["boxes_export"] = {
        "records": records,
        "settings": f"{ref.name}, {method}, {box_step.lower()} boxes, threshold {threshold}, "
        f"min area {min_area}",
    }

for problem in problems:
    st.error(f"Skipped {problem}", icon=":material/error:")
result = st.session_state.get("boxes_export")
if result:
    records = result["records"]
    exported = select_for_export(records, include_negatives=negatives)
    table = boxes_table(exported)
    n_defect = sum(r.predicted_defect for r in records)
    st.caption(
        f"{len(records)} images read: {n_defect} predicted defective (boxes exported), "
        f"{len(records) - n_defect} predicted good "
        + ("(exported as negatives, no boxes)" if negatives else "(left out)")
        + f"; {len(table)} boxes ({result['settings']})."
    )
    st.dataframe(table, hide_index=True, key="boxes_export_table", height=240)
    cols = st.columns(2)
    cols[0].download_button(
        "Download CSV",
        table.to_csv(index=False),
        file_name="boxes.csv",
        mime="text/csv",
        key="boxes_download_csv",
        icon=":material/download:",
        help="One row per box, original pixel coordinates; defect_probability is the "
        "classifier's, box_peak_heat / box_mean_heat the heatmap's inside the box.",
    )
    cols[1].download_button(
        "Download COCO JSON",
        coco_json(exported, description=result["settings"]),
        file_name="boxes_coco.json",
        mime="application/json",
        key="boxes_download_coco",
        icon=":material/download:",
        help="COCO detection format: bbox [x, y, width, height].",
    )
