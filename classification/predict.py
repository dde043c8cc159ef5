"""Batch prediction with a trained classifier run: files in, one CSV row per file out.

    python classification/predict.py --run simple_cnn_basic --images parts/ --out preds.csv
    python classification/predict.py --run simple_cnn_basic --images a.png b.png --out p.csv \
        --cam gradcam --boxes

Files are decoded, preprocessed exactly as in training (the run's recorded Preprocess) and
predicted in batches, so memory stays bounded for thousands of files. A file that cannot be read
gets status "error" and the reason; the others are still predicted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from classification.inference import (
    BOX_STEPS,
    DEFAULT_BATCH,
    collect_inputs,
    predict_images,
    summarize,
)
from imaging import IMAGE_EXTENSIONS
from store.cli_errors import CliInputError, check_output_file, cli_main, positive_int, write_csv


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="classifier run name or folder")
    parser.add_argument("--images", required=True, nargs="+", help="image files and/or folders")
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--cam", help="heatmap method, e.g. gradcam, gradcam++, scorecam")
    parser.add_argument("--boxes", action="store_true", help="defect boxes from the heatmaps")
    parser.add_argument(
        "--box-step",
        choices=BOX_STEPS,
        default="auto",
        help="with --boxes: the heatmap's own boxes, the run's box head gated by the heatmap "
        "(python -m classification.boxhead), or auto: the head when the run has one",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=DEFAULT_BATCH, help="images per model call"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        help="defect threshold on the summed defect probability (default: the run's own, "
        "0.5 for runs without one)",
    )
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    inputs, skipped = collect_inputs(args.images)
    if not inputs:
        raise CliInputError(
            f"--images {' '.join(args.images)}: no image files found "
            f"({' '.join(IMAGE_EXTENSIONS)}); point at the images"
        )
    out = check_output_file(args.out)
    started = time.perf_counter()
    frame = predict_images(
        args.run,
        inputs,
        cam=args.cam,
        boxes=args.boxes,
        batch_size=args.batch_size,
        progress=True,
        threshold=args.threshold,
        box_step=args.box_step,
    )
    write_csv(frame, out)
    print(summarize(frame, skipped, time.perf_counter() - started))
    print(f"defect threshold {frame.attrs['threshold']:.4g} (summed defect probability)")
    if "box_step" in frame.attrs:
        print(f"boxes from the {frame.attrs['box_step']} (--box-step {args.box_step})")
    print(f"wrote {out}")
    if not (frame.status == "ok").any():
        print(f"error: none of the {len(frame)} inputs could be read; see {out}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
