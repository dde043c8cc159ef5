"""A standing pool of scoring workers on a Ray cluster: the models load once, not once per job.

    python -m inspection --engine ray --address auto --pool line4 --workers 16 ...
    python -m inspection.ray_pool --address auto --list
    python -m inspection.ray_pool --address auto --stop line4

A Ray Data job (`inspection.ray_engine`) starts its actors for the job: each imports
TensorFlow, loads the runs and traces the first batch, 10-20 s before the first row, which is
most of a 2,000-image job on our machine. A plant that re-scores archive slices all day keeps a
*standing pool* instead: named, detached actors `NAME-0 .. NAME-(N-1)` in the Ray namespace
`defectlens`, each holding one `Inspector`. The first job with `--pool NAME` creates them; every
later job with the same runs finds them warm and starts scoring at once. A pool idle for
`--pool-idle-min` minutes (default 30) ends itself and gives its CPUs back to the cluster.

The driver sends batches of (index, name, bytes) straight to the actors, at most two per actor
in flight, and keys the rows by input index, so rows leave in input order. The actors are
created with unlimited restarts and task retries: when a node dies, Ray restarts its actor
wherever there is room and runs the batches it held again; the driver keeps the first row per
index, so an image is never lost or counted twice.

A pool is tied to the runs it loaded (their folders and file times) and the Grad-CAM method: a
job asking the same pool for other runs is refused with the fix (stop the pool or name another).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inspection.errors import InspectionError
from inspection.ray_cluster import connect, import_ray
from store import Run
from store.cli_errors import cli_main

NAMESPACE = "defectlens"
DEFAULT_IDLE_MINUTES = 30
IN_FLIGHT_PER_WORKER = 2
# How long the pool may take to start (TensorFlow import and model load per worker), and how
# long a job may go without any batch finishing (a dead actor with nowhere to restart).
START_TIMEOUT_S = 600
STALL_TIMEOUT_S = 600
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


def check_pool_name(name: str, option: str = "--pool") -> str:
    """The name, or an InspectionError naming the option and the rule."""
    if not NAME_PATTERN.fullmatch(name):
        raise InspectionError(
            f"{option} {name!r}: use 1-40 letters, digits, '_', '-' or '.', starting with a "
            "letter or digit"
        )
    return name


def run_fingerprint(run: Run) -> list[tuple[str, int, int]]:
    """(file, size, mtime_ns) of the run folder's files: a retrained run is a different run."""
    files = sorted(p for p in run.path.resolve().iterdir() if p.is_file())
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def pool_config(classifier: Run, autoencoder: Run | None, cam_method: str) -> dict[str, Any]:
    """What a pool's workers hold; a job may use a pool only when this matches exactly."""
    return {
        "classifier": str(classifier.path.resolve()),
        "classifier_files": run_fingerprint(classifier),
        "autoencoder": None if autoencoder is None else str(autoencoder.path.resolve()),
        "autoencoder_files": None if autoencoder is None else run_fingerprint(autoencoder),
        "cam_method": cam_method,
    }


class PoolWorker:
    """One standing actor: builds the Inspector once, scores batches, ends itself when idle."""

    def __init__(self, config: dict[str, Any], threads: int, idle_s: float) -> None:
        import ray
        import tensorflow as tf

        from inspection.pipeline import Inspector

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.config = config
        self.inspector = Inspector.from_runs(
            config["classifier"], config["autoencoder"], config["cam_method"]
        )
        self.node_id = ray.get_runtime_context().get_node_id()
        self.idle_s = idle_s
        self.last_used = time.monotonic()
        self.busy = False
        threading.Thread(target=self._end_when_idle, daemon=True).start()

    def describe(self) -> dict[str, Any]:
        self.last_used = time.monotonic()
        return {"config": self.config, "pid": os.getpid(), "node_id": self.node_id}

    def score(self, batch: list[tuple[int, str, bytes]]) -> dict[str, Any]:
        from inspection.pipeline import Entry, iter_inspect

        self.busy = True
        started = time.perf_counter()
        try:
            entries = [Entry(name, data) for _, name, data in batch]
            rows = [row for _, row in iter_inspect(entries, self.inspector, max(len(batch), 1))]
        finally:
            self.busy = False
            self.last_used = time.monotonic()
        return {
            "rows": [(index, row) for (index, _, _), row in zip(batch, rows, strict=True)],
            "node_id": self.node_id,
            "pid": os.getpid(),
            "seconds": time.perf_counter() - started,
        }

    def _end_when_idle(self) -> None:
        import ray

        while True:
            time.sleep(min(30.0, max(self.idle_s / 4, 0.5)))
            if not self.busy and time.monotonic() - self.last_used > self.idle_s:
                # no_restart: an idle pool gives its CPUs back; Ray must not bring it back.
                ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
                return


