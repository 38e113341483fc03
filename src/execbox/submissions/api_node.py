"""An API-only node of a cluster (``execbox serve --no-worker``): it runs no sandbox, so it
needs no privileges. It validates requests against the languages the workers published, and
stores submissions for them to run. A synchronous execution is dispatched the same way: stored
as a submission, run by a worker, awaited (the database notifies its end) and answered as if
it had run here; only interactive runs, which need a sandbox at hand, are refused (503)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from execbox.config import Settings
from execbox.engine import Engine, ExecutionRequest, ExecutionResult
from execbox.engine.catalog import Catalog
from execbox.engine.job import Job
from execbox.languages import load_languages
from execbox.sandbox import Expectation, Interactive, StageResult, StageSpec
from execbox.scheduler import Refused, Scheduler, current_caller
from execbox.submissions import codec
from execbox.submissions.postgres import PostgresStore

log = logging.getLogger("execbox.cluster")

RETRY_AFTER_S = 5
WORKERS_WAIT_S = 60.0  # at start, for a worker to publish its languages


class NoSandboxHere(Refused):
    reason = "no_sandbox_on_this_node"


class WorkerFailed(Refused):
    reason = "no_worker_result"


def dispatch_scheduler(settings: Settings) -> Scheduler:
    """Admission on an API-only node: executions in flight to the workers, and their queue.
    Memory is the workers' to count."""
    return Scheduler(
        settings.max_pending_submissions,
        settings.queue_size,
        settings.queue_timeout_s,
        memory_budget=2**62,
        caller_share=settings.caller_queue_share,
    )


Dispatch = Callable[[ExecutionRequest, str, float], Awaitable[dict | None]]


class DispatchingEngine(Engine):
    """Runs each execution on a worker (``dispatch``: store it, await its result)."""

    dispatch: Dispatch | None = None

    async def execute(self, job: Job, interactive: Interactive | None = None) -> ExecutionResult:
        if interactive is not None or self.dispatch is None:
            raise NoSandboxHere(
                "this node serves the API only (execbox serve --no-worker): interactive runs "
                "need a node that runs sandboxes",
                RETRY_AFTER_S,
            )
        cases = len(job.request.cases or [None])
        # Queueing on a worker, a compile, then each case to its wall time, and some slack.
        timeout_s = (
            self.settings.queue_timeout_s
            + (job.compile_limits.wall_time_ms + cases * job.run_limits.wall_time_ms) / 1000
            + 30
        )
        result = await self.dispatch(job.request, current_caller.get(), timeout_s)
        if result is None:
            raise WorkerFailed(
                f"no worker finished this execution within {timeout_s:g} s; retry later",
                RETRY_AFTER_S,
            )
        if "error" in result:
            raise WorkerFailed(f"the worker could not run it: {result['error']}", RETRY_AFTER_S)
        return codec.result_from_json(result)


class PublishedRuntimes:
    """Stands where a sandbox would: answers the catalog's version probes with what the
    workers published, and runs nothing else."""

    name = "none (API-only node)"
    interactive = False

    def __init__(self, versions: dict[tuple[str, ...], tuple[str, str | None]]) -> None:
        self._versions = versions  # a language's version command: (version, unavailable)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def shell(self, command: str, image: str | None) -> str:
        raise NotImplementedError  # unused: languages are loaded with the host's shell

    def expect(self, spec: StageSpec) -> Expectation:
        return Expectation.none()

    async def run(self, spec: StageSpec) -> StageResult:
        version, unavailable = self._versions.get(tuple(spec.argv), ("", "no worker offers it"))
        if unavailable is not None:
            return StageResult(exit_code=1, signal=None, stdout=b"", stderr=unavailable.encode())
        return StageResult(exit_code=0, signal=None, stdout=version.encode(), stderr=b"")


async def api_only_engine(settings: Settings, store: PostgresStore) -> DispatchingEngine:
    """An engine that validates and names executions as the workers would, and runs none."""
    languages = await asyncio.to_thread(
        load_languages,
        images=settings.docker_image_overrides(),
        path=settings.languages_file or None,
    )
    published = await asyncio.to_thread(store.runtimes)
    waited = 0.0
    while not published and waited < WORKERS_WAIT_S:
        log.info("waiting for a worker to publish its languages")
        await asyncio.sleep(1.0)
        waited += 1.0
        published = await asyncio.to_thread(store.runtimes)
    versions = {
        tuple(language.version_command): published.get(name, ("", "no worker offers it"))
        for name, language in languages.items()
    }
    sandbox = PublishedRuntimes(versions)
    catalog = Catalog(languages, settings)
    await catalog.probe(sandbox)  # type: ignore[arg-type]
    return DispatchingEngine(settings, sandbox, catalog)  # type: ignore[arg-type]


def publish_runtimes(engine: Engine, store: PostgresStore) -> None:
    """A worker's languages, for the API-only nodes."""
    store.publish_runtimes(
        {
            name: (runtime.version, runtime.unavailable_reason)
            for name, runtime in engine.catalog.runtimes.items()
        }
    )
