"""One execution's life, in one place: prepare → pre-start → admission → run → observe."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from execbox.engine import Engine, ExecutionRequest, ExecutionResult, Job
from execbox.executor.metrics import Metrics
from execbox.sandbox import Interactive
from execbox.scheduler import QueueFull, QueueTimeout, Refused, Scheduler

access_log = logging.getLogger("execbox.access")

# A patient caller (a stored submission) refused by a full queue asks again after this.
RETRY_S = 0.5


class ClientGone(Exception):
    """The client left before its result was ready; its execution was abandoned."""


@dataclass
class _Timing:
    arrived: float
    admitted: float | None = None


@dataclass
class Executor:
    engine: Engine
    scheduler: Scheduler
    metrics: Metrics

    async def execute(
        self,
        execution: ExecutionRequest | Job,
        caller: str,
        interactive: Interactive | None = None,
        *,
        gone: Awaitable[object] | None = None,
        api: str = "",
        patient: bool = False,
    ) -> ExecutionResult:
        """Run one execution and record it once in the metrics and the access log.

        ``execution`` may be prepared already (a WebSocket names the runtime before the run).
        ``gone`` completes when the client leaves: the execution leaves the queue or is
        killed, and ClientGone is raised; it is cancelled once the execution ends. A
        ``patient`` caller is not refused by a full queue or a queue timeout: it waits and
        asks again (such refusals are not counted: nobody was turned away).
        Raises ExecutionError for bad input and Refused when admission says no."""
        job = execution if isinstance(execution, Job) else self.engine.prepare(execution)
        timing = _Timing(arrived=time.monotonic())
        fields = {"api": api, "caller": caller, "language": job.language.name}
        work = asyncio.create_task(self._queued_run(job, caller, interactive, timing, patient))
        watcher = asyncio.ensure_future(gone) if gone is not None else None
        try:
            waited = {work, watcher} if watcher is not None else {work}
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            stage = "running" if timing.admitted is not None else "queued"
            self.metrics.cancellations.labels(stage).inc()
            self._log({"event": "client_gone", "while": stage, **fields})
            raise ClientGone()
        try:
            result = work.result()
        except Refused as refused:
            if patient:
                raise
            self.metrics.rejections.labels(refused.reason).inc()
            self._log({"event": "refused", "reason": refused.reason, **fields})
            raise
        admitted = timing.admitted if timing.admitted is not None else timing.arrived
        ran_s = time.monotonic() - admitted
        self.metrics.executions.labels(result.language, result.status.value).inc()
        self.metrics.execution_time.labels(result.language).observe(ran_s)
        self._log(
            {
                "event": "execution",
                **fields,
                "status": result.status.value,
                "queue_ms": round((admitted - timing.arrived) * 1000, 1),
                "run_ms": round(ran_s * 1000, 1),
            }
        )
        return result

    async def _queued_run(
        self,
        job: Job,
        caller: str,
        interactive: Interactive | None,
        timing: _Timing,
        patient: bool,
    ) -> ExecutionResult:
        def on_admitted(waited_s: float) -> None:
            timing.admitted = time.monotonic()
            self.metrics.queue_wait.observe(waited_s)

        with self.engine.expecting(job):
            while True:
                try:
                    return await self.scheduler.run(
                        lambda: self.engine.execute(job, interactive),
                        caller,
                        job.memory_bytes,
                        on_admitted=on_admitted,
                    )
                except (QueueFull, QueueTimeout):
                    if not patient:
                        raise
                await asyncio.sleep(RETRY_S)

    @staticmethod
    def _log(entry: dict) -> None:
        access_log.info(json.dumps(entry))
