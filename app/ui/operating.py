"""The operating point of classifier runs on screen: cached split predictions, curves, the
threshold slider with its live figures, the clickable confusion matrix, saving a threshold.

The predictions of a split are computed once per run (classification.evaluation.predict_split,
behind st.cache_data); moving the slider only re-decides them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import store
from classification.evaluation import EvaluationError, decisions, predict_split
from classification.operating_point import curves, rates
from imaging import DatasetError
from store.thresholds import (
    current_user,
    describe_threshold,
    run_threshold,
    save_threshold,
    threshold_record,
)
from ui import resources
from ui.figures import MARGIN
from ui.resources import RunRef

CELL_KEY = "errors_cell"  # session state: the (true, predicted) cell clicked last


def _loaded(ref: RunRef) -> store.Run:
    """The run with its model from the process-wide cache (no second load)."""
    return store.Run(path=Path(ref.path), info=ref.info, _model=resources.model(ref))


@st.cache_data(show_spinner="Predicting the run's test split (once per run)…", max_entries=16)
def _split(run_key: str, split: str, _ref: RunRef) -> pd.DataFrame | str:
    try:
        return predict_split(_loaded(_ref), split)
    except (EvaluationError, DatasetError, store.RunError) as exc:
        return str(exc)


def split_frame(ref: RunRef, split: str = "test") -> pd.DataFrame | None:
    """The run's split with truth and probabilities, or None (with a warning) if unavailable."""
    found = _split(ref.key, split, ref)
    if isinstance(found, str):
        st.warning(f"{ref.name}: {found}", icon=":material/warning:")
        return None
    return found


@st.cache_data(show_spinner="Drawing heatmaps…", max_entries=64)
def _evidence(
    run_key: str, paths: tuple[str, ...], masks: tuple, threshold: float, _ref: RunRef
) -> list[np.ndarray]:
    from inspection.evidence import evidence_images

    return evidence_images(_loaded(_ref), list(paths), list(masks), threshold=threshold)


def evidence(ref: RunRef, rows: pd.DataFrame, threshold: float) -> list[np.ndarray]:
    """Heatmap + boxes + truth outline of each row's image under `ref` (cached)."""
    masks = tuple(rows["mask_path"]) if "mask_path" in rows else (None,) * len(rows)
    return _evidence(ref.key, tuple(rows["path"]), masks, float(threshold), ref)


def threshold_slider(ref: RunRef, where: Any = st, key_prefix: str = "op") -> float:
    """The live threshold of one run, starting at its saved one (0.5 for runs without)."""
    saved = run_threshold(ref.info)
    value = where.slider(
        f"Defect threshold · {ref.name}",
        0.0,
        1.0,
        saved,
        0.001,
        format="%.3f",
        key=f"{key_prefix}_threshold_{ref.name}",
        help="Parts whose summed defect probability is at or above this are called defective. "
        f"Saved: {describe_threshold(ref.info)}.",
    )
    return float(value)


