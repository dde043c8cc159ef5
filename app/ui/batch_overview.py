"""Batch Review's opened batch at a glance: its runs reloaded for the heatmaps (when they still
exist) and the counts: scored, reviewed, flagged, disagreements, unreadable files."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from inspection import Inspector
from store.review import ReviewLog
from ui.batch_resources import find_run, inspector, inspector_key
from ui.batch_table import summary_counts, triage_table
from ui.resources import RunRef


@dataclass(frozen=True)
class BatchModels:
    """The batch's classifier run (None when deleted) and the inspector that redraws heatmaps."""

    classifier: RunRef | None
    engine: Inspector | None
    engine_key: str


def batch_models(batch: dict) -> BatchModels:
    """Reload the runs the batch was scored with; say so when the classifier run is gone."""
    clf_run = find_run(batch["classifier_run"], "classifier")
    ae_run = find_run(batch["autoencoder_run"], "autoencoder")
    engine = inspector(clf_run, ae_run) if clf_run is not None else None
    engine_key = inspector_key(clf_run, ae_run) if clf_run is not None else ""
    if engine is None:
        st.info(
            f"Run {batch['classifier_run']!r} no longer exists, so heatmaps cannot be redrawn; "
            "the stored predictions, boxes and decisions are all here."
        )
    return BatchModels(clf_run, engine, engine_key)


def batch_overview(log: ReviewLog, batch_id: int, clf_run: RunRef | None) -> pd.DataFrame:
    """The batch's counts as metrics and its unreadable files; returns the triage table."""
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
    return table
