"""The review log: every uploaded part, what the models said, and every reviewer decision.

SQLite under the data folder by default (`data_dir()/review.db`, WAL mode, one short
transaction per decision), or any SQLAlchemy URL in `DEFECTLENS_DB_URL` (PostgreSQL for a
shared team database). Decisions are append-only: the latest one per item wins and the full
history stays. Image bytes are copied to `data_dir()/review_images/<sha[:2]>/<sha>.<ext>`,
content-addressed, so the same image uploaded twice is stored once.

Create one `ReviewLog` per process (after forking, never before): it owns a connection pool.
Opening a log migrates its database to the newest schema (store/migrate.py, Alembic).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
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
from store.review_models import BATCH_STATUSES, VERDICTS, Batch, Decision, Item

log = logging.getLogger(__name__)

DB_URL_ENV = "DEFECTLENS_DB_URL"
BUSY_TIMEOUT_MS = 30_000

# Keys `add_item` accepts in its `predictions` mapping (model outputs plus the image size).
ITEM_FIELDS = (
    "predicted_class",
    "defect_probability",
    "class_probabilities",
    "anomaly_score",
    "anomaly_flag",
    "boxes",
    "classifier_run",
    "autoencoder_run",
    "risk_score",
    "error",
    "width",
    "height",
)
_FLOAT_FIELDS = ("defect_probability", "anomaly_score", "risk_score")
_INT_FIELDS = ("width", "height")
_TEXT_FIELDS = ("predicted_class", "classifier_run", "autoencoder_run", "error")
_BOX_KEYS = ("x_min", "y_min", "x_max", "y_max")
_EXT_RE = re.compile(r"^\.[a-z0-9]{1,5}$")

ITEM_COLUMNS = [
    "item_id",
    "file_name",
    "sha256",
    "image_path",
    "width",
    "height",
    "predicted_class",
    "defect_probability",
    "class_probabilities",
    "anomaly_score",
    "anomaly_flag",
    "boxes",
    "risk_score",
    "classifier_run",
    "autoencoder_run",
    "error",
    "verdict",
    "defect_type",
    "comment",
    "reviewer",
    "decided_at",
    "n_decisions",
]


class ReviewError(ValueError):
    """Bad input to the review log; `.field` names the argument to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ReviewLogUnavailable(ValueError):
    """The review log's database URL is malformed, lacks its driver or cannot be written."""


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return repr(url)


