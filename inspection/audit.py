"""Audit-ready inspection reports: one self-contained HTML file per run or per review batch.

Everything is inside the file (images as base64 PNG, charts as inline SVG, no scripts), so it
can be archived, mailed and opened years later without DefectLens. A run report gives the
provenance (data fingerprint, recipe, git commit, library versions, threshold and how it was
chosen), test metrics at the operating point and at argmax, ROC and precision-recall curves,
the confusion matrix, recall per defect type and the worst errors with their heatmaps. A batch
report lists every item with the models' verdicts and every reviewer decision with its time.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from classification.evaluation import (
    decisions,
    predict_split,
    recall_by_type,
    split_report,
    worst_errors,
)
from classification.operating_point import curves
from explain.overlay import png_bytes
from imaging import read_image
from inspection.evidence import evidence_images
from store import Run, load_run
from store.review import ReviewLog
from store.thresholds import describe_threshold, run_threshold

RUN_SECTIONS = (
    "Provenance",
    "Operating point",
    "Test metrics",
    "Curves",
    "Confusion matrix",
    "Recall per defect type",
    "Worst errors",
)
BATCH_SECTIONS = ("Batch", "Items", "Decisions")
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;font-size:.9em}th{background:#f3f3f3}.num{text-align:right}
.grid{display:flex;flex-wrap:wrap;gap:12px}.tile{width:250px;font-size:.8em}
.tile img{width:250px;height:auto;border:1px solid #ccc}.muted{color:#666;font-size:.85em}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else _e(value)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_num(v)}</td>' if isinstance(v, int | float) else f"<td>{_e(v)}</td>"
            for v in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(image: np.ndarray, alt: str) -> str:
    data = base64.b64encode(png_bytes(image)).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _svg_curve(
    xs: Sequence[float],
    ys: Sequence[float],
    point: tuple[float, float],
    xlabel: str,
    ylabel: str,
    title: str,
) -> str:
    """A line chart on [0, 1] x [0, 1] with the operating point marked, as inline SVG."""
    w, h, pad = 320, 260, 40

    def px(x: float, y: float) -> str:
        return f"{pad + x * (w - 2 * pad):.1f},{h - pad - y * (h - 2 * pad):.1f}"

    line = " ".join(px(x, y) for x, y in zip(xs, ys, strict=True))
    cx, cy = px(*point).split(",")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">'
        f"<title>{_e(title)}</title>"
        f'<rect x="{pad}" y="{pad}" width="{w - 2 * pad}" height="{h - 2 * pad}" fill="none" '
        'stroke="#999"/>'
        f'<polyline points="{line}" fill="none" stroke="#1565c0" stroke-width="2"/>'
        f'<circle cx="{cx}" cy="{cy}" r="5" fill="#c62828"/>'
        f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle" font-size="12">{_e(xlabel)}</text>'
        f'<text x="12" y="{h / 2}" font-size="12" transform="rotate(-90 12 {h / 2})" '
        f'text-anchor="middle">{_e(ylabel)}</text>'
        f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="13">{_e(title)}</text>'
        f'<text x="{pad}" y="{h - pad + 14}" font-size="10">0</text>'
        f'<text x="{w - pad - 6}" y="{h - pad + 14}" font-size="10">1</text>'
        f'<text x="{pad - 12}" y="{pad + 4}" font-size="10">1</text></svg>'
    )


def _svg_bars(labels: Sequence[str], values: Sequence[float], title: str) -> str:
    """Horizontal bars in [0, 1] (recall per type), as inline SVG."""
    row, left, width = 22, 110, 260
    h = 30 + row * len(labels)
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 26 + i * row
        bars.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-size="12">{_e(label)}</text>'
            f'<rect x="{left}" y="{y}" width="{value * width:.1f}" height="{row - 6}" '
            'fill="#1565c0"/>'
            f'<text x="{left + value * width + 4:.1f}" y="{y + 13}" font-size="11">'
            f"{value:.1%}</text>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" height="{h}" '
        f'role="img"><title>{_e(title)}</title>'
        f'<text x="4" y="16" font-size="13">{_e(title)}</text>{"".join(bars)}</svg>'
    )


def _page(title: str, sections: list[tuple[str, str]]) -> str:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    body = "".join(f'<section id="{_e(n)}"><h2>{_e(n)}</h2>{c}</section>' for n, c in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class='muted'>Generated {now} by DefectLens "
        "(python -m inspection.report). Self-contained: images embedded, no scripts.</p>"
        f"{body}</body></html>\n"
    )


# ---------------------------------------------------------------- run report


def _provenance(run: Run) -> str:
    info = run.info
    data = info.get("data") or {}
    rows = [
        ("run", run.name),
        ("model", info.get("model")),
        ("augmentation recipe", f"{info.get('aug')}: {info.get('aug_description', '')}"),
        ("classes", ", ".join(info.get("class_names", []))),
        ("normal class", info.get("normal_class")),
        ("preprocessing", info.get("preprocess")),
        ("training", _recipe(info)),
        ("data", f"{data.get('root')} ({data.get('layout')})"),
        ("data fingerprint", data.get("fingerprint")),
        ("split counts", data.get("counts")),
        ("split notes", "; ".join(data.get("split_notes") or [])),
        ("git commit", info.get("git_commit")),
        ("created", info.get("created")),
        ("library versions", info.get("versions")),
    ]
    return _table([(k, "" if v is None else str(v)) for k, v in rows], ["field", "value"])


def _recipe(info: dict[str, Any]) -> str:
    keys = ("epochs", "epochs_run", "best_epoch", "batch_size", "lr", "schedule", "seed")
    return ", ".join(f"{k} {info[k]}" for k in keys if info.get(k) is not None)


def _operating_point(run: Run) -> str:
    history = run.info.get("threshold_history") or []
    text = "<p><b>Decision:</b> defective when the summed defect probability &ge; threshold. "
    text += f"<b>Threshold:</b> {_e(describe_threshold(run.info))}</p>"
    if history:
        rows = [
            (
                r.get("value"),
                r.get("policy"),
                r.get("split"),
                r.get("precision"),
                r.get("recall"),
                r.get("set_by"),
                r.get("set_at"),
                r.get("note", ""),
            )
            for r in history
        ]
        header = ["threshold", "policy", "chosen on", "precision", "recall", "set by", "at", "note"]
        text += "<p>Threshold history (last is in force):</p>" + _table(rows, header)
    return text


def _metrics(report: dict[str, Any]) -> str:
    argmax = report["argmax"]
    keys = [
        ("accuracy", "accuracy"),
        ("macro F1", "macro_f1"),
        ("defect precision", "defect_precision"),
        ("defect recall", "defect_recall"),
        ("defect F1", "defect_f1"),
        ("escapes per 1,000 parts", "escape_per_1000"),
        ("false alarms per 1,000 parts", "false_alarm_per_1000"),
    ]
    rows = [(label, float(report[k]), float(argmax[k])) for label, k in keys]
    rows.append(("ROC-AUC", report["roc_auc"], report["roc_auc"]))
    at = "operating point" if report.get("threshold") is None else f"at {report['threshold']:.4f}"
    return (
        f"<p>{report['n']} test images; positive class: {_e(report['positive_class'])}.</p>"
        + _table(rows, ["metric", at, "argmax"])
    )


def _confusion(report: dict[str, Any]) -> str:
    cm = report["confusion_matrix"]
    rows = [[f"true {t}", *row] for t, row in zip(cm["labels"], cm["matrix"], strict=True)]
    return "<p>Rows: true class; columns: predicted class.</p>" + _table(
        rows, ["", *(f"predicted {p}" for p in cm["labels"])]
    )


def _curves(frame: pd.DataFrame, threshold: float, decided: pd.DataFrame) -> str:
    y, p = frame["is_defect"].to_numpy(bool), frame["defect_probability"].to_numpy()
    c = curves(y, p)
    if not c:
        return "<p>Curves need both good and defective test images.</p>"
    tp = int((decided["outcome"] == "TP").sum())
    fp = int((decided["outcome"] == "FP").sum())
    fn = int((decided["outcome"] == "FN").sum())
    tn = int((decided["outcome"] == "TN").sum())
    recall, precision = tp / max(tp + fn, 1), tp / max(tp + fp, 1)
    roc = _svg_curve(
        c["fpr"], c["tpr"], (fp / max(fp + tn, 1), recall), "false-positive rate", "recall", "ROC"
    )
    pr = _svg_curve(
        c["recall"], c["precision"], (recall, precision), "recall", "precision", "Precision-recall"
    )
    return f'<div class="grid">{roc}{pr}</div><p class="muted">Red dot: operating point.</p>'


def _per_type(decided: pd.DataFrame) -> str:
    table = recall_by_type(decided)
    if table.empty:
        return "<p>No defective test images.</p>"
    rows = [
        (r.defect_type, int(r.images), int(r.found), float(r.recall)) for r in table.itertuples()
    ]
    chart = _svg_bars(list(table["defect_type"]), list(table["recall"]), "Recall per defect type")
    return _table(rows, ["defect type", "images", "found", "recall"]) + chart


def _worst(run: Run, decided: pd.DataFrame, threshold: float, n: int) -> str:
    worst = worst_errors(decided, n)
    if worst.empty:
        return "<p>No errors on the test split at this threshold.</p>"
    masks = list(worst["mask_path"]) if "mask_path" in worst else None
    pictures = evidence_images(run, list(worst["path"]), masks, threshold=threshold)
    tiles = []
    for row, picture in zip(worst.itertuples(), pictures, strict=True):
        kind = "missed defect" if row.outcome == "FN" else "false alarm"
        caption = (
            f"{Path(row.path).name}: {kind}, p(defect) {row.defect_probability:.3f}; "
            f"true {row.label}" + (f" ({row.defect_type})" if row.defect_type else "")
        )
        tiles.append(f'<div class="tile">{_img(picture, caption)}<br>{_e(caption)}</div>')
    return (
        "<p>The most confident mistakes: Grad-CAM of the defect class, the run's boxes (amber) "
        "and the true defect outline (green).</p>" + f'<div class="grid">{"".join(tiles)}</div>'
    )


def run_report_html(
    run: str | Path | Run,
    data: str | Path | None = None,
    threshold: float | None = None,
    worst: int = 8,
) -> str:
    """The HTML report of a classifier run on its test split at its (or the given) threshold."""
    run = run if isinstance(run, Run) else load_run(run)
    threshold = run_threshold(run.info) if threshold is None else float(threshold)
    frame = predict_split(run, "test", data)
    report = split_report(run, frame, threshold)
    decided = decisions(run, frame, threshold)
    sections = [
        ("Provenance", _provenance(run)),
        ("Operating point", _operating_point(run)),
        ("Test metrics", _metrics(report)),
        ("Curves", _curves(frame, threshold, decided)),
        ("Confusion matrix", _confusion(report)),
        ("Recall per defect type", _per_type(decided)),
        ("Worst errors", _worst(run, decided, threshold, worst)),
    ]
    return _page(f"Inspection report: run {run.name}", sections)


# ---------------------------------------------------------------- batch report


def _thumbnail(path: str, size: int = 96) -> str:
    try:
        image = read_image(path)
    except (ValueError, OSError):
        return "(image unavailable)"
    scale = size / max(image.shape[:2])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return _img(small, Path(path).name)


def batch_report_html(batch_id: int, review_log: ReviewLog | None = None) -> str:
    """The HTML report of a review batch: its items, verdicts and every reviewer decision."""
    log = review_log or ReviewLog()
    try:
        batch = log.batch(batch_id)
        items = log.items(batch_id)
        meta = _table([(k, str(v)) for k, v in batch.items()], ["field", "value"])
        meta += f"<p>{len(items)} items, {int((items['n_decisions'] > 0).sum())} reviewed.</p>"
        rows, history = [], []
        for item in items.itertuples():
            rows.append(
                f"<tr><td>{_thumbnail(item.image_path)}</td><td>{_e(item.file_name)}</td>"
                f"<td>{_e(item.predicted_class)}</td><td>{_num(item.defect_probability, 3)}</td>"
                f"<td>{_num(item.anomaly_score, 4)}</td><td>{_num(item.risk_score, 3)}</td>"
                f"<td>{_e(item.verdict or 'not reviewed')}</td><td>{_e(item.reviewer)}</td>"
                f"<td>{_e(item.decided_at)}</td><td>{_e(item.error)}</td></tr>"
            )
            for d in log.history(item.item_id).itertuples():
                history.append(
                    (
                        item.file_name,
                        d.verdict,
                        d.defect_type or "",
                        d.comment or "",
                        d.reviewer,
                        str(d.created),
                    )
                )
    finally:
        if review_log is None:
            log.close()
    header = [
        "image",
        "file",
        "model verdict",
        "p(defect)",
        "anomaly score",
        "risk",
        "decision in force",
        "reviewer",
        "decided at (UTC)",
        "error",
    ]
    items_html = (
        "<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"
        f"{''.join(rows)}</table>"
    )
    decisions_html = (
        "<p>Every decision ever recorded, oldest first per item (the last one is in force).</p>"
        + _table(history, ["file", "verdict", "defect type", "comment", "reviewer", "at (UTC)"])
        if history
        else "<p>No decisions recorded yet.</p>"
    )
    return _page(
        f"Inspection report: batch {batch_id} ({batch['name']})",
        [("Batch", meta), ("Items", items_html), ("Decisions", decisions_html)],
    )
