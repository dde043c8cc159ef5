"""How well a classifier's heatmaps find the defects: CAMs of a run against ground-truth masks.

    python -m explain.evaluate --run RUN --data DIR [--method gradcam] [--layer L]
                               [--split test] [--limit N] [--faithfulness N] [--out FILE.json]
                               [--boxes heatmap|head]

Defective images with masks get localization metrics (energy inside the dilated mask,
pointing game, best box IoU); every image gets the label-free noise metrics; good parts also
report their mean defect-class intensity. `--faithfulness N` adds deletion and insertion AUC and
ROAD (explain.faithfulness) on N defective images. Heatmaps are mapped back to the original image
(undoing the run's crop and resize) before anything is compared.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from explain.cams import METHODS
from explain.evaluation import (
    BOX_STEPS,
    evaluate,
    format_table,
)
from store.cli_args import keyword_options
from store.cli_errors import (
    atomic_output,
    check_output_file,
    cli_main,
    non_negative_int,
    positive_int,
)


def _threshold(text: str) -> str | float:
    if text == "otsu":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'otsu' or a fraction, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explain.evaluate", description=__doc__)
    parser.add_argument("--run", required=True, help="classifier run name or folder")
    parser.add_argument("--data", required=True, help="MVTec tree, synthetic set or manifest")
    parser.add_argument("--method", default="gradcam", choices=sorted(METHODS))
    parser.add_argument("--layer", help="target layer (default: the run's cam_layer)")
    parser.add_argument("--split", default="test", help="split to evaluate, or 'all'")
    parser.add_argument("--limit", type=positive_int, help="at most N defective and N good images")
    parser.add_argument("--threshold", type=_threshold, default="otsu", help="box threshold")
    parser.add_argument("--min-area", type=int, default=16, help="smallest box, in pixels")
    parser.add_argument(
        "--boxes",
        choices=BOX_STEPS,
        default="heatmap",
        help="box step the box metrics judge: the heatmap's own boxes, or the run's box head "
        "gated by the heatmap (python -m classification.boxhead trains one)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument(
        "--faithfulness",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="also measure deletion/insertion AUC and ROAD on N defective images (a fixed "
        "random sample; about 2 s an image); 0: off",
    )
    parser.add_argument("--out", type=Path, help="write the full report (per image) as JSON")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> dict[str, Any] | int:
    """The report on success, 2 after printing the error for bad input."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.out:
        check_output_file(args.out)
    report = evaluate(args.run, args.data, **keyword_options(evaluate, args))
    print(format_table(report["summary"]))
    if args.out:
        with atomic_output(args.out) as tmp:
            tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    result = main()
    raise SystemExit(result if isinstance(result, int) else 0)
