"""Batch Review: upload a shift's images, triage them by risk, record every decision."""

import json
import zipfile
from datetime import datetime

import pandas as pd
import streamlit as st
from ui import overlay
from ui.controls import scale_note, show_colorbar
from ui.gallery import UPLOAD_TYPES
from ui.resources import runs
from ui.sidebar import describe, pick_run
from views.batch_resources import (
    explanation,
    find_run,
    inspector,
    inspector_key,
    review_log,
    stored_image,
    thumbnail,
)
from views.batch_table import (
    REVIEW_STATES,
    TABLE_COLUMNS,
    VERDICT_LABELS,
    Filters,
    apply_filters,
    box_tuples,
    item_label,
    local_times,
    neighbours,
    score_bounds,
    summary_counts,
    text_or_empty,
    triage_table,
)

from imaging.archive import iter_upload_files
from inspection import inspect_into_review
from store.review import VERDICTS
from store.review_export import readable_items
from synthetic.casting import DEFECT_TYPES

NEW = 0


def local_zone() -> str:
    """The browser's time zone (IANA name) as Streamlit reports it; UTC when unknown."""
    return getattr(st.context, "timezone", None) or "UTC"


NO_AUTOENCODER = "(none)"
GRID_SIZE = 12

st.title("Batch Review")
st.caption(
    "Upload many part images (files or .zip). Each gets the classifier's verdict, a Grad-CAM "
    "with boxes and the autoencoder's score; the table puts the riskiest first. Risk is the "
    "larger of the defect probability and the anomaly score r mapped to r / (1 + r) with r = "
    "score / threshold, so 0.5 means either model would flag the part. Every decision is "
    "committed to the review log at once; reopen a batch any time to carry on."
)

log = review_log()

# ---------------------------------------------------------------- sidebar: runs and reviewer
classifier_ref = pick_run("classifier")
ae_refs = {r.name: r for r in runs("autoencoder")}
ae_name = st.sidebar.selectbox(
    "Autoencoder run",
    [NO_AUTOENCODER, *ae_refs],
    index=1 if ae_refs else 0,
    key="batch_autoencoder",
    help="Scores each part by how badly an autoencoder trained on good parts rebuilds it. "
    "Optional: without it the risk is the classifier's defect probability.",
)
ae_ref = ae_refs.get(ae_name)
if ae_ref is not None:
    st.sidebar.caption(describe(ae_ref))
# The name survives a reload through the page address (?reviewer=...), per browser tab.
if "batch_reviewer" not in st.session_state and st.query_params.get("reviewer"):
    st.session_state["batch_reviewer"] = st.query_params["reviewer"]
reviewer = st.sidebar.text_input(
    "Reviewer",
    key="batch_reviewer",
    placeholder="your name",
    help="Stored with every decision you record; kept in the page address, so a reload "
    "or a bookmark remembers it.",
    persist_state="session",
).strip()
if reviewer and st.query_params.get("reviewer") != reviewer:
    st.query_params["reviewer"] = reviewer


# ---------------------------------------------------------------- choose or create a batch
def _expected_files(uploaded: list) -> int:
    """Images an upload will yield, for the progress bar (zip entries counted by name)."""
    count = 0
    for upload in uploaded:
        if upload.name.lower().endswith(".zip"):
            try:
                upload.seek(0)
                with zipfile.ZipFile(upload) as zf:
                    count += sum(1 for info in zf.infolist() if not info.is_dir())
            except (zipfile.BadZipFile, OSError):
                count += 1
        else:
            count += 1
    return max(count, 1)


def score_upload(name: str, uploaded: list) -> None:
    """Score the uploaded files into a new batch, showing progress; then open that batch."""
    engine = inspector(classifier_ref, ae_ref)
    batch_id = log.create_batch(
        name,
        classifier_run=classifier_ref.name,
        autoencoder_run=ae_ref.name if ae_ref else None,
        reviewer=reviewer or None,
    )
    # One file's bytes at a time: the intake streams entries and checks limits as it goes.
    files = ((f.name, f.getvalue()) for f in uploaded)
    total = _expected_files(uploaded)
    bar = st.progress(0.0, text=f"Scoring {total} images…")

    def progress(done: int, _total: int | None) -> None:
        bar.progress(min(done / total, 1.0), text=f"Scored {done} of {total} images")

    report = inspect_into_review(
        log, batch_id, iter_upload_files(files), engine, progress=progress, total=total
    )
    st.session_state["batch_intake"] = {
        "batch_id": batch_id,
        "added": report.added,
        "failed": report.failed,
        "messages": report.messages,
    }
    st.session_state["batch_pending"] = batch_id
    st.session_state["batch_upload_round"] = st.session_state.get("batch_upload_round", 0) + 1
    st.rerun()


