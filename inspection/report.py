"""Write an audit-ready, self-contained HTML inspection report of a run or a review batch.

    python -m inspection.report --run demo_flip --out report.html
    python -m inspection.report --batch 3 --out batch3.html

A run report evaluates the classifier on its own test split at its saved threshold; a batch
report reads the review log (DEFECTLENS_DB_URL or data/review.db). See docs/operating_points.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from classification.evaluation import EvaluationError
from imaging import DatasetError
from inspection.audit import batch_report_html, run_report_html
from store import RunError
from store.review import ReviewError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inspection.report", description=__doc__.split("\n\n")[0]
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="classifier run name or folder")
    which.add_argument("--batch", type=int, help="review batch id (see Batch Review)")
    parser.add_argument("--out", required=True, help="HTML file to write")
    parser.add_argument("--data", help="the run's data set folder (default: recorded in run.json)")
    parser.add_argument("--worst", type=int, default=8, help="how many worst errors to show")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    if out.is_dir() or not out.parent.is_dir():
        print(f"error: --out {out}: give a file path in an existing folder", file=sys.stderr)
        return 2
    if args.worst < 0:
        print(f"error: --worst {args.worst}: must be 0 or more", file=sys.stderr)
        return 2
    try:
        if args.run:
            text = run_report_html(args.run, data=args.data, worst=args.worst)
        else:
            text = batch_report_html(args.batch)
    except (EvaluationError, DatasetError, RunError, ReviewError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(text) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
