"""Long sensor series on screen: server-side downsampling and NG shading as one trace each.

A browser cannot draw 835,200 points per line responsively, so only the visible window is
sent, reduced to about `points` per line with MinMaxLTTB (keeps spikes, the shape the eye
reads). NG periods closer together than one screen pixel are merged, then drawn as a single
filled polygon trace (None-separated rectangles) instead of thousands of layout shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from tsdownsample import MinMaxLTTBDownsampler

NG_FILL = "rgba(198, 40, 40, 0.18)"
LINE_COLORS = ("#1565c0", "#6a1b9a", "#ef6c00")


def downsample_indices(y: np.ndarray, points: int) -> np.ndarray:
    """Indices of at most `points` samples that keep the line's visible shape."""
    n = len(y)
    if n <= points:
        return np.arange(n)
    values = np.nan_to_num(np.asarray(y, dtype=np.float64))
    return MinMaxLTTBDownsampler().downsample(values, n_out=points, parallel=False)


def ng_intervals(ng: np.ndarray, min_gap: int = 1) -> np.ndarray:
    """(k, 2) [start, stop) row ranges of NG runs; runs closer than `min_gap` rows are merged."""
    flags = np.asarray(ng, dtype=np.int8)
    if not flags.any():
        return np.zeros((0, 2), dtype=np.int64)
    edges = np.diff(np.concatenate([[0], flags, [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if min_gap > 1 and len(starts) > 1:
        keep = (starts[1:] - stops[:-1]) >= min_gap
        starts = starts[np.concatenate([[True], keep])]
        stops = stops[np.concatenate([keep, [True]])]
    return np.column_stack([starts, stops]).astype(np.int64)


def shade_trace(
    times: np.ndarray, intervals: np.ndarray, low: float, high: float, **kwargs
) -> go.Scatter:
    """One filled scatter trace of rectangles spanning [low, high] over each interval."""
    k = len(intervals)
    stop_times = times[np.minimum(intervals[:, 1], len(times) - 1)]
    x = np.empty(k * 5, dtype=object)
    y = np.empty(k * 5, dtype=object)
    x[0::5], x[1::5] = times[intervals[:, 0]], times[intervals[:, 0]]
    x[2::5], x[3::5], x[4::5] = stop_times, stop_times, None
    y[0::5], y[1::5], y[2::5], y[3::5], y[4::5] = low, high, high, low, None
    return go.Scatter(
        x=x,
        y=y,
        mode="lines",
        fill="toself",
        fillcolor=NG_FILL,
        line={"width": 0},
        hoverinfo="skip",
        **kwargs,
    )


def series_figure(
    times: np.ndarray,
    lines: dict[str, np.ndarray],
    ng: np.ndarray | None,
    probability: np.ndarray | None = None,
    threshold: float | None = None,
    points: int = 2000,
    height: int = 640,
) -> go.Figure:
    """Stacked panels (one per sensor, plus the NG probability) sharing the time axis."""
    panels: Sequence[str] = [*lines, *(["NG probability"] if probability is not None else [])]
    fig = make_subplots(
        rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.04, subplot_titles=None
    )
    intervals = None
    if ng is not None and len(times):
        intervals = ng_intervals(ng, min_gap=max(1, len(times) // (points // 2)))
    for row, name in enumerate(panels, start=1):
        y = probability if name == "NG probability" else lines[name]
        finite = y[np.isfinite(y)] if len(y) else y
        if intervals is not None and len(intervals) and len(finite):
            low, high = (0.0, 1.0) if name == "NG probability" else (finite.min(), finite.max())
            fig.add_trace(
                shade_trace(
                    times,
                    intervals,
                    low,
                    high,
                    name="NG (label)",
                    legendgroup="ng",
                    showlegend=row == 1,
                ),
                row=row,
                col=1,
            )
        keep = downsample_indices(y, points)
        fig.add_trace(
            go.Scattergl(
                x=times[keep],
                y=y[keep],
                name=name,
                mode="lines",
                line={"width": 1, "color": LINE_COLORS[(row - 1) % len(LINE_COLORS)]},
            ),
            row=row,
            col=1,
        )
        fig.update_yaxes(title_text=name.replace("_", " "), row=row, col=1)
        if name == "NG probability":
            fig.update_yaxes(range=[0, 1], row=row, col=1)
            if threshold is not None:
                fig.add_hline(
                    y=threshold,
                    line={"color": "#c62828", "dash": "dash", "width": 1},
                    row=row,
                    col=1,
                )
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": 1.06},
        hovermode="x unified",
    )
    return fig
