"""Score a batch of part images with a classifier (and an autoencoder); write one CSV row each.

    python -m inspection --classifier demo_cnn --autoencoder demo_ae --images parts/ shift.zip \
        --out results.csv [--db-batch "shift 7"]
    python -m inspection --engine ray --address auto --workers 16 ... --out archive.parquet

Folders are searched recursively; .zip archives are opened safely (imaging.archive); a .csv
file is an archive manifest: its `path` column lists the images (relative to the manifest's
folder, or absolute), e.g. an export of a plant's image database. With --db-batch the images,
predictions and scores also go into the review log as a new batch.
--engine ray scores on a Ray cluster (docs/scale_out.md); --out NAME.parquet writes Parquet;
--pool NAME keeps the workers and their models warm on the cluster for the next job.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from imaging import read_file_bytes
from imaging.archive import MAX_FILES, MAX_TOTAL_BYTES, iter_upload_files
from inspection.intake import IntakeReport, record_result
from inspection.output import results_format, write_results
from inspection.pipeline import (
    DEFAULT_BATCH,
    Inspector,
    iter_inspect,
    results_frame,
)
from inspection.ray_pool import DEFAULT_IDLE_MINUTES, check_pool_name
from store.cli_errors import CliInputError, check_output_file, cli_main, positive_int


def _files(inputs: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) for every file under the inputs; folders recursively, sorted; a manifest's
    files in its row order.

    Names are relative (a folder's files as folder/sub/file.png), as in an upload: the
    intake refuses absolute names.
    """
    for entry in (Path(p).resolve() for p in inputs):
        if entry.is_dir():
            for path in sorted(p for p in entry.rglob("*") if p.is_file()):
                yield str(path.relative_to(entry.parent)), read_file_bytes(path)
        elif is_manifest(entry):
            for name, path in manifest_files(entry):
                yield name, read_file_bytes(path)
        else:
            yield entry.name, read_file_bytes(entry)


