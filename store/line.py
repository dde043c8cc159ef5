"""Line traffic in the review log: one batch per station and UTC day, alerts with sequence numbers.

The line service records every inspected part here, so Batch Review lists line traffic like any
upload, and the alert ids (`line_alerts.id`) are the sequence numbers subscribers resume from.
Several service replicas can share one PostgreSQL log: ids come from the database.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from store.review import DuplicateItem, ReviewError, ReviewLog
from store.review_images import store_bytes
from store.review_models import Batch, Item, LineAlert
from store.review_validation import clean_predictions, required_text

_STATION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DEFECT_RISK = 0.5
ALERT_COLUMNS = [
    "seq",
    "item_id",
    "station",
    "file_name",
    "risk_score",
    "alert_threshold",
    "predicted_class",
    "defect_probability",
    "anomaly_score",
    "boxes",
    "created",
]


def check_station(station: Any) -> str:
    """A station id: 1-100 letters, digits, '.', '_' or '-' (it names batches and alerts)."""
    if not isinstance(station, str) or not _STATION_RE.match(station):
        raise ReviewError(
            "station",
            f"{station!r} is not a station id; use 1-100 letters, digits, '.', '_' or '-'",
        )
    return station


@dataclass(frozen=True)
class LinePart:
    """Where a part landed in the review log; `alert_seq` is set when it raised an alert.

    `alert` is the alert message (as `alerts_since` gives it) when `record_parts` placed it.
    """

    batch_id: int
    item_id: int
    duplicate: bool
    alert_seq: int | None
    alert: dict[str, Any] | None = None


@dataclass(frozen=True)
class PartRecord:
    """One inspected part to log: its name, image bytes and predictions (ITEM_FIELDS keys)."""

    name: str
    data: bytes
    predictions: Mapping[str, Any]


class LineLog(ReviewLog):
    """The review log as the line service and the Line Monitor use it."""

    def __init__(self, url: str | None = None, images_dir: str | Path | None = None) -> None:
        super().__init__(url, images_dir)
        self._batches: dict[tuple[str, str, str | None, str | None], int] = {}

    def line_batch(
        self, station: str, classifier_run: str | None, autoencoder_run: str | None
    ) -> int:
        """Today's (UTC) batch for this station and these runs, created on first use."""
        station = check_station(station)
        day = datetime.now(UTC).date().isoformat()
        key = (station, day, classifier_run, autoencoder_run)
        if key not in self._batches:
            name = f"line {station} {day}"
            query = select(Batch.id).where(
                Batch.station == station,
                Batch.name == name,
                Batch.classifier_run.is_(None)
                if classifier_run is None
                else Batch.classifier_run == classifier_run,
                Batch.autoencoder_run.is_(None)
                if autoencoder_run is None
                else Batch.autoencoder_run == autoencoder_run,
            )
            with self._session() as session:
                found = session.scalars(query.order_by(Batch.id)).first()
            self._batches[key] = found or self.create_batch(
                name, classifier_run, autoencoder_run, station=station
            )
        return self._batches[key]

    def record_part(
        self,
        station: str,
        name: str,
        data: bytes,
        predictions: Mapping[str, Any],
        alert_threshold: float,
    ) -> LinePart:
        """Store one line part; an alert is recorded when its risk reaches `alert_threshold`.

        The same image sent twice by a station on one day is stored once and alerts once.
        """
        batch_id = self.line_batch(
            station, predictions.get("classifier_run"), predictions.get("autoencoder_run")
        )
        added = self.add_item(batch_id, name, data, predictions)
        if isinstance(added, DuplicateItem):
            return LinePart(batch_id, added.item_id, True, None)
        risk = predictions.get("risk_score")
        seq = None
        if risk is not None and float(risk) >= alert_threshold:
            alert = LineAlert(
                item_id=added,
                station=station,
                risk_score=float(risk),
                alert_threshold=float(alert_threshold),
            )
            with self._session.begin() as session:
                session.add(alert)
            seq = alert.id
        return LinePart(batch_id, added, False, seq)

    def record_parts(
        self, station: str, parts: list[PartRecord], alert_threshold: float
    ) -> list[LinePart]:
        """Store a micro-batch of line parts in one transaction; what `record_part` does for
        each, in order, with one commit instead of one or two per part.

        An image already in the day's batch, or twice in `parts`, is stored once and alerts
        once. When another writer races this one to the same image, the parts are recorded
        one by one instead (each answer is still exact).
        """
        if not parts:
            return []
        station = check_station(station)
        prepared = []
        for part in parts:
            name = required_text("name", part.name, 500)
            if not isinstance(part.data, bytes | bytearray | memoryview):
                raise ReviewError(
                    "data", f"expected the image bytes, got {type(part.data).__name__}"
                )
            fields = clean_predictions(part.predictions or {})
            batch_id = self.line_batch(
                station, fields.get("classifier_run"), fields.get("autoencoder_run")
            )
            data = bytes(part.data)
            prepared.append((batch_id, name, data, hashlib.sha256(data).hexdigest(), fields))
        try:
            return self._record_prepared(station, prepared, alert_threshold)
        except IntegrityError:
            return [
                self.record_part(station, p.name, p.data, p.predictions, alert_threshold)
                for p in parts
            ]

    def _record_prepared(self, station, prepared, alert_threshold) -> list[LinePart]:
        keys = {(batch_id, sha) for batch_id, _, _, sha, _ in prepared}
        with self._session.begin() as session:
            known = {
                (item.batch_id, item.sha256): item
                for item in session.scalars(
                    select(Item).where(
                        Item.batch_id.in_({b for b, _ in keys}),
                        Item.sha256.in_({s for _, s in keys}),
                    )
                )
            }
            placed: list[tuple[int, Item, bool]] = []
            for batch_id, name, data, sha, fields in prepared:
                existing = known.get((batch_id, sha))
                if existing is not None:
                    placed.append((batch_id, existing, True))
                    continue
                item = Item(
                    batch_id=batch_id,
                    sha256=sha,
                    file_name=name,
                    stored_path=store_bytes(self.images_dir, sha, name, data),
                    **fields,
                )
                session.add(item)
                known[(batch_id, sha)] = item
                placed.append((batch_id, item, False))
            session.flush()  # item ids, then the alerts in part order (their sequence numbers)
            alerts: dict[int, LineAlert] = {}
            for _, item, duplicate in placed:
                risk = item.risk_score
                if not duplicate and risk is not None and float(risk) >= alert_threshold:
                    alerts[id(item)] = LineAlert(
                        item_id=item.id,
                        station=station,
                        risk_score=float(risk),
                        alert_threshold=float(alert_threshold),
                    )
                    session.add(alerts[id(item)])
            session.flush()
            answers = []
            for batch_id, item, duplicate in placed:
                alert = None if duplicate else alerts.get(id(item))
                if alert is None:
                    answers.append(LinePart(batch_id, item.id, duplicate, None))
                else:
                    message = alert_message(alert, item)
                    answers.append(LinePart(batch_id, item.id, False, alert.id, message))
            return answers

    def alerts_since(self, seq: int, limit: int = 10_000) -> list[dict[str, Any]]:
        """Alerts with a sequence number above `seq`, oldest first (what a reconnect missed)."""
        if not isinstance(seq, int) or seq < 0:
            raise ReviewError("since", f"expected a sequence number >= 0, got {seq!r}")
        query = (
            select(LineAlert, Item)
            .join(Item, Item.id == LineAlert.item_id)
            .where(LineAlert.id > seq)
            .order_by(LineAlert.id)
            .limit(limit)
        )
        with self._session() as session:
            return [alert_message(a, i) for a, i in session.execute(query)]

    def recent_alerts(self, limit: int = 50) -> pd.DataFrame:
        """The newest alerts first, as a frame with ALERT_COLUMNS."""
        query = (
            select(LineAlert, Item)
            .join(Item, Item.id == LineAlert.item_id)
            .order_by(LineAlert.id.desc())
            .limit(limit)
        )
        with self._session() as session:
            rows = [alert_message(a, i) for a, i in session.execute(query)]
        return pd.DataFrame(rows, columns=ALERT_COLUMNS)

    def recent_parts(self, limit: int = 50, station: str | None = None) -> pd.DataFrame:
        """The newest line parts first: item fields plus station and batch id."""
        query = (
            select(Item, Batch.station)
            .join(Batch, Batch.id == Item.batch_id)
            .where(Batch.station.is_not(None))
            .order_by(Item.id.desc())
            .limit(limit)
        )
        if station is not None:
            query = query.where(Batch.station == station)
        with self._session() as session:
            rows = [
                {
                    **self._item_row(item, None, 0),
                    "station": st,
                    "batch_id": item.batch_id,
                    "created": item.created,
                }
                for item, st in session.execute(query)
            ]
        return pd.DataFrame(rows)

    def defect_rate_per_hour(self, hours: int = 24) -> pd.DataFrame:
        """Parts, defects and alerts per UTC hour and station.

        A part counts as a defect when its risk is at least 0.5, the point where either model
        flags it (inspection.risk); unreadable parts count as parts, not defects.
        """
        since = datetime.now(UTC) - timedelta(hours=hours)
        query = (
            select(Item.id, Item.created, Item.risk_score, Batch.station)
            .join(Batch, Batch.id == Item.batch_id)
            .where(Batch.station.is_not(None), Item.created >= since)
        )
        alerts = select(LineAlert.item_id).where(LineAlert.created >= since)
        with self._session() as session:
            items = pd.DataFrame(
                session.execute(query).all(),
                columns=["item_id", "created", "risk_score", "station"],
            )
            alerted = set(session.scalars(alerts))
        columns = ["hour", "station", "parts", "defects", "alerts", "defect_rate"]
        if items.empty:
            return pd.DataFrame(columns=columns)
        items["hour"] = pd.to_datetime(items.created, utc=True).dt.floor("h")
        items["defect"] = items.risk_score.fillna(0.0) >= DEFECT_RISK
        items["alert"] = items.item_id.isin(alerted)
        frame = (
            items.groupby(["hour", "station"])
            .agg(parts=("item_id", "size"), defects=("defect", "sum"), alerts=("alert", "sum"))
            .reset_index()
        )
        frame["defect_rate"] = frame.defects / frame.parts
        return frame[columns]


def alert_message(alert: LineAlert, item: Item) -> dict[str, Any]:
    """What a subscriber receives for one alert (live or caught up), JSON-ready."""
    return {
        "seq": alert.id,
        "item_id": item.id,
        "station": alert.station,
        "file_name": item.file_name,
        "risk_score": alert.risk_score,
        "alert_threshold": alert.alert_threshold,
        "predicted_class": item.predicted_class,
        "defect_probability": item.defect_probability,
        "anomaly_score": item.anomaly_score,
        "boxes": item.boxes,
        "created": alert.created.isoformat(),
    }
