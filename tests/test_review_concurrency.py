"""The review log never loses a committed decision: concurrent writers, killed writers, on
SQLite and on a real PostgreSQL server."""

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from store import data_dir
from store.review import ReviewLog

WRITERS = 4
DECISIONS_PER_WRITER = 50

KILLED_WRITER = """
import sys
from store.review import ReviewLog

url, item_id = sys.argv[1], int(sys.argv[2])
log = ReviewLog(url)
for n in range(100_000):
    decision = log.record_decision(item_id, "unsure", "doomed", comment=str(n))
    print(decision, flush=True)
"""


@pytest.fixture(autouse=True)
def no_shared_database(monkeypatch):
    monkeypatch.delenv("DEFECTLENS_DB_URL", raising=False)


@pytest.fixture
def url(review_url):
    return review_url


def write_decisions(url: str, item_ids: list[int], reviewer: str, start) -> None:
    with ReviewLog(url) as log:
        start.wait(timeout=60)
        for n, item in enumerate(item_ids):
            log.record_decision(item, "ok", reviewer, comment=str(n))


def test_concurrent_writer_processes_lose_no_decision(url):
    with ReviewLog(url) as log:
        batch = log.create_batch("concurrent")
        items = [log.add_item(batch, f"p{i}.png", bytes([i])) for i in range(10)]
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    item_ids = [items[n % len(items)] for n in range(DECISIONS_PER_WRITER)]
    workers = [
        context.Process(target=write_decisions, args=(url, item_ids, f"writer{w}", start))
        for w in range(WRITERS)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0] * WRITERS

    with ReviewLog(url) as log:
        assert log.items(batch).n_decisions.sum() == WRITERS * DECISIONS_PER_WRITER
        decisions = [log.history(item) for item in items]
    for w in range(WRITERS):
        mine = [d[d.reviewer == f"writer{w}"] for d in decisions]
        comments = sorted(int(c) for frame in mine for c in frame.comment)
        assert comments == list(range(DECISIONS_PER_WRITER))


def test_killed_writer_loses_no_committed_decision(url):
    with ReviewLog(url) as log:
        batch = log.create_batch("killed")
        item = log.add_item(batch, "a.png", b"a")
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, url, str(item)],
        stdout=subprocess.PIPE,
        text=True,
    )
    committed = [int(writer.stdout.readline()) for _ in range(30)]
    os.kill(writer.pid, signal.SIGKILL)
    committed += [int(line) for line in writer.stdout.read().split()]
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    with ReviewLog(url) as log:
        stored = log.history(item).decision_id.tolist()
    assert set(committed) <= set(stored)
    assert len(stored) < 100_000
    if url.startswith("sqlite"):
        with sqlite3.connect(data_dir() / "review.db") as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def open_and_add(url: str, name: str, start) -> None:
    start.wait(timeout=60)
    with ReviewLog(url) as log:
        log.create_batch(name)


def test_processes_opening_a_new_database_at_once_migrate_it_once(url):
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=open_and_add, args=(url, f"opener{w}", start)) for w in range(4)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0] * 4
    with ReviewLog(url) as log:
        assert sorted(log.batches().name) == [f"opener{w}" for w in range(4)]
        with log.engine.connect() as conn:
            versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    assert len(versions) == 1
