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

from inspection.audit import batch_report_html, run_report_html
from store.cli_errors import CliInputError, atomic_output, check_output_file, cli_main


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


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    out = check_output_file(args.out)
    if args.worst < 0:
        raise CliInputError(f"--worst {args.worst}: must be 0 or more")
    if args.run:
        text = run_report_html(args.run, data=args.data, worst=args.worst)
    else:
        text = batch_report_html(args.batch)
    with atomic_output(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(text) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
