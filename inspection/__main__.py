"""Score a batch of part images with a classifier (and an autoencoder); write one CSV row each.

    python -m inspection --classifier demo_cnn --autoencoder demo_ae --images parts/ shift.zip \
        --out results.csv [--db-batch "shift 7"]

Folders are searched recursively; .zip archives are opened safely (imaging.archive). With
--db-batch the images, predictions and scores also go into the review log as a new batch.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from imaging.archive import iter_upload_files
from inspection.intake import IntakeReport, record_result
from inspection.pipeline import (
    DEFAULT_BATCH,
    InspectionError,
    Inspector,
    iter_inspect,
    results_frame,
)
from store import RunError


def _files(inputs: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) for every file under the inputs; folders recursively, sorted.

    Names are relative (a folder's files as folder/sub/file.png), as in an upload: the
    intake refuses absolute names.
    """
    for entry in (Path(p).resolve() for p in inputs):
        if entry.is_dir():
            for path in sorted(p for p in entry.rglob("*") if p.is_file()):
                yield str(path.relative_to(entry.parent)), path.read_bytes()
        else:
            yield entry.name, entry.read_bytes()


def count_images(inputs: Sequence[str]) -> int | None:
    """How many files the progress bar should expect (None when a zip hides the count)."""
    if any(Path(p).suffix.lower() == ".zip" for p in inputs):
        return None
    return sum(
        sum(1 for p in Path(i).rglob("*") if p.is_file()) if Path(i).is_dir() else 1 for i in inputs
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inspection", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--classifier", required=True, help="classifier run name or folder")
    parser.add_argument("--autoencoder", help="autoencoder run name or folder (optional)")
    parser.add_argument("--images", required=True, nargs="+", help="image files, folders, zips")
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--db-batch", help="also store the batch in the review log, this name")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    missing = [p for p in args.images if not Path(p).exists()]
    if missing:
        print(f"error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        inspector = Inspector.from_runs(args.classifier, args.autoencoder)
    except (ValueError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    entries = iter_upload_files(_files(args.images))
    bar = tqdm(total=count_images(args.images), unit="img", desc="inspecting")

    def progress(done: int, total: int | None) -> None:
        bar.update(done - bar.n)

    review = report = None
    if args.db_batch:
        from store.review import ReviewLog

        review = ReviewLog()
        batch_id = review.create_batch(
            args.db_batch,
            classifier_run=inspector.classifier.name,
            autoencoder_run=None if inspector.autoencoder is None else inspector.autoencoder.name,
        )
        report = IntakeReport(batch_id)
    rows = []
    try:
        for entry, row in iter_inspect(entries, inspector, args.batch_size, progress):
            rows.append(row)
            if review is not None:
                record_result(review, report, entry, row)
    except InspectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
        if review is not None:
            review.close()
    frame = results_frame(rows)
    for column in ("class_probabilities", "boxes"):
        frame[column] = frame[column].map(lambda v: None if v is None else json.dumps(v))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.sort_values("risk_score", ascending=False).to_csv(out, index=False)
    print(summarize(frame, time.perf_counter() - started))
    print(f"wrote {out}")
    if report is not None:
        print(
            f"review batch {report.batch_id} {args.db_batch!r}: {report.added} items scored, "
            f"{report.failed} unreadable, {len(report.duplicates)} duplicates ({review.url})"
        )
    return 0


def summarize(frame: pd.DataFrame, seconds: float) -> str:
    """Counts, classes, flags and the first problems."""
    ok = frame[frame.status == "ok"]
    rate = len(frame) / seconds if seconds > 0 else float("nan")
    lines = [f"{len(frame)} files in {seconds:.1f} s ({rate:.1f}/s): {len(ok)} scored"]
    if len(ok):
        counts = ok.predicted_class.value_counts()
        lines.append("predicted: " + ", ".join(f"{c}={n}" for c, n in counts.items()))
        if ok.anomaly_flag.notna().any():
            lines.append(
                f"autoencoder flagged {int(ok.anomaly_flag.fillna(False).sum())}; "
                f"models disagree on {int(ok.disagree.sum())}"
            )
    bad = frame[frame.status != "ok"]
    for row in bad.head(10).itertuples():
        lines.append(f"  {row.status}: {row.error}")
    if len(bad) > 10:
        lines.append(f"  ... and {len(bad) - 10} more (see the status/error columns)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