def _pool_error(pool: str, held: dict[str, Any], wanted: dict[str, Any]) -> InspectionError:
    def runs(config: dict[str, Any]) -> str:
        names = [Path(config["classifier"]).name]
        if config["autoencoder"]:
            names.append(Path(config["autoencoder"]).name)
        return " + ".join(names) + f" ({config['cam_method']})"

    retrained = (held["classifier"], held["autoencoder"]) == (
        wanted["classifier"],
        wanted["autoencoder"],
    )
    what = "an earlier version of " + runs(held) if retrained else runs(held)
    return InspectionError(
        f"--pool {pool}: the pool holds {what}, not {runs(wanted)}; stop it with "
        f"`python -m inspection.ray_pool --address ADDRESS --stop {pool}` or pick another --pool"
    )


def open_pool(
    ray: Any,
    pool: str,
    workers: int,
    config: dict[str, Any],
    cpus_per_worker: float,
    idle_s: float,
) -> list[Any]:
    """Handles of the pool's first `workers` actors, created where missing, checked for config."""
    remote = ray.remote(PoolWorker)
    threads = max(int(cpus_per_worker), 1)

    def connect() -> list[Any]:
        return [
            remote.options(
                name=f"{pool}-{i}",
                namespace=NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=cpus_per_worker,
                max_restarts=-1,
                max_task_retries=-1,
            ).remote(config, threads, idle_s)
            for i in range(workers)
        ]

    try:
        for attempt in range(2):
            handles = connect()
            try:
                described = ray.get([h.describe.remote() for h in handles], timeout=START_TIMEOUT_S)
                break
            except ray.exceptions.ActorDiedError:
                # A worker ended itself (idle) between the lookup and the call: look again,
                # which creates it anew.
                if attempt:
                    raise
    except ray.exceptions.GetTimeoutError as exc:
        raise InspectionError(
            f"--pool {pool}: {workers} workers did not start within {START_TIMEOUT_S} s; the "
            "cluster may have fewer free CPUs than --workers (ray status shows them)"
        ) from exc
    for held in described:
        if held["config"] != config:
            raise _pool_error(pool, held["config"], config)
    return handles


def score_on_pool(
    ray: Any,
    handles: list[Any],
    items: list[dict[str, Any]],
    batch_size: int,
    on_batch: Callable[[dict[str, Any]], None],
) -> None:
    """Send every work item to the pool in batches; on_batch gets each finished batch's result.

    The least-loaded worker gets the next batch, at most IN_FLIGHT_PER_WORKER per worker, so a
    slow or restarting worker does not hold batches the others could score.
    """
    todo = deque(
        [(item["index"], item["name"], item["data"]) for item in items[i : i + batch_size]]
        for i in range(0, len(items), batch_size)
    )
    load = [0] * len(handles)
    in_flight: dict[Any, int] = {}

    def submit() -> None:
        while todo:
            worker = min(range(len(handles)), key=load.__getitem__)
            if load[worker] >= IN_FLIGHT_PER_WORKER:
                return
            in_flight[handles[worker].score.remote(todo.popleft())] = worker
            load[worker] += 1

    submit()
    while in_flight:
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=STALL_TIMEOUT_S)
        if not ready:
            raise InspectionError(
                f"no batch finished in {STALL_TIMEOUT_S} s: a pool worker died and has no node "
                "to restart on (ray status); rerun the archive when the cluster has room"
            )
        for ref in ready:
            load[in_flight.pop(ref)] -= 1
            on_batch(ray.get(ref))
        submit()


def list_pools(ray: Any) -> dict[str, int]:
    """Pool name -> live workers, from the cluster's named actors in our namespace."""
    pools: dict[str, int] = {}
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == NAMESPACE and "-" in actor["name"]:
            name = actor["name"].rsplit("-", 1)[0]
            pools[name] = pools.get(name, 0) + 1
    return pools


def stop_pool(ray: Any, pool: str) -> int:
    """Kill the pool's actors; how many there were."""
    stopped = 0
    for actor in ray.util.list_named_actors(all_namespaces=True):
        name = actor["name"]
        if actor["namespace"] == NAMESPACE and name.rsplit("-", 1)[0] == pool:
            try:
                ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
            except ValueError:  # ended between the listing and the kill
                continue
            stopped += 1
    return stopped


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inspection.ray_pool",
        description="List or stop the standing scoring pools on a Ray cluster "
        "(started by python -m inspection --engine ray --pool NAME).",
    )
    parser.add_argument(
        "--address", required=True, help="cluster address: auto, HOST:6379 or ray://HOST:10001"
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="print each pool and its workers")
    action.add_argument("--stop", metavar="NAME", help="stop the pool NAME, freeing its CPUs")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.stop is not None:
        check_pool_name(args.stop, "--stop")
    ray = import_ray()
    connect(ray, args.address, 1)
    try:
        if args.list:
            pools = list_pools(ray)
            for name, n in sorted(pools.items()):
                print(f"{name}: {n} workers")
            if not pools:
                print("no standing pools")
        else:
            n = stop_pool(ray, args.stop)
            print(f"stopped pool {args.stop}: {n} workers" if n else f"no pool {args.stop}")
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
