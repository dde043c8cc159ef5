"""Learning curve: test accuracy of the demo recipe against the number of synthetic parts.

Each point generates a synthetic casting set of N parts (seed = the run's seed) and trains the
demo recipe on it (simple_cnn, flip, 160 px, 20 epochs, cosine schedule) with the small-data
rules of classification.smalldata, then reads the test accuracy. `--masks off` trains on the
labels alone; `--masks auto` (train.py's default) adds mask supervision where train.py does
(under 500 training images; classification.masksup). Every finished run is appended to the JSON
at once, and a run already there (same size, seed and --masks) is not trained again, so an
interrupted curve resumes where it stopped. Prints a table (mean, spread per size and --masks),
draws the curves as a PNG, and states the machine load before and after.

    python benchmarks/learning_curve.py --masks off            # 120 ... 1,920 parts, 3 seeds
    python benchmarks/learning_curve.py --masks auto --sizes 120 240 480
    python benchmarks/learning_curve.py --sizes 120 240 --seeds 0 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "learning_curve.json"
PLOT = ROOT / "docs" / "images" / "learning_curve.png"
SIZES = (120, 240, 480, 960, 1920)
RECIPE = {"model": "simple_cnn", "aug": "flip", "img_size": 160, "schedule": "cosine"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="parts per set")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--large-seeds",
        type=int,
        nargs="+",
        help="seeds for sizes from --large-from on (default: --seeds), to save time",
    )
    parser.add_argument("--large-from", type=int, default=960)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--img-size", type=int, default=RECIPE["img_size"])
    parser.add_argument("--min-steps", type=int, help="override the small-data minimum steps")
    parser.add_argument(
        "--masks",
        choices=("auto", "off"),
        default="auto",
        help="train.py's --masks: auto adds mask supervision under 500 training images",
    )
    parser.add_argument("--data-root", type=Path, help="where the sets go (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=PLOT)
    return parser


def _load(path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    return {"benchmark": "learning_curve", "runs": []}


def _save(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    results["summary"] = summarize(results["runs"])
    path.write_text(json.dumps(results, indent=2) + "\n")


def masks_option(run: dict) -> str:
    """The --masks a row was trained with; rows from before mask supervision trained on labels."""
    return run.get("masks", "off")


def summarize(runs: list[dict]) -> list[dict]:
    """Mean, sample standard deviation, min and max of test accuracy per --masks and size."""
    rows = []
    for masks in sorted({masks_option(r) for r in runs}, key=("off", "auto").index):
        group = [r for r in runs if masks_option(r) == masks]
        for size in sorted({r["parts"] for r in group}):
            at_size = [r for r in group if r["parts"] == size]
            accs = [r["test_accuracy"] for r in at_size]
            rows.append(
                {
                    "masks": masks,
                    "parts": size,
                    "runs": len(accs),
                    "mean": round(statistics.fmean(accs), 4),
                    "std": round(statistics.stdev(accs), 4) if len(accs) > 1 else None,
                    "min": round(min(accs), 4),
                    "max": round(max(accs), 4),
                    "flagged": sum(1 for r in at_size if r["warnings"]),
                }
            )
    return rows


def train_point(parts: int, seed: int, args: argparse.Namespace, data_root: Path) -> dict:
    """Generate N parts with `seed`, train the recipe, return the run's numbers."""
    from classification.train import TrainConfig, train
    from store import load_run
    from synthetic.writer import generate_casting_dataset

    data = data_root / f"parts{parts}_seed{seed}"
    if not data.exists():
        generate_casting_dataset(data, n=parts, seed=seed, workers=1)
    extra = {} if args.min_steps is None else {"min_steps": args.min_steps}
    config = TrainConfig(
        data=str(data),
        model=RECIPE["model"],
        aug=RECIPE["aug"],
        img_size=args.img_size,
        epochs=args.epochs,
        schedule=RECIPE["schedule"],
        seed=seed,
        name=f"lc_{parts}_{seed}_{args.masks}",
        masks=args.masks,
        **extra,
    )
    run = load_run(train(config, verbose=0))
    info = run.info
    return {
        "parts": parts,
        "seed": seed,
        "masks": args.masks,
        "mask_supervised": info.get("mask_supervision") is not None,
        "train_images": sum(info["data"]["counts"]["train"].values()),
        "test_images": sum(info["data"]["counts"]["test"].values()),
        "test_accuracy": round(float(info["summary"]["accuracy"]), 4),
        "epochs_run": info["epochs_run"],
        "steps_per_epoch": info.get("steps_per_epoch"),
        "train_seconds": info["train_seconds"],
        "warnings": run.warnings,
    }


SERIES = {"off": ("labels only", (180, 110, 30)), "auto": ("with masks (auto)", (40, 140, 40))}


