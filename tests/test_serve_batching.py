"""The line service's micro-batcher on its own: who waits for whom, and what runs where."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from serve.batching import MicroBatcher


def run(coroutine):
    return asyncio.run(coroutine)


def doubling(calls: list[list[int]]):
    def process(items: list[int]) -> list[int]:
        calls.append(list(items))
        return [2 * i for i in items]

    return process


def test_a_lone_request_does_not_wait_for_company():
    calls: list[list[int]] = []

    async def scenario():
        batcher = MicroBatcher(doubling(calls), max_batch=8, max_wait_s=30.0)
        batcher.start()
        try:
            started = time.perf_counter()
            result = await asyncio.wait_for(batcher.submit(21), timeout=10)
            return result, time.perf_counter() - started
        finally:
            await batcher.stop()

    result, seconds = run(scenario())
    # nobody else was on the way, so it did not sit out the 30 s max wait
    assert result == 42 and calls == [[21]] and seconds < 10


def test_a_batch_waits_for_a_request_that_is_on_its_way():
    calls: list[list[int]] = []

    async def scenario():
        batcher = MicroBatcher(doubling(calls), max_batch=8, max_wait_s=30.0)
        batcher.start()
        try:
            with batcher.arriving():  # e.g. still being decoded
                first = batcher.enqueue(1)
                await asyncio.sleep(0.2)  # the batcher has the first part and waits
                second = batcher.enqueue(2)
            return await asyncio.gather(first, second), dict(batcher.batch_sizes)
        finally:
            await batcher.stop()

    results, sizes = run(scenario())
    assert results == [2, 4] and calls == [[1, 2]] and sizes == {2: 1}


def test_an_announced_request_that_never_comes_costs_at_most_the_max_wait():
    calls: list[list[int]] = []

    async def scenario():
        batcher = MicroBatcher(doubling(calls), max_batch=8, max_wait_s=0.2)
        batcher.start()
        try:
            with batcher.arriving():  # announced, then refused (e.g. not an image)
                scored = batcher.enqueue(5)
                return await asyncio.wait_for(scored, timeout=10)
        finally:
            await batcher.stop()

    assert run(scenario()) == 10 and calls == [[5]]


def test_requests_queued_while_the_model_is_busy_share_the_next_call():
    calls: list[list[int]] = []
    gate = threading.Event()

    def slow(items: list[int]) -> list[int]:
        gate.wait(10)
        return doubling(calls)(items)

    async def scenario():
        batcher = MicroBatcher(slow, max_batch=8, max_wait_s=0.0)
        batcher.start()
        try:
            first = batcher.enqueue(0)
            await asyncio.sleep(0.2)  # the model holds the first part
            rest = [batcher.enqueue(i) for i in range(1, 6)]
            gate.set()
            return await asyncio.gather(first, *rest)
        finally:
            await batcher.stop()

    assert run(scenario()) == [0, 2, 4, 6, 8, 10]
    assert calls == [[0], [1, 2, 3, 4, 5]]


def test_the_finish_stage_runs_on_its_own_thread_in_batch_order():
    threads: dict[str, set[str]] = {"process": set(), "finish": set()}
    finished: list[list[int]] = []

    def process(items: list[int]) -> list[int]:
        threads["process"].add(threading.current_thread().name)
        return [i + 100 for i in items]

    def finish(items: list[int], scored: list[int]) -> list[int]:
        threads["finish"].add(threading.current_thread().name)
        finished.append(list(items))
        return [s * 10 for s in scored]

    async def scenario():
        batcher = MicroBatcher(process, max_batch=2, max_wait_s=0.0, finish=finish)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(i) for i in range(6)))
        finally:
            await batcher.stop()

    assert run(scenario()) == [(i + 100) * 10 for i in range(6)]
    assert [i for batch in finished for i in batch] == list(range(6))
    (model,), (finisher,) = threads["process"], threads["finish"]
    assert model.startswith("model") and finisher.startswith("finish")


def test_a_failing_model_call_fails_only_its_own_requests():
    def process(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky part")
        return items

    async def scenario():
        batcher = MicroBatcher(process, max_batch=1, max_wait_s=0.0)
        batcher.start()
        try:
            bad = batcher.enqueue(13)
            with pytest.raises(ValueError, match="unlucky"):
                await bad
            return await batcher.submit(7)
        finally:
            await batcher.stop()

    assert run(scenario()) == 7
