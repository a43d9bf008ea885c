"""The bounded queue on its own: order, limits, timeouts, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from engine.serve.queue import GenerationQueue, QueueRejected


async def test_one_at_a_time_and_waiters_get_the_slot_in_turn():
    q = GenerationQueue(max_queue=2)
    await q.acquire()
    waiter = asyncio.create_task(q.acquire())
    await asyncio.sleep(0)
    assert q.state.waiting == 1 and q.state.active == 1 and not waiter.done()
    await q.release()
    await asyncio.wait_for(waiter, 2)
    assert q.state.active == 1 and q.state.waiting == 0
    await q.release()
    assert q.state.active == 0


async def test_past_the_queue_limit_is_429():
    q = GenerationQueue(max_queue=1)
    await q.acquire()
    waiter = asyncio.create_task(q.acquire())
    await asyncio.sleep(0)
    with pytest.raises(QueueRejected) as exc:
        await q.acquire()
    assert exc.value.status == 429 and exc.value.code == "queue_full"
    await q.release()
    await waiter


async def test_waiting_too_long_is_503_and_leaves_no_waiter():
    q = GenerationQueue(max_queue=4, max_wait_s=0.05)
    await q.acquire()
    with pytest.raises(QueueRejected) as exc:
        await q.acquire()
    assert exc.value.status == 503 and q.state.waiting == 0


async def test_close_wakes_waiters_with_503():
    q = GenerationQueue(max_queue=4)
    await q.acquire()
    waiter = asyncio.create_task(q.acquire())
    await asyncio.sleep(0)
    await q.close()
    with pytest.raises(QueueRejected) as exc:
        await waiter
    assert exc.value.status == 503
    with pytest.raises(QueueRejected):
        await q.acquire()


async def test_release_from_another_thread():
    q = GenerationQueue(max_queue=1)
    await q.acquire()
    await asyncio.to_thread(q.release_threadsafe)
    await asyncio.wait_for(q.acquire(), 2)
    assert q.state.active == 1
