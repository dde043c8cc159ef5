"""Batch inference with a trained classifier run: decoded images in, one row per image out.

Files are decoded, preprocessed exactly as in training (the run's recorded Preprocess) and
predicted in batches, so memory stays bounded for thousands of files. A file that cannot be read
gets status "error" and the reason; the others are still predicted. `classification/predict.py`
is the command-line shell over `predict_images`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from classification.operating_point import decide_classes
from imaging import IMAGE_EXTENSIONS, DecodedImage, Preprocess, decode_image
from imaging.screening import join_warnings, screen_image
from store import Run, load_run
from store.thresholds import run_threshold

log = logging.getLogger(__name__)

DEFAULT_BATCH = 32
BOX_STEPS = ("auto", "heatmap", "head")  # where boxes come from (explain.boxhead)


class PredictError(ValueError):
    """Inputs or a run that batch prediction cannot use."""


@dataclass
class _Item:
    name: str
    source: Any


def cam_targets(probabilities: np.ndarray, class_names: Sequence[str], normal: str) -> np.ndarray:
    """Class whose heatmap to show per image: the most probable defect class.

    For a binary model that is always the defect class, so heatmaps of good parts show how
    little defect evidence there is rather than why they look good.
    """
    defect = np.array([c != normal for c in class_names])
    masked = np.where(defect[None, :], probabilities, -np.inf)
    return masked.argmax(axis=1)


def list_images(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """Image files under `folder` (recursive, sorted) and the other files that were skipped."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    return images, [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]


def _items(images: Iterable[Any]) -> list[_Item]:
    """Normalise inputs: paths, decoded arrays, bytes/uploads, or (name, any of those)."""
    items = []
    for i, source in enumerate(images):
        if isinstance(source, tuple) and len(source) == 2:
            name, source = source
        elif isinstance(source, str | Path):
            name = str(source)
        else:
            name = getattr(source, "name", None) or f"image_{i}"
        items.append(_Item(str(name), source))
    return items


def _decode(item: _Item) -> DecodedImage:
    if isinstance(item.source, np.ndarray):
        return DecodedImage(item.source)
    if isinstance(item.source, str | Path):
        return decode_image(item.source)
    return decode_image(item.source, name=item.name)