batches = log.batches()
# Labels hold only what never changes after scoring (the file count): live counts (scored,
# reviewed) are the metrics below, so the selector can never show a stale number.
labels = {NEW: "+ New batch (upload images)"}
for row in batches.itertuples():
    files = f"{row.n_items} file" + ("" if row.n_items == 1 else "s")
    labels[int(row.batch_id)] = f"#{row.batch_id} {row.name} · {files}"
if "batch_pending" in st.session_state:
    st.session_state["batch_id"] = st.session_state.pop("batch_pending")
if st.session_state.get("batch_id") not in labels:
    st.session_state.pop("batch_id", None)
# A default index only on first show: afterwards the session state holds the choice.
first_show = {} if "batch_id" in st.session_state else {"index": 1 if len(labels) > 1 else 0}
batch_id = st.selectbox(
    "Batch",
    list(labels),
    **first_show,
    format_func=labels.get,
    key="batch_id",
    help="Reopen an earlier batch (everything is restored from the review log) or upload a "
    "new one.",
)

if batch_id == NEW:
    if classifier_ref is None:
        st.stop()
    name = st.text_input(
        "Batch name",
        value=f"batch {datetime.now():%Y-%m-%d %H:%M}",
        key="batch_new_name",
        help="How the batch appears in the batch list, e.g. the shift or the lot number.",
    )
    uploaded = st.file_uploader(
        "Part images or .zip archives",
        type=[*UPLOAD_TYPES, "zip"],
        accept_multiple_files=True,
        key=f"batch_upload_{st.session_state.get('batch_upload_round', 0)}",
        help="Up to 5,000 images and 1 GiB per batch, 256 MB per file. Zip archives are "
        "opened safely: unsafe paths, oversized or over-compressed entries and non-images "
        "are skipped with a message.",
    )
    st.caption(
        f"Scored with **{classifier_ref.name}**"
        + (f" and **{ae_ref.name}**" if ae_ref else " (no autoencoder)")
        + "; change the runs in the sidebar."
    )
    if st.button(
        "Score and store",
        type="primary",
        disabled=not uploaded or not name.strip(),
        key="batch_score",
        icon=":material/play_arrow:",
    ):
        score_upload(name.strip(), uploaded)
    st.stop()

# ---------------------------------------------------------------- the batch
batch = log.batch(batch_id)
intake = st.session_state.get("batch_intake")
if intake and intake["batch_id"] == batch_id:
    st.success(
        f"Stored {intake['added']} scored images"
        + (f" and {intake['failed']} unreadable files" if intake["failed"] else "")
        + f" in batch #{batch_id}."
    )
    if intake["messages"]:
        st.warning(f"{len(intake['messages'])} files need attention (the rest went through).")
        with st.expander("Messages", icon=":material/warning:"):
            st.markdown("\n".join(f"- {m}" for m in intake["messages"]))

clf_run = find_run(batch["classifier_run"], "classifier")
ae_run = find_run(batch["autoencoder_run"], "autoencoder")
engine = inspector(clf_run, ae_run) if clf_run is not None else None
engine_key = inspector_key(clf_run, ae_run) if clf_run is not None else ""
if engine is None:
    st.info(
        f"Run {batch['classifier_run']!r} no longer exists, so heatmaps cannot be redrawn; "
        "the stored predictions, boxes and decisions are all here."
    )

items = log.items(batch_id)
table = triage_table(items, clf_run.normal_class if clf_run else None)
unreadable = items[items["error"].notna()]
counts = summary_counts(table)
cols = st.columns(5)
cols[0].metric("Scored", counts["scored"], border=True)
cols[1].metric("Reviewed", f"{counts['reviewed']} / {counts['scored']}", border=True)
cols[2].metric("Flagged (risk > 0.5)", counts["flagged"], border=True)
cols[3].metric("Models disagree", counts["disagree"], border=True)
cols[4].metric("Unreadable", len(unreadable), border=True)
if len(unreadable):
    with st.expander(f"Unreadable files ({len(unreadable)})", icon=":material/broken_image:"):
        st.dataframe(unreadable[["file_name", "error"]], hide_index=True, width="stretch")
if table.empty:
    st.info("No scored images in this batch.")
    st.stop()

