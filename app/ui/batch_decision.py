"""Batch Review's decision on one part: the verdict form (committed to the review log at once,
optionally moving on to the next part), the confirmation, and the part's decision history."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from store.review import VERDICTS, ReviewLog
from synthetic.casting import DEFECT_TYPES
from ui.batch_setup import local_zone
from ui.batch_table import VERDICT_LABELS, local_times, text_or_empty
from ui.resources import RunRef


def _record(log: ReviewLog, item_id: int, file_name: str, advance_to: int | None) -> None:
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


def show_flash() -> None:
    """The last recording's outcome, once (and a toast when it succeeded)."""
    flash = st.session_state.pop("batch_flash", None)
    if flash is not None:
        kind, text = flash
        (st.success if kind == "success" else st.error)(text)
        if kind == "success":
            st.toast(text, icon=":material/task_alt:")


def decision_form(
    log: ReviewLog, item: pd.Series, current: int, next_id: int | None, clf_run: RunRef | None
) -> None:
    """Verdict, defect type and comment, with Record decision and Record and next."""
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
            on_click=_record,
            args=(log, int(current), item["file_name"], None),
            icon=":material/check:",
        )
        b2.form_submit_button(
            "Record and next",
            on_click=_record,
            args=(log, int(current), item["file_name"], next_id),
            icon=":material/skip_next:",
            disabled=next_id is None,
        )


def show_history(log: ReviewLog, item_id: int) -> None:
    """Every decision on the part, times in the browser's zone (the last one is in force)."""
    history = log.history(item_id)
    if history.empty:
        return
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
        key=f"batch_history_{item_id}",
    )
