"""The line service's state: the loaded inspection pipeline, the review log, batching, alerts.

One `LineService` per process. `load()` opens the runs and warms the models (health reports
ready only after that); `process(parts)` is the one model call the micro-batcher makes: it
scores the parts with `inspection.Inspector.score` (classifier, Grad-CAM boxes, anomaly, risk),
records each in the review log as line traffic and returns one response per part.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from explain.overlay import blend, draw_boxes, png_bytes
from inspection import Inspector
from inspection.pipeline import Forward
from serve.alerts import AlertHub
from serve.batching import MicroBatcher
from serve.settings import Settings
from store import Run
from store.line import LineLog, LinePart, PartRecord
from store.review import ITEM_FIELDS

log = logging.getLogger(__name__)


@dataclass
class Part:
    """One decoded part waiting for the model."""

    name: str
    data: bytes
    image: np.ndarray
    station: str


def run_summary(run: Run | None) -> dict[str, Any] | None:
    """Name and version of a run as clients see it (created time and git commit identify it)."""
    if run is None:
        return None
    info = run.info
    return {
        "name": run.name,
        "kind": run.kind,
        "model": info.get("model"),
        "created": info.get("created"),
        "git_commit": info.get("git_commit"),
        "threshold": info.get("threshold"),
    }


class LineService:
    def __init__(self, settings: Settings, inspector: Inspector | None = None) -> None:
        self.settings = settings
        self.inspector = inspector
        self.review: LineLog | None = None
        self.hub = AlertHub()
        self.batcher: MicroBatcher[Part, dict[str, Any]] = MicroBatcher(
            self.process,
            settings.max_batch,
            settings.max_wait_ms / 1000,
            after=self.publish,
            finish=self.finish,
        )
        self.ready = False
        self.error: str | None = None

    # Start-up ----------------------------------------------------------------------------

    def load(self) -> None:
        """Open the runs and the review log, then score one blank part so the first real
        request does not pay for graph tracing."""
        try:
            if self.inspector is None:
                self.inspector = Inspector.from_runs(
                    self.settings.classifier, self.settings.autoencoder
                )
            self.review = LineLog(self.settings.db_url, self.settings.images_dir)
            shape = self.inspector.preprocess.shape
            self.inspector.score([np.zeros(shape, np.uint8)])
            self.inspector.heatmaps([np.zeros(shape, np.uint8)])
            self.inspector.timings.clear()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("line service failed to load")
            return
        self.ready = True
        log.info("line service ready: %s", self.runs())

    def close(self) -> None:
        if self.review is not None:
            self.review.close()

    def runs(self) -> dict[str, Any]:
        inspector = self.inspector
        return {
            "classifier": run_summary(inspector.classifier if inspector else None),
            "autoencoder": run_summary(inspector.autoencoder if inspector else None),
        }

    # The batched model call (worker thread) ----------------------------------------------

    def process(self, parts: list[Part]) -> list[tuple[Forward, float]]:
        """The network part of the model call (model thread): the chunk's `Forward` and its
        milliseconds, once per part (the micro-batcher wants one result per item)."""
        start = time.perf_counter()
        forward = self.inspector.forward([part.image for part in parts])
        return [(forward, (time.perf_counter() - start) * 1000)] * len(parts)

    def finish(
        self, parts: list[Part], scored: list[tuple[Forward, float]]
    ) -> list[dict[str, Any]]:
        """Rows, review log and responses (finish thread, while the next batch goes through
        the networks): anomaly distances, boxes and the database need no TensorFlow."""
        forward, forward_ms = scored[0]
        start = time.perf_counter()
        rows = self.inspector.rows(forward)
        model_ms = forward_ms + (time.perf_counter() - start) * 1000
        placed = self._log(parts, rows)
        return [
            self._result(part, row, where, len(parts), model_ms)
            for part, row, where in zip(parts, rows, placed, strict=True)
        ]

    def _log(self, parts: list[Part], rows: list[dict[str, Any]]) -> list[LinePart]:
        """Every part of a micro-batch into the review log: one transaction per station."""
        inspector = self.inspector
        runs = {
            "classifier_run": inspector.classifier.name,
            "autoencoder_run": None
            if inspector.autoencoder is None
            else inspector.autoencoder.name,
        }
        by_station: dict[str, list[int]] = {}
        for i, part in enumerate(parts):
            by_station.setdefault(part.station, []).append(i)
        placed: list[LinePart | None] = [None] * len(parts)
        for station, indices in by_station.items():
            records = []
            for i in indices:
                predictions = {k: rows[i][k] for k in ITEM_FIELDS if rows[i].get(k) is not None}
                predictions.update({k: v for k, v in runs.items() if v is not None})
                records.append(PartRecord(parts[i].name, parts[i].data, predictions))
            answers = self.review.record_parts(station, records, self.settings.alert_threshold)
            for i, where in zip(indices, answers, strict=True):
                placed[i] = where
        return placed

    def _result(
        self,
        part: Part,
        row: dict[str, Any],
        placed: LinePart,
        batch_size: int,
        model_ms: float,
    ) -> dict[str, Any]:
        inspector = self.inspector
        threshold = self.settings.alert_threshold
        alert = placed.alert
        defect = row["predicted_class"] != inspector.normal_class
        return {
            "file_name": part.name,
            "station": part.station,
            "item_id": placed.item_id,
            "batch_id": placed.batch_id,
            "duplicate": placed.duplicate,
            "width": row["width"],
            "height": row["height"],
            "verdict": "defect" if defect else "ok",
            "predicted_class": row["predicted_class"],
            "defect_probability": row["defect_probability"],
            "defect_threshold": inspector.classifier.info.get("threshold"),
            "class_probabilities": row["class_probabilities"],
            "anomaly_score": row["anomaly_score"],
            "anomaly_threshold": inspector.threshold,
            "anomaly_flag": row["anomaly_flag"],
            "risk_score": row["risk_score"],
            "alert": placed.alert_seq is not None,
            "alert_seq": placed.alert_seq,
            "alert_threshold": threshold,
            "boxes": row["boxes"],
            "runs": self.runs(),
            "batch_size": batch_size,
            "model_ms": round(model_ms, 2),
            "_alert": alert,
        }

    def publish(self, results: Sequence[dict[str, Any]]) -> None:
        """After each batch, on the event loop: push its alerts, in sequence order."""
        alerts = [result.pop("_alert", None) for result in results]
        for alert in sorted((a for a in alerts if a is not None), key=lambda a: a["seq"]):
            self.hub.publish(alert)

    # Extras on the model thread ------------------------------------------------------------

    def overlay_png(self, image: np.ndarray, boxes: list[dict[str, Any]]) -> str:
        """Grad-CAM over the part with its boxes, as base64 PNG."""
        cam = self.inspector.heatmaps([image])[0]
        drawn = draw_boxes(
            blend(image, cam, "jet", 0.45),
            [(b["x_min"], b["y_min"], b["x_max"], b["y_max"]) for b in boxes],
        )
        return base64.b64encode(png_bytes(drawn)).decode("ascii")
