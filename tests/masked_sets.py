"""Tiny class-folder sets with defect masks (annotations.csv), for tests that train on masks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np


def write_masked_set(
    root: Path,
    counts: dict[str, int],
    size: int,
    disk: tuple[int, int],
    defect: Callable[[np.ndarray, np.random.Generator], None],
    defect_value: int = 255,
    seed: int = 0,
) -> Path:
    """Noisy disks (radius, grey) per split and class, `counts[split]` images of each class; a
    defective image gets `defect(mask, rng)` drawn into its mask and painted `defect_value`.
    Masks go to masks/{split}_{i}.png, listed in annotations.csv with defect type "bar"."""
    rng = np.random.default_rng(seed)
    rows = ["path,split,label,defect_type,mask_path"]
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for split, n in counts.items():
        for label in ("ok_front", "def_front"):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 30, (size, size), dtype=np.uint8)
                cv2.circle(img, (size // 2, size // 2), disk[0], disk[1], -1)
                name = f"{split}/{label}/{i:02d}.png"
                if label == "def_front":
                    mask = np.zeros_like(img)
                    defect(mask, rng)
                    img[mask > 0] = defect_value
                    cv2.imwrite(str(root / "masks" / f"{split}_{i:02d}.png"), mask)
                    rows.append(f"{name},{split},{label},bar,masks/{split}_{i:02d}.png")
                cv2.imwrite(str(root / name), img)
    (root / "annotations.csv").write_text("\n".join(rows) + "\n")
    return root


def write_unmasked_set(root: Path, size: int, per_class: int = 3) -> Path:
    """Blank images in train/ and test/ class folders and no masks at all."""
    for split in ("train", "test"):
        for label in ("ok_front", "def_front"):
            (root / split / label).mkdir(parents=True)
            blank = np.zeros((size, size), np.uint8)
            for i in range(per_class):
                cv2.imwrite(str(root / split / label / f"{i}.png"), blank)
    return root
