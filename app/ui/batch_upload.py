"""Batch Review's new batch: the upload form, scoring the files into the review log with a
progress bar, and the note on what the intake stored once the new batch opens."""

from __future__ import annotations

import zipfile
from datetime import datetime

import streamlit as st

from imaging.archive import iter_upload_files
from inspection import inspect_into_review
from store.review import ReviewLog
from ui.batch_resources import inspector
from ui.gallery import UPLOAD_TYPES
from ui.resources import RunRef


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


def score_upload(
    log: ReviewLog,
    name: str,
    uploaded: list,
    classifier_ref: RunRef,
    ae_ref: RunRef | None,
    reviewer: str,
) -> None:
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


def new_batch_form(
    log: ReviewLog, classifier_ref: RunRef | None, ae_ref: RunRef | None, reviewer: str
) -> None:
    """Name, files and the Score button; scoring opens the new batch (needs a classifier)."""
    if classifier_ref is None:
        return
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
        score_upload(log, name.strip(), uploaded, classifier_ref, ae_ref, reviewer)


def intake_note(batch_id: int) -> None:
    """What the last upload stored, shown when its batch is the one open."""
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
