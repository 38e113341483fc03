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
from execbox.languages import Language, load_languages
from execbox.sandbox import Expectation, Interactive, StageResult, StageSpec
from execbox.scheduler import Refused, Scheduler, current_caller
from execbox.submissions import codec
from execbox.submissions.postgres import PostgresStore

log = logging.getLogger("execbox.cluster")

RETRY_AFTER_S = 5
WORKERS_WAIT_S = 60.0  # at start, for a worker to publish its languages
REFRESH_S = 15.0  # then, how often the languages the workers publish are read again


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
    languages: dict[str, Language]  # as loaded at start
    published: dict  # what the workers published, as last read

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
    """Stands where a sandbox would on a node that runs none: the catalog takes the
    languages the workers published (``Catalog.adopt``), and nothing is run here."""

    name = "none (API-only node)"
    interactive = False

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def shell(self, command: str, image: str | None) -> str:
        raise NotImplementedError  # unused: languages are loaded with the host's shell

    def expect(self, spec: StageSpec) -> Expectation:
        return Expectation.none()

    async def run(self, spec: StageSpec) -> StageResult:
        raise NotImplementedError  # executions are dispatched to the workers


def _catalog(languages: dict[str, Language], settings: Settings, published: dict) -> Catalog:
    # By name: languages may share a version command (bash's serves several).
    catalog = Catalog(languages, settings)
    catalog.adopt(published)
    return catalog


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
    catalog = _catalog(languages, settings, published)
    engine = DispatchingEngine(settings, PublishedRuntimes(), catalog)  # type: ignore[arg-type]
    engine.languages, engine.published = languages, published
    return engine


async def follow_published_runtimes(
    engine: DispatchingEngine, store: PostgresStore, every_s: float = REFRESH_S
) -> None:
    """Keep an API-only node's languages those the workers publish now: a node started before
    any worker, or before a worker with more toolchains, catches up instead of refusing them
    until it restarts. Runs until cancelled; a database away is waited out."""
    while True:
        await asyncio.sleep(every_s)
        try:
            published = await asyncio.to_thread(store.runtimes)
        except Exception as err:  # the database away: the next round tries again
            log.warning("could not read the workers' languages: %s", err)
            continue
        if published and published != engine.published:
            engine.catalog = _catalog(engine.languages, engine.settings, published)
            engine.published = published
            log.info("the workers' languages changed: %d offered", len(published))


def publish_runtimes(engine: Engine, store: PostgresStore) -> None:
    """A worker's languages, for the API-only nodes."""
    store.publish_runtimes(
        {
            name: (runtime.version, runtime.unavailable_reason)
            for name, runtime in engine.catalog.runtimes.items()
        }
    )