def _unavailable(url: str, reason: str) -> ReviewLogUnavailable:
    return ReviewLogUnavailable(f"review log database {_shown(url)} (${DB_URL_ENV}): {reason}")


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
        path = parsed.database
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
            name=_required_text("name", name, 200),
            classifier_run=_optional_text("classifier_run", classifier_run, 200),
            autoencoder_run=_optional_text("autoencoder_run", autoencoder_run, 200),
            reviewer=_optional_text("reviewer", reviewer, 100),
            station=_optional_text("station", station, 100),
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
        name = _required_text("name", name, 500)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ReviewError("data", f"expected the image bytes, got {type(data).__name__}")
        fields = _clean_predictions(predictions or {})
        sha = hashlib.sha256(data).hexdigest()
        with self._session() as session:
            batch = self._batch(session, batch_id)
            fields.setdefault("classifier_run", batch.classifier_run)
            fields.setdefault("autoencoder_run", batch.autoencoder_run)
            existing = self._find_sha(session, batch_id, sha)
        if existing is not None:
            return DuplicateItem(batch_id, existing.id, sha, name, existing.file_name)
        stored = self._store_bytes(sha, name, bytes(data))
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
            reviewer=_required_text("reviewer", reviewer, 100),
            defect_type=_optional_text("defect_type", defect_type, 100),
            comment=_text("comment", comment),
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
        rows = self._item_rows(batch_id)
        for row in rows:
            for key in ("class_probabilities", "boxes"):
                row[key] = None if row[key] is None else json.dumps(row[key])
            if row["decided_at"] is not None:
                row["decided_at"] = row["decided_at"].isoformat()
        pd.DataFrame(rows, columns=ITEM_COLUMNS).to_csv(path_or_buffer, index=False)
        return len(rows)

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
        if boxes not in ("reviewed", "predicted"):
            raise ReviewError("boxes", f"{boxes!r} is not one of reviewed, predicted")
        batch = self.batch(batch_id)
        images, annotations, categories = [], [], {}
        for row in (SimpleNamespace(**r) for r in self._item_rows(batch_id)):
            if row.error:
                continue
            if boxes == "reviewed":
                if row.verdict not in ("confirmed_defect", "false_alarm", "ok"):
                    continue
                keep = (row.boxes or []) if row.verdict == "confirmed_defect" else []
                labels = [row.defect_type or row.predicted_class or "defect"] * len(keep)
            else:
                keep = row.boxes or []
                labels = [b.get("label") or row.predicted_class or "defect" for b in keep]
            width, height = self._image_size(row)
            images.append(
                {
                    "id": int(row.item_id),
                    "file_name": str(Path(row.image_path).relative_to(self.images_dir)),
                    "width": width,
                    "height": height,
                    "original_file_name": row.file_name,
                    "sha256": row.sha256,
                    "verdict": row.verdict,
                    "defect_type": row.defect_type,
                    "reviewer": row.reviewer,
                }
            )
            for box, label in zip(keep, labels, strict=True):
                category_id = categories.setdefault(label, len(categories) + 1)
                x, y = box["x_min"], box["y_min"]
                w, h = box["x_max"] - x, box["y_max"] - y
                annotation = {
                    "id": len(annotations) + 1,
                    "image_id": int(row.item_id),
                    "category_id": category_id,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
                if boxes == "predicted" and "score" in box:
                    annotation["score"] = box["score"]
                annotations.append(annotation)
        return {
            "info": {
                "description": f"DefectLens review batch {batch['name']!r} ({boxes} boxes)",
                "batch_id": batch_id,
                "classifier_run": batch["classifier_run"],
                "autoencoder_run": batch["autoencoder_run"],
                "images_root": str(self.images_dir),
                "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": [
                {"id": cid, "name": name, "supercategory": "defect"}
                for name, cid in categories.items()
            ],
        }

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

    def _store_bytes(self, sha: str, name: str, data: bytes) -> str:
        ext = Path(name).suffix.lower()
        relative = f"{sha[:2]}/{sha}{ext if _EXT_RE.match(ext) else '.bin'}"
        target = self.images_dir / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        return relative

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

    @staticmethod
    def _image_size(row: Any) -> tuple[int | None, int | None]:
        if row.width is not None and row.height is not None:
            return int(row.width), int(row.height)
        try:
            from imaging import read_image

            shape = read_image(row.image_path, name=row.file_name).shape
        except (ImportError, ValueError, OSError) as exc:
            log.warning("%s: image size unknown for COCO export (%s)", row.file_name, exc)
            return None, None
        return int(shape[1]), int(shape[0])


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


def _text(field: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ReviewError(field, f"expected text, got {type(value).__name__}")
    return value


def _optional_text(field: str, value: Any, max_len: int) -> str | None:
    text = _text(field, value).strip()
    if len(text) > max_len:
        raise ReviewError(field, f"longer than {max_len} characters")
    return text or None


def _required_text(field: str, value: Any, max_len: int) -> str:
    text = _optional_text(field, value, max_len)
    if text is None:
        raise ReviewError(field, "must not be empty")
    return text


def _missing(value: Any) -> bool:
    """None, NaN, NaT or pd.NA: how a missing prediction arrives from a DataFrame row."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _number(field: str, value: Any) -> float | None:
    if _missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ReviewError(field, f"expected a number, got {value!r}") from None
    return None if math.isnan(number) else number


def _clean_predictions(predictions: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(predictions) - set(ITEM_FIELDS))
    if unknown:
        raise ReviewError(
            "predictions", f"unknown keys {unknown}; accepted keys: {', '.join(ITEM_FIELDS)}"
        )
    fields: dict[str, Any] = {}
    for key, value in predictions.items():
        if key in _FLOAT_FIELDS:
            fields[key] = _number(key, value)
        elif key in _INT_FIELDS:
            number = _number(key, value)
            fields[key] = None if number is None else int(number)
        elif key in _TEXT_FIELDS:
            fields[key] = None if _missing(value) else _optional_text(key, value, 10_000)
        elif key == "anomaly_flag":
            fields[key] = None if _missing(value) else bool(value)
        elif key == "class_probabilities":
            fields[key] = _probabilities(value)
        elif key == "boxes":
            fields[key] = _boxes(value)
    for key in ("classifier_run", "autoencoder_run"):
        if fields.get(key) is None:
            fields.pop(key, None)
    return fields


def _probabilities(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ReviewError("class_probabilities", f"expected {{class: probability}}, got {value!r}")
    return {str(k): _number("class_probabilities", v) for k, v in value.items()}


def _boxes(value: Any) -> list[dict[str, Any]] | None:
    """Boxes as dicts x_min, y_min, x_max, y_max [, score, label] from dicts, tuples or objects."""
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ReviewError("boxes", f"expected a list of boxes, got {value!r}")
    boxes = []
    for box in value:
        if isinstance(box, Mapping):
            raw = dict(box)
        elif all(hasattr(box, k) for k in _BOX_KEYS):
            raw = {k: getattr(box, k) for k in (*_BOX_KEYS, "score", "label") if hasattr(box, k)}
        elif isinstance(box, Iterable) and len(tuple(box)) in (4, 5):
            raw = dict(zip((*_BOX_KEYS, "score"), tuple(box), strict=False))
        else:
            raise ReviewError("boxes", f"cannot read box {box!r}; use x_min, y_min, x_max, y_max")
        missing = [k for k in _BOX_KEYS if k not in raw]
        if missing:
            raise ReviewError("boxes", f"box {box!r} lacks {', '.join(missing)}")
        clean: dict[str, Any] = {k: _number("boxes", raw[k]) for k in _BOX_KEYS}
        if None in clean.values():
            raise ReviewError("boxes", f"box {box!r} has a missing coordinate")
        if raw.get("score") is not None:
            clean["score"] = _number("boxes", raw["score"])
        if raw.get("label"):
            clean["label"] = str(raw["label"])
        boxes.append(clean)
    return boxes


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