def _chunks(items: list[_Item], size: int) -> Iterator[list[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _open_run(run: str | Path | Run) -> Run:
    run = run if isinstance(run, Run) else load_run(run)
    if run.kind != "classifier":
        raise PredictError(f"run {run.name!r} is a {run.kind} run; pick a classifier run")
    return run.check_complete()


def predict_images(
    run: str | Path | Run,
    images_or_paths: Iterable[Any],
    cam: str | None = None,
    boxes: bool = False,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
    keep_cams: bool = False,
    threshold: float | None = None,
    box_step: str = "auto",
) -> pd.DataFrame:
    """One row per input: status, error, class probabilities, prediction (+ CAM peak, boxes).

    The prediction is taken at the run's operating point: defective when the summed defect
    probability is at or above `threshold` (default: the run's recorded one, 0.5 for runs
    without), the type by argmax among defect classes (classification.operating_point).

    Inputs may be file paths, decoded images (numpy), bytes or file-like uploads, or
    (name, source) pairs. With `cam`, the heatmap of the most probable defect class is computed
    (explain.compute_cams) and its peak reported in original pixels; `boxes` (implies a CAM,
    gradcam by default) adds explain.cam_to_boxes boxes, mapped to original pixels, for images
    predicted defective, as a JSON list. box_step: "heatmap" (the heatmap's own boxes), "head"
    (the run's box head, explain.boxhead, gated by the heatmap) or "auto" (the head when the
    run has one), as in Heatmap to Boxes. `keep_cams` adds a `cam` column holding each heatmap
    over the model input (not written to CSV).
    """
    run = _open_run(run)
    info = run.info
    class_names = list(info["class_names"])
    normal = info["normal_class"]
    threshold = run_threshold(info) if threshold is None else float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise PredictError(f"--threshold {threshold}: must be between 0 and 1")
    preprocess = Preprocess.from_dict(info["preprocess"])
    model = run.load_model()
    if boxes and cam is None:
        cam = "gradcam"
    if box_step not in BOX_STEPS:
        raise PredictError(f"--box-step {box_step!r}: choose one of {', '.join(BOX_STEPS)}")
    make_boxes = None
    if cam is not None:
        try:
            from explain import compute_cams
        except ImportError as exc:
            raise PredictError(
                f"heatmaps need the explain package, which failed to import: {exc}"
            ) from exc
    if boxes:
        make_boxes = _box_maker(run, model, box_step)

    items = _items(images_or_paths)
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(items), unit="img", disable=not progress, desc="predicting")
    for chunk in _chunks(items, max(1, batch_size)):
        chunk_rows, decoded, good = _decode_chunk(chunk, preprocess)
        rows += chunk_rows
        if decoded:
            x = np.stack(decoded)
            probabilities = np.asarray(model.predict_on_batch(x), dtype=float)
            _fill_predictions(good, probabilities, class_names, normal, threshold)
            if cam is not None:
                targets = cam_targets(probabilities, class_names, normal)
                maps = compute_cams(
                    model, x, method=cam, layer=info.get("cam_layer"), class_index=targets
                )
                heads = make_boxes.maps(x) if make_boxes else [None] * len(x)
                for row, heat, head in zip(good, maps, heads, strict=True):
                    _fill_cam(row, heat, head, cam, preprocess, make_boxes, keep_cams)
        bar.update(len(chunk))
    bar.close()
    frame = pd.DataFrame(rows, columns=_columns(class_names, cam, boxes, keep_cams))
    frame.attrs.update(run=run.name, threshold=threshold)
    if make_boxes is not None:
        frame.attrs["box_step"] = make_boxes.step
    # Unreadable rows leave these empty: nullable integers keep them integral in the CSV.
    for column in ("width", "height", "cam_peak_x", "cam_peak_y"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame


def _decode_chunk(
    chunk: list[_Item], preprocess: Preprocess
) -> tuple[list[dict[str, Any]], list[np.ndarray], list[dict[str, Any]]]:
    """(a row per item, the prepared images that decoded, their rows): an unreadable item gets
    an error row and is left out of the model's batch."""
    rows, decoded, good = [], [], []
    for item in chunk:
        row: dict[str, Any] = {"file": item.name, "status": "ok", "error": ""}
        try:
            decoded_image = _decode(item)
            image = decoded_image.pixels
            prepared = preprocess.apply(image)
        except (ValueError, OSError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            row.update(status="error", error=reason)
            log.warning("%s: %s", item.name, reason)
        else:
            notes = decoded_image.warnings + screen_image(image, preprocess.size)
            row.update(
                height=int(image.shape[0]),
                width=int(image.shape[1]),
                warnings=join_warnings(notes),
            )
            decoded.append(prepared)
            good.append(row)
        rows.append(row)
    return rows, decoded, good


def _fill_predictions(
    rows: list[dict],
    probabilities: np.ndarray,
    class_names: list[str],
    normal: str,
    threshold: float,
) -> None:
    normal_index = class_names.index(normal)
    decided = decide_classes(probabilities, class_names, normal, threshold)
    for row, probs, best in zip(rows, probabilities, decided, strict=True):
        row.update(
            predicted_class=class_names[best],
            confidence=float(probs[best]),
            defect_probability=float(1.0 - probs[normal_index]),
            is_defect=bool(best != normal_index),
            **{f"p_{name}": float(p) for name, p in zip(class_names, probs, strict=True)},
        )


@dataclass
class _BoxMaker:
    """Boxes of one heatmap over the model input: the heatmap's own, or the box head's."""

    step: str
    head: Any = None

    def maps(self, x: np.ndarray) -> list:
        return list(self.head.maps(x)) if self.head is not None else [None] * len(x)

    def __call__(self, heat: np.ndarray, head_map: np.ndarray | None) -> list:
        from explain import cam_to_boxes
        from explain.boxhead import head_boxes

        if head_map is None:
            return cam_to_boxes(heat)
        prob = cv2.resize(head_map, heat.shape[::-1], interpolation=cv2.INTER_LINEAR)
        return head_boxes(prob, heat, threshold=self.head.threshold)


def _box_maker(run: Any, model: Any, step: str) -> _BoxMaker:
    if step == "heatmap":
        return _BoxMaker("heatmap")
    from explain.boxhead import load_box_head

    head = load_box_head(run, model)
    if head is not None:
        return _BoxMaker("head", head)
    if step == "head":
        raise PredictError(
            f"--box-step head: run {run.name!r} has no box head; train one with python -m "
            f"classification.boxhead --run {run.name} --data DIR (data with defect masks), or use "
            "--box-step heatmap"
        )
    return _BoxMaker("heatmap")


def _fill_cam(
    row: dict,
    heat: np.ndarray,
    head_map: np.ndarray | None,
    method: str,
    preprocess: Preprocess,
    make_boxes: _BoxMaker | None,
    keep_cams: bool,
) -> None:
    shape = (row["height"], row["width"])
    peak_y, peak_x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    peak = preprocess.box_to_original(
        (peak_x + 0.5, peak_y + 0.5, peak_x + 0.5, peak_y + 0.5), shape
    )
    row.update(cam_method=method, cam_peak_x=peak[0], cam_peak_y=peak[1])
    if make_boxes is not None:
        found = make_boxes(heat, head_map) if row["is_defect"] else []
        mapped = [preprocess.box_to_original(b, shape) for b in found]
        row["boxes"] = json.dumps([_box_dict(b) for b in mapped])
    if keep_cams:
        row["cam"] = np.asarray(heat, dtype=np.float32)


def _box_dict(box: Any) -> dict[str, Any]:
    names = ("x_min", "y_min", "x_max", "y_max")
    values = [getattr(box, n) for n in names] if hasattr(box, "x_min") else list(box)[:4]
    out = {n: int(v) for n, v in zip(names, values, strict=True)}
    score = getattr(box, "score", None)
    if score is None and not hasattr(box, "x_min") and len(box) > 4:
        score = box[4]
    if score is not None:
        out["score"] = round(float(score), 4)
    return out


def _columns(class_names: list[str], cam: str | None, boxes: bool, keep_cams: bool) -> list[str]:
    columns = ["file", "status", "error", "width", "height", "predicted_class", "confidence"]
    columns += ["defect_probability", "is_defect", *(f"p_{c}" for c in class_names)]
    if cam is not None:
        columns += ["cam_method", "cam_peak_x", "cam_peak_y"]
    if boxes:
        columns.append("boxes")
    if keep_cams:
        columns.append("cam")
    return [*columns, "warnings"]


def collect_inputs(images: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """Expand folders into their image files; returns (inputs, skipped non-image files)."""
    inputs: list[Path] = []
    skipped: list[Path] = []
    for entry in map(Path, images):
        if entry.is_dir():
            found, other = list_images(entry)
            inputs += found
            skipped += other
        else:
            # Explicit files are always tried, so a missing or bad one is reported, not dropped.
            inputs.append(entry)
    return inputs, skipped


def summarize(frame: pd.DataFrame, skipped: Sequence[Path], seconds: float) -> str:
    """The closing summary of the CLI: counts, classes, errors."""
    ok = frame[frame.status == "ok"]
    errors = frame[frame.status != "ok"]
    lines = [
        f"{len(frame)} files in {seconds:.1f} s: {len(ok)} predicted, {len(errors)} unreadable"
    ]
    if len(ok):
        counts = ok.predicted_class.value_counts()
        lines.append("predicted: " + ", ".join(f"{c}={n}" for c, n in counts.items()))
    warned = int(ok.warnings.fillna("").astype(bool).sum())
    if warned:
        lines.append(f"{warned} predicted with a warning (see the warnings column)")
    for row in errors.head(10).itertuples():
        lines.append(f"  unreadable: {row.file}: {row.error}")
    if len(errors) > 10:
        lines.append(f"  ... and {len(errors) - 10} more (see the status/error columns)")
    if skipped:
        lines.append(f"skipped {len(skipped)} non-image files (e.g. {skipped[0].name})")
    return "\n".join(lines)
