"""Batch Review's triage: the filters, the risk-ordered table (a click opens the part) and the
thumbnail grid with heatmaps."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from inspection import Inspector
from ui.batch_resources import thumbnail
from ui.batch_table import (
    REVIEW_STATES,
    TABLE_COLUMNS,
    VERDICT_LABELS,
    Filters,
    score_bounds,
    text_or_empty,
)

GRID_SIZE = 12


def open_item(item_id: int) -> None:
    """Show this part in the Review section (a button or row callback)."""
    st.session_state["batch_item"] = item_id


def _open_selected_row() -> None:
    rows = st.session_state["batch_table"].selection.rows
    if rows:
        open_item(st.session_state["batch_visible_ids"][rows[0]])


def triage_filters(table: pd.DataFrame, batch_id: int) -> Filters:
    """Class, review state, disagreement and score ranges, remembered per batch."""
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
    return Filters(
        classes=tuple(classes),
        disagree_only=disagree_only,
        risk=risk,
        defect_probability=probability,
        anomaly_score=anomaly_range,
        review=review_state,
    )


def show_table(filtered: pd.DataFrame, table: pd.DataFrame) -> None:
    """The filtered parts, riskiest first; clicking a row opens that part."""
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
        on_select=_open_selected_row,
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


def thumbnails(
    filtered: pd.DataFrame, batch_id: int, engine_key: str, engine: Inspector | None
) -> None:
    """A page of thumbnails with heatmaps, each with an Open button."""
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
