"""Alert fan-out: every subscriber gets every alert, in sequence order, and can resume.

Each alert carries its review-log sequence number (`seq`). A subscriber that reconnects with
`since=N` is first sent what the log holds after N, then the live feed, with nothing sent
twice: the live queue is opened before the catch-up query, and anything at or below the last
sequence sent is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

OVERFLOW = {"type": "overflow"}


class AlertHub:
    """In-process subscribers of this service's live alerts."""

    def __init__(self, max_queue: int = 10_000) -> None:
        self.max_queue = max_queue
        self._subscribers: set[asyncio.Queue] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(self.max_queue)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    def publish(self, alert: dict[str, Any]) -> None:
        """Queue an alert for every subscriber (call on the event loop)."""
        for queue in list(self._subscribers):
            if queue.full():
                # A stalled client is cut off rather than slowing the line; it resumes by seq.
                log.warning("alert subscriber %d behind; disconnecting it", id(queue))
                self._subscribers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(OVERFLOW)
            else:
                queue.put_nowait(alert)
