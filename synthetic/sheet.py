"""Contact sheet of synthetic castings: good parts and each defect type, masks outlined in red.

Each example is shown whole (mask outline in red, zoom window in yellow) next to a plain zoom,
so the defect can be judged as a camera would see it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from synthetic.casting import DEFAULT_CONTRAST, DEFECT_TYPES, MIN_SIZE, render_part

RED, YELLOW, WHITE = (40, 40, 230), (0, 215, 255), (235, 235, 235)
ZOOM = 4
LABEL_WIDTH = 150
HEADER = 34


def _zoom_window(mask: np.ndarray, seed: int, window: int) -> tuple[int, int]:
    """Top-left corner of a window centred on the defect (or on the part for good ones)."""
    size = mask.shape[0]
    ys, xs = np.nonzero(mask)
    if ys.size:
        cy, cx = int(ys.mean()), int(xs.mean())
    else:
        rng = np.random.default_rng(seed)
        cy, cx = (size // 2 + rng.integers(-size // 5, size // 5 + 1, size=2)).tolist()
    clamp = size - window
    return min(max(cy - window // 2, 0), clamp), min(max(cx - window // 2, 0), clamp)


def _cell(image: np.ndarray, mask: np.ndarray, tile: int, seed: int) -> np.ndarray:
    size = image.shape[0]
    window = max(size // ZOOM, 16)
    y0, x0 = _zoom_window(mask, seed, window)
    scale = tile / size
    whole = cv2.cvtColor(
        cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR
    )
    outline = cv2.resize(mask, (tile, tile), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(whole, contours, -1, RED, 1)
    corner = (int(x0 * scale), int(y0 * scale))
    far = (int((x0 + window) * scale) - 1, int((y0 + window) * scale) - 1)
    cv2.rectangle(whole, corner, far, YELLOW, 1)
    crop = image[y0 : y0 + window, x0 : x0 + window]
    zoom = cv2.resize(crop, (tile, tile), interpolation=cv2.INTER_CUBIC)
    return np.hstack([whole, cv2.cvtColor(zoom, cv2.COLOR_GRAY2BGR)])


def _label(text: str, note: str, height: int) -> np.ndarray:
    panel = np.full((height, LABEL_WIDTH, 3), 24, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(panel, text, (10, height // 2 - 4), font, 0.6, WHITE, 1, cv2.LINE_AA)
    cv2.putText(panel, note, (10, height // 2 + 20), font, 0.42, WHITE, 1, cv2.LINE_AA)
    return panel


def contact_sheet(
    seed: int = 0,
    per_row: int = 3,
    size: int = 300,
    tile: int = 180,
    contrast: float = DEFAULT_CONTRAST,
) -> np.ndarray:
    """BGR sheet: one row of good parts, then one row per defect type."""
    rows = []
    for row, kind in enumerate((None, *DEFECT_TYPES)):
        cells, areas = [], []
        for col in range(per_row):
            part_seed = np.random.SeedSequence(seed, spawn_key=(row, col))
            image, mask = render_part(part_seed, size, kind, contrast)
            areas.append((mask > 0).mean() * 100)
            cells.append(_cell(image, mask, tile, seed + col))
        note = f"area {np.mean(areas):.2f} %" if kind else "nuisances only"
        rows.append(np.hstack([_label(kind or "good", note, tile), *cells]))
    body = np.vstack(rows)
    header = np.full((HEADER, body.shape[1], 3), 24, np.uint8)
    title = (
        f"DefectLens synthetic castings (seed {seed}, {size}x{size}): red = exact defect mask, "
        f"yellow = window shown enlarged on the right"
    )
    cv2.putText(header, title, (10, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, WHITE, 1, cv2.LINE_AA)
    return np.vstack([header, body])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m synthetic sheet``."""
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--per-row", type=int, default=3, help="examples per row (default 3)")
    parser.add_argument("--size", type=int, default=300, help="rendered image side (>= 64)")
    parser.add_argument("--tile", type=int, default=180, help="side of each shown tile")
    parser.add_argument("--contrast", type=float, default=DEFAULT_CONTRAST, help="defect contrast")


def main(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Render the sheet and write it as PNG."""
    problems = []
    if args.size < MIN_SIZE:
        problems.append(f"--size {args.size}: use at least {MIN_SIZE} pixels")
    if args.per_row < 1 or args.tile < 32:
        problems.append("--per-row must be >= 1 and --tile >= 32")
    if args.contrast <= 0:
        problems.append(f"--contrast {args.contrast}: must be positive")
    if problems:
        if parser is not None:
            parser.error("; ".join(problems))
        raise SystemExit("error: " + "; ".join(problems))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(args.seed, args.per_row, args.size, args.tile, args.contrast)
    if not cv2.imwrite(str(out), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"error: could not write {out}")
    print(f"Wrote contact sheet {out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0
