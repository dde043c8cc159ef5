"""Score a batch of part images with a classifier (and an autoencoder); write one CSV row each.

    python -m inspection --classifier demo_cnn --autoencoder demo_ae --images parts/ shift.zip \
        --out results.csv [--db-batch "shift 7"]
    python -m inspection --engine ray --address auto --workers 16 ... --out archive.parquet

Folders are searched recursively; .zip archives are opened safely (imaging.archive). With
--db-batch the images, predictions and scores also go into the review log as a new batch.
--engine ray scores on a Ray cluster (docs/scale_out.md); --out NAME.parquet writes Parquet.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from imaging.archive import iter_upload_files
from inspection.intake import IntakeReport, record_result
from inspection.output import results_format, write_results
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
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: Ray Data actor pool (pip install -e .[ray])",
    )
    parser.add_argument(
        "--address",
        help="ray engine: cluster address (auto, HOST:6379 or ray://HOST:10001); "
        "default: a local Ray with --workers CPUs",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="ray engine: actors, one model load each"
    )
    return parser


def _engine(args: argparse.Namespace):
    """(score(entries, progress) -> (entry, row) iterator, classifier run, autoencoder run)."""
    if args.engine == "ray":
        from inspection.ray_engine import batch_summary, import_ray, iter_inspect_ray, open_runs

        import_ray()
        classifier, autoencoder = open_runs(args.classifier, args.autoencoder)

        def score(entries, progress):
            records = []
            yield from iter_inspect_ray(
                entries,
                classifier,
                autoencoder,
                address=args.address,
                workers=args.workers,
                batch_size=args.batch_size,
                records=records,
                progress=progress,
            )
            print(batch_summary(records))

        return score, classifier, autoencoder
    inspector = Inspector.from_runs(args.classifier, args.autoencoder)

    def score(entries, progress):
        return iter_inspect(entries, inspector, args.batch_size, progress)

    return score, inspector.classifier, inspector.autoencoder


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    missing = [p for p in args.images if not Path(p).exists()]
    if missing:
        print(f"error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.engine != "ray" and (args.address or args.workers != 1):
        print("error: --address and --workers need --engine ray", file=sys.stderr)
        return 2
    try:
        results_format(args.out)
        score, classifier, autoencoder = _engine(args)
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
            classifier_run=classifier.name,
            autoencoder_run=None if autoencoder is None else autoencoder.name,
        )
        report = IntakeReport(batch_id)
    rows = []
    try:
        for entry, row in score(entries, progress):
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
    out = write_results(frame, args.out)
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
