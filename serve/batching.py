"""Dynamic micro-batching: requests that arrive within a few milliseconds share one model call.

The first request in an empty queue waits at most `max_wait_s` for company; while the model is
busy, new requests queue up and all of them (up to `max_batch`) go into the next call. Model
calls run one at a time on a single worker thread, so the event loop keeps accepting requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Gathers `submit`ted items into lists for `process` (one result per item, same order).

    `after(results)` runs on the event loop after each call (e.g. to publish alerts in order).
    `batch_sizes` counts how many calls had each size.
    """

    def __init__(
        self,
        process: Callable[[list[T]], Sequence[R]],
        max_batch: int = 16,
        max_wait_s: float = 0.005,
        after: Callable[[Sequence[R]], Any] | None = None,
    ) -> None:
        self.process = process
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.after = after
        self.batch_sizes: Counter[int] = Counter()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._queue: asyncio.Queue[tuple[T, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.executor.shutdown(wait=True)

    async def submit(self, item: T) -> R:
        """Score one item with whatever else arrives meanwhile; raises what `process` raised."""
        if self._queue is None:
            raise RuntimeError("the micro-batcher is not started")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def run_alone(self, func: Callable[..., R], *args: Any) -> R:
        """Run `func` on the model thread, between batches (for work outside the batches)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, func, *args)

    async def _gather(self) -> list[tuple[T, asyncio.Future]]:
        queue = self._queue
        batch = [await queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            self.batch_sizes[len(live)] += 1
            try:
                results = await loop.run_in_executor(
                    self.executor, self.process, [item for item, _ in live]
                )
            except Exception as exc:  # every waiting request gets the error, the loop goes on
                log.exception("model call failed for a batch of %d", len(live))
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if self.after is not None:
                self.after(results)
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)
