"""Heatmap quality, one small pure function per measure (see docs/metrics.md).

Conventions: `cam` is a float (H, W) map >= 0 (any scale), masks are boolean (H, W) of the same
size, boxes are (x_min, y_min, x_max, y_max) with exclusive max. A map with no energy at all
(all zeros) explains nothing: it scores 0 energy inside, misses the pointing game and has
entropy 1 (as flat as a map can be).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from explain.boxes import cam_to_boxes
from explain.layers import ExplainError
from imaging.parts import part_mask

TOLERANCE_PX = 15
TOLERANCE_AT = 224
IOU_HITS = (0.3, 0.5)
INSTANCE_COVER = 0.5
MAX_BOX_SHARE = 0.5


def tolerance_px(shape: Sequence[int], base: int = TOLERANCE_PX, at: int = TOLERANCE_AT) -> int:
    """Pointing-game tolerance: `base` pixels at `at` px, scaled with the longer image side."""
    return int(round(base * max(shape[0], shape[1]) / at))


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a boolean mask by `radius` pixels (a disc), so near misses count as hits."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), disc).astype(bool)


def energy_inside(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's total heat inside the mask (pass a dilated mask for tolerance)."""
    cam, mask = _pair(cam, mask)
    total = float(cam.sum())
    return float(cam[mask].sum()) / total if total > 0 else 0.0


