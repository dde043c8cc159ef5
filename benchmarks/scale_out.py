"""Archive scoring throughput: the local engine against Ray Data with 1 and 2 workers.

Each configuration runs in its own fresh process (TensorFlow's thread pools are fixed at
start), on the same images, already read into memory:

- local:      `iter_inspect` in one process, TensorFlow's default threads (every core)
- local-1cpu: the same process pinned to one core (sched_setaffinity), one TensorFlow and one
              BLAS thread: what one Ray worker of 1 CPU gets, the fair baseline for ray-1
- ray-N:      `iter_inspect_ray` on a local Ray cluster started beforehand (not timed, like an
              existing cluster), N actors of 1 CPU each, each loading the runs once
- pool-N:     `iter_inspect_ray(pool=...)` on the same kind of cluster, N standing workers of
              1 CPU (inspection.ray_pool) already warm: a first job of one batch per worker
              created them (not timed, like a pool that serves jobs all day), then the timed job

Seconds are wall time from the call to the last row, model loading included (the local
engine loads its models in the timed part too). Each configuration also reports its start-up
(call to the first row: for Ray the actor processes, TensorFlow import, model load and the
first batch's graph tracing) and its steady rate (rows after the first / seconds from the
first row to the last), which is what an archive far larger than the benchmark sees. Ratios
are given both ways. Per-worker images/s comes from the workers' own batch timings; the local
configurations also report CPU seconds per image. Writes benchmarks/results/scale_out.json and
prints a table, with the load.

    python benchmarks/scale_out.py [--n 2000] [--configs local,local-1cpu,ray-1,ray-2,pool-1,pool-2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "scale_out.json"
DEFAULT_IMAGES = str(Path(__file__).resolve().parents[1] / "data" / "casting")


def image_files(root: str, n: int) -> list[tuple[str, bytes]]:
    """The first n images (train, then test; masks excluded) as (relative name, bytes)."""
    base = Path(root)
    paths = [p for split in ("train", "test") for p in sorted((base / split).rglob("*.png"))]
    if len(paths) < n:
        raise SystemExit(f"error: {root} holds {len(paths)} images, fewer than --n {n}")
    return [(str(p.relative_to(base)), p.read_bytes()) for p in paths[:n]]


def run_config(args: argparse.Namespace) -> dict:
    """One configuration in this process; returns its measurements."""
    config = args.config
    if config == "local-1cpu":
        import tensorflow as tf
        from threadpoolctl import threadpool_limits

        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        threadpool_limits(1, user_api="blas")
    files = image_files(args.images, args.n)
    arrivals: list[tuple[float, int]] = []  # (seconds since the call, rows so far)
    from inspection.pipeline import Inspector, iter_inspect

    result: dict = {"config": config, "images": len(files)}
    if config.startswith("local"):
        cpu_started = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        inspector = Inspector.from_runs(args.classifier, args.autoencoder)
        load = time.perf_counter() - started
        rows = []
        for _, row in iter_inspect(files, inspector, args.batch_size):
            rows.append(row)
            arrivals.append((time.perf_counter() - started, len(rows)))
        result.update(load_seconds=round(load, 2), stage_seconds=dict(inspector.timings))
        # CPU seconds per image: what one core must spend whatever the machine's load.
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        used = cpu.ru_utime + cpu.ru_stime - cpu_started.ru_utime - cpu_started.ru_stime
        result["cpu_seconds_per_image"] = round(used / len(files), 4)
    else:
        import ray

        from inspection.ray_engine import iter_inspect_ray

        workers = int(config.split("-")[1])
        pool = "bench" if config.startswith("pool") else None
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            object_store_memory=max(400 << 20, 2 * sum(len(data) for _, data in files)),
            logging_level="ERROR",
            log_to_driver=False,
        )
        if pool is not None:  # the pool's first job: creates and warms it, not timed
            warm = files[: workers * args.batch_size]
            list(iter_inspect_ray(warm, args.classifier, args.autoencoder, workers=workers,
                                  batch_size=args.batch_size, pool=pool))  # fmt: skip
        records = []
        started = time.perf_counter()
        rows = [
            row
            for _, row in iter_inspect_ray(
                files,
                args.classifier,
                args.autoencoder,
                workers=workers,
                batch_size=args.batch_size,
                records=records,
                pool=pool,
                progress=lambda done, _total: arrivals.append(
                    (time.perf_counter() - started, done)
                ),
            )
        ]
        per_worker = {}
        for record in records:
            images, seconds = per_worker.get(record.pid, (0, 0.0))
            per_worker[record.pid] = (images + record.images, seconds + record.seconds)
        result["worker_images_per_s"] = [
            round(images / seconds, 2) for images, seconds in per_worker.values()
        ]
        result["batches"] = len(records)
    seconds = time.perf_counter() - started
    if not config.startswith("local"):
        ray.shutdown()
    scored = sum(row["status"] == "ok" for row in rows)
    first_s, first_rows = arrivals[0]
    steady = (len(rows) - first_rows) / max(seconds - first_s, 1e-9)
    result.update(
        seconds=round(seconds, 2),
        images_per_s=round(len(rows) / seconds, 2),
        startup_seconds=round(first_s, 2),
        steady_images_per_s=round(steady, 2),
        scored=scored,
        defect_probability_sum=round(sum(r.get("defect_probability") or 0 for r in rows), 4),
    )
    return result


def build_report(args: argparse.Namespace, load_before: tuple, results: list[dict]) -> dict:
    """The JSON report: settings, load, each configuration's numbers and the ratios."""
    by = {r["config"]: r for r in results}
    summary = {}
    for engine in ("ray", "pool"):
        one, two = f"{engine}-1", f"{engine}-2"
        for base in ("local", "local-1cpu"):
            if one in by and base in by:
                # overhead: how much longer Ray takes for the same images (1 - its speed ratio)
                total = by[one]["seconds"] / by[base]["seconds"] - 1
                steady = by[base]["steady_images_per_s"] / by[one]["steady_images_per_s"] - 1
                key = base.replace("-", "_")
                summary[f"{engine}1_overhead_vs_{key}"] = round(total, 3)
                summary[f"{engine}1_overhead_vs_{key}_steady"] = round(steady, 3)
        if one in by and two in by:
            summary[f"{engine}_speedup_2_workers"] = round(
                by[one]["seconds"] / by[two]["seconds"], 3
            )
            summary[f"{engine}_speedup_2_workers_steady"] = round(
                by[two]["steady_images_per_s"] / by[one]["steady_images_per_s"], 3
            )
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "n": args.n,
        "batch_size": args.batch_size,
        "classifier": args.classifier,
        "autoencoder": args.autoencoder,
        "results": results,
        "summary": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default=DEFAULT_IMAGES, help="casting set (train/, test/)")
    parser.add_argument("--n", type=int, default=2000, help="images per configuration")
    parser.add_argument("--classifier", default="demo_flip")
    parser.add_argument("--autoencoder", default="demo_anomaly")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--configs", default="local,local-1cpu,ray-1,ray-2,pool-1,pool-2")
    parser.add_argument("--config", help=argparse.SUPPRESS)  # one configuration, in a child
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.config:
        print(json.dumps(run_config(args)))
        return
    load_before = os.getloadavg()
    results = []
    for config in args.configs.split(","):
        command = [sys.executable, __file__, *sys.argv[1:], "--config", config]
        load = os.getloadavg()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"error: configuration {config} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["load_before"] = [round(x, 2) for x in load]
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
        results.append(result)
        print(f"{config}: {result['seconds']} s, {result['images_per_s']} images/s", flush=True)
        # Written after every configuration, so a long run that fails later keeps its numbers.
        report = build_report(args, load_before, results)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    summary = report["summary"]
    print(
        f"\n{'config':11} {'seconds':>8} {'images/s':>9} {'start-up s':>10} {'steady/s':>9} "
        f"{'load 1-min before/after':>24}"
    )
    for r in results:
        load = f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f}"
        print(
            f"{r['config']:11} {r['seconds']:8.1f} {r['images_per_s']:9.2f} "
            f"{r['startup_seconds']:10.1f} {r['steady_images_per_s']:9.2f} {load:>24}"
        )
    for key, value in summary.items():
        print(f"{key}: {value}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
