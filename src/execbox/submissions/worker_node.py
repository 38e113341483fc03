"""`execbox worker`: a cluster node that runs submissions and serves no HTTP.

It starts the sandbox and engine as `execbox serve` does, publishes its languages for the
API-only nodes, and takes submission jobs (not callbacks: those are the API nodes') until
SIGTERM or SIGINT; then it lets running work finish within the grace period (what is left is
run again by another worker).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from execbox.config import Settings
from execbox.engine import Engine
from execbox.executor import Executor, Metrics
from execbox.scheduler import Scheduler
from execbox.submissions.api_node import publish_runtimes
from execbox.submissions.cluster import ClusterRunner
from execbox.submissions.postgres import PostgresStore

log = logging.getLogger("execbox.cluster")

READY = "worker ready"  # logged once jobs are being taken


async def run_worker(settings: Settings, render_callback: dict) -> None:
    engine = await Engine.start(settings)
    scheduler = Scheduler(
        settings.max_concurrency,
        settings.queue_size,
        settings.queue_timeout_s,
        memory_budget=settings.memory_budget_bytes(),
        caller_share=settings.caller_queue_share,
    )
    metrics = Metrics()
    metrics.bind(scheduler, engine.compile_cache)
    store = PostgresStore(settings.database_url)
    # No callback sender: callbacks go out from the nodes that serve HTTP, so a worker, which
    # runs untrusted code, needs no way out but DNS and the database.
    runner = ClusterRunner(
        store, Executor(engine, scheduler, metrics), settings, None, render_callback
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.start()
        await asyncio.to_thread(publish_runtimes, engine, store)
        log.info(READY)
        await stop.wait()
        log.info("stopping: letting running work finish")
        runner.stop_taking()
        scheduler.stop_admitting()
        if not await scheduler.drain(settings.shutdown_grace_s):
            log.warning("grace period over: killing the work that is left")
    finally:
        await runner.close()
        await engine.close()
