"""Image AUROC, pixel AUROC and AUPRO against masks, and F1 at the run's own thresholds.

    python -m anomaly.evaluate --run RUN --data DIR [--split test] [--out FILE.json]

Pixel AUROC is computed on the original image grid (maps are brought back with the run's
preprocessing) over good and defective images alike, as in MVTec AD; scores are accumulated in
fine histograms so memory does not grow with the data set. AUPRO (per-region overlap up to
30 % false-positive rate, anomaly.localize) uses the same histograms per true defect region.
Runs with a pixel threshold also get pixel precision, recall and F1 of their predicted masks.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from anomaly.evaluation import (
    evaluate_run,
)
from store.cli_errors import atomic_output, check_output_file, cli_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m anomaly.evaluate",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--run", required=True, help="autoencoder run name or folder")
    p.add_argument("--data", required=True, help="data set root with good and defective images")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--out", type=Path, help="write the metrics as JSON here")
    return p


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.out:
        check_output_file(args.out)
    metrics = evaluate_run(args.run, args.data, args.split)
    if args.out:
        with atomic_output(args.out) as tmp:
            tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(
        f"{args.split}: {metrics['n_images']} images ({metrics['n_defective']} defective), "
        f"{len(metrics['unreadable'])} unreadable\n"
        f"  image AUROC {fmt(metrics['image_auroc'])}, pixel AUROC {fmt(metrics['pixel_auroc'])}, "
        f"AUPRO {fmt(metrics.get('aupro'))}, "
        f"F1 {fmt(metrics.get('f1'))} at threshold {fmt(metrics.get('threshold'))}"
        + (
            f"\n  pixel F1 {fmt(metrics['pixel_f1'])} at pixel threshold "
            f"{fmt(metrics['pixel_threshold'])}"
            if metrics.get("pixel_f1") is not None
            else ""
        )
    )
    for t, auc in metrics["image_auroc_by_type"].items():
        print(f"  {t:>12}: image AUROC {auc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
