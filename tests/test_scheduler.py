"""The admission queue's logic (pure asyncio; no sandbox involved)."""

from __future__ import annotations

import asyncio

import pytest

from execbox.scheduler import QueueFull, QueueTimeout, Scheduler, ShuttingDown


def run(coro):
    return asyncio.run(coro)


def test_runs_at_most_capacity_at_once_in_fifo_order():
    async def main():
        scheduler = Scheduler(max_concurrency=2, queue_size=10, queue_timeout_s=5)
        running, peak, order = 0, 0, []

        async def work(i):
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            order.append(i)
            await asyncio.sleep(0.01)
            running -= 1
            return i

        results = await asyncio.gather(*(scheduler.run(lambda i=i: work(i)) for i in range(8)))
        return results, peak, order

    results, peak, order = run(main())
    assert results == list(range(8))
    assert peak == 2
    assert order == list(range(8))


def test_full_queue_is_refused_with_retry_after():
    async def main():
        scheduler = Scheduler(max_concurrency=1, queue_size=1, queue_timeout_s=5)
        gate = asyncio.Event()
        first = asyncio.create_task(scheduler.run(gate.wait))
        second = asyncio.create_task(scheduler.run(gate.wait))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull) as refused:
            await scheduler.run(gate.wait)
        gate.set()
        await asyncio.gather(first, second)
        return refused.value

    refused = run(main())
    assert refused.reason == "queue_full" and refused.retry_after_s >= 1


def test_waiting_too_long_times_out_and_leaves_the_queue():
    async def main():
        scheduler = Scheduler(max_concurrency=1, queue_size=5, queue_timeout_s=0.05)
        gate = asyncio.Event()
        holder = asyncio.create_task(scheduler.run(gate.wait))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueTimeout):
            await scheduler.run(gate.wait)
        queued = scheduler.stats().queued
        gate.set()
        await holder
        return queued, scheduler.stats()

    queued, stats = run(main())
    assert queued == 0 and stats.running == 0


def test_cancelled_waiter_leaves_the_queue_and_slot_passes_on():
    async def main():
        scheduler = Scheduler(max_concurrency=1, queue_size=5, queue_timeout_s=5)
        gate = asyncio.Event()
        holder = asyncio.create_task(scheduler.run(gate.wait))
        await asyncio.sleep(0.01)
        leaver = asyncio.create_task(scheduler.run(gate.wait))
        stayer = asyncio.create_task(scheduler.run(lambda: asyncio.sleep(0, "done")))
        await asyncio.sleep(0.01)
        leaver.cancel()
        await asyncio.sleep(0.01)
        gate.set()
        await holder
        return await stayer, scheduler.stats()

    result, stats = run(main())
    assert result == "done" and stats.running == 0 and stats.queued == 0


def test_drain_refuses_new_work_and_waits_for_running():
    async def main():
        scheduler = Scheduler(max_concurrency=1, queue_size=5, queue_timeout_s=5)
        running = asyncio.create_task(scheduler.run(lambda: asyncio.sleep(0.05, "finished")))
        queued = asyncio.create_task(scheduler.run(lambda: asyncio.sleep(0.01, "queued too")))
        await asyncio.sleep(0.01)
        drained = asyncio.create_task(scheduler.drain(5))
        await asyncio.sleep(0)
        with pytest.raises(ShuttingDown):
            await scheduler.run(lambda: asyncio.sleep(0))
        return await running, await queued, await drained

    assert run(main()) == ("finished", "queued too", True)


def test_callers_are_served_in_turn():
    async def main():
        scheduler = Scheduler(max_concurrency=1, queue_size=20, queue_timeout_s=5)
        gate = asyncio.Event()
        order: list[str] = []
        holder = asyncio.create_task(scheduler.run(gate.wait, caller="x"))
        await asyncio.sleep(0)

        async def job(name):
            order.append(name)

        tasks = [
            asyncio.create_task(scheduler.run(lambda n=f"a{i}": job(n), caller="a"))
            for i in range(4)
        ]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(scheduler.run(lambda: job("b0"), caller="b")))
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(holder, *tasks)
        return order

    order = run(main())
    assert order.index("b0") <= 1, order


def test_one_caller_may_hold_only_its_share_of_the_queue():
    async def main():
        scheduler = Scheduler(max_concurrency=1, queue_size=4, queue_timeout_s=5, caller_share=0.5)
        gate = asyncio.Event()
        holder = asyncio.create_task(scheduler.run(gate.wait, caller="a"))
        await asyncio.sleep(0)
        queued = [asyncio.create_task(scheduler.run(gate.wait, caller="a")) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as refused:
            await scheduler.run(gate.wait, caller="a")
        other = asyncio.create_task(scheduler.run(gate.wait, caller="b"))
        await asyncio.sleep(0)
        stats = scheduler.stats()
        gate.set()
        await asyncio.gather(holder, *queued, other)
        return refused.value, stats

    refused, stats = run(main())
    assert refused.reason == "caller_queue_full"
    assert stats.queued == 3


def test_memory_budget_holds_back_runs_that_do_not_fit():
    async def main():
        scheduler = Scheduler(
            max_concurrency=4, queue_size=10, queue_timeout_s=5, memory_budget=1000
        )
        gate = asyncio.Event()
        first = asyncio.create_task(scheduler.run(gate.wait, memory=600))
        second = asyncio.create_task(scheduler.run(gate.wait, memory=600))
        await asyncio.sleep(0)
        during = scheduler.stats()
        gate.set()
        await asyncio.gather(first, second)
        # A run larger than the whole budget still runs, alone.
        await scheduler.run(lambda: asyncio.sleep(0), memory=5000)
        return during

    during = run(main())
    assert during.running == 1 and during.queued == 1 and during.memory_reserved == 600
