"""Write a synthetic casting data set: Kaggle class folders, masks, an MVTec tree and annotations.

Layout under the output folder (see docs/data.md):
``train|test/<class>/<stem>.png``, ``masks/<split>/<stem>_mask.png`` (defective images only),
``mvtec/{train/good,test/good,test/<defect>,ground_truth/<defect>/<stem>_mask.png}`` (hard links
to the same files; MVTec has no defective training images, so every defective part sits in
``mvtec/test``) and ``annotations.csv`` with one row per connected defect component. Boxes are
pixel indices with exclusive upper bounds: ``mask[y_min:y_max, x_min:x_max]`` is the tight crop.
"""

from __future__ import annotations

import argparse
import csv
import logging
import multiprocessing
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from imaging.layouts import BOX_COORDS
from store.cli_args import defaults_of, keyword_options, option
from synthetic.casting import (
    DEFAULT_CONTRAST,
    DEFECT_TYPES,
    MIN_SIZE,
    CastingOptionError,
    render_part,
)

log = logging.getLogger(__name__)

# Kaggle casting training set: 3,758 defective and 2,875 good parts.
DEFECT_SHARE = 3758 / (3758 + 2875)
BINARY_LABELS = {"defect": "def_front", "good": "ok_front"}
GENERATED = ("train", "test", "masks", "mvtec", "annotations.csv")
ANNOTATION_COLUMNS = ("path", "split", "label", "defect_type", "mask_path", *BOX_COORDS)
PNG_SETTINGS = [cv2.IMWRITE_PNG_COMPRESSION, 3]
PARALLEL_MIN_IMAGES = 64


class OutputError(CastingOptionError):
    """The output folder cannot be written as asked."""


@dataclass(frozen=True)
class ImageJob:
    """Everything one worker needs to render and write one image."""

    index: int
    split: str
    label: str
    defect_type: str
    seed: np.random.SeedSequence
    size: int
    contrast: float
    out: str

    @property
    def stem(self) -> str:
        return f"cast_{'def' if self.defect_type else 'ok'}_0_{self.index}"

    @property
    def image_path(self) -> str:
        return f"{self.split}/{self.label}/{self.stem}.png"

    @property
    def mask_path(self) -> str:
        return f"masks/{self.split}/{self.stem}_mask.png" if self.defect_type else ""


@dataclass
class Summary:
    """What a generation run wrote, for the CLI's closing report."""

    out: Path
    size: int
    seed: int
    seconds: float = 0.0
    images: Counter = field(default_factory=Counter)
    defects: Counter = field(default_factory=Counter)
    areas: list[float] = field(default_factory=list)
    components: int = 0

    @property
    def total(self) -> int:
        return sum(self.images.values())

    def format(self) -> str:
        rate = self.total / self.seconds if self.seconds else float("inf")
        lines = [
            f"Wrote {self.total} synthetic castings ({self.size}x{self.size}, seed {self.seed}) "
            f"to {self.out} in {self.seconds:.1f} s ({rate:.0f} images/s)",
            f"{'split':<6} {'class':<10} {'images':>6}",
        ]
        lines += [f"{s:<6} {c:<10} {k:>6}" for (s, c), k in sorted(self.images.items())]
        if self.defects:
            per_type = ", ".join(
                f"{t} {self.defects[('train', t)]}/{self.defects[('test', t)]}"
                for t in DEFECT_TYPES
            )
            area = np.array(self.areas) * 100
            lines += [
                f"defect types (train/test): {per_type}",
                f"defect area, % of image: min {area.min():.2f}, median {np.median(area):.2f}, "
                f"max {area.max():.2f}; {self.components} annotated components",
            ]
        lines.append("layouts: class folders at the root, masks/, mvtec/, annotations.csv")
        return "\n".join(lines)


