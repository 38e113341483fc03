"""An API-only node of a cluster (``execbox serve --no-worker``): it runs no sandbox, so it
needs no privileges. It validates requests against the languages the workers published, and
stores submissions for them to run; an execution it would have to run itself (the
synchronous routes) is refused with 503 saying where to send it."""

from __future__ import annotations

import asyncio
import logging

from execbox.config import Settings
from execbox.engine import Engine
from execbox.engine.catalog import Catalog
from execbox.languages import load_languages
from execbox.sandbox import Expectation, StageResult, StageSpec
from execbox.scheduler import Refused, Scheduler
from execbox.submissions.postgres import PostgresStore

log = logging.getLogger("execbox.cluster")

RETRY_AFTER_S = 5
WORKERS_WAIT_S = 60.0  # at start, for a worker to publish its languages


class NoSandboxHere(Refused):
    reason = "no_sandbox_on_this_node"


class ApiOnlyScheduler(Scheduler):
    """Admits nothing: this node has no sandbox to run in."""

    async def run(self, work, caller: str = "", memory: int = 0, on_admitted=None):
        raise NoSandboxHere(
            "this node serves the API only (execbox serve --no-worker) and runs no programs "
            "itself; use the submissions API (/api/v1/submissions, Judge0's /submissions), "
            "which any node accepts and the workers run, or a node that runs sandboxes",
            RETRY_AFTER_S,
        )


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


async def api_only_engine(settings: Settings, store: PostgresStore) -> Engine:
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
    return Engine(settings, sandbox, catalog)  # type: ignore[arg-type]


def publish_runtimes(engine: Engine, store: PostgresStore) -> None:
    """A worker's languages, for the API-only nodes."""
    store.publish_runtimes(
        {
            name: (runtime.version, runtime.unavailable_reason)
            for name, runtime in engine.catalog.runtimes.items()
        }
    )
