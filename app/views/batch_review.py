"""Batch Review: upload a shift's images, triage them by risk, record every decision.

The page composes the ui.batch_* modules in the order they draw: setup (runs, reviewer, batch),
upload (a new batch), overview (counts), triage (filters, table, thumbnails), part (one image in
detail), decision (verdict form and history) and export (CSV, COCO, HTML report).
"""

import streamlit as st
from ui.batch_decision import decision_form, show_flash, show_history
from ui.batch_export import export_buttons, report_buttons
from ui.batch_overview import batch_models, batch_overview
from ui.batch_part import choose_part, show_part
from ui.batch_resources import review_log
from ui.batch_setup import NEW, choose_batch, review_sidebar
from ui.batch_table import apply_filters
from ui.batch_triage import show_table, thumbnails, triage_filters
from ui.batch_upload import intake_note, new_batch_form

st.title("Batch Review")
st.caption(
    "Upload many part images (files or .zip). Each gets the classifier's verdict, a Grad-CAM "
    "with boxes and the autoencoder's score; the table puts the riskiest first. Risk is the "
    "larger of the defect probability and the anomaly score r mapped to r / (1 + r) with r = "
    "score / threshold, so 0.5 means either model would flag the part. Every decision is "
    "committed to the review log at once; reopen a batch any time to carry on."
)

log = review_log()
classifier_ref, ae_ref, reviewer = review_sidebar()
batch_id = choose_batch(log)
if batch_id == NEW:
    new_batch_form(log, classifier_ref, ae_ref, reviewer)
    st.stop()

# ---------------------------------------------------------------- the batch
batch = log.batch(batch_id)
intake_note(batch_id)
models = batch_models(batch)
table = batch_overview(log, batch_id, models.classifier)
if table.empty:
    st.info("No scored images in this batch.")
    st.stop()

# ---------------------------------------------------------------- filters, table, thumbnails
st.subheader("Triage", anchor=False)
filtered = apply_filters(table, triage_filters(table, batch_id))
visible_ids = [int(i) for i in filtered["item_id"]]
st.session_state["batch_visible_ids"] = visible_ids
show_table(filtered, table)
if filtered.empty:
    st.stop()
thumbnails(filtered, batch_id, models.engine_key, models.engine)

# ---------------------------------------------------------------- one part in detail
st.subheader("Review", anchor=False)
current, next_id = choose_part(filtered, visible_ids)
item = filtered.set_index("item_id").loc[current]
show_part(item, models.engine_key, models.engine)

show_flash()
decision_form(log, item, current, next_id, models.classifier)
show_history(log, int(current))

# ---------------------------------------------------------------- export
st.subheader("Export", anchor=False)
export_buttons(log, batch_id)
report_buttons(log, batch_id)