def draw(summary: list[dict], path: Path, title: str) -> None:
    """Mean test accuracy (dots) and min-max spread (bars) against parts, log-scaled x; one
    curve per --masks (blue: labels only, green: with mask supervision where auto applies)."""
    width, height, left, right, top, bottom = 720, 420, 80, 30, 50, 60
    img = np.full((height, width, 3), 255, np.uint8)
    sizes = sorted({r["parts"] for r in summary})
    lo, hi = np.log2(min(sizes) / 1.3), np.log2(max(sizes) * 1.3)

    def x_of(parts: float) -> int:
        return int(left + (np.log2(parts) - lo) / (hi - lo) * (width - left - right))

    def y_of(acc: float) -> int:  # 0.5 (chance, binary) at the bottom, 1.0 at the top
        return int(top + (1.0 - acc) / 0.5 * (height - top - bottom))

    font, grey, ink = cv2.FONT_HERSHEY_SIMPLEX, (200, 200, 200), (40, 40, 40)
    for acc in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        cv2.line(img, (left, y_of(acc)), (width - right, y_of(acc)), grey, 1)
        cv2.putText(img, f"{acc:.1f}", (left - 45, y_of(acc) + 5), font, 0.45, ink, 1)
    for parts in sizes:
        cv2.putText(img, str(parts), (x_of(parts) - 15, height - bottom + 20), font, 0.45, ink, 1)
    cv2.putText(
        img, "synthetic parts (log scale)", (width // 2 - 110, height - 15), font, 0.5, ink, 1
    )
    cv2.putText(img, title, (left, 30), font, 0.55, ink, 1)
    for i, (masks, (label, colour)) in enumerate(SERIES.items()):
        rows = [r for r in summary if r.get("masks", "off") == masks]
        if not rows:
            continue
        # legend bottom right: the curves rise to the top left, the corner stays free
        key_x, key_y = width - right - 200, height - bottom - 40 + 18 * i
        cv2.line(img, (key_x, key_y), (key_x + 30, key_y), colour, 2)
        cv2.putText(img, label, (key_x + 38, key_y + 5), font, 0.45, ink, 1)
        points = [(x_of(r["parts"]), y_of(r["mean"])) for r in rows]
        for a, b in zip(points, points[1:], strict=False):
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        for r, (x, y) in zip(rows, points, strict=True):
            cv2.line(img, (x, y_of(r["min"])), (x, y_of(r["max"])), colour, 1, cv2.LINE_AA)
            cv2.circle(img, (x, y), 5, colour, -1, cv2.LINE_AA)
            dy = -8 if masks == "off" else 18
            cv2.putText(img, f"{r['mean']:.2f}", (x + 8, y + dy), font, 0.45, ink, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if any(n < 20 for n in args.sizes):
        print("error: --sizes: every set needs at least 20 parts", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    results = _load(args.out)
    results.update(
        recipe={**RECIPE, "img_size": args.img_size, "epochs": args.epochs},
        machine={"cpus": os.cpu_count(), "platform": platform.platform()},
    )
    done = {(r["parts"], r["seed"], masks_option(r)) for r in results["runs"]}
    trained = 0
    with tempfile.TemporaryDirectory(prefix="learning_curve_") as tmp:
        os.environ["DEFECTLENS_WEIGHTS"] = str(Path(tmp) / "weights")
        data_root = args.data_root or Path(tmp) / "data"
        for parts in args.sizes:
            large = parts >= args.large_from and args.large_seeds
            for seed in args.large_seeds if large else args.seeds:
                if (parts, seed, args.masks) in done:
                    continue
                row = train_point(parts, seed, args, data_root)
                row["load_average_after"] = list(os.getloadavg())
                results["runs"].append(row)
                trained += 1
                _save(args.out, results)
                print(
                    f"{parts:>6} parts seed {seed} --masks {args.masks}: "
                    f"test accuracy {row['test_accuracy']:.3f}",
                    flush=True,
                )
    if trained:  # a rerun that only redraws keeps the load of the runs it reports
        results["load_average"] = {"before": load_before, "after": os.getloadavg()}
    _save(args.out, results)
    summary = results["summary"]
    header = f"{'masks':>5} {'parts':>6} {'runs':>4} {'mean':>6} {'std':>6} {'min':>6} {'max':>6}"
    print(f"\n{header} flagged")
    for r in summary:
        std = f"{r['std']:.3f}" if r["std"] is not None else "-"
        print(
            f"{r['masks']:>5} {r['parts']:>6} {r['runs']:>4} {r['mean']:>6.3f} {std:>6} "
            f"{r['min']:>6.3f} {r['max']:>6.3f} {r['flagged']:>7}"
        )
    if trained:
        print(f"load average before {load_before}, after {results['load_average']['after']}")
    if summary:
        recipe = results["recipe"]
        draw(
            summary,
            args.plot,
            f"test accuracy, {recipe['model']} {recipe['aug']} "
            f"{recipe['img_size']} px {recipe['epochs']} epochs (mean, min-max)",
        )
        print(f"wrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
