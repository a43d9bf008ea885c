"""The bounded queue on its own: order, limits, timeouts, shutdown."""

from __future__ import annotations

import asyncio
import threading

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


async def cancel_waiters_twice() -> tuple[list[BaseException], int, bool, int]:
    q = GenerationQueue(max_queue=4)
    await q.acquire()
    waiters = [asyncio.create_task(q.acquire()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert q.state.waiting == 3
    for task in waiters:
        task.cancel()
    await asyncio.sleep(0)
    for task in waiters:
        task.cancel()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    waiting, locked = q.state.waiting, q._cond().locked()
    await q.release()
    await asyncio.wait_for(q.acquire(), 2)
    return results, waiting, locked, q.state.active


def test_a_cancelled_waiter_leaves_the_queue_clean():
    """uvicorn cancels request tasks that outlive its grace period, and a task may be cancelled
    twice: the waiters must end, leaving no waiter counted and the condition's lock free. (With
    asyncio.wait_for this hung the event loop, and in the server raised 'Lock is not acquired'.)
    Run on its own loop in a thread, so a hang fails the test instead of stopping the session."""
    outcome: dict[str, object] = {}
    runner = threading.Thread(target=lambda: outcome.update(result=asyncio.run(cancel_waiters_twice())), daemon=True)
    runner.start()
    runner.join(10)
    assert not runner.is_alive(), "cancelled waiters never ended: the event loop hung"
    results, waiting, locked, active = outcome["result"]
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results
    assert waiting == 0 and not locked and active == 1


def test_close_from_another_thread_answers_waiters_at_once():
    async def scenario() -> QueueRejected:
        q = GenerationQueue(max_queue=4)
        await q.acquire()
        waiter = asyncio.create_task(q.acquire())
        await asyncio.sleep(0.01)
        await asyncio.to_thread(q.close_threadsafe)
        with pytest.raises(QueueRejected) as exc:
            await asyncio.wait_for(waiter, 2)
        return exc.value

    rejected = asyncio.run(scenario())
    assert rejected.status == 503 and rejected.code == "shutting_down"
