"""Choose a classifier run's defect threshold on its validation split and record it.

    python classification/threshold.py --run demo_flip                  # best F1 (default)
    python classification/threshold.py --run demo_flip --policy recall:0.99
    python classification/threshold.py --run my_run --policy fixed:0.5 --data data/casting

The threshold is appended to run.json's threshold history (who, when, policy, validation
precision/recall) and metrics.json is rewritten with the test figures at the new operating
point, the argmax figures alongside. Policies: docs/operating_points.md.
"""

from __future__ import annotations

import argparse
import logging
import sys

from classification.evaluation import calibrate_run
from classification.metrics import format_report
from classification.operating_point import DEFAULT_POLICY, PolicyError, parse_policy
from store.cli_errors import cli_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--run", required=True, help="classifier run name or folder")
    parser.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        help="f1 | recall:X | precision:X | fixed:X (chosen on the validation split)",
    )
    parser.add_argument("--data", help="data set folder (default: the one recorded in the run)")
    parser.add_argument("--by", help="who sets it (default: DEFECTLENS_USER or the login name)")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        parse_policy(args.policy)
    except PolicyError as exc:
        parser.exit(2, f"error: --policy: {exc}\n")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = calibrate_run(args.run, args.policy, data=args.data, set_by=args.by)
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
