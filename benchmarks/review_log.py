"""How many review decisions per second the SQLite review log commits, alone and contended.

Each decision is its own committed transaction (WAL, synchronous=FULL), exactly as the app
records them. Writes benchmarks/results/review_log.json and prints a short table.

    python benchmarks/review_log.py [--decisions 500] [--writers 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from store.review import ReviewLog

RESULTS = Path(__file__).resolve().parent / "results" / "review_log.json"


def _write(url: str, item_ids: list[int], reviewer: str, start, results) -> None:
    """Record one decision per item id; report (start, end, per-commit latencies)."""
    with ReviewLog(url) as log:
        start.wait(timeout=120)
        began = time.monotonic()
        latencies = []
        for n, item in enumerate(item_ids):
            t0 = time.monotonic()
            log.record_decision(item, "ok", reviewer, comment=str(n))
            latencies.append(time.monotonic() - t0)
        results.put((began, time.monotonic(), latencies))


def run_writers(url: str, item_ids: list[int], writers: int, per_writer: int) -> dict:
    """Start `writers` processes at once, each committing `per_writer` decisions."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    ids = [item_ids[n % len(item_ids)] for n in range(per_writer)]
    procs = [
        context.Process(target=_write, args=(url, ids, f"bench{w}", start, results))
        for w in range(writers)
    ]
    for proc in procs:
        proc.start()
    start.set()
    reports = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    if any(proc.exitcode != 0 for proc in procs):
        raise RuntimeError("a benchmark writer failed; see its traceback above")
    elapsed = max(end for _, end, _ in reports) - min(began for began, _, _ in reports)
    latencies = sorted(x for _, _, lat in reports for x in lat)
    total = writers * per_writer
    return {
        "writers": writers,
        "decisions": total,
        "seconds": round(elapsed, 3),
        "decisions_per_s": round(total / elapsed, 1),
        "commit_ms_p50": round(1000 * statistics.median(latencies), 2),
        "commit_ms_p95": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 2),
        "commit_ms_max": round(1000 * latencies[-1], 2),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=500, help="decisions per scenario")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writer processes")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'review.db'}"
        with ReviewLog(url, images_dir=Path(tmp) / "images") as log:
            batch = log.create_batch("benchmark")
            items = [log.add_item(batch, f"p{i}.png", i.to_bytes(4, "big")) for i in range(100)]
        scenarios = [
            run_writers(url, items, 1, args.decisions),
            run_writers(url, items, args.writers, args.decisions // args.writers),
        ]
        with ReviewLog(url, images_dir=Path(tmp) / "images") as log:
            stored = int(log.items(batch).n_decisions.sum())
    expected = sum(s["decisions"] for s in scenarios)
    if stored != expected:
        raise RuntimeError(f"lost decisions: {expected} committed, {stored} stored")

    result = {
        "benchmark": "review_log",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
        "settings": {"journal_mode": "wal", "synchronous": "FULL", "transaction": "per decision"},
        "stored_decisions": stored,
        "scenarios": scenarios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"{'writers':>7} {'decisions':>9} {'seconds':>8} {'dec/s':>8} {'p50 ms':>7} {'p95 ms':>7}"
    )
    for s in scenarios:
        print(
            f"{s['writers']:>7} {s['decisions']:>9} {s['seconds']:>8} {s['decisions_per_s']:>8} "
            f"{s['commit_ms_p50']:>7} {s['commit_ms_p95']:>7}"
        )
    print(f"all {stored} decisions stored; results in {args.out}")
    return result


if __name__ == "__main__":
    main()