def is_manifest(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def manifest_files(manifest: Path) -> list[tuple[str, Path]]:
    """(result name, file) for every row of an archive manifest: a CSV with a `path` column.

    Read once per run: checking, counting and scoring share the parsed rows while the file
    is unchanged (same size and modification time).
    """
    stat = manifest.stat()
    return list(_manifest_rows(manifest, stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _manifest_rows(manifest: Path, size: int, mtime_ns: int) -> tuple[tuple[str, Path], ...]:
    """The rows of `manifest_files` (size and mtime_ns are the cache key only).

    Relative paths are read from the manifest's folder and keep their name (line3/p1.png);
    absolute ones, and relative ones leading out of the folder, are named by the full path
    without its root. Refuses a manifest without a `path` column, an empty one, or one listing
    files that do not exist (all named in one line), before anything is scored.
    """
    from imaging import DatasetError
    from imaging.layout_csv import read_csv

    try:
        table = read_csv(manifest)
    except DatasetError as exc:
        raise CliInputError(f"--images {exc}") from None
    if "path" not in table.columns:
        raise CliInputError(
            f"--images {manifest}: a manifest needs a 'path' column (found: "
            f"{', '.join(table.columns) or 'none'}); one image path per row"
        )
    paths = [p.strip() for p in table["path"] if p.strip()]
    if not paths:
        raise CliInputError(f"--images {manifest}: the manifest lists no paths")
    files = []
    for written in paths:
        path = Path(written)
        full = path if path.is_absolute() else (manifest.parent / path)
        full = Path(os.path.normpath(full))
        inside = not path.is_absolute() and Path(os.path.normpath(path)).parts[:1] != ("..",)
        name = os.path.normpath(written) if inside else full.as_posix().lstrip("/")
        files.append((name, full))
    missing = [str(full) for _, full in files if not full.is_file()]
    if missing:
        raise CliInputError(
            f"--images {manifest}: {len(missing)} listed files not found (first: {missing[0]}); "
            "fix the paths or drop those rows"
        )
    return tuple(files)


def check_inputs(inputs: Sequence[str]) -> None:
    """Refuse missing paths, non-regular files and inputs holding no files, before any work."""
    missing = [p for p in inputs if not Path(p).exists()]
    if missing:
        raise CliInputError(f"--images: not found: {', '.join(missing)}; check the paths")
    for name in inputs:
        path = Path(name)
        if path.is_file() and is_manifest(path):
            manifest_files(path.resolve())
        elif path.is_dir():
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

    def count(name: str) -> int:
        path = Path(name)
        if path.is_dir():
            return sum(1 for p in path.rglob("*") if p.is_file())
        return len(manifest_files(path.resolve())) if is_manifest(path) else 1

    return sum(count(i) for i in inputs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inspection", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--classifier", required=True, help="classifier run name or folder")
    parser.add_argument("--autoencoder", help="autoencoder run name or folder (optional)")
    parser.add_argument(
        "--images",
        required=True,
        nargs="+",
        help="image files, folders, zips, or .csv manifests (a 'path' column)",
    )
    parser.add_argument(
        "--max-files",
        type=positive_int,
        default=MAX_FILES,
        help="most images per run; the rest are reported, not scored (the ray engine holds a "
        "run's image bytes in the driver's memory)",
    )
    parser.add_argument(
        "--out", required=True, help="results file to write: .csv, or .parquet for large runs"
    )
    parser.add_argument("--db-batch", help="also store the batch in the review log, this name")
    parser.add_argument(
        "--batch-size", type=positive_int, default=DEFAULT_BATCH, help="images per model call"
    )
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: a Ray cluster, Ray Data actors for the job or "
        "a standing --pool (pip install -e .[ray])",
    )
    parser.add_argument(
        "--address",
        help="ray engine: cluster address (auto, HOST:6379 or ray://HOST:10001); "
        "default: a local Ray with --workers CPUs",
    )
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="ray engine: actors, one model load each"
    )
    parser.add_argument(
        "--pool",
        metavar="NAME",
        help="ray engine: score on the standing pool NAME on the cluster at --address; its "
        "workers load the models once and stay warm for the next job (docs/scale_out.md; "
        "list and stop pools with python -m inspection.ray_pool)",
    )
    parser.add_argument(
        "--pool-idle-min",
        type=positive_int,
        default=DEFAULT_IDLE_MINUTES,
        help="ray engine with --pool: minutes a pool waits for the next job before it ends "
        "itself and frees its CPUs (default %(default)s)",
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
                pool=args.pool,
                pool_idle_s=args.pool_idle_min * 60,
            )
            print(batch_summary(records))

        return score, classifier, autoencoder
    inspector = Inspector.from_runs(args.classifier, args.autoencoder)

    def score(entries, progress):
        return iter_inspect(entries, inspector, args.batch_size, progress)

    return score, inspector.classifier, inspector.autoencoder


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.engine != "ray" and (args.address or args.workers != 1 or args.pool):
        raise CliInputError("--address, --workers and --pool need --engine ray")
    if args.pool is not None:
        check_pool_name(args.pool)
        if not args.address:
            raise CliInputError(
                f"--pool {args.pool}: a standing pool lives on a running cluster; start one "
                "with `ray start --head` and pass --address auto (or HOST:6379)"
            )
    results_format(args.out)
    check_inputs(args.images)
    out = check_output_file(args.out)
    score, classifier, autoencoder = _engine(args)
    rows, report, review = _inspect(args, score, classifier, autoencoder)
    if not rows:
        raise CliInputError(f"--images {' '.join(args.images)}: no files found to inspect")
    frame = results_frame(rows)
    write_results(frame, out)
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
    args: argparse.Namespace, score: Any, classifier: Any, autoencoder: Any
) -> tuple[list[dict], IntakeReport | None, Any]:
    """Score every input (and add it to the review log with --db-batch)."""
    args.started = time.perf_counter()
    # the byte cap grows with --max-files: the same allowance per image as the default
    total = int(MAX_TOTAL_BYTES * max(1.0, args.max_files / MAX_FILES))
    entries = iter_upload_files(_files(args.images), args.max_files, total)
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
