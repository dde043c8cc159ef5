"""Batch Review's setup: the runs and the reviewer in the sidebar, the batch selector, and the
browser's time zone the page shows times in."""

from __future__ import annotations

import streamlit as st

from store.review import ReviewLog
from ui.resources import RunRef, runs
from ui.sidebar import describe, pick_run

NEW = 0
NO_AUTOENCODER = "(none)"


def local_zone() -> str:
    """The browser's time zone (IANA name) as Streamlit reports it; UTC when unknown."""
    return getattr(st.context, "timezone", None) or "UTC"


def review_sidebar() -> tuple[RunRef | None, RunRef | None, str]:
    """The classifier and autoencoder runs new batches are scored with, and the reviewer."""
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
    return classifier_ref, ae_ref, reviewer


def choose_batch(log: ReviewLog) -> int:
    """The batch selector: an earlier batch's id, or NEW to upload one."""
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
    return st.selectbox(
        "Batch",
        list(labels),
        **first_show,
        format_func=labels.get,
        key="batch_id",
        help="Reopen an earlier batch (everything is restored from the review log) or upload a "
        "new one.",
    )
