"""The review log: every uploaded part, what the models said, and every reviewer decision.

SQLite under the data folder by default (`data_dir()/review.db`, WAL mode, one short
transaction per decision), or any SQLAlchemy URL in `DEFECTLENS_DB_URL` (PostgreSQL for a
shared team database). Decisions are append-only: the latest one per item wins and the full
history stays. Image bytes are copied to `data_dir()/review_images/<sha[:2]>/<sha>.<ext>`,
content-addressed, so the same image uploaded twice is stored once.

Create one `ReviewLog` per process (after forking, never before): it owns a connection pool.
Opening a log migrates its database to the newest schema (store/migrate.py, Alembic).
This module is the database; input checks are store.review_validation, the image files
store.review_images, the CSV and COCO exports store.review_export.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd
from sqlalchemy import Engine, create_engine, event, func, make_url, select
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from store.migrate import upgrade
from store.paths import data_dir
from store.review_export import ITEM_COLUMNS, coco_dataset, write_items_csv
from store.review_images import store_bytes
from store.review_models import BATCH_STATUSES, VERDICTS, Batch, Decision, Item
from store.review_validation import (
    ITEM_FIELDS,
    ReviewError,
    clean_predictions,
    optional_text,
    required_text,
    text_field,
)

log = logging.getLogger(__name__)

DB_URL_ENV = "DEFECTLENS_DB_URL"
BUSY_TIMEOUT_MS = 30_000


class ReviewLogUnavailable(ValueError):
    """The review log's database URL is malformed, lacks its driver or cannot be written."""


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return repr(url)


def _unavailable(url: str, reason: str) -> ReviewLogUnavailable:
    return ReviewLogUnavailable(f"review log database {_shown(url)} (${DB_URL_ENV}): {reason}")


def _sqlite_file(parsed: Any) -> str | None:
    """The database file of a SQLite URL; for a URI filename (`sqlite:///file:PATH?uri=true`)
    the PATH inside it, so no folder named "file:" is made in the working directory."""
    path = parsed.database
    if path and str(parsed.query.get("uri", "")).lower() == "true" and path.startswith("file:"):
        return urllib.parse.unquote(urllib.parse.urlsplit(path).path) or None
    return path


def _check_sqlite_writable(url: str, path: str) -> None:
    target = Path(path)
    folder = target.parent
    if target.exists() and not os.access(target, os.W_OK):
        raise _unavailable(url, "the file is read-only; make it writable or set another path")
    if not target.exists() and folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise _unavailable(url, f"folder {folder} is read-only; choose a writable location")


@dataclass(frozen=True)
class DuplicateItem:
    """`add_item` found the same image (same sha256) already in the batch; nothing was added."""

    batch_id: int
    item_id: int
    sha256: str
    file_name: str
    existing_file_name: str

    @property
    def message(self) -> str:
        return (
            f"{self.file_name}: same image as {self.existing_file_name} "
            f"(item {self.item_id}); not added again"
        )

    def __str__(self) -> str:
        return self.message