def live_figures(ref: RunRef, frame: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """Metric tiles of the run at `threshold` on its test split; returns the rates."""
    r = rates(frame["is_defect"].to_numpy(bool), frame["defect_probability"], threshold)
    cols = st.columns(5)
    cols[0].metric("Recall", f"{r['recall']:.1%}", border=True, help="Defects caught.")
    cols[1].metric("Precision", f"{r['precision']:.1%}", border=True, help="Alarms that are real.")
    cols[2].metric("F1", f"{r['f1']:.3f}", border=True)
    cols[3].metric(
        "Escapes / 1,000",
        f"{r['escape_per_1000']:.1f}",
        border=True,
        help="Defective parts passed, per 1,000 parts inspected.",
    )
    cols[4].metric(
        "False alarms / 1,000",
        f"{r['false_alarm_per_1000']:.1f}",
        border=True,
        help="Good parts sent to re-inspection, per 1,000 parts inspected.",
    )
    return r


def curve_figures(
    frames: dict[str, pd.DataFrame], points: dict[str, float]
) -> tuple[go.Figure, go.Figure]:
    """ROC and precision-recall curves per run, each with its operating point marked."""
    roc, pr = go.Figure(), go.Figure()
    for name, frame in frames.items():
        y, p = frame["is_defect"].to_numpy(bool), frame["defect_probability"].to_numpy()
        c = curves(y, p)
        if not c:
            continue
        at = rates(y, p, points[name])
        fpr = at["fp"] / max(at["fp"] + at["tn"], 1)
        roc.add_scatter(x=c["fpr"], y=c["tpr"], mode="lines", name=name, legendgroup=name)
        pr.add_scatter(x=c["recall"], y=c["precision"], mode="lines", name=name, legendgroup=name)
        label = f"{name} @ {points[name]:.3f}"
        marker = {"size": 12, "symbol": "x"}
        roc.add_scatter(
            x=[fpr], y=[at["recall"]], mode="markers", name=label, marker=marker, legendgroup=name
        )
        pr.add_scatter(
            x=[at["recall"]],
            y=[at["precision"]],
            mode="markers",
            name=label,
            marker=marker,
            legendgroup=name,
        )
    roc.update_layout(
        title="ROC (test split)",
        xaxis_title="false-positive rate",
        yaxis_title="recall",
        margin=MARGIN,
        height=380,
    )
    pr.update_layout(
        title="Precision-recall (test split)",
        xaxis_title="recall",
        yaxis_title="precision",
        margin=MARGIN,
        height=380,
    )
    return roc, pr


def clickable_matrix(ref: RunRef, decided: pd.DataFrame, key_prefix: str) -> None:
    """The confusion matrix as buttons: a click selects that cell's images (CELL_KEY) and
    switches the `{key_prefix}_view` radio, drawn after the matrix, to "cell"."""
    names = ref.class_names
    st.markdown("**Confusion matrix** (rows true, columns predicted; click a cell)")
    header = st.columns(len(names) + 1)
    header[0].markdown("*true \\ predicted*")
    for j, name in enumerate(names):
        header[j + 1].markdown(f"**{name}**")
    for true in names:
        row = st.columns(len(names) + 1)
        row[0].markdown(f"**{true}**")
        for j, pred in enumerate(names):
            count = int(((decided["label"] == true) & (decided["predicted_class"] == pred)).sum())
            kind = "primary" if st.session_state.get(CELL_KEY) == (true, pred) else "secondary"
            if row[j + 1].button(
                str(count),
                key=f"{key_prefix}_cell_{true}_{pred}",
                type=kind,
                width="stretch",
                help=f"Show the {count} test images of class {true} predicted {pred}.",
            ):
                st.session_state[CELL_KEY] = (true, pred)
                st.session_state[f"{key_prefix}_view"] = "cell"
                st.rerun()


def save_button(ref: RunRef, frame: pd.DataFrame, threshold: float, key_prefix: str) -> None:
    """'Save as the run's threshold': a new threshold record in run.json, history kept."""
    who = st.text_input(
        "Saved by",
        value=current_user(),
        key=f"{key_prefix}_who_{ref.name}",
        help="Recorded with the threshold in run.json's history.",
    )
    if st.button(
        "Save as the run's threshold",
        key=f"{key_prefix}_save_{ref.name}",
        icon=":material/save:",
        disabled=ref.kind != "classifier",
        help="Writes this threshold into the run's run.json (older ones stay in its history). "
        "predict.py, inspection and every page then decide at it.",
    ):
        r = rates(frame["is_defect"].to_numpy(bool), frame["defect_probability"], threshold)
        record = threshold_record(
            threshold,
            "manual",
            split="test",
            precision=r["precision"],
            recall=r["recall"],
            set_by=who.strip() or None,
            note="set on the Experiments page",
        )
        save_threshold(ref.path, record)
        resources.list_runs.clear()
        st.session_state.pop(f"{key_prefix}_threshold_{ref.name}", None)
        st.toast(f"{ref.name}: threshold {threshold:.3f} saved", icon=":material/save:")
        st.rerun()


def decided_split(ref: RunRef, threshold: float) -> pd.DataFrame | None:
    frame = split_frame(ref)
    return None if frame is None else decisions(ref.run(), frame, threshold)


def report_button(ref: RunRef, key_prefix: str) -> None:
    """Build the run's audit report (self-contained HTML) and offer it for download."""
    from inspection.audit import run_report_html

    state = f"{key_prefix}_report_{ref.name}"
    if st.button(
        "Build inspection report",
        key=f"{key_prefix}_build_report_{ref.name}",
        icon=":material/description:",
        help="A self-contained HTML report (provenance, metrics, curves, confusion matrix, "
        "recall per type, worst errors with heatmaps) at the run's saved threshold.",
    ):
        with st.spinner("Writing the report…"):
            try:
                st.session_state[state] = run_report_html(_loaded(ref))
            except (EvaluationError, DatasetError) as exc:
                st.error(str(exc), icon=":material/error:")
    if st.session_state.get(state):
        st.download_button(
            "Download report (HTML)",
            st.session_state[state],
            file_name=f"inspection_report_{ref.name}.html",
            mime="text/html",
            key=f"{key_prefix}_download_report_{ref.name}",
            icon=":material/download:",
            help="Open in any browser; images are embedded.",
        )
