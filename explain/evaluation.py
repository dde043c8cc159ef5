"""How well a classifier's heatmaps find the defects: CAMs of a run against ground-truth masks.

Defective images with masks get localization metrics (energy inside the dilated mask, pointing
game, best box IoU, instance recall and precision); every image gets the label-free noise
metrics; good parts also report their mean defect-class intensity. Heatmaps are mapped back to
the original image (undoing the run's crop and resize) before anything is compared. With
`faithfulness=N`, a fixed random sample of N defective images also gets the perturbation
metrics of explain.faithfulness (deletion and insertion AUC, ROAD), computed on the model's
input: does the model's defect probability fall when the hot pixels go?
`python -m explain.evaluate` is the command-line shell over `evaluate`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from explain import compute_cams
from explain import metrics as cam_metrics
from explain.boxhead import head_boxes
from explain.layers import ExplainError
from explain.targets import defect_class_index

log = logging.getLogger(__name__)
BOX_STEPS = ("heatmap", "head")
LOCALIZATION = (
    "energy_inside",
    "pointing_hit",
    "box_iou",
    "box_hit@0.3",
    "box_hit@0.5",
    "instance_recall",
    "instance_precision",
)
NOISE = ("off_part_energy", "entropy", "blobs", "mean_intensity")
FAITHFULNESS = ("deletion_auc", "insertion_auc", "road")


def select_items(items: pd.DataFrame, split: str | None, limit: int | None) -> pd.DataFrame:
    """Images to evaluate: defective ones with masks and good ones, `limit` of each at most."""
    if split is not None:
        if split not in set(items["split"]):
            raise ExplainError(
                f"split {split!r} not in the data set (has {sorted(set(items['split']))}); "
                "pass --split with one of those or --split all"
            )
        items = items[items["split"] == split]
    has_mask = items["mask_path"].map(lambda p: isinstance(p, str) and bool(p))
    defects, good = items[items["is_defect"] & has_mask], items[~items["is_defect"]]
    if limit is not None:
        defects, good = defects.head(limit), good.head(limit)
    if defects.empty:
        log.warning("no defective images with masks: only noise metrics will be reported")
    return pd.concat([defects, good]).reset_index(drop=True)


def evaluate_image(
    cam: np.ndarray,
    image: np.ndarray,
    mask: np.ndarray | None,
    threshold,
    min_area: int,
    boxes: list | None = None,
) -> dict[str, float]:
    """All metrics of one original-size heatmap; `boxes` replaces the heatmap's own boxes in
    the box metrics (the box head's)."""
    out = cam_metrics.noise(cam, image, threshold=threshold, min_area=min_area)
    if mask is not None:
        out.update(
            cam_metrics.localization(cam, mask, threshold=threshold, min_area=min_area, boxes=boxes)
        )
    return out


def faithfulness_sample(items: pd.DataFrame, n: int, seed: int = 0) -> set[str]:
    """Paths of `n` defective images drawn at random (the same draw for every run on the same
    data, so recipes are compared on the same images)."""
    paths = sorted(items.loc[items["is_defect"], "path"].astype(str))
    if n <= 0 or not paths:
        return set()
    rng = np.random.default_rng(seed)
    return {paths[i] for i in rng.choice(len(paths), min(n, len(paths)), replace=False)}


def faithfulness_metrics(model: Any, image: np.ndarray, cam: np.ndarray, target: int) -> dict:
    """Deletion and insertion AUC (towards and from a blurred copy) and ROAD of one input-size
    heatmap for class `target`."""
    from explain.faithfulness import deletion_insertion_auc, road

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model(batch, training=False))[:, target]

    # A blurred copy, not black, as the "removed" state (RISE's insertion baseline): a black
    # region is itself a defect to a defect classifier, so deletion towards black never drops.
    sigma = max(image.shape[:2]) / 16
    blurred = cv2.GaussianBlur(np.asarray(image, np.float32), (0, 0), sigma)
    baseline = blurred.reshape(image.shape)
    deletion, insertion = deletion_insertion_auc(predict, image, cam, baseline=baseline)
    return {
        "deletion_auc": deletion,
        "insertion_auc": insertion,
        "road": float(road(predict, image, cam)["road"]),
    }


