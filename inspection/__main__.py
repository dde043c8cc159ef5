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
from typing import Any

import pandas as pd
from tqdm import tqdm

from imaging import read_file_bytes
from imaging.archive import iter_upload_files
from inspection.intake import IntakeReport, record_result
from inspection.pipeline import (
    DEFAULT_BATCH,
    Inspector,
    iter_inspect,
    results_frame,
)
from store.cli_errors import CliInputError, check_output_file, cli_main, positive_int, write_csv


def _files(inputs: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) for every file under the inputs; folders recursively, sorted.

    Names are relative (a folder's files as folder/sub/file.png), as in an upload: the
    intake refuses absolute names.
    """
    for entry in (Path(p).resolve() for p in inputs):
        if entry.is_dir():
            for path in sorted(p for p in entry.rglob("*") if p.is_file()):
                yield str(path.relative_to(entry.parent)), read_file_bytes(path)
        else:
            yield entry.name, read_file_bytes(entry)


def check_inputs(inputs: Sequence[str]) -> None:
    """Refuse missing paths, non-regular files and inputs holding no files, before any work."""
    missing = [p for p in inputs if not Path(p).exists()]
    if missing:
        raise CliInputError(f"--images: not found: {', '.join(missing)}; check the paths")
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            if not any(p.is_file() for p in path.rglob("*")):
                raise CliInputError(f"--images {name}: folder holds no files; point at the images")
        elif not path.is_file():
            raise CliInputError(
                f"--images {name}: not a regular file (a pipe or device); copy the images to files"
            )


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
    parser.add_argument(
        "--batch-size", type=positive_int, default=DEFAULT_BATCH, help="images per model call"
    )
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    check_inputs(args.images)
    out = check_output_file(args.out)
    inspector = Inspector.from_runs(args.classifier, args.autoencoder)
    rows, report, review = _inspect(args, inspector)
    if not rows:
        raise CliInputError(f"--images {' '.join(args.images)}: no files found to inspect")
    frame = results_frame(rows)
    for column in ("class_probabilities", "boxes"):
        frame[column] = frame[column].map(lambda v: None if v is None else json.dumps(v))
    write_csv(frame.sort_values("risk_score", ascending=False), out)
    print(summarize(frame, time.perf_counter() - args.started))
    print(f"wrote {out}")
    if report is not None:
        print(
            f"review batch {report.batch_id} {args.db_batch!r}: {report.added} items scored, "
            f"{report.failed} unreadable, {len(report.duplicates)} duplicates ({review.url})"
        )
    if not (frame.status == "ok").any():
        print(f"error: none of the {len(frame)} inputs could be scored; see {out}", file=sys.stderr)
        return 2
    return 0


def _inspect(
    args: argparse.Namespace, inspector: Inspector
) -> tuple[list[dict], IntakeReport | None, Any]:
    """Score every input (and add it to the review log with --db-batch)."""
    args.started = time.perf_counter()
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
    finally:
        bar.close()
        if review is not None:
            review.close()
    return rows, report, review


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
    warned = int(ok.warnings.fillna("").astype(bool).sum())
    if warned:
        lines.append(f"{warned} scored with a warning (see the warnings column)")
    bad = frame[frame.status != "ok"]
    for row in bad.head(10).itertuples():
        lines.append(f"  {row.status}: {row.error}")
    if len(bad) > 10:
        lines.append(f"  ... and {len(bad) - 10} more (see the status/error columns)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
