"""Tables of the review log: batches of uploaded parts, their items, append-only decisions.

Plain SQLAlchemy 2 typed ORM with portable column types, so the same schema runs on SQLite
(the embedded default) and PostgreSQL (a shared team database). The database schema itself is
made by the Alembic migrations in store/migrations (decisions are append-only there: triggers
refuse UPDATE and DELETE); a test checks the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VERDICTS = ("confirmed_defect", "false_alarm", "ok", "unsure")
BATCH_STATUSES = ("open", "closed")


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC (portable, microseconds kept) and read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no time zone; pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Batch(Base):
    """One upload session: which runs scored it, who reviews it, whether it is still open."""

    __tablename__ = "review_batches"
    __table_args__ = (
        CheckConstraint(f"status IN {BATCH_STATUSES}", name="review_batches_status"),
        Index("review_batches_station", "station"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    classifier_run: Mapped[str | None] = mapped_column(String(200))
    autoencoder_run: Mapped[str | None] = mapped_column(String(200))
    reviewer: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="open")
    # Set for line traffic (the station that sent the parts); None for uploaded batches.
    station: Mapped[str | None] = mapped_column(String(100))


class Item(Base):
    """One uploaded image: a content-addressed stored copy and what the models said about it."""

    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("batch_id", "sha256", name="review_items_batch_sha256"),
        Index("review_items_batch", "batch_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("review_batches.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(500))
    # Relative to the images folder, so the data folder can move.
    stored_path: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    width: Mapped[int | None]
    height: Mapped[int | None]
    predicted_class: Mapped[str | None] = mapped_column(String(100))
    defect_probability: Mapped[float | None]
    class_probabilities: Mapped[dict[str, float] | None] = mapped_column(JSON)
    anomaly_score: Mapped[float | None]
    anomaly_flag: Mapped[bool | None]
    boxes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    classifier_run: Mapped[str | None] = mapped_column(String(200))
    autoencoder_run: Mapped[str | None] = mapped_column(String(200))
    risk_score: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)


class Decision(Base):
    """A reviewer's verdict; rows are only ever inserted, the highest id per item wins."""

    __tablename__ = "review_decisions"
    __table_args__ = (
        CheckConstraint(f"verdict IN {VERDICTS}", name="review_decisions_verdict"),
        Index("review_decisions_item", "item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"))
    verdict: Mapped[str] = mapped_column(String(20))
    defect_type: Mapped[str | None] = mapped_column(String(100))
    comment: Mapped[str] = mapped_column(Text, default="")
    reviewer: Mapped[str] = mapped_column(String(100))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class LineAlert(Base):
    """A line part whose risk crossed the alert threshold; the id is the alert's sequence number."""

    __tablename__ = "line_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"))
    station: Mapped[str] = mapped_column(String(100))
    risk_score: Mapped[float]
    alert_threshold: Mapped[float]
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
