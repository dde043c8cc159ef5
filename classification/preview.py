"""List the augmentation recipes, or draw a grid of each recipe's random draws on one part.

    python -m classification.preview --list
    python -m classification.preview --preview docs/images/augmentations.png --data data/casting

The recipes themselves live in classification.augment; this is only their command line.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from classification.augment import RECIPES, describe_recipes, preview_grid
from store.cli_errors import cli_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m classification.preview", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--list", action="store_true", help="print the recipes and exit")
    parser.add_argument("--preview", metavar="OUT.png", help="write a grid of each recipe")
    parser.add_argument("--data", help="data set to take the preview part from (any layout)")
    parser.add_argument("--image", help="a single image to preview instead of --data")
    parser.add_argument("--size", type=int, default=160, help="tile size in px")
    parser.add_argument("--draws", type=int, default=4, help="random draws per recipe")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _first_defective_image(data: str) -> np.ndarray:
    from imaging import discover, read_image

    items = discover(data).items
    defective = items[items.is_defect & (items.split == "train")]
    path = (defective if len(defective) else items).sort_values("path").path.iloc[0]
    return read_image(path)


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list or not args.preview:
        print(describe_recipes())
        return 0
    if not (args.data or args.image):
        parser.error("--preview needs --data DIR or --image FILE")
    import cv2

    from imaging import read_image

    image = read_image(args.image) if args.image else _first_defective_image(args.data)
    grid = preview_grid(image, size=args.size, draws=args.draws, seed=args.seed)
    if not cv2.imwrite(args.preview, grid):
        raise SystemExit(f"could not write {args.preview}: check the folder exists")
    print(f"wrote {args.preview} ({grid.shape[1]}x{grid.shape[0]} px, {len(RECIPES)} recipes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
