"""Batch Review's exports: the batch as CSV (one row per image) and COCO JSON (reviewed or
predicted boxes), and the self-contained HTML inspection report."""

from __future__ import annotations

import json

import streamlit as st

from store.review import ReviewLog
from store.review_export import readable_items
from ui.batch_setup import local_zone


def export_buttons(log: ReviewLog, batch_id: int) -> None:
    """CSV and COCO downloads; the COCO boxes come from the decisions or the models."""
    readable_csv = readable_items(log.items(batch_id), log.images_dir, local_zone()).to_csv(
        index=False
    )
    coco_source = st.segmented_control(
        "COCO boxes",
        ["reviewed", "predicted"],
        default="reviewed",
        required=True,
        key="batch_coco_source",
        help="reviewed: a training set from your decisions (confirmed defects with their boxes, "
        "false alarms and OK parts as negatives). predicted: every box the models proposed.",
    )
    e1, e2 = st.columns(2)
    e1.download_button(
        "CSV (one row per image)",
        readable_csv,
        file_name=f"review_batch_{batch_id}.csv",
        mime="text/csv",
        key="batch_export_csv",
        icon=":material/download:",
    )
    e2.download_button(
        "COCO JSON",
        json.dumps(log.export_coco(batch_id, boxes=coco_source), indent=1),
        file_name=f"review_batch_{batch_id}_{coco_source}.coco.json",
        mime="application/json",
        key="batch_export_coco",
        icon=":material/download:",
    )


def report_buttons(log: ReviewLog, batch_id: int) -> None:
    """Build the batch's HTML inspection report on request, then offer it for download."""
    if st.button(
        "Build inspection report",
        key="batch_build_report",
        icon=":material/description:",
        help="A self-contained HTML report of this batch: every item with its thumbnail and the "
        "models' verdicts, and every reviewer decision with its time "
        "(python -m inspection.report).",
    ):
        from inspection.audit import batch_report_html

        with st.spinner("Writing the report…"):
            st.session_state["batch_report"] = (batch_id, batch_report_html(batch_id, log))
    report = st.session_state.get("batch_report")
    if report and report[0] == batch_id:
        st.download_button(
            "Download report (HTML)",
            report[1],
            file_name=f"inspection_report_batch_{batch_id}.html",
            mime="text/html",
            key="batch_download_report",
            icon=":material/download:",
            help="Open in any browser; images are embedded.",
        )