def pointing_game(cam: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the map's maximum (first one, row-major) falls inside the mask."""
    cam, mask = _pair(cam, mask)
    if cam.max() <= 0:
        return False
    return bool(mask.flat[int(np.argmax(cam))])


def component_boxes(mask: np.ndarray, min_area: int = 1) -> list[tuple[int, int, int, int]]:
    """One box per 8-connected component of a mask (ground-truth boxes from a defect mask)."""
    mask = np.asarray(mask, dtype=np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return [
        (int(x), int(y), int(x + w), int(y + h))
        for x, y, w, h, area in stats[1:count]
        if area >= min_area
    ]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes with exclusive max corners."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def best_box_iou(predicted: Sequence[Sequence[float]], truth: Sequence[Sequence[float]]) -> float:
    """Best IoU over all (predicted, ground-truth) pairs; 0 when either side has no box."""
    return max((box_iou(p, t) for p in predicted for t in truth), default=0.0)


@dataclass(frozen=True)
class InstanceMatch:
    """Defect instances (connected components of the mask) against predicted boxes.

    instances: one box per component; found[i]: some box covers instance i; covered_by[i]:
    the boxes that do; box_correct[j]: box j covers at least one instance (and is not a
    near-whole-image box)."""

    instances: list[tuple[int, int, int, int]]
    areas: list[int]
    found: list[bool]
    covered_by: list[list[int]]
    box_correct: list[bool]

    @property
    def recall(self) -> float | None:
        """Found instances / instances; None on a part without defects."""
        return sum(self.found) / len(self.found) if self.found else None

    @property
    def precision(self) -> float | None:
        """Boxes on a defect / boxes; None when there is no box."""
        return sum(self.box_correct) / len(self.box_correct) if self.box_correct else None


def match_instances(
    boxes: Sequence[Sequence[float]],
    mask: np.ndarray,
    cover: float = INSTANCE_COVER,
    max_box_share: float = MAX_BOX_SHARE,
    min_area: int = 1,
) -> InstanceMatch:
    """Which defect instances the boxes find (docs/metrics.md, "Instance localization").

    An instance is an 8-connected component of the mask with at least `min_area` pixels. A box
    covers an instance when at least `cover` of the instance's pixels lie inside it; a box
    larger than `max_box_share` of the image covers nothing (a box around everything would
    otherwise find everything). One box may cover several instances (a cluster of pinholes)
    and one instance may be covered by several boxes.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ExplainError(f"a defect mask must be 2-D (H, W), got shape {mask.shape}")
    if not 0 < cover <= 1:
        raise ExplainError(f"cover must be in (0, 1], got {cover}")
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    keep = [k for k in range(1, count) if stats[k, 4] >= min_area]
    instances = [
        (
            int(stats[k, 0]),
            int(stats[k, 1]),
            int(stats[k, 0] + stats[k, 2]),
            int(stats[k, 1] + stats[k, 3]),
        )
        for k in keep
    ]
    areas = [int(stats[k, 4]) for k in keep]
    limit = max_box_share * mask.shape[0] * mask.shape[1]
    covered_by: list[list[int]] = [[] for _ in keep]
    box_correct = []
    for j, box in enumerate(boxes):
        x0, y0, x1, y1 = (int(round(v)) for v in box[:4])
        hit = False
        if (x1 - x0) * (y1 - y0) <= limit:
            window = labels[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)]
            inside = (
                np.bincount(window.ravel(), minlength=count) if window.size else np.zeros(count)
            )
            for i, k in enumerate(keep):
                if inside[k] >= cover * stats[k, 4]:
                    covered_by[i].append(j)
                    hit = True
        box_correct.append(hit)
    return InstanceMatch(instances, areas, [bool(c) for c in covered_by], covered_by, box_correct)


def off_part_energy(cam: np.ndarray, part: np.ndarray) -> float:
    """Share of the heat outside the part: attention on background is noise."""
    cam, part = _pair(cam, part)
    total = float(cam.sum())
    return float(cam[~part].sum()) / total if total > 0 else 0.0


def normalized_entropy(cam: np.ndarray) -> float:
    """Entropy of the map as a distribution over pixels / log(pixels): 0 one pixel, 1 flat."""
    cam = _check(cam).ravel().astype(np.float64)
    total = cam.sum()
    if total <= 0 or cam.size < 2:
        return 1.0
    p = cam[cam > 0] / total
    return float(-(p * np.log(p)).sum() / np.log(cam.size))


def blob_count(cam: np.ndarray, threshold: str | float = "otsu", min_area: int = 16) -> int:
    """Separate regions above the box threshold (as `cam_to_boxes` sees them)."""
    if _check(cam).max() <= 0:
        return 0
    return len(cam_to_boxes(cam, threshold=threshold, min_area=min_area))


def mean_intensity(cam: np.ndarray) -> float:
    """Mean heat; on good parts the defect-class map should be low."""
    return float(_check(cam).mean())


def disagreement(cams: Sequence[np.ndarray], size: int = 64) -> float:
    """How differently several runs explain one image: mean over pairs of 1 - Pearson r.

    Maps are compared at ``size`` x ``size`` so runs with different input sizes line up;
    0 means identical patterns, 1 unrelated, 2 opposite. A flat map correlates as 0.
    """
    if len(cams) < 2:
        return 0.0
    flat = np.stack(
        [cv2.resize(_check(c), (size, size), interpolation=cv2.INTER_AREA).ravel() for c in cams]
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(flat), nan=0.0)
    pairs = np.triu_indices(len(cams), k=1)
    return float(np.mean(1.0 - corr[pairs]))


def localization(
    cam: np.ndarray,
    mask: np.ndarray,
    threshold: str | float = "otsu",
    min_area: int = 16,
    boxes: Sequence[Sequence[int]] | None = None,
) -> dict[str, float]:
    """Energy inside, pointing game and best box IoU of one map against its defect mask.

    boxes: the boxes to judge, (x_min, y_min, x_max, y_max) over the map; default: the map's
    own (`cam_to_boxes` at `threshold`, `min_area`)."""
    cam, mask = _pair(cam, mask)
    grown = dilate(mask, tolerance_px(mask.shape))
    if boxes is None:
        boxes = [b.as_tuple() for b in cam_to_boxes(cam, threshold=threshold, min_area=min_area)]
    boxes = [tuple(b) for b in boxes]
    iou = best_box_iou(boxes, component_boxes(mask))
    match = match_instances(boxes, mask)
    return {
        "energy_inside": energy_inside(cam, grown),
        "pointing_hit": float(pointing_game(cam, grown)),
        "box_iou": iou,
        **{f"box_hit@{t}": float(iou >= t) for t in IOU_HITS},
        "n_boxes": float(len(boxes)),
        "n_instances": float(len(match.instances)),
        "n_found": float(sum(match.found)),
        "n_boxes_on_defect": float(sum(match.box_correct)),
        "instance_recall": np.nan if match.recall is None else match.recall,
        "instance_precision": np.nan if match.precision is None else match.precision,
    }


def noise(
    cam: np.ndarray,
    image: np.ndarray | None = None,
    threshold: str | float = "otsu",
    min_area: int = 16,
) -> dict[str, float]:
    """Label-free heatmap noise: off-part energy (needs the image), entropy, blob count, mean."""
    cam = _check(cam)
    out = {
        "entropy": normalized_entropy(cam),
        "blobs": float(blob_count(cam, threshold=threshold, min_area=min_area)),
        "mean_intensity": mean_intensity(cam),
    }
    if image is not None:
        out["off_part_energy"] = off_part_energy(cam, part_mask(image))
    return out


def _check(cam: np.ndarray) -> np.ndarray:
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ExplainError(f"a heatmap must be 2-D (H, W), got shape {cam.shape}")
    return cam


def _pair(cam: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cam, mask = _check(cam), np.asarray(mask, dtype=bool)
    if mask.shape != cam.shape:
        raise ExplainError(
            f"mask shape {mask.shape} does not match heatmap shape {cam.shape}: map the CAM to "
            "the original image first (imaging.Preprocess.cam_to_original)"
        )
    return cam, mask