# ---------------------------------------------------------------- filters and table
st.subheader("Triage", anchor=False)
with st.container(border=True):
    f1, f2, f3 = st.columns(3)
    class_options = sorted(table["predicted_class"].dropna().unique())
    classes = f1.multiselect(
        "Predicted class",
        class_options,
        default=class_options,
        key=f"batch_classes_{batch_id}",
        help="Show only parts the classifier put in these classes.",
    )
    review_state = f2.segmented_control(
        "Review state",
        REVIEW_STATES,
        default="all",
        required=True,
        key=f"batch_review_state_{batch_id}",
        help="All parts, only those without a decision yet, or only decided ones.",
    )
    disagree_only = f3.toggle(
        "Models disagree only",
        key=f"batch_disagree_{batch_id}",
        help="The classifier and the autoencoder reached different verdicts.",
    )
    s1, s2, s3 = st.columns(3)
    risk = s1.slider(
        "Risk",
        0.0,
        1.0,
        (0.0, 1.0),
        0.01,
        key=f"batch_risk_{batch_id}",
        help="Larger of the defect probability and the threshold-normalised anomaly score.",
    )
    probability = s2.slider(
        "Defect probability",
        0.0,
        1.0,
        (0.0, 1.0),
        0.01,
        key=f"batch_probability_{batch_id}",
        help="1 minus the classifier's probability of the normal class.",
    )
    bounds = score_bounds(table["anomaly_score"])
    anomaly_range = None
    if bounds is not None:
        anomaly_range = s3.slider(
            "Anomaly score",
            bounds[0],
            bounds[1],
            bounds,
            format="%.4g",
            key=f"batch_anomaly_{batch_id}",
            help="The autoencoder's score; above its threshold the part is flagged.",
        )
filtered = apply_filters(
    table,
    Filters(
        classes=tuple(classes),
        disagree_only=disagree_only,
        risk=risk,
        defect_probability=probability,
        anomaly_score=anomaly_range,
        review=review_state,
    ),
)
visible_ids = [int(i) for i in filtered["item_id"]]
st.session_state["batch_visible_ids"] = visible_ids


def open_item(item_id: int) -> None:
    st.session_state["batch_item"] = item_id


def open_selected_row() -> None:
    rows = st.session_state["batch_table"].selection.rows
    if rows:
        open_item(st.session_state["batch_visible_ids"][rows[0]])


shown = filtered[TABLE_COLUMNS].assign(
    verdict=filtered["verdict"].map(VERDICT_LABELS.get),
)
for column in ("verdict", "defect_type", "reviewer"):  # empty, not "None", where undecided
    shown[column] = shown[column].map(text_or_empty)
st.dataframe(
    shown,
    hide_index=True,
    width="stretch",
    height=320,
    key="batch_table",
    on_select=open_selected_row,
    selection_mode="single-row",
    column_config={
        "triage_rank": st.column_config.NumberColumn(
            "#", width="small", help="Look first at 1: risk, then anomaly score breaks ties."
        ),
        "item_id": st.column_config.NumberColumn("id", width="small"),
        "file_name": "file",
        "verdict": st.column_config.TextColumn("verdict", width="medium"),
        "defect_type": st.column_config.TextColumn("defect type", width="medium"),
        "reviewer": st.column_config.TextColumn("reviewer", width="small"),
        "risk_score": st.column_config.ProgressColumn("risk", min_value=0, max_value=1),
        "defect_probability": st.column_config.NumberColumn("P(defect)", format="%.3f"),
        "anomaly_score": st.column_config.NumberColumn("anomaly", format="%.4g"),
        "anomaly_flag": st.column_config.CheckboxColumn("AE flag"),
        "disagree": st.column_config.CheckboxColumn("disagree"),
        "n_boxes": st.column_config.NumberColumn("boxes", width="small"),
    },
)
st.caption(f"{len(filtered)} of {len(table)} scored parts match; click a row to open it.")
if filtered.empty:
    st.stop()