def default_url() -> str:
    """$DEFECTLENS_DB_URL, else SQLite at data_dir()/review.db."""
    return os.environ.get(DB_URL_ENV) or f"sqlite:///{data_dir() / 'review.db'}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a committed decision survives a power cut too, not only a killed process.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite connections get WAL, a busy timeout and foreign keys."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise _unavailable(
            url,
            "not a database URL; use e.g. sqlite:///path/review.db or "
            "postgresql+psycopg://user@host/db",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _unavailable(
                    url, f"cannot create its folder ({exc.strerror or exc})"
                ) from None
            _check_sqlite_writable(url, path)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        raise _unavailable(
            url,
            f"no database driver for it ({exc}); install one, e.g. use "
            "postgresql+psycopg:// (psycopg is in requirements.txt)",
        ) from None


class ReviewLog:
    """Batches, items and append-only decisions in one SQL database."""

    def __init__(self, url: str | None = None, images_dir: str | Path | None = None) -> None:
        self.url = url or default_url()
        self.images_dir = Path(images_dir) if images_dir else data_dir() / "review_images"
        self.engine = make_engine(self.url)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        try:
            upgrade(self.engine)
        except (OperationalError, DBAPIError) as exc:
            self.engine.dispose()
            reason = " ".join(str(exc.orig or exc).split())[:200]
            raise _unavailable(self.url, f"cannot open it ({reason})") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ReviewLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Batches -------------------------------------------------------------------------------

    def create_batch(
        self,
        name: str,
        classifier_run: str | None = None,
        autoencoder_run: str | None = None,
        reviewer: str | None = None,
        station: str | None = None,
    ) -> int:
        """Open a new batch and return its id; `station` marks line traffic from that station."""
        batch = Batch(
            name=required_text("name", name, 200),
            classifier_run=optional_text("classifier_run", classifier_run, 200),
            autoencoder_run=optional_text("autoencoder_run", autoencoder_run, 200),
            reviewer=optional_text("reviewer", reviewer, 100),
            station=optional_text("station", station, 100),
            status="open",
        )
        with self._session.begin() as session:
            session.add(batch)
        log.info("created review batch %d %r", batch.id, batch.name)
        return batch.id

    def set_batch_status(self, batch_id: int, status: str) -> None:
        """Mark a batch open or closed (closing is a label; items and decisions stay)."""
        if status not in BATCH_STATUSES:
            raise ReviewError("status", f"{status!r} is not one of {', '.join(BATCH_STATUSES)}")
        with self._session.begin() as session:
            self._batch(session, batch_id).status = status

    def batch(self, batch_id: int) -> dict[str, Any]:
        """One batch's fields as a dict."""
        with self._session() as session:
            return _batch_dict(self._batch(session, batch_id))

    def batches(self) -> pd.DataFrame:
        """All batches, newest first, with item and reviewed-item counts."""
        n_items = (
            select(Item.batch_id, func.count(Item.id).label("n_items"))
            .group_by(Item.batch_id)
            .subquery()
        )
        n_reviewed = (
            select(Item.batch_id, func.count(func.distinct(Decision.item_id)).label("n_reviewed"))
            .join(Decision, Decision.item_id == Item.id)
            .group_by(Item.batch_id)
            .subquery()
        )
        query = (
            select(Batch, n_items.c.n_items, n_reviewed.c.n_reviewed)
            .outerjoin(n_items, n_items.c.batch_id == Batch.id)
            .outerjoin(n_reviewed, n_reviewed.c.batch_id == Batch.id)
            .order_by(Batch.id.desc())
        )
        with self._session() as session:
            rows = [
                {**_batch_dict(batch), "n_items": items or 0, "n_reviewed": reviewed or 0}
                for batch, items, reviewed in session.execute(query)
            ]
        columns = [*_batch_dict(Batch()).keys(), "n_items", "n_reviewed"]
        return pd.DataFrame(rows, columns=columns)

    # Items ---------------------------------------------------------------------------------

    def add_item(
        self,
        batch_id: int,
        name: str,
        data: bytes,
        predictions: Mapping[str, Any] | None = None,
    ) -> int | DuplicateItem:
        """Store one image and its predictions; the same image twice in a batch is reported.

        `predictions` takes the keys in ITEM_FIELDS; `error` records why an image could not be
        scored (it is still stored and listed). Run names default to the batch's.
        """
        name = required_text("name", name, 500)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ReviewError("data", f"expected the image bytes, got {type(data).__name__}")
        fields = clean_predictions(predictions or {})
        sha = hashlib.sha256(data).hexdigest()
        with self._session() as session:
            batch = self._batch(session, batch_id)
            fields.setdefault("classifier_run", batch.classifier_run)
            fields.setdefault("autoencoder_run", batch.autoencoder_run)
            existing = self._find_sha(session, batch_id, sha)
        if existing is not None:
            return DuplicateItem(batch_id, existing.id, sha, name, existing.file_name)
        stored = store_bytes(self.images_dir, sha, name, bytes(data))
        item = Item(batch_id=batch_id, sha256=sha, file_name=name, stored_path=stored, **fields)
        try:
            with self._session.begin() as session:
                session.add(item)
        except IntegrityError:
            # Lost a race with another writer adding the same image to this batch.
            with self._session() as session:
                existing = self._find_sha(session, batch_id, sha)
            if existing is None:
                raise
            return DuplicateItem(batch_id, existing.id, sha, name, existing.file_name)
        return item.id

    def items(self, batch_id: int) -> pd.DataFrame:
        """Every item of a batch in upload order, with its latest decision and decision count.

        Columns are ITEM_COLUMNS; image_path is the stored copy, decided_at is aware UTC.
        """
        frame = pd.DataFrame(self._item_rows(batch_id), columns=ITEM_COLUMNS)
        frame["n_decisions"] = frame["n_decisions"].astype(int)
        return frame

    def _item_rows(self, batch_id: int) -> list[dict[str, Any]]:
        latest = (
            select(
                Decision.item_id,
                func.max(Decision.id).label("last_id"),
                func.count(Decision.id).label("n_decisions"),
            )
            .join(Item, Item.id == Decision.item_id)
            .where(Item.batch_id == batch_id)
            .group_by(Decision.item_id)
            .subquery()
        )
        query = (
            select(Item, Decision, latest.c.n_decisions)
            .outerjoin(latest, latest.c.item_id == Item.id)
            .outerjoin(Decision, Decision.id == latest.c.last_id)
            .where(Item.batch_id == batch_id)
            .order_by(Item.id)
        )
        with self._session() as session:
            self._batch(session, batch_id)
            return [self._item_row(i, d, n) for i, d, n in session.execute(query)]

    def image_path(self, item_id: int) -> Path:
        """Where the stored copy of an item's image lives."""
        with self._session() as session:
            return self.images_dir / self._item(session, item_id).stored_path

    # Decisions -----------------------------------------------------------------------------

    def record_decision(
        self,
        item_id: int,
        verdict: str,
        reviewer: str,
        defect_type: str | None = None,
        comment: str = "",
    ) -> int:
        """Append a decision, committed before returning; returns the decision id."""
        if verdict not in VERDICTS:
            raise ReviewError("verdict", f"{verdict!r} is not one of {', '.join(VERDICTS)}")
        decision = Decision(
            item_id=item_id,
            verdict=verdict,
            reviewer=required_text("reviewer", reviewer, 100),
            defect_type=optional_text("defect_type", defect_type, 100),
            comment=text_field("comment", comment),
            created=datetime.now(UTC),
        )
        # A single INSERT per transaction: no read before the write, so concurrent SQLite
        # writers only ever wait on the busy timeout, never fail on a stale snapshot.
        try:
            with self._session.begin() as session:
                session.add(decision)
        except IntegrityError as exc:
            with self._session() as session:
                self._item(session, item_id)
            raise ReviewError(
                "item_id", f"decision for item {item_id} refused: {exc.orig}"
            ) from exc
        return decision.id

    def history(self, item_id: int) -> pd.DataFrame:
        """All decisions on an item, oldest first (the last row is the one in force)."""
        query = select(Decision).where(Decision.item_id == item_id).order_by(Decision.id)
        with self._session() as session:
            self._item(session, item_id)
            rows = [_decision_dict(d) for d in session.scalars(query)]
        columns = ["decision_id", "verdict", "defect_type", "comment", "reviewer", "created"]
        return pd.DataFrame(rows, columns=columns)

    # Exports -------------------------------------------------------------------------------

    def export_csv(self, batch_id: int, path_or_buffer: str | Path | IO[str]) -> int:
        """One row per item with its latest decision and history count; returns the row count."""
        return write_items_csv(self._item_rows(batch_id), path_or_buffer)

    def export_coco(self, batch_id: int, boxes: str = "reviewed") -> dict[str, Any]:
        """The batch as a COCO detection data set.

        boxes="reviewed" (a training set from human decisions): images whose latest verdict
        is confirmed_defect, false_alarm or ok; annotations are the predicted boxes of
        confirmed defects, labelled with the reviewer's defect type (else the predicted
        class); false alarms and OK parts are images without annotations. Unsure, unreviewed
        and failed items are left out.
        boxes="predicted" (what the models proposed): every scored image, every predicted box
        labelled with the box's own label (else the predicted class), with its score.
        Images carry extra keys: original_file_name, sha256, verdict, defect_type, reviewer.
        file_name is the stored copy relative to `images_dir` (given in info.images_root).
        Boxes are [x, y, width, height] in original image pixels.
        """
        batch = self.batch(batch_id)
        return coco_dataset(self._item_rows(batch_id), batch, self.images_dir, boxes)

    # Internals -----------------------------------------------------------------------------

    def _batch(self, session: Session, batch_id: int) -> Batch:
        batch = session.get(Batch, batch_id)
        if batch is None:
            raise ReviewError("batch_id", f"no review batch with id {batch_id!r}")
        return batch

    def _item(self, session: Session, item_id: int) -> Item:
        item = session.get(Item, item_id)
        if item is None:
            raise ReviewError("item_id", f"no review item with id {item_id!r}")
        return item

    @staticmethod
    def _find_sha(session: Session, batch_id: int, sha: str) -> Item | None:
        query = select(Item).where(Item.batch_id == batch_id, Item.sha256 == sha)
        return session.scalars(query).first()

    def _item_row(self, item: Item, decision: Decision | None, n_decisions: int | None) -> dict:
        return {
            "item_id": item.id,
            "file_name": item.file_name,
            "sha256": item.sha256,
            "image_path": str(self.images_dir / item.stored_path),
            "width": item.width,
            "height": item.height,
            "predicted_class": item.predicted_class,
            "defect_probability": item.defect_probability,
            "class_probabilities": item.class_probabilities,
            "anomaly_score": item.anomaly_score,
            "anomaly_flag": item.anomaly_flag,
            "boxes": item.boxes,
            "risk_score": item.risk_score,
            "classifier_run": item.classifier_run,
            "autoencoder_run": item.autoencoder_run,
            "error": item.error,
            "verdict": decision.verdict if decision else None,
            "defect_type": decision.defect_type if decision else None,
            "comment": decision.comment if decision else None,
            "reviewer": decision.reviewer if decision else None,
            "decided_at": decision.created if decision else None,
            "n_decisions": n_decisions or 0,
        }


def _batch_dict(batch: Batch) -> dict[str, Any]:
    return {
        "batch_id": batch.id,
        "name": batch.name,
        "created": batch.created,
        "classifier_run": batch.classifier_run,
        "autoencoder_run": batch.autoencoder_run,
        "reviewer": batch.reviewer,
        "status": batch.status,
        "station": batch.station,
    }


def _decision_dict(decision: Decision) -> dict[str, Any]:
    return {
        "decision_id": decision.id,
        "verdict": decision.verdict,
        "defect_type": decision.defect_type,
        "comment": decision.comment,
        "reviewer": decision.reviewer,
        "created": decision.created,
    }


__all__ = [
    "DB_URL_ENV",
    "ITEM_FIELDS",
    "VERDICTS",
    "DuplicateItem",
    "ReviewLogUnavailable",
    "ReviewError",
    "ReviewLog",
    "default_url",
    "make_engine",
]