def _batches(frame: pd.DataFrame, size: int) -> Iterable[pd.DataFrame]:
    for start in range(0, len(frame), size):
        yield frame.iloc[start : start + size]


def evaluate(
    run: Any,
    data: str | Path,
    method: str = "gradcam",
    layer: str | None = None,
    split: str | None = "test",
    limit: int | None = None,
    threshold: str | float = "otsu",
    min_area: int = 16,
    batch_size: int = 16,
    faithfulness: int = 0,
    boxes: str = "heatmap",
    **cam_options: Any,
) -> dict[str, Any]:
    """Per-image metrics and their summaries (per defect type, overall, good parts).

    boxes: "heatmap" (Otsu or `threshold` boxes of the heatmap) or "head" (the run's box head,
    explain.boxhead, gated by the heatmap): what the box metrics judge.

    faithfulness: how many defective images (a fixed random sample) also get deletion and
    insertion AUC and ROAD (about 2 s an image on one core: ROAD's imputations dominate).
    """
    from imaging import Preprocess, discover
    from store import load_run

    run = load_run(run) if isinstance(run, str | Path) else run
    if run.kind != "classifier":
        raise ExplainError(f"run {run.name!r} is a {run.kind} run; evaluate needs a classifier")
    if boxes not in BOX_STEPS:
        raise ExplainError(f"boxes {boxes!r}: choose one of {', '.join(BOX_STEPS)}")
    box_head = None
    if boxes == "head":
        from explain.boxhead import load_box_head

        box_head = load_box_head(run)
        if box_head is None:
            raise ExplainError(
                f"run {run.name!r} has no box head: train one with python -m "
                f"classification.boxhead --run {run.name} --data DIR (data with defect masks), "
                "or use --boxes heatmap"
            )
    model = run.load_model()
    preprocess = Preprocess.from_dict(run.info.get("preprocess"))
    layer = layer or run.info.get("cam_layer")
    spec = discover(data)
    if split == "all" or (split == "test" and "test" not in set(spec.items["split"])):
        split = None
    items = select_items(spec.items, split, limit)
    faithful = faithfulness_sample(items, faithfulness)
    context = _Context(
        run, model, preprocess, method, layer, threshold, min_area, cam_options, box_head
    )
    rows = []
    progress = tqdm(total=len(items), desc=f"{method} on {run.name}", unit="img")
    for chunk in _batches(items, batch_size):
        rows += _chunk_rows(context, chunk, faithful)
        progress.update(len(chunk))
    progress.close()
    frame = pd.DataFrame(rows)
    return {
        "run": run.name,
        "data": str(data),
        "method": method,
        "layer": layer,
        "threshold": threshold,
        "min_area": min_area,
        "boxes": boxes,
        "faithfulness_images": len(faithful),
        "summary": summarize(frame),
        "images": frame.to_dict(orient="records"),
    }


@dataclass(frozen=True)
class _Context:
    run: Any
    model: Any
    preprocess: Any
    method: str
    layer: str | None
    threshold: str | float
    min_area: int
    cam_options: dict[str, Any]
    box_head: Any = None


