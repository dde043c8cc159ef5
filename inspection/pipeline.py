"""A batch of uploaded files through every model: verdict, Grad-CAM boxes, anomaly score, risk.

`boxes` holds the Grad-CAM boxes (label: the defect class) and, on parts the anomaly detector
flags, the regions of its map above the run's pixel threshold (label "anomaly"), so both reach
the review log and its COCO export.

Files stream through in chunks of `batch_size`: each chunk is decoded (imaging.read_image),
preprocessed with each run's recorded Preprocess, scored, and its decoded images dropped, so
memory stays bounded however many files come in. A file that cannot be read, an upload problem
(from imaging.archive) and a repeated image (same sha256) each become a row with a status and
an error; they never stop the batch.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anomaly.scoring import AnomalyDetector
from classification.inference import cam_targets
from classification.operating_point import decide_classes
from explain import cam_to_boxes, compute_cams
from imaging import Preprocess, decode_image, read_file_bytes
from imaging.screening import join_warnings, screen_image
from inspection.errors import InspectionError
from inspection.risk import anomaly_ratio, disagreement, risk_score
from inspection.shared_pass import SharedPass
from store import Run, load_run
from store.thresholds import run_threshold

log = logging.getLogger(__name__)

DEFAULT_BATCH = 32
# "shared": classify, Grad-CAM and the anomaly features in one pass (inspection.shared_pass),
# used instead of "classify" and "gradcam" when the anomaly run reads the classifier's layers
STAGES = ("decode", "preprocess", "shared", "classify", "gradcam", "boxes", "anomaly")
RESULT_COLUMNS = [
    "file_name",
    "sha256",
    "status",
    "error",
    "width",
    "height",
    "predicted_class",
    "defect_probability",
    "class_probabilities",
    "cam_class",
    "boxes",
    "anomaly_score",
    "anomaly_ratio",
    "anomaly_flag",
    "risk_score",
    "disagree",
    "classifier_run",
    "autoencoder_run",
    "warnings",
]
Progress = Callable[[int, int | None], None]


@dataclass
class Forward:
    """What the networks gave for one chunk of decoded images (`Inspector.forward`)."""

    images: list[np.ndarray]
    x_ae: np.ndarray | None  # the chunk prepared for the anomaly run (None without one)
    probs: np.ndarray
    targets: Sequence[int]
    cams: Sequence[np.ndarray]
    features: np.ndarray | None = None  # the anomaly run's patch features (shared pass)


@dataclass
class Inspector:
    """A classifier run (and optionally an autoencoder run), loaded once, scoring chunks.

    `timings` accumulates wall seconds per stage (STAGES) over every chunk scored, and
    `cpu_timings` the process CPU seconds (all threads) spent meanwhile: on a shared machine the
    second says what a stage costs whatever else is running.
    """

    classifier: Run
    autoencoder: Run | None = None
    cam_method: str = "gradcam"
    timings: Counter = field(default_factory=Counter)
    cpu_timings: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        info = self.classifier.info
        if self.classifier.kind != "classifier":
            raise InspectionError(
                f"run {self.classifier.name!r} is a {self.classifier.kind} run; "
                "pick a classifier run for --classifier"
            )
        self.classifier.check_complete()
        self.class_names = [str(c) for c in info["class_names"]]
        self.normal_class = str(info["normal_class"])
        self.normal_index = self.class_names.index(self.normal_class)
        # Defective when the summed defect probability reaches the run's operating point.
        self.defect_threshold = run_threshold(info)
        self.cam_layer = info.get("cam_layer")
        self.preprocess = Preprocess.from_dict(info.get("preprocess") or {"size": info["img_size"]})
        self.model = self.classifier.load_model()
        self.detector: AnomalyDetector | None = None
        if self.autoencoder is not None:
            if self.autoencoder.kind != "autoencoder":
                raise InspectionError(
                    f"run {self.autoencoder.name!r} is a {self.autoencoder.kind} run; "
                    "pick an autoencoder run for --autoencoder"
                )
            self.detector = AnomalyDetector.from_run(self.autoencoder)
        self.shared: SharedPass | None = None
        if self.detector is not None:
            defect = np.array([c != self.normal_class for c in self.class_names])
            self.shared, why = SharedPass.build(
                self.model, self.cam_method, self.cam_layer, self.detector, self.preprocess, defect
            )
            if why:
                log.info("separate model passes for classifier and anomaly run: %s", why)

    @classmethod
    def from_runs(
        cls,
        classifier_run: str | Path | Run,
        autoencoder_run: str | Path | Run | None = None,
        cam_method: str = "gradcam",
    ) -> Inspector:
        """Open runs by name, folder or Run object (a Run keeps its already loaded model)."""
        classifier = classifier_run if isinstance(classifier_run, Run) else load_run(classifier_run)
        autoencoder = autoencoder_run
        if autoencoder is not None and not isinstance(autoencoder, Run):
            autoencoder = load_run(autoencoder)
        return cls(classifier, autoencoder, cam_method)

    @property
    def threshold(self) -> float | None:
        return None if self.detector is None else self.detector.threshold

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.timings[stage] += time.perf_counter() - start
            self.cpu_timings[stage] += time.process_time() - cpu

    def score(self, images: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """Result fields for decoded images (one chunk): verdict, boxes, anomaly score, risk."""
        return self.rows(self.forward(images))

    def forward(self, images: Sequence[np.ndarray]) -> Forward:
        """The network part of `score`: preprocessing, probabilities, Grad-CAMs and (with the
        shared pass) the anomaly features. `rows` does the rest; the line service runs the two
        on different threads, so one chunk's rows are built while the next one is scored."""
        if not images:
            return Forward(list(images), None, np.zeros((0, len(self.class_names))), [], [])
        with self.timed("preprocess"):
            x = self.preprocess.apply_batch(images)
            x_ae = None
            if self.shared is not None:
                x_ae = x  # the shared pass exists only when both runs prepare images alike
            elif self.detector is not None:
                x_ae = self.detector.preprocess.apply_batch(images)
        features = None
        if self.shared is not None:
            with self.timed("shared"):
                probs, cams, targets, features = self.shared(x)
        else:
            with self.timed("classify"):
                probs = np.asarray(self.model.predict_on_batch(x), dtype=np.float64)
            targets = cam_targets(probs, self.class_names, self.normal_class)
            with self.timed("gradcam"):
                cams = compute_cams(
                    self.model,
                    x,
                    method=self.cam_method,
                    layer=self.cam_layer,
                    class_index=targets,
                    batch_size=len(x),
                )
        return Forward(list(images), x_ae, probs, targets, cams, features)

    def rows(self, forward: Forward) -> list[dict[str, Any]]:
        """The result fields of a `forward` chunk: anomaly scores and maps, boxes, risk."""
        images = forward.images
        if not images:
            return []
        scores = np.full(len(images), np.nan)
        amaps: Sequence[Callable[[], Any] | None] = [None] * len(images)
        if self.detector is not None:
            with self.timed("anomaly"):
                scores, amaps = self._anomaly_outputs(forward.x_ae, forward.features)
        rows = []
        for image, p, target, cam, score, amap in zip(
            images, forward.probs, forward.targets, forward.cams, scores, amaps, strict=True
        ):
            rows.append(self._row(image.shape[:2], p, int(target), cam, float(score), amap))
        return rows

    def _anomaly_scores(self, x: np.ndarray) -> np.ndarray:
        """The anomaly detector's image scores (any model kind) for one prepared chunk."""
        return self.detector.score_arrays(x)[0]

    def _anomaly_outputs(
        self, x: np.ndarray, features: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[Callable[[], Any]]]:
        """Image scores (N,) and, per image, a function giving its anomaly map (S, S).

        Detectors that decide from patch distances (PatchCore, PaDiM) build a full map only
        when asked, i.e. for the parts they flag; the others have their maps already.
        `features`: the patch features the shared pass already computed.
        """
        if hasattr(self.detector, "score_patches"):
            scores, patch = self.detector.score_patches(x, features)
            maps_of = self.detector.maps_from_patches
            return scores, [
                lambda i=i: maps_of(patch[i : i + 1], x[i : i + 1])[0] for i in range(len(x))
            ]
        scores, maps, _ = self.detector.score_arrays(x)
        return scores, [lambda m=m: m for m in maps]

    def _anomaly_boxes(self, amap: np.ndarray, shape: tuple[int, int]) -> list[dict[str, Any]]:
        """Predicted defect regions of the anomaly map (pixels at or above the run's pixel
        threshold) in original pixels, label "anomaly", score = region peak / pixel threshold."""
        boxes = getattr(self.detector, "boxes", None)
        level = getattr(self.detector, "pixel_threshold", None)
        if boxes is None or not level:
            return []
        out = []
        for box in boxes(amap):
            mapped = self.detector.preprocess.box_to_original(box, shape)
            out.append(
                {
                    "x_min": mapped.x_min,
                    "y_min": mapped.y_min,
                    "x_max": mapped.x_max,
                    "y_max": mapped.y_max,
                    "score": round(float(box.score) / float(level), 4),
                    "label": "anomaly",
                }
            )
        return out

    def _row(
        self,
        shape: tuple[int, int],
        p: np.ndarray,
        target: int,
        cam: np.ndarray,
        score: float,
        amap: Callable[[], Any] | None = None,
    ) -> dict[str, Any]:
        best = int(
            decide_classes(p[None, :], self.class_names, self.normal_class, self.defect_threshold)[
                0
            ]
        )
        predicted_defect = best != self.normal_index
        defect_probability = float(1.0 - p[self.normal_index])
        flag = None
        if self.detector is not None and self.threshold is not None:
            flag = bool(self.detector.decide(np.array([score]))[0])
        ratio = anomaly_ratio(None if np.isnan(score) else score, self.threshold)
        boxes: list[dict[str, Any]] = []
        # Boxes wherever either model worries, so the reviewer sees where to look.
        if predicted_defect or flag:
            with self.timed("boxes"):
                boxes = self._boxes(cam, shape, self.class_names[target])
        # ... and the anomaly detector's own regions on the parts it flags
        if flag and amap is not None:
            with self.timed("anomaly"):
                full = amap()
            with self.timed("boxes"):
                boxes += self._anomaly_boxes(full, shape)
        return {
            "height": int(shape[0]),
            "width": int(shape[1]),
            "predicted_class": self.class_names[best],
            "defect_probability": defect_probability,
            "class_probabilities": {
                c: round(float(v), 6) for c, v in zip(self.class_names, p, strict=True)
            },
            "cam_class": self.class_names[target],
            "boxes": boxes,
            "anomaly_score": None if np.isnan(score) else score,
            "anomaly_ratio": ratio,
            "anomaly_flag": flag,
            "risk_score": risk_score(defect_probability, ratio),
            "disagree": disagreement(predicted_defect, flag),
        }

    def _boxes(self, cam: np.ndarray, shape: tuple[int, int], label: str) -> list[dict[str, Any]]:
        out = []
        for box in cam_to_boxes(cam):
            mapped = self.preprocess.box_to_original(box, shape)
            out.append(
                {
                    "x_min": mapped.x_min,
                    "y_min": mapped.y_min,
                    "x_max": mapped.x_max,
                    "y_max": mapped.y_max,
                    "score": round(float(box.score), 4),
                    "label": label,
                }
            )
        return out

    def heatmaps(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Grad-CAM of each image's most probable defect class, (H, W) over each image."""
        if not images:
            return []
        x = self.preprocess.apply_batch(images)
        probs = np.asarray(self.model.predict_on_batch(x), dtype=np.float64)
        targets = cam_targets(probs, self.class_names, self.normal_class)
        cams = compute_cams(
            self.model, x, method=self.cam_method, layer=self.cam_layer, class_index=targets
        )
        return [
            self.preprocess.cam_to_original(cam, image.shape[:2])
            for cam, image in zip(cams, images, strict=True)
        ]

    def anomaly_maps(self, images: Sequence[np.ndarray]) -> list[np.ndarray] | None:
        """The autoencoder's anomaly map over each image (None without an autoencoder)."""
        if self.detector is None:
            return None
        prep = self.detector.preprocess
        maps = self.detector.score_arrays(prep.apply_batch(images))[1] if images else []
        return [prep.cam_to_original(m, im.shape[:2]) for m, im in zip(maps, images, strict=True)]


@dataclass
class Entry:
    """One input: its name and bytes, or the upload problem that kept the bytes out."""

    name: str
    data: bytes | None
    problem: str | None = None


def as_entry(item: Any) -> Entry:
    """(name, bytes), an imaging.archive.UploadEntry, or a path -> Entry."""
    if isinstance(item, Entry):
        return item
    if isinstance(item, str | Path):
        path = Path(item)
        try:
            return Entry(str(path), read_file_bytes(path))
        except ValueError as exc:
            return Entry(str(path), None, str(exc))
    if isinstance(item, tuple) and len(item) == 2:
        return Entry(str(item[0]), bytes(item[1]))
    if hasattr(item, "name") and hasattr(item, "data"):
        return Entry(str(item.name), item.data, getattr(item, "problem", None))
    raise InspectionError(
        f"cannot read input {item!r}: pass (name, bytes) pairs, UploadEntry objects or paths"
    )


def _error_row(entry: Entry, sha: str | None, status: str, error: str) -> dict[str, Any]:
    return {"file_name": entry.name, "sha256": sha, "status": status, "error": error}


def iter_inspect(
    entries: Iterable[Any],
    inspector: Inspector,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    total: int | None = None,
) -> Iterator[tuple[Entry, dict[str, Any]]]:
    """(entry, result row) for every input, in input order, scored a chunk at a time.

    Rows have the RESULT_COLUMNS keys that apply: status is "ok", "error" (upload problem or
    undecodable file; `error` says why) or "duplicate" (same sha256 as an earlier input).
    progress(done, total) is called after each chunk; total is len(entries) when it has one.
    """
    if batch_size < 1:
        raise InspectionError(f"batch_size must be at least 1, got {batch_size}")
    if total is None and hasattr(entries, "__len__"):
        total = len(entries)
    runs = {
        "classifier_run": inspector.classifier.name,
        "autoencoder_run": None if inspector.autoencoder is None else inspector.autoencoder.name,
    }
    seen: dict[str, str] = {}
    pending: list[tuple[Entry, dict[str, Any]]] = []
    decoded: list[np.ndarray] = []
    done = 0

    def flush() -> Iterator[tuple[Entry, dict[str, Any]]]:
        nonlocal done
        good = [row for _, row in pending if row["status"] == "ok"]
        for row, scored in zip(good, inspector.score(decoded), strict=True):
            row.update(scored)
        for entry, row in pending:
            yield entry, {**row, **runs}
        done += len(pending)
        pending.clear()
        decoded.clear()
        if progress is not None:
            progress(done, total)

    for item in entries:
        entry = as_entry(item)
        if entry.data is None:
            row = _error_row(entry, None, "error", entry.problem or f"{entry.name}: no data")
        else:
            sha = hashlib.sha256(entry.data).hexdigest()
            if sha in seen:
                problem = f"{entry.name}: same image as {seen[sha]}; skipped"
                row = _error_row(entry, sha, "duplicate", problem)
            else:
                seen[sha] = entry.name
                row = _decode_into(entry, sha, decoded, inspector)
        if row["status"] != "ok":
            log.warning("%s", row["error"])
        pending.append((entry, row))
        # Count every input, not only decodable ones: junk must not pile up in memory.
        if len(pending) >= batch_size:
            yield from flush()
    if pending:
        yield from flush()


def _decode_into(
    entry: Entry, sha: str, decoded: list[np.ndarray], inspector: Inspector
) -> dict[str, Any]:
    with inspector.timed("decode"):
        try:
            image = decode_image(entry.data, name=entry.name)
        except (ValueError, OSError) as exc:
            return _error_row(entry, sha, "error", str(exc))
    decoded.append(image.pixels)
    notes = image.warnings + screen_image(image.pixels, inspector.preprocess.size)
    for note in notes:
        log.warning("%s: %s", entry.name, note)
    return {
        "file_name": entry.name,
        "sha256": sha,
        "status": "ok",
        "error": "",
        "warnings": join_warnings(notes),
    }


def inspect_batch(
    entries: Iterable[Any],
    classifier_run: str | Path | Run | Inspector,
    autoencoder_run: str | Path | Run | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """One row per input (RESULT_COLUMNS), in input order; see `iter_inspect`.

    Inputs: (name, bytes) pairs, imaging.archive.UploadEntry objects or file paths.
    Runs: names, folders or store.Run objects (or a ready Inspector as `classifier_run`).
    """
    inspector = (
        classifier_run
        if isinstance(classifier_run, Inspector)
        else Inspector.from_runs(classifier_run, autoencoder_run)
    )
    return results_frame(row for _, row in iter_inspect(entries, inspector, batch_size, progress))


def results_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Result rows as a DataFrame with RESULT_COLUMNS; sizes stay integers beside failed rows."""
    frame = pd.DataFrame(list(rows), columns=RESULT_COLUMNS)
    for column in ("width", "height"):
        frame[column] = frame[column].astype("Int64")
    return frame