def plan_dataset(
    n: int,
    seed: int,
    classes: str = "binary",
    test_frac: float = 0.2,
    defect_share: float = DEFECT_SHARE,
) -> list[tuple[int, str, str, str, np.random.SeedSequence]]:
    """(index, split, label, defect_type, seed) per image; splits stratified by defect type."""
    plan_seed, image_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(plan_seed)
    n_defect = min(max(round(n * defect_share), 1), n - 1)
    kinds = [DEFECT_TYPES[k % len(DEFECT_TYPES)] for k in range(n_defect)]
    kinds = np.array(kinds + [""] * (n - n_defect))[rng.permutation(n)]

    test: set[int] = set()
    for kind in ("", *DEFECT_TYPES):
        members = rng.permutation(np.flatnonzero(kinds == kind))
        test.update(members[: round(len(members) * test_frac)].tolist())
    if test_frac > 0 and not test:
        test.add(int(rng.integers(n)))

    plan = []
    for index, (kind, image_ss) in enumerate(zip(kinds, image_seed.spawn(n), strict=True)):
        kind = str(kind)
        if classes == "types":
            label = kind or "good"
        else:
            label = BINARY_LABELS["defect" if kind else "good"]
        plan.append((index, "test" if index in test else "train", label, kind, image_ss))
    return plan