def _chunk_rows(ctx: _Context, chunk: pd.DataFrame, faithful: set[str]) -> list[dict[str, Any]]:
    """The rows of one batch of images: heatmaps in one call, then each image's metrics."""
    from imaging import read_image, to_gray

    class_names = list(ctx.run.info.get("class_names") or [])
    originals = [read_image(p) for p in chunk["path"]]
    x = ctx.preprocess.apply_batch(originals)
    targets = [defect_class_index(ctx.run.info, t) for t in chunk["defect_type"]]
    probs = np.asarray(ctx.model(x, training=False))
    cams = compute_cams(
        ctx.model, x, method=ctx.method, layer=ctx.layer, class_index=targets, **ctx.cam_options
    )
    head_maps = ctx.box_head.maps(x) if ctx.box_head is not None else [None] * len(x)
    rows = []
    for item, original, cam, prob, target, image, head_map in zip(
        chunk.itertuples(), originals, cams, probs, targets, x, head_maps, strict=True
    ):
        gray = to_gray(original)
        full = ctx.preprocess.cam_to_original(cam, gray.shape)
        mask = None
        if item.is_defect and isinstance(item.mask_path, str) and item.mask_path:
            mask = to_gray(read_image(item.mask_path)) > 127
        boxes = None
        if head_map is not None:
            boxes = [
                b.as_tuple()
                for b in head_boxes(
                    ctx.preprocess.cam_to_original(head_map, gray.shape),
                    full,
                    threshold=ctx.box_head.threshold,
                    min_area=ctx.min_area,
                )
            ]
        predicted = int(prob.argmax()) if len(prob) > 1 else int(prob[0] > 0.5)
        row = {
            "path": item.path,
            "label": item.label,
            "defect_type": item.defect_type or "good",
            "is_defect": bool(item.is_defect),
            "explained_class": class_names[target] if 0 <= target < len(class_names) else target,
            "predicted": class_names[predicted] if predicted < len(class_names) else predicted,
            **evaluate_image(full, gray, mask, ctx.threshold, ctx.min_area, boxes),
        }
        if str(item.path) in faithful:
            explained = target if target >= 0 else predicted
            row.update(faithfulness_metrics(ctx.model, image, cam, explained))
        rows.append(row)
    return rows


def describe(values: pd.Series) -> dict[str, float]:
    """Mean and quantiles: heatmap quality is a distribution, not one number."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return {"n": 0}
    q = v.quantile([0.1, 0.25, 0.5, 0.75, 0.9])
    return {
        "n": int(len(v)),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=0)),
        "p10": float(q[0.1]),
        "p25": float(q[0.25]),
        "median": float(q[0.5]),
        "p75": float(q[0.75]),
        "p90": float(q[0.9]),
    }


def summarize(frame: pd.DataFrame) -> dict[str, Any]:
    """Per defect type, all defects together and good parts, each metric as a distribution."""
    if frame.empty:
        return {}
    out: dict[str, Any] = {}
    defects = frame[frame["is_defect"]]
    groups = [(t, g) for t, g in defects.groupby("defect_type")]
    if not defects.empty:
        groups.append(("all defects", defects))
    good = frame[~frame["is_defect"]]
    if not good.empty:
        groups.append(("good", good))
    for name, group in groups:
        wanted = (*LOCALIZATION, *FAITHFULNESS, *NOISE) if name != "good" else NOISE
        out[name] = {m: describe(group[m]) for m in wanted if m in group}
        if name != "good" and "n_instances" in group:
            out[name].update(pooled_instances(group))
    return out


def pooled_instances(group: pd.DataFrame) -> dict[str, Any]:
    """Instance recall and precision pooled over the group's images (every instance and every
    box counts once), next to the per-image means above."""
    instances, found = group["n_instances"].sum(), group["n_found"].sum()
    boxes, on_defect = group["n_boxes"].sum(), group["n_boxes_on_defect"].sum()
    return {
        "instances_pooled": {
            "instances": int(instances),
            "found": int(found),
            "recall": float(found / instances) if instances else float("nan"),
            "boxes": int(boxes),
            "precision": float(on_defect / boxes) if boxes else float("nan"),
        }
    }


def format_table(summary: dict[str, Any]) -> str:
    """One line per group: means of the metrics (hit rates are means of 0/1)."""
    measured = {k for stats in summary.values() for k, v in stats.items() if v.get("n")}
    faithful = tuple(c for c in FAITHFULNESS if c in measured)
    columns = (*LOCALIZATION, *faithful, *NOISE)
    widths = [max(16, len(c) + 2) for c in columns]
    head = f"{'group':<16}{'n':>5}" + "".join(
        f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)
    )
    lines = [head, "-" * len(head)]
    for name, stats in summary.items():
        n = max((s.get("n", 0) for k, s in stats.items() if k != "instances_pooled"), default=0)
        cells = []
        for c, w in zip(columns, widths, strict=True):
            mean = stats.get(c, {}).get("mean")
            cells.append(f"{'-' if mean is None or math.isnan(mean) else f'{mean:.3f}':>{w}}")
        lines.append(f"{name:<16}{n:>5}" + "".join(cells))
    return "\n".join(lines)
