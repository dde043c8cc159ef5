"""Line-service load test: 500 part images from 1, 4 and 8 concurrent clients against the
offline inspection pipeline on the same images.

Starts `python -m serve` (demo_flip + demo_anomaly by default) on 127.0.0.1 with a temporary
SQLite review log, subscribes to /v1/alerts, and for each client count sends every image once
(one station id per round, so each round's rows and alerts are counted apart). A bounded
asyncio + httpx client: at most `clients` requests in flight, localhost only, stops by itself.
The offline figure is `inspection.iter_inspect` (what `python -m inspection` runs) on the same
files after a warm-up, in this process, without the review log, at each `--offline-batch`
(32 is the CLI's default); "vs offline" compares with the fastest of them. The pair (offline,
then the service) is measured `--repeats` times in turn, each service round against the offline
figure just before it, and the median ratio is quoted: a shared machine's speed drifts.
Reports throughput, p50/p95/p99 latency, errors, alerts received vs expected and review-log
rows, with the machine load; writes benchmarks/results/serve_load.json.

    nice -n 10 python benchmarks/serve_load.py --data data/casting [--n 500] [--clients 1 4 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from store.local_server import free_port

RESULTS = Path(__file__).resolve().parent / "results" / "serve_load.json"
TOKEN = "benchmark-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def pick_images(data: Path, n: int) -> list[Path]:
    """n images of the casting set, test split first (the same files for every measurement)."""
    from imaging import IMAGE_EXTENSIONS

    files = [
        p
        for split in ("test", "val", "train")
        for p in sorted((data / split).rglob("*"))
        if p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if len(files) < n:
        sys.exit(f"error: {data}: found {len(files)} images in test/val/train, need {n}")
    return files[:n]


def offline(files: list[Path], classifier: str, autoencoder: str, batch: int) -> dict:
    from inspection import Inspector, iter_inspect

    inspector = Inspector.from_runs(classifier, autoencoder)
    list(iter_inspect(files[:batch], inspector, batch))  # warm-up: graphs traced
    start, cpu = time.perf_counter(), _cpu_seconds(None)
    rows = [row for _, row in iter_inspect(files, inspector, batch)]
    seconds, cpu = time.perf_counter() - start, _cpu_seconds(None) - cpu
    errors = sum(row["status"] != "ok" for row in rows)
    return {
        "images": len(rows),
        "seconds": seconds,
        "per_s": len(rows) / seconds,
        "errors": errors,
        "cpu_ms_per_image": round(1000 * cpu / len(rows), 2),
    }


def start_server(args, port: int, tmp: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DEFECTLENS_API_TOKEN": TOKEN,
        "DEFECTLENS_DB_URL": f"sqlite:///{tmp / 'review.db'}",
        "DEFECTLENS_DATA": str(tmp),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }

    command = [sys.executable, "-m", "serve", "--classifier", args.classifier]
    command += ["--autoencoder", args.autoencoder, "--port", str(port)]
    command += ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
    command += ["--model-threads", str(args.model_threads)]
    log = open(tmp / "server.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(command, env=env, stdout=log, stderr=log)


async def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                sys.exit("error: the service exited during start-up; see its log")
            try:
                if (await client.get(f"{url}/v1/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
    sys.exit(f"error: the service was not healthy after {timeout:.0f} s")


async def subscribe(ws_url: str, received: list[dict], ready: asyncio.Event) -> None:
    from websockets.asyncio.client import connect

    async with connect(f"{ws_url}/v1/alerts", additional_headers=HEADERS) as ws:
        ready.set()
        async for message in ws:
            received.append(json.loads(message))


async def load_round(url: str, files: list[tuple[str, bytes]], clients: int, station: str):
    """Every file once, `clients` requests in flight at most; per-request latency and body."""
    queue: asyncio.Queue = asyncio.Queue()
    for item in files:
        queue.put_nowait(item)
    latencies, bodies, errors = [], [], []
    headers = {**HEADERS, "X-Station": station}
    limits = httpx.Limits(max_connections=clients)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            name, data = queue.get_nowait()
            start = time.perf_counter()
            try:
                response = await client.post(
                    f"{url}/v1/inspect", files={"file": (name, data)}, headers=headers
                )
            except httpx.HTTPError as exc:
                errors.append(f"{name}: {exc!r}")
                continue
            latencies.append(time.perf_counter() - start)
            if response.status_code == 200:
                bodies.append(response.json())
            else:
                errors.append(f"{name}: {response.status_code} {response.text[:200]}")

    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        seconds = time.perf_counter() - start
    return latencies, bodies, errors, seconds


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process `pid` (None: this process, all threads)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_service(args, files: list[Path], tmp: Path) -> list[dict]:
    port = free_port()
    url, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    server = start_server(args, port, tmp)
    payload = [(p.name, p.read_bytes()) for p in files]
    rows = []
    try:
        await wait_healthy(url, server)
        received: list[dict] = []
        ready = asyncio.Event()
        listener = asyncio.create_task(subscribe(ws_url, received, ready))
        await ready.wait()
        warm = [(f"warm_{name}", data) for name, data in payload[: 2 * args.max_batch]]
        await load_round(url, warm, max(args.clients), "bench-warmup")
        for round_index, clients in enumerate(args.clients):
            station = f"bench-c{clients}-r{round_index}"
            client_cpu, server_cpu = _cpu_seconds(None), _cpu_seconds(server.pid)
            latencies, bodies, errors, seconds = await load_round(url, payload, clients, station)
            client_cpu = _cpu_seconds(None) - client_cpu
            server_cpu = _cpu_seconds(server.pid) - server_cpu
            await asyncio.sleep(1.0)  # alerts of the last batch are in flight
            expected = sorted(b["alert_seq"] for b in bodies if b["alert"])
            got = sorted(a["seq"] for a in received if a["station"] == station)
            ms = np.array(latencies) * 1000
            sizes = [b["batch_size"] for b in bodies]
            rows.append(
                {
                    "clients": clients,
                    "images": len(payload),
                    "seconds": seconds,
                    "per_s": len(bodies) / seconds,
                    "p50_ms": float(np.percentile(ms, 50)),
                    "p95_ms": float(np.percentile(ms, 95)),
                    "p99_ms": float(np.percentile(ms, 99)),
                    "errors": len(errors),
                    "error_examples": errors[:3],
                    "alerts_expected": len(expected),
                    "alerts_received": len(got),
                    "alerts_lost": len(set(expected) - set(got)),
                    "mean_batch": float(np.mean(sizes)) if sizes else 0.0,
                    "max_batch": max(sizes, default=0),
                    "station": station,
                    # CPU seconds of the round: the service process (HTTP, decode, model, log)
                    # and this client process, which shares the machine's cores with it
                    "server_cpu_s": round(server_cpu, 2),
                    "client_cpu_s": round(client_cpu, 2),
                }
            )
            print(f"  {clients} clients: {rows[-1]['per_s']:.1f} img/s", flush=True)
        listener.cancel()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
    from store.line import LineLog

    with LineLog(f"sqlite:///{tmp / 'review.db'}", tmp / "review_images") as log:
        for row in rows:
            parts = log.recent_parts(limit=10 * len(files), station=row["station"])
            row["log_rows"] = len(parts)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/casting"))
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--classifier", default="demo_flip")
    parser.add_argument("--autoencoder", default="demo_anomaly")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--model-threads", type=int, default=1)
    parser.add_argument("--offline-batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="offline + service measurements in turn, each pair compared (the median is quoted)",
    )
    args = parser.parse_args()
    files = pick_images(args.data, args.n)
    load_before = os.getloadavg()
    print(f"load before: {load_before}; {len(files)} images from {args.data}", flush=True)
    repeats = []
    for repeat in range(args.repeats):
        offline_runs = []
        for batch in args.offline_batch:
            offline_runs.append(
                {"batch": batch, **offline(files, args.classifier, args.autoencoder, batch)}
            )
            print(
                f"[{repeat + 1}/{args.repeats}] offline pipeline, batch {batch}: "
                f"{offline_runs[-1]['per_s']:.1f} img/s",
                flush=True,
            )
        base = max(offline_runs, key=lambda r: r["per_s"])
        with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
            rows = asyncio.run(run_service(args, files, Path(tmp)))
        for row in rows:
            row["vs_offline"] = row["per_s"] / base["per_s"]
        repeats.append({"offline": offline_runs, "offline_best": base, "service": rows})
    load_after = os.getloadavg()

    print(
        f"\n{len(files)} images, {args.classifier} + {args.autoencoder}, "
        f"max batch {args.max_batch}, max wait {args.max_wait_ms} ms, "
        f"model threads {args.model_threads}; {args.repeats} repeats, each service round "
        "compared with the offline pipeline measured just before it"
    )
    print(
        "| repeat | offline img/s (batch) | clients | img/s | vs offline | p50 ms | p95 ms "
        "| p99 ms | errors | alerts recv/exp | log rows | mean batch | service CPU ms/img |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, rep in enumerate(repeats, 1):
        base = rep["offline_best"]
        for r in rep["service"]:
            print(
                f"| {i} | {base['per_s']:.1f} ({base['batch']}) | {r['clients']} "
                f"| {r['per_s']:.1f} | {r['vs_offline']:.0%} "
                f"| {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['errors']} "
                f"| {r['alerts_received']}/{r['alerts_expected']} "
                f"| {r['log_rows']}/{r['images']} | {r['mean_batch']:.1f} "
                f"| {1000 * r['server_cpu_s'] / r['images']:.1f} |"
            )
    summary = {}
    for clients in dict.fromkeys(args.clients):
        same = [r for rep in repeats for r in rep["service"] if r["clients"] == clients]
        summary[clients] = {
            "median_per_s": float(np.median([r["per_s"] for r in same])),
            "median_vs_offline": float(np.median([r["vs_offline"] for r in same])),
            "worst_p95_ms": max(r["p95_ms"] for r in same),
            "errors": sum(r["errors"] for r in same),
            "alerts_lost": sum(r["alerts_lost"] for r in same),
            "rows_lost": sum(r["images"] - r["log_rows"] for r in same),
        }
        m = summary[clients]
        print(
            f"{clients} clients, median of {len(same)}: {m['median_per_s']:.1f} img/s = "
            f"{m['median_vs_offline']:.0%} of offline; worst p95 {m['worst_p95_ms']:.0f} ms; "
            f"{m['errors']} errors, {m['alerts_lost']} alerts lost, {m['rows_lost']} rows lost"
        )
    client_ms = [1000 * r["client_cpu_s"] / r["images"] for rep in repeats for r in rep["service"]]
    print(f"load-test client (same machine): {np.median(client_ms):.1f} CPU ms per image")
    print(f"load average before {load_before}, after {load_after} ({os.cpu_count()} CPUs)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpu": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(),
                    "load_before": load_before,
                    "load_after": load_after,
                    "nice": os.nice(0),
                },
                "settings": vars(args) | {"data": str(args.data)},
                "summary": {str(k): v for k, v in summary.items()},
                "repeats": repeats,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
