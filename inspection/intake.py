"""A scored batch into the review log: each image's copy, predictions, scores and run names.

Every input ends up either as a review item (unreadable files too, with their error, so the
reviewer sees them listed) or as a message: upload problems that left no bytes, and repeats of
an image already in the batch. Nothing stops the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from inspection.pipeline import DEFAULT_BATCH, Entry, Inspector, Progress, iter_inspect
from store.review import ITEM_FIELDS, DuplicateItem, ReviewLog

log = logging.getLogger(__name__)


@dataclass
class IntakeReport:
    """What happened to each input: items added, and one message per skipped or failed input."""

    batch_id: int
    added: int = 0
    failed: int = 0
    duplicates: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        return [*self.problems, *self.duplicates]


def record_result(review: ReviewLog, report: IntakeReport, entry: Entry, row: dict) -> None:
    """Add one result row of `iter_inspect` to the report's batch (or note why not)."""
    if row["status"] == "duplicate":
        report.duplicates.append(row["error"])
        return
    if entry.data is None:
        report.problems.append(row["error"])
        return
    if row.get("warnings"):
        report.problems.append(f"{entry.name}: scored, but {row['warnings']}")
    predictions = {k: row[k] for k in ITEM_FIELDS if row.get(k) not in (None, "")}
    if row["status"] == "error":
        predictions = {"error": row["error"]}
        report.problems.append(row["error"])
    added = review.add_item(report.batch_id, entry.name, entry.data, predictions)
    if isinstance(added, DuplicateItem):
        report.duplicates.append(added.message)
    elif row["status"] == "error":
        report.failed += 1
    else:
        report.added += 1


def inspect_into_review(
    review: ReviewLog,
    batch_id: int,
    entries: Iterable[Any],
    inspector: Inspector,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    total: int | None = None,
) -> IntakeReport:
    """Score `entries` and add each one to review batch `batch_id` as soon as its chunk is done.

    Items are committed chunk by chunk, so a crash keeps everything scored so far.
    """
    report = IntakeReport(batch_id)
    for entry, row in iter_inspect(entries, inspector, batch_size, progress, total):
        record_result(review, report, entry, row)
    log.info(
        "batch %d: %d scored, %d unreadable, %d duplicates, %d upload problems",
        batch_id,
        report.added,
        report.failed,
        len(report.duplicates),
        len(report.problems) - report.failed,
    )
    return report
