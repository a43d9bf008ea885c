"""The bounded request queue in front of a loaded model.

One generation runs at a time per model (the backends hold one KV cache), others wait in a queue
of bounded length. Past that length, or after waiting too long, a request is answered at once
(429 queue full, 503 timed out or shutting down) instead of hanging until the client gives up.
A slot is released by the generation thread itself when it really stops, so a client that
disconnects frees the model only once its generation has been cancelled, never earlier.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from dataclasses import dataclass


class QueueRejected(Exception):
    """A request that was not queued; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class QueueState:
    active: int
    waiting: int
    concurrency: int
    max_queue: int


class GenerationQueue:
    """`await acquire()` gives a slot or raises QueueRejected; `release()` gives it back.

    Must be used from one event loop; `release_threadsafe` is for the generation thread.
    """

    def __init__(self, max_queue: int = 16, concurrency: int = 1, max_wait_s: float = 120.0) -> None:
        if max_queue < 0 or concurrency < 1:
            raise ValueError("max_queue must be >= 0 and concurrency >= 1")
        self.max_queue = max_queue
        self.concurrency = concurrency
        self.max_wait_s = max_wait_s
        self.active = 0
        self.waiting = 0
        self.closing = False
        self._free: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def state(self) -> QueueState:
        return QueueState(self.active, self.waiting, self.concurrency, self.max_queue)

    def _cond(self) -> asyncio.Condition:
        if self._free is None:
            self._free = asyncio.Condition()
            self._loop = asyncio.get_running_loop()
        return self._free

    async def acquire(self) -> None:
        if self.closing:
            raise QueueRejected(503, "the server is shutting down", "shutting_down")
        cond = self._cond()
        if self.active < self.concurrency and self.waiting == 0:
            self.active += 1
            return
        if self.waiting >= self.max_queue:
            raise QueueRejected(
                429,
                f"server busy: {self.active} request(s) generating and {self.waiting} waiting (queue limit "
                f"{self.max_queue}); retry shortly",
                "queue_full",
            )
        self.waiting += 1
        try:
            # asyncio.timeout, not wait_for: wait_for runs the wait in a second task, and a cancel
            # that lands while that task re-acquires the condition's lock raised "Lock is not acquired".
            async with asyncio.timeout(self.max_wait_s), cond:
                await cond.wait_for(lambda: self.active < self.concurrency or self.closing)
                if self.closing:
                    raise QueueRejected(503, "the server is shutting down", "shutting_down")
                self.active += 1
        except TimeoutError:
            raise QueueRejected(
                503, f"waited {self.max_wait_s:g} s in the queue without a free slot; retry later", "queue_timeout"
            ) from None
        finally:
            self.waiting -= 1

    async def release(self) -> None:
        cond = self._cond()
        async with cond:
            self.active = max(0, self.active - 1)
            cond.notify_all()

    def release_threadsafe(self) -> None:
        """Give the slot back from another thread (the generation thread when it ends)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.active = max(0, self.active - 1)
            return
        asyncio.run_coroutine_threadsafe(self.release(), loop)

    async def close(self) -> None:
        """Refuse new requests and wake the waiting ones with 503."""
        self.closing = True
        cond = self._cond()
        async with cond:
            cond.notify_all()

    def close_threadsafe(self, timeout: float = 5.0) -> None:
        """`close()` from another thread (the one stopping the server), before the server stops
        listening: the waiting requests are answered 503 now instead of being cut at shutdown."""
        self.closing = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # no request ever waited on that loop
        # on these the loop is stopping on its own; `closing` already refuses new requests
        with contextlib.suppress(concurrent.futures.TimeoutError, concurrent.futures.CancelledError, RuntimeError):
            asyncio.run_coroutine_threadsafe(self.close(), loop).result(timeout)
