"""Train a defect classifier on any supported data-set layout and save it as a run folder.

    python classification/train.py --data data/casting --model simple_cnn --aug basic
    python classification/train.py --data data/casting --model mobilenetv2 --aug heavy \
        --name mobilenet_heavy --wandb True
    python classification/train.py --aug list
"""

from __future__ import annotations

import argparse
import logging
import sys

from classification.augment import RECIPES, describe_recipes
from classification.models import MODEL_NAMES, WEIGHTS
from classification.schedule import SCHEDULES
from classification.training import TrainConfig, train
from imaging.preprocess import COLORS
from store.cli_args import add_training_options, option
from store.cli_errors import cli_main
from store.tracking import add_wandb_argument

__all__ = ["TrainConfig", "build_parser", "main", "train"]


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig(data="")
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", help="data set folder or CSV manifest (see docs/data.md)")
    option(p, d, "--model", choices=MODEL_NAMES)
    option(p, d, "--aug", f"recipe: {', '.join(RECIPES)}, or `list`")
    help_size = "model input: one side (160) or height x width (96x384), px"
    option(p, d, "--img-size", help_size, type=_img_size)
    help_color = "gray: one channel; rgb: keep the colour of the images (three channels)"
    option(p, d, "--color", help_color, choices=COLORS)
    option(
        p,
        d,
        "--schedule",
        "cosine: warm up from lr/10 over the first 10%% of steps, then decay to 0 at the "
        "last epoch; plateau: constant lr, halved by ReduceLROnPlateau when val_loss stalls",
        choices=SCHEDULES,
    )
    p.add_argument("--name", help="run name under weights/ (default MODEL_AUG)")
    option(p, d, "--weights", choices=WEIGHTS)
    option(p, d, "--alpha", "mobilenetv2 width multiplier (0.35 to 1.4)", type=float)
    help_val = "fraction of train held out for validation when the data has no val split"
    option(p, d, "--val-split", help_val, type=float)
    option(
        p,
        d,
        "--threshold",
        "defect threshold policy, chosen on the validation split: f1 | recall:X | "
        "precision:X | fixed:X (docs/operating_points.md)",
    )
    option(
        p,
        d,
        "--min-steps",
        "optimizer steps per epoch at least (small data sets repeat their images; "
        "see docs/small-data.md)",
        type=int,
    )
    option(
        p,
        d,
        "--small-data",
        "auto: a training set under 500 images gets random flips and quarter turns "
        "added to a recipe without them; off: train the recipe as named",
        choices=("auto", "off"),
    )
    option(
        p,
        d,
        "--masks",
        "defect masks as a second training signal (docs/small-data.md): auto: on for a "
        "training set under 500 images with at least 8 masked defects; on: whenever the data "
        "has masks; off: labels only",
        choices=("auto", "on", "off"),
    )
    p.add_argument(
        "--init-from",
        metavar="RUN",
        help="start from the weights of an earlier classifier run of the same --model (its "
        "backbone; its head too when the classes match): transfer without ImageNet",
    )
    add_training_options(p, d)
    add_wandb_argument(p)
    return p


def _img_size(text: str) -> int | tuple[int, int]:
    """argparse type for --img-size: 160 or 96x384 (height x width)."""
    from imaging.preprocess import PreprocessError, parse_size

    try:
        height, width = parse_size(text)
    except PreprocessError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return height if height == width else (height, width)


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.aug == "list":
        print(describe_recipes())
        return 0
    if not args.data:
        parser.error("--data is required (a data set folder or a CSV manifest)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = TrainConfig(**{k: v for k, v in vars(args).items()})
    train(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
