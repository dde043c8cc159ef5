"""Dynamic micro-batching: requests that arrive within a few milliseconds share one model call.

The first request in an empty queue waits at most `max_wait_s` for company, and only while
other requests are on their way (announced with `arriving()`, e.g. while they are decoded): a
lone request goes straight to the model. While the model is busy, new requests queue up and all
of them (up to `max_batch`) go into the next call. Model
calls run one at a time on a single worker thread, so the event loop keeps accepting requests.

An optional `finish(items, model_results)` stage (e.g. writing the review log) runs on a second
thread, in batch order, while the model thread already scores the next batch: the model never
waits for the database. At most `MAX_FINISHING` batches wait to be finished at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
MAX_FINISHING = 2


class MicroBatcher(Generic[T, R]):
    """Gathers `submit`ted items into lists for `process` (one result per item, same order).

    `after(results)` runs on the event loop after each call (e.g. to publish alerts in order),
    after `finish` when there is one. `batch_sizes` counts how many calls had each size.
    """

    def __init__(
        self,
        process: Callable[[list[T]], Sequence[R]],
        max_batch: int = 16,
        max_wait_s: float = 0.005,
        after: Callable[[Sequence[R]], Any] | None = None,
        finish: Callable[[list[T], Sequence[Any]], Sequence[R]] | None = None,
    ) -> None:
        self.process = process
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.after = after
        self.finish = finish
        self.batch_sizes: Counter[int] = Counter()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="model")
        self.finisher = ThreadPoolExecutor(1, thread_name_prefix="finish")
        self._queue: asyncio.Queue[tuple[T, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None
        self._finishing: set[asyncio.Task] = set()
        self._slots: asyncio.Semaphore | None = None
        self._arriving = 0

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(MAX_FINISHING)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._finishing:  # batches already scored are still logged and answered
            await asyncio.gather(*self._finishing, return_exceptions=True)
        self.executor.shutdown(wait=True)
        self.finisher.shutdown(wait=True)

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Announce a request on its way (e.g. while it is decoded): a batch being gathered
        waits for it (up to `max_wait_s`). `submit` it inside the block."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    def enqueue(self, item: T) -> asyncio.Future:
        """Queue one item; the future gets its result (or what `process` raised)."""
        if self._queue is None:
            raise RuntimeError("the micro-batcher is not started")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return future

    async def submit(self, item: T) -> R:
        """Score one item with whatever else arrives meanwhile; raises what `process` raised."""
        return await self.enqueue(item)

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
            if not self._arriving:  # nobody else on the way: no reason to wait
                break
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
                self._fail(live, exc, "model call")
                continue
            if self.finish is None:
                self._deliver(live, results)
                continue
            await self._slots.acquire()
            task = loop.create_task(self._finish(live, results))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

    async def _finish(self, live: list[tuple[T, asyncio.Future]], scored: Sequence[Any]) -> None:
        """The finish stage of one batch on its own thread; batches finish in order."""
        try:
            items = [item for item, _ in live]
            results = await asyncio.get_running_loop().run_in_executor(
                self.finisher, self.finish, items, scored
            )
        except Exception as exc:
            self._fail(live, exc, "finish stage")
            return
        finally:
            self._slots.release()
        self._deliver(live, results)

    def _deliver(self, live: list[tuple[T, asyncio.Future]], results: Sequence[R]) -> None:
        if self.after is not None:
            self.after(results)
        for (_, future), result in zip(live, results, strict=True):
            if not future.done():
                future.set_result(result)

    @staticmethod
    def _fail(live: list[tuple[T, asyncio.Future]], exc: Exception, what: str) -> None:
        log.exception("%s failed for a batch of %d", what, len(live), exc_info=exc)
        for _, future in live:
            if not future.done():
                future.set_exception(exc)
