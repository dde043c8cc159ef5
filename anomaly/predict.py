"""Score new images with a trained autoencoder run; optionally write heatmap PNGs.

    python anomaly/predict.py --run RUN --images DIR|FILES --out scores.csv [--maps DIR]

Unreadable files get a row with the reason in the `error` column (and in the summary); the
others are scored. `anomalous` is `score >= threshold` with the run's calibrated threshold.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from anomaly.inputs import expand_image_args
from anomaly.scoring import AnomalyDetector
from imaging import ImageError, decode_image, to_gray
from imaging.screening import join_warnings, screen_image
from store.cli_errors import (
    CliInputError,
    check_output_file,
    check_writable_dir,
    cli_main,
    positive_int,
    write_csv,
)

log = logging.getLogger(__name__)
COLUMNS = ("path", "score", "anomalous", "threshold", "error", "warnings")


def heatmap_overlay(image: np.ndarray, amap: np.ndarray, scale: float) -> np.ndarray:
    """RGB uint8: the part in gray with the map in JET on top; `scale` maps to full red.

    A fixed scale (twice the threshold) keeps colours comparable across images: a part whose
    map never reaches the threshold stays blue.
    """
    gray = cv2.cvtColor(to_gray(image), cv2.COLOR_GRAY2RGB)
    level = np.clip(amap / max(scale, 1e-12), 0.0, 1.0)
    colour = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    alpha = (0.15 + 0.6 * level)[..., None]
    return (gray * (1 - alpha) + colour * alpha).astype(np.uint8)


def _map_name(path: Path, used: set[str]) -> str:
    name, n = f"{path.stem}_map.png", 1
    while name in used:
        n += 1
        name = f"{path.stem}_{n}_map.png"
    used.add(name)
    return name


def predict_files(
    run: Any,
    paths: Sequence[str | Path],
    maps_dir: Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per file (COLUMNS); unreadable files carry the reason in `error`."""
    detector = run if hasattr(run, "score_arrays") else AnomalyDetector.from_run(run)
    if batch_size < 1:
        raise CliInputError(f"batch size must be at least 1, got {batch_size}")
    if maps_dir is not None:
        maps_dir.mkdir(parents=True, exist_ok=True)
    scale = 2 * detector.threshold if detector.threshold else None
    rows: list[dict[str, Any]] = []
    used: set[str] = set()
    bar = tqdm(total=len(paths), desc="scoring", unit="img", disable=not progress)
    for start in range(0, len(paths), batch_size):
        batch, imgs, notes = [], [], []
        for path in map(Path, paths[start : start + batch_size]):
            try:
                decoded = decode_image(path)
                imgs.append(decoded.pixels)
                notes.append(
                    decoded.warnings + screen_image(decoded.pixels, detector.preprocess.size)
                )
                batch.append(path)
            except ImageError as exc:
                rows.append({"path": str(path), "error": exc.reason})
        if imgs:
            scores, maps, _ = detector.score_arrays(detector.preprocess.apply_batch(imgs))
            flags = (
                detector.decide(scores) if detector.threshold is not None else [None] * len(imgs)
            )
            scored = zip(batch, imgs, scores, flags, maps, notes, strict=True)
            for path, img, score, flag, amap, note in scored:
                rows.append(
                    {
                        "path": str(path),
                        "score": float(score),
                        "anomalous": flag,
                        "threshold": detector.threshold,
                        "error": "",
                        "warnings": join_warnings(note),
                    }
                )
                if maps_dir is not None:
                    full = detector.preprocess.cam_to_original(amap, img.shape[:2])
                    overlay = heatmap_overlay(img, full, scale or float(full.max()) or 1.0)
                    out = maps_dir / _map_name(path, used)
                    cv2.imwrite(str(out), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
        bar.update(min(batch_size, len(paths) - start))
    bar.close()
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    order = {str(Path(p)): i for i, p in enumerate(paths)}
    return frame.sort_values("path", key=lambda s: s.map(order)).reset_index(drop=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True, help="autoencoder run name or folder")
    p.add_argument("--images", required=True, nargs="+", help="image files and/or folders")
    p.add_argument("--out", required=True, type=Path, help="CSV to write")
    p.add_argument("--maps", type=Path, help="folder for heatmap PNGs (<stem>_map.png)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per model call")
    return p


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    paths = expand_image_args(args.images)
    check_output_file(args.out)
    if args.maps is not None:
        check_writable_dir(args.maps, "--maps")
    frame = predict_files(args.run, paths, args.maps, args.batch_size)
    write_csv(frame, args.out)
    failed = frame[frame["error"] != ""]
    scored = frame[frame["error"] == ""]
    flagged = int(scored["anomalous"].fillna(False).astype(bool).sum())
    print(
        f"\n{len(scored)} scored, {flagged} anomalous, {len(failed)} unreadable -> {args.out}"
        + (f"; heatmaps in {args.maps}" if args.maps else "")
    )
    warned = int(scored["warnings"].fillna("").astype(bool).sum())
    if warned:
        print(f"{warned} scored with a warning (see the warnings column)")
    for _, row in failed.iterrows():
        print(f"  unreadable: {row['path']}: {row['error']}")
    if scored.empty:
        print(
            f"error: none of the {len(frame)} inputs could be read; see {args.out}", file=sys.stderr
        )
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