# ---------------------------------------------------------------- thumbnails
with st.expander("Thumbnails with heatmaps", expanded=False, icon=":material/grid_view:"):
    pages = max(1, -(-len(filtered) // GRID_SIZE))
    page = st.number_input(
        "Page", 1, pages, 1, key=f"batch_grid_page_{batch_id}", help="Riskiest parts first."
    )
    chunk = filtered.iloc[(page - 1) * GRID_SIZE : page * GRID_SIZE]
    grid = st.columns(4)
    for n, row in enumerate(chunk.itertuples()):
        with grid[n % 4]:
            st.image(thumbnail(engine_key, row.sha256, row.image_path, engine), width="stretch")
            st.caption(f"{row.file_name} · risk {row.risk_score:.2f}")
            st.button(
                "Open",
                key=f"batch_open_{row.item_id}",
                on_click=open_item,
                args=(int(row.item_id),),
                icon=":material/open_in_full:",
            )

# ---------------------------------------------------------------- one part in detail
st.subheader("Review", anchor=False)
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
item = by_id.loc[current]
nav[2].caption(f"Part {visible_ids.index(current) + 1} of {len(visible_ids)}")

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
        show_colorbar("inferno", "Absolute: 1 = twice the run's anomaly threshold.", where=view[2])
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
    st.warning("The classifier and the autoencoder disagree on this part.", icon=":material/help:")


# ---------------------------------------------------------------- decision
def record(item_id: int, file_name: str, advance_to: int | None) -> None:
    """Commit the decision at once (form callback), then optionally move to the next part."""
    verdict = st.session_state.get(f"batch_verdict_{item_id}")
    name = (st.session_state.get("batch_reviewer") or "").strip()
    if not name:
        st.session_state["batch_flash"] = ("error", "Enter your name under Reviewer first.")
        return
    if verdict is None:
        st.session_state["batch_flash"] = ("error", "Pick a verdict first.")
        return
    decision = log.record_decision(
        item_id,
        verdict,
        name,
        defect_type=st.session_state.get(f"batch_type_{item_id}") or None,
        comment=st.session_state.get(f"batch_comment_{item_id}") or "",
    )
    st.session_state["batch_flash"] = (
        "success",
        f"Recorded “{VERDICT_LABELS[verdict]}” for {file_name} (decision #{decision}, {name}).",
    )
    if advance_to is not None:
        st.session_state["batch_item"] = advance_to


flash = st.session_state.pop("batch_flash", None)
if flash is not None:
    kind, text = flash
    (st.success if kind == "success" else st.error)(text)
    if kind == "success":
        st.toast(text, icon=":material/task_alt:")

classifier_defects = (
    [c for c in clf_run.class_names if c != clf_run.normal_class] if clf_run else []
)
latest_type = text_or_empty(item["defect_type"])
defect_types = list(dict.fromkeys(["", *classifier_defects, *DEFECT_TYPES, latest_type]))
with st.form(f"batch_decision_{current}", border=True):
    st.radio(
        "Verdict",
        VERDICTS,
        index=VERDICTS.index(item["verdict"]) if item["verdict"] in VERDICTS else None,
        format_func=VERDICT_LABELS.get,
        horizontal=True,
        key=f"batch_verdict_{current}",
        help="Confirm defect: the part is bad. False alarm: flagged but good. OK: good. "
        "Unsure: needs a second look.",
    )
    d1, d2 = st.columns([1, 2])
    d1.selectbox(
        "Defect type",
        defect_types,
        index=defect_types.index(latest_type),
        key=f"batch_type_{current}",
        accept_new_options=True,
        help="What kind of defect (for confirmed defects); type a new one if it is missing.",
    )
    d2.text_input(
        "Comment",
        value=text_or_empty(item["comment"]),
        key=f"batch_comment_{current}",
        help="Anything the next reviewer should know.",
    )
    b1, b2 = st.columns(2)
    b1.form_submit_button(
        "Record decision",
        type="primary",
        on_click=record,
        args=(int(current), item["file_name"], None),
        icon=":material/check:",
    )
    b2.form_submit_button(
        "Record and next",
        on_click=record,
        args=(int(current), item["file_name"], next_id),
        icon=":material/skip_next:",
        disabled=next_id is None,
    )

history = log.history(int(current))
if not history.empty:
    n = len(history)
    zone = local_zone()
    st.markdown(
        f"**History** ({n} decision{'' if n == 1 else 's'}"
        + ("; the last one is in force)" if n > 1 else ")")
    )
    st.dataframe(
        history.assign(
            verdict=history["verdict"].map(VERDICT_LABELS.get),
            created=local_times(history["created"], zone),
        ).rename(columns={"created": f"time ({zone})"}),
        hide_index=True,
        width="stretch",
        key=f"batch_history_{current}",
    )

# ---------------------------------------------------------------- export
st.subheader("Export", anchor=False)
readable_csv = readable_items(log.items(batch_id), log.images_dir, local_zone()).to_csv(index=False)
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
if st.button(
    "Build inspection report",
    key="batch_build_report",
    icon=":material/description:",
    help="A self-contained HTML report of this batch: every item with its thumbnail and the "
    "models' verdicts, and every reviewer decision with its time (python -m inspection.report).",
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
