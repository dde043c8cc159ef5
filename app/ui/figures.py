"""Plotly figures the pages share, in one consistent look."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
GOOD_COLOR = "#2e7d32"
DEFECT_COLOR = "#c62828"


def confusion_matrix(
    matrix: Sequence[Sequence[float]], class_names: Sequence[str], title: str = ""
) -> go.Figure:
    """Counts with row-normalised colour, true classes down, predicted across."""
    counts = np.asarray(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    text = [
        [f"{int(c)}<br>{s:.0%}" for c, s in zip(crow, srow, strict=True)]
        for crow, srow in zip(counts, share, strict=True)
    ]
    names = [str(c) for c in class_names]
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            showscale=False,
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        margin=MARGIN,
        height=120 + 60 * len(names),
        xaxis={"title": "predicted", "side": "bottom"},
        yaxis={"title": "true", "autorange": "reversed"},
    )
    return fig


def training_curves(histories: dict[str, pd.DataFrame], metric: str) -> go.Figure:
    """One line per run for `metric` (solid) and `val_<metric>` (dashed) over epochs."""
    fig = go.Figure()
    palette = px.colors.qualitative.Set2
    for i, (name, frame) in enumerate(histories.items()):
        color = palette[i % len(palette)]
        x = frame["epoch"] if "epoch" in frame else np.arange(1, len(frame) + 1)
        for column, dash in ((metric, "solid"), (f"val_{metric}", "dash")):
            if column in frame:
                fig.add_scatter(
                    x=x,
                    y=frame[column],
                    name=f"{name} · {column}",
                    mode="lines+markers",
                    line={"color": color, "dash": dash},
                    marker={"size": 5},
                )
    fig.update_layout(
        margin=MARGIN,
        height=380,
        xaxis_title="epoch",
        yaxis_title=metric,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def probability_bars(probs: Sequence[float], class_names: Sequence[str], normal: str | None):
    """Horizontal bars of class probabilities; the normal class green, defects red."""
    names = [str(c) for c in class_names]
    colors = [GOOD_COLOR if n == normal else DEFECT_COLOR for n in names]
    fig = go.Figure(
        go.Bar(
            x=list(map(float, probs)),
            y=names,
            orientation="h",
            marker_color=colors,
            text=[f"{p:.1%}" for p in probs],
            textposition="auto",
        )
    )
    fig.update_layout(
        margin=MARGIN,
        height=80 + 32 * len(names),
        xaxis={"range": [0, 1], "tickformat": ".0%"},
        yaxis={"autorange": "reversed"},
    )
    return fig


def score_histogram(
    scores: np.ndarray, is_defect: np.ndarray, threshold: float, title: str = ""
) -> go.Figure:
    """Overlaid histograms of good and defect scores with the decision threshold."""
    fig = go.Figure()
    # whole images only on the y axis: a tick every 1, 2, 5, 10... images
    tallest = max(
        (
            int(np.histogram(scores[m], bins=40)[0].max())
            for m in (~is_defect, is_defect)
            if m.any()
        ),
        default=1,
    )
    dtick = next(d for d in (1, 2, 5, 10, 20, 50, 100, 200, 500, 10**9) if tallest / d <= 8)
    for mask, name, color in (
        (~is_defect, "good", GOOD_COLOR),
        (is_defect, "defect", DEFECT_COLOR),
    ):
        if mask.any():
            fig.add_histogram(x=scores[mask], name=name, marker_color=color, opacity=0.6, nbinsx=40)
    fig.add_vline(
        x=threshold,
        line={"color": "#333", "dash": "dash", "width": 2},
        annotation_text=f"threshold {threshold:.4g}",
        annotation_position="top",
    )
    fig.update_layout(
        barmode="overlay",
        margin=MARGIN,
        height=320,
        title=title,
        xaxis_title="anomaly score",
        yaxis={"title": "images", "tickformat": "d", "rangemode": "tozero", "dtick": dtick},
        legend={"orientation": "h", "y": 1.12},
    )
    return fig


def metric_boxes(frame: pd.DataFrame, metric: str, by: str = "run") -> go.Figure:
    """Distribution of one per-image metric for each run (box plus the points)."""
    fig = px.box(
        frame,
        x=by,
        y=metric,
        color=by,
        points="all",
        color_discrete_sequence=px.colors.qualitative.Set2,
    )
    fig.update_layout(margin=MARGIN, height=320, showlegend=False, title=metric.replace("_", " "))
    return fig


def interval_bars(intervals: dict[str, dict[str, float]], label: str) -> go.Figure:
    """One bar per recipe: the mean, with its confidence interval as an error bar."""
    recipes = sorted(intervals)
    means = [intervals[r]["mean"] for r in recipes]
    above = [intervals[r]["high"] - m for r, m in zip(recipes, means, strict=True)]
    below = [m - intervals[r]["low"] for r, m in zip(recipes, means, strict=True)]
    fig = go.Figure(
        go.Bar(
            x=recipes,
            y=means,
            marker_color=px.colors.qualitative.Set2[: len(recipes)],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": above,
                "arrayminus": below,
            },
            hovertemplate="%{x}: %{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(margin=MARGIN, height=320, title=f"{label}, mean and 95 % interval")
    return fig