def _components(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Tight boxes (x_min, y_min, x_max, y_max), exclusive maxima, of 8-connected components."""
    count, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), 8)
    boxes = []
    for x, y, w, h, _area in stats[1:count]:
        boxes.append((int(x), int(y), int(x + w), int(y + h)))
    return sorted(boxes, key=lambda box: (box[1], box[0]))


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image, PNG_SETTINGS):
        raise OutputError(f"{path}: could not write the PNG; check free space and permissions")


def render_job(job: ImageJob) -> dict:
    """Render one part, write its image and mask, and return its annotation record."""
    image, mask = render_part(job.seed, job.size, job.defect_type or None, job.contrast)
    out = Path(job.out)
    _write_png(out / job.image_path, image)
    boxes: list[tuple[int, int, int, int]] = []
    if job.defect_type:
        _write_png(out / job.mask_path, mask)
        boxes = _components(mask)
    return {"job": job, "boxes": boxes, "area": float((mask > 0).mean())}


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _prepare_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; choose a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputError(
                f"--out {out} is not empty; choose a new folder or pass --overwrite "
                "to replace an earlier data set there"
            )
        for name in GENERATED:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()


def _link(src: Path, dst: Path) -> None:
    """Hard-link ``dst`` to ``src``; copy where the file system cannot link."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_mvtec(out: Path, records: list[dict]) -> None:
    mvtec = out / "mvtec"
    for record in records:
        job: ImageJob = record["job"]
        if job.defect_type:
            _link(out / job.image_path, mvtec / "test" / job.defect_type / f"{job.stem}.png")
            target = mvtec / "ground_truth" / job.defect_type / f"{job.stem}_mask.png"
            _link(out / job.mask_path, target)
        else:
            _link(out / job.image_path, mvtec / job.split / "good" / f"{job.stem}.png")


def _write_annotations(out: Path, records: list[dict]) -> int:
    rows = 0
    with open(out / "annotations.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(ANNOTATION_COLUMNS)
        for record in records:
            job: ImageJob = record["job"]
            base = [job.image_path, job.split, job.label, job.defect_type, job.mask_path]
            for box in record["boxes"] or [("", "", "", "")]:
                writer.writerow([*base, *box])
                rows += 1
    return rows


def generate_casting_dataset(
    out: str | Path,
    n: int = 1000,
    size: int = 300,
    seed: int = 0,
    classes: str = "binary",
    test_frac: float = 0.2,
    defect_share: float = DEFECT_SHARE,
    contrast: float = DEFAULT_CONTRAST,
    workers: int = 2,
    overwrite: bool = False,
    progress: bool = False,
) -> Summary:
    """Render ``n`` parts and write every layout; the same arguments give the same bytes."""
    if n < 2:
        raise CastingOptionError(f"n={n}: need at least 2 images (one good, one defective)")
    if size < MIN_SIZE:
        raise CastingOptionError(f"size={size}: use at least {MIN_SIZE} pixels")
    if classes not in ("binary", "types"):
        raise CastingOptionError(f"classes={classes!r}: choose 'binary' or 'types'")
    out = Path(out)
    _prepare_output(out, overwrite)
    started = time.perf_counter()
    plan = plan_dataset(n, seed, classes, test_frac, defect_share)
    jobs = [ImageJob(i, sp, lb, kind, ss, size, contrast, str(out)) for i, sp, lb, kind, ss in plan]
    for folder in {f"{job.split}/{job.label}" for job in jobs} | {"masks/train", "masks/test"}:
        (out / folder).mkdir(parents=True, exist_ok=True)
    log.info("rendering %d castings into %s with %d worker(s)", n, out, workers)

    bar = tqdm(total=n, desc="casting", unit="img", disable=not progress)
    if workers > 1 and n >= PARALLEL_MIN_IMAGES:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker) as pool:
            records = []
            for record in pool.imap(render_job, jobs, chunksize=8):
                records.append(record)
                bar.update()
    else:
        records = []
        for job in jobs:
            records.append(render_job(job))
            bar.update()
    bar.close()

    _write_mvtec(out, records)
    _write_annotations(out, records)
    summary = Summary(out=out, size=size, seed=seed)
    for record in records:
        job = record["job"]
        summary.images[(job.split, job.label)] += 1
        if job.defect_type:
            summary.defects[(job.split, job.defect_type)] += 1
            summary.areas.append(record["area"])
            summary.components += len(record["boxes"])
    summary.seconds = time.perf_counter() - started
    return summary


# --- `python -m synthetic casting` (the options; synthetic/__main__.py dispatches) ---------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m synthetic casting``; defaults are generate_casting_dataset's."""
    d = defaults_of(generate_casting_dataset)
    parser.add_argument("--out", required=True, help="output folder (must be empty or new)")
    option(parser, d, "--n", "number of images (default 1000)", type=int)
    option(parser, d, "--size", "image side in pixels (>= 64)", type=int)
    option(parser, d, "--seed", "random seed (same seed, same bytes)", type=int)
    option(
        parser,
        d,
        "--classes",
        "binary: def_front/ok_front like the Kaggle set; types: good + one folder per defect",
        choices=("binary", "types"),
    )
    option(parser, d, "--test-frac", "share of images in test/ (default 0.2)", type=float)
    parser.add_argument(
        "--defect-share",
        type=float,
        default=None,
        help="share of defective parts (default 0.567, as in the Kaggle casting set)",
    )
    option(
        parser,
        d,
        "--contrast",
        f"defect visibility (default {DEFAULT_CONTRAST}, tuned for the demo classifier); "
        "lower is harder",
        type=float,
    )
    option(parser, d, "--workers", "worker processes (default 2)", type=int)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what an earlier run wrote in --out (other files are left alone)",
    )


def main(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Validate the options, write the data set and print its summary."""

    def fail(message: str) -> int:
        if parser is not None:
            parser.error(message)
        raise SystemExit(f"error: {message}")

    share = DEFECT_SHARE if args.defect_share is None else args.defect_share
    if args.n < 2:
        return fail(f"--n {args.n}: need at least 2 images (one good, one defective)")
    if args.size < MIN_SIZE:
        return fail(f"--size {args.size}: use at least {MIN_SIZE} pixels")
    if not 0.0 <= args.test_frac < 1.0:
        return fail(f"--test-frac {args.test_frac}: choose a fraction in [0, 1)")
    if not 0.0 < share < 1.0:
        return fail(f"--defect-share {share}: choose a fraction strictly between 0 and 1")
    if args.contrast <= 0:
        return fail(f"--contrast {args.contrast}: must be positive")
    if args.workers < 1:
        return fail(f"--workers {args.workers}: need at least 1")
    try:
        options = {**keyword_options(generate_casting_dataset, args), "defect_share": share}
        summary = generate_casting_dataset(args.out, **options, progress=True)
    except OutputError as err:
        return fail(str(err))
    print(summary.format())
    return 0
