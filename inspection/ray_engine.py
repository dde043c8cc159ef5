"""The same batch inspection on a Ray cluster: Ray Data shards the inputs over an actor pool.

    rows = iter_inspect_ray(entries, "demo_flip", "demo_anomaly", address="auto", workers=8)

The driver reads the inputs exactly as the local engine does (the caller passes the same
entries: imaging.archive's safe zip intake, upload problems as entries), hashes them and marks
repeats, so upload problems and duplicates get the very rows `iter_inspect` gives them. Every
other entry goes to Ray Data as (index, name, bytes); `map_batches` runs it through a pool of
`workers` actors, each of which builds the existing `Inspector` once and scores its batches
with `iter_inspect` itself (decode, preprocess, classify, Grad-CAM, boxes, anomaly). Results
come back keyed by input index, so rows leave in input order however the batches were spread.

Ray Data restarts an actor whose worker or node dies and retries its batches; the driver
keeps one row per index, so an image is never lost or counted twice.

Ray is an optional extra (`pip install -e .[ray]`): this module imports it only when a run
starts and names the fix when it is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspection.pipeline import (
    DEFAULT_BATCH,
    Entry,
    InspectionError,
    Inspector,
    as_entry,
    iter_inspect,
)
from inspection.ray_cluster import RayEngineError, connect, import_ray
from inspection.ray_pool import (
    DEFAULT_IDLE_MINUTES,
    check_pool_name,
    open_pool,
    pool_config,
    score_on_pool,
)
from store import Run, load_run

# How long the actor pool may take to start (TensorFlow import and model load per worker).
ACTOR_START_TIMEOUT_S = 600


@dataclass(frozen=True)
class BatchRecord:
    """Where one batch ran: node, worker process, images and seconds spent scoring it."""

    node_id: str
    pid: int
    images: int
    seconds: float


class ScoreActor:
    """One Ray actor: builds the Inspector once, then scores batches of (index, name, data)."""

    def __init__(
        self, classifier: str, autoencoder: str | None, cam_method: str, threads: int
    ) -> None:
        import ray
        import tensorflow as tf

        # One actor per CPU it was given: TF's own pool would otherwise take every core.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.inspector = Inspector.from_runs(classifier, autoencoder, cam_method)
        self.node_id = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        pairs = zip(batch["name"], batch["data"], strict=True)
        entries = [Entry(str(name), bytes(data)) for name, data in pairs]
        rows = [row for _, row in iter_inspect(entries, self.inspector, max(len(entries), 1))]
        n = len(rows)
        seconds = time.perf_counter() - started
        return {
            "index": np.asarray(batch["index"], dtype=np.int64),
            "row": np.array([json.dumps(row) for row in rows], dtype=object),
            "node_id": np.array([self.node_id] * n, dtype=object),
            "pid": np.full(n, os.getpid(), dtype=np.int64),
            "batch_images": np.full(n, n, dtype=np.int64),
            "batch_seconds": np.full(n, seconds, dtype=np.float64),
        }


def open_runs(
    classifier: str | Path | Run, autoencoder: str | Path | Run | None
) -> tuple[Run, Run | None]:
    """The two runs, checked for kind on the driver (no model is loaded here)."""
    cls_run = classifier if isinstance(classifier, Run) else load_run(classifier)
    ae_run = autoencoder
    if ae_run is not None and not isinstance(ae_run, Run):
        ae_run = load_run(ae_run)
    if cls_run.kind != "classifier":
        raise InspectionError(
            f"run {cls_run.name!r} is a {cls_run.kind} run; pick a classifier run for --classifier"
        )
    if ae_run is not None and ae_run.kind != "autoencoder":
        raise InspectionError(
            f"run {ae_run.name!r} is a {ae_run.kind} run; pick an autoencoder run for --autoencoder"
        )
    return cls_run, ae_run


def _screen_entries(
    entries: Iterable[Any], runs: dict[str, str | None]
) -> tuple[list[Entry], dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """Inputs, the rows settled on the driver (upload problems, repeats), the work items."""
    inputs: list[Entry] = []
    settled: dict[int, dict[str, Any]] = {}
    items: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for index, item in enumerate(entries):
        entry = as_entry(item)
        inputs.append(entry)
        if entry.data is None:
            error = entry.problem or f"{entry.name}: no data"
            settled[index] = _problem_row(entry, None, "error", error, runs)
            continue
        sha = hashlib.sha256(entry.data).hexdigest()
        if sha in seen:
            error = f"{entry.name}: same image as {seen[sha]}; skipped"
            settled[index] = _problem_row(entry, sha, "duplicate", error, runs)
            continue
        seen[sha] = entry.name
        items.append({"index": index, "name": entry.name, "data": entry.data})
    return inputs, settled, items


def _problem_row(
    entry: Entry, sha: str | None, status: str, error: str, runs: dict[str, str | None]
) -> dict[str, Any]:
    return {"file_name": entry.name, "sha256": sha, "status": status, "error": error, **runs}


def iter_inspect_ray(
    entries: Iterable[Any],
    classifier: str | Path | Run,
    autoencoder: str | Path | Run | None = None,
    *,
    address: str | None = None,
    workers: int = 1,
    batch_size: int = DEFAULT_BATCH,
    cam_method: str = "gradcam",
    cpus_per_worker: float = 1,
    records: list[BatchRecord] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    pool: str | None = None,
    pool_idle_s: float = DEFAULT_IDLE_MINUTES * 60,
) -> Iterator[tuple[Entry, dict[str, Any]]]:
    """(entry, result row) for every input, in input order, like `iter_inspect`.

    address: "auto", "HOST:PORT" or "ray://HOST:10001" to use a running cluster; None starts a
    local Ray with `workers` CPUs for this call and stops it afterwards. The run folders must be
    readable at the same path on every node (shared storage or the same checkout).
    records, when given, receives one BatchRecord per scored batch (where it ran, how long).
    pool: score on the standing pool of that name (`inspection.ray_pool`) instead of a Ray Data
    job; it needs a running cluster (an address, or Ray already initialised here) and stays for
    the next job until idle for pool_idle_s seconds.
    Options, runs and Ray itself are checked here, before anything is read or scored.
    """
    if workers < 1:
        raise InspectionError(f"workers must be at least 1, got {workers}")
    if batch_size < 1:
        raise InspectionError(f"batch_size must be at least 1, got {batch_size}")
    ray = import_ray()
    if pool is not None:
        check_pool_name(pool)
        if address is None and not ray.is_initialized():
            raise InspectionError(
                f"--pool {pool}: a standing pool lives on a running cluster; start one with "
                "`ray start --head` and pass --address auto (or HOST:6379, ray://HOST:10001)"
            )
        if pool_idle_s <= 0:
            raise InspectionError(f"pool_idle_s must be positive, got {pool_idle_s}")
    cls_run, ae_run = open_runs(classifier, autoencoder)
    job = _RayJob(
        ray, cls_run, ae_run, address, workers, batch_size, cam_method, cpus_per_worker,
        pool, pool_idle_s,
    )  # fmt: skip
    return job.run(entries, records, progress)


@dataclass
class _RayJob:
    ray: Any
    classifier: Run
    autoencoder: Run | None
    address: str | None
    workers: int
    batch_size: int
    cam_method: str
    cpus_per_worker: float
    pool: str | None = None
    pool_idle_s: float = DEFAULT_IDLE_MINUTES * 60

    def run(
        self,
        entries: Iterable[Any],
        records: list[BatchRecord] | None,
        progress: Callable[[int, int | None], None] | None,
    ) -> Iterator[tuple[Entry, dict[str, Any]]]:
        runs = {
            "classifier_run": self.classifier.name,
            "autoencoder_run": None if self.autoencoder is None else self.autoencoder.name,
        }
        inputs, rows, items = _screen_entries(entries, runs)
        if items:
            input_bytes = sum(len(item["data"]) for item in items)
            started_ray = connect(self.ray, self.address, self.workers, input_bytes)
            sink = _Sink(rows, records, progress, len(inputs) - len(items), len(inputs))
            score = self.score if self.pool is None else self.score_on_pool
            try:
                score(items, sink)
            except self.ray.exceptions.RayError as exc:
                raise RayEngineError(f"the Ray job failed: {str(exc).splitlines()[0]}") from exc
            finally:
                if started_ray:
                    self.ray.shutdown()
        missing = [inputs[i].name for i in range(len(inputs)) if i not in rows]
        if missing:
            raise RayEngineError(
                f"the Ray job returned no result for {len(missing)} inputs "
                f"(first: {missing[0]}); rerun the archive"
            )
        for index, entry in enumerate(inputs):
            yield entry, rows[index]

    def score(self, items: list[dict[str, Any]], sink: _Sink) -> None:
        """Every work item through a Ray Data actor pool started for this job."""
        ray = self.ray
        autoencoder = None if self.autoencoder is None else str(self.autoencoder.path.resolve())
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        # The whole pool is up before the first batch goes out, so batches spread over every
        # worker; a cluster too small for the pool fails here with Ray's message.
        context.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        dataset = ray.data.from_items(items, override_num_blocks=-(-len(items) // self.batch_size))
        scored = dataset.map_batches(
            ScoreActor,
            fn_constructor_kwargs={
                "classifier": str(self.classifier.path.resolve()),
                "autoencoder": autoencoder,
                "cam_method": self.cam_method,
                "threads": max(int(self.cpus_per_worker), 1),
            },
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=self.cpus_per_worker,
        )
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            pairs = zip(batch["index"], batch["row"], strict=True)
            rows = [(int(index), json.loads(row)) for index, row in pairs]
            sink.add(rows, _records(batch) if len(rows) else [])

    def score_on_pool(self, items: list[dict[str, Any]], sink: _Sink) -> None:
        """Every work item through the standing pool `self.pool` (inspection.ray_pool)."""
        config = pool_config(self.classifier, self.autoencoder, self.cam_method)
        handles = open_pool(
            self.ray, self.pool, self.workers, config, self.cpus_per_worker, self.pool_idle_s
        )

        def on_batch(result: dict[str, Any]) -> None:
            record = BatchRecord(
                result["node_id"], result["pid"], len(result["rows"]), result["seconds"]
            )
            sink.add(result["rows"], [record] if result["rows"] else [])

        score_on_pool(self.ray, handles, items, self.batch_size, on_batch)


@dataclass
class _Sink:
    """Where scored rows go: the first row per input index counts (a retried batch's repeat
    does not), with batch records and progress."""

    rows: dict[int, dict[str, Any]]
    records: list[BatchRecord] | None
    progress: Callable[[int, int | None], None] | None
    done: int
    total: int

    def add(self, rows: list[tuple[int, dict[str, Any]]], records: list[BatchRecord]) -> None:
        fresh = {index: row for index, row in rows if index not in self.rows}
        self.rows.update(fresh)
        if self.records is not None:
            self.records.extend(records)
        self.done += len(fresh)
        if self.progress is not None:
            self.progress(self.done, self.total)


def _records(batch: dict[str, np.ndarray]) -> list[BatchRecord]:
    """One BatchRecord per (pid, seconds) group in an output block (blocks may be merged)."""
    seen: dict[tuple[str, int, float], BatchRecord] = {}
    for node, pid, n, seconds in zip(
        batch["node_id"], batch["pid"], batch["batch_images"], batch["batch_seconds"], strict=True
    ):
        key = (str(node), int(pid), float(seconds))
        seen.setdefault(key, BatchRecord(str(node), int(pid), int(n), float(seconds)))
    return list(seen.values())


def batch_summary(records: list[BatchRecord]) -> str:
    """One line: batches and images per node (short node ids), as the CLI prints it."""
    per_node: dict[str, list[int]] = {}
    for record in records:
        per_node.setdefault(record.node_id, []).append(record.images)
    parts = [f"{node[:8]}: {len(n)} batches, {sum(n)} images" for node, n in per_node.items()]
    return f"ray: {len(records)} batches on {len(per_node)} nodes ({'; '.join(parts)})"
