"""Train the autoencoder on good parts, calibrate scoring on held-out good parts, save the run.

python anomaly/train.py --data DIR --name RUN [--model ae|draem] [--img-size 128] [--epochs 30]

--model ae: a plain convolutional autoencoder; the map is its reconstruction error.
--model draem: DRAEM-lite (reconstructive autoencoder + discriminative U-Net) trained on good
images carrying simulated defects (anomaly.pseudo_defects); the map is the segmented mask.
--model patchcore / padim: patch features of a backbone (--backbone-run CLASSIFIER_RUN, or
--backbone mobilenetv2 --weights imagenet) in a coreset memory bank (nearest-neighbour
distance) or per-position Gaussians (Mahalanobis distance); see anomaly.feature_train.
None ever sees a real defect while learning (a --backbone-run classifier did: run.json says so).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import store
from anomaly.features import APPLICATIONS
from anomaly.memory import METHODS as FEATURE_MODELS
from anomaly.model import LOSSES, MODELS
from anomaly.scoring import MAP_KINDS, THRESHOLD_METHODS
from anomaly.training import TrainConfig, train
from imaging.preprocess import COLORS
from store.cli_args import add_training_options, option
from store.cli_errors import cli_main, positive_int
from store.tracking import add_wandb_argument

__all__ = ["TrainConfig", "build_parser", "main", "train"]


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig(data="", name="")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True, help="data set root (class folders, MVTec or CSV)")
    p.add_argument("--name", required=True, help="run name under weights/")
    p.add_argument(
        "--images",
        nargs="+",
        help="train on exactly these files/folders (each must be a good part of --data)",
    )
    option(
        p,
        d,
        "--model",
        "ae: plain autoencoder; draem: autoencoder + segmentation net on simulated defects;"
        "\npatchcore: coreset memory bank of patch features; padim: per-position Gaussians",
        choices=(*MODELS, *FEATURE_MODELS),
    )
    _add_feature_options(p, d)
    option(p, d, "--img-size", type=positive_int)
    help_color = (
        "gray or rgb (patchcore/padim only); default: the --backbone-run's colour, else gray"
    )
    option(p, d, "--color", help_color, choices=COLORS)
    option(p, d, "--latent-dim", "bottleneck channels", type=int)
    help_filters = "encoder widths, comma-separated (each halves the image): e.g. 16,32,64,64"
    option(p, d, "--filters", help_filters, type=_ints)
    help_seg = "draem: U-Net widths of the discriminative network, comma-separated"
    option(p, d, "--seg-filters", help_seg, type=_ints)
    option(p, d, "--steps", "draem: batches per epoch", type=int)
    option(p, d, "--time-limit", "stop after this many seconds of training", type=float)
    option(p, d, "--defect-prob", "draem", type=float)
    option(p, d, "--max-defects", "draem: per image", type=int)
    for flag in ("--min-area", "--max-area"):
        option(p, d, flag, "draem: pseudo-defect", type=float)
    option(p, d, "--loss", choices=LOSSES)
    add_training_options(p, d)
    _add_scoring_options(p, d)
    add_wandb_argument(p)
    return p


def _add_feature_options(p: argparse.ArgumentParser, d: TrainConfig) -> None:
    """The options of --model patchcore/padim (features of a backbone)."""
    p.add_argument(
        "--backbone-run",
        help="patchcore/padim: classifier run whose conv layers give the features (recorded)",
    )
    p.add_argument(
        "--backbone",
        choices=sorted(APPLICATIONS),
        help="patchcore/padim: a keras.applications network instead (needs --weights imagenet)",
    )
    help_weights = "weights of --backbone (downloaded by Keras: needs internet once)"
    option(p, d, "--weights", help_weights, choices=("imagenet",))
    p.add_argument(
        "--random-backbone",
        action="store_true",
        help="patchcore/padim: --backbone-run's architecture, freshly initialised (a baseline)",
    )
    option(
        p,
        d,
        "--feature-layers",
        "patchcore/padim: backbone layers, comma-separated (default: two mid layers)",
        type=lambda text: tuple(v for v in text.split(",") if v),
    )
    help_dim = "patchcore/padim: project features onto this many principal components (0: keep)"
    option(p, d, "--feature-dim", help_dim, type=int)
    help_coreset = "patchcore: memory bank size (rows), or a fraction of all patches if < 1"
    option(p, d, "--coreset", help_coreset, type=float)
    help_pixel = "patchcore/padim: pixel threshold = this percentile of good parts' map values"
    option(p, d, "--pixel-percentile", help_pixel, type=float)


def _add_scoring_options(p: argparse.ArgumentParser, d: TrainConfig) -> None:
    """Calibration on held-out good parts and the post-processing of the anomaly map."""
    option(p, d, "--calib-frac", "good images held out", type=float)
    help_threshold = "percentile of held-out good scores, or F1 optimum over labelled defects"
    option(p, d, "--threshold", help_threshold, choices=THRESHOLD_METHODS)
    option(p, d, "--percentile", type=float)
    option(p, d, "--top-k", "%% of pixels in the score (ae 0.3, draem 0.1)", type=float)
    option(p, d, "--map", "ae: mse (default), ssim, mse+ssim; draem: mask", choices=MAP_KINDS)
    option(p, d, "--sigma", "smoothing (default img_size/64)", type=float)
    p.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        default=None,
        help="skip per-pixel normalisation (on by default for ae, off for draem)",
    )
    p.add_argument("--no-part-mask", dest="part_mask", action="store_false")
    option(p, d, "--crop", type=float)
    p.add_argument("--clahe", action="store_true")


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    config = TrainConfig(**vars(args))
    run_dir = train(config)
    run = store.load_run(run_dir)
    s, info = run.info["summary"], run.info
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(
        f"\nrun {run.name} -> {run.path}\n"
        f"  good images: {info['data']['counts']}, epochs run {info['epochs_run']}, "
        f"{info['train_seconds']} s\n"
        f"  threshold {info['threshold']:.4f} ({info['threshold_method']})\n"
        f"  test: image AUROC {fmt(s['image_auroc'])}, pixel AUROC {fmt(s['pixel_auroc'])}, "
        f"F1 {fmt(s['f1'])}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
