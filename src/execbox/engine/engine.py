"""The engine's front: turn a request into a Job (validated, limits resolved) and run it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import PurePosixPath

from execbox.config import Settings
from execbox.engine.catalog import Catalog
from execbox.engine.compile_cache import CompileCache
from execbox.engine.errors import InvalidRequest
from execbox.engine.files import check_files
from execbox.engine.job import Job
from execbox.engine.model import ExecutionRequest, ExecutionResult, SourceFile
from execbox.engine.outputs import resolve_outputs
from execbox.languages import load_languages
from execbox.sandbox import Interactive, Sandbox, create_sandbox

log = logging.getLogger("execbox.engine")


class Engine:
    def __init__(self, settings: Settings, sandbox: Sandbox, catalog: Catalog) -> None:
        self.settings = settings
        self.sandbox = sandbox
        self.catalog = catalog
        self.compile_cache = CompileCache(settings.compile_cache_mb * 1024 * 1024)

    @classmethod
    async def start(cls, settings: Settings, sandbox: Sandbox | None = None) -> Engine:
        sandbox = sandbox or create_sandbox(settings)
        await sandbox.start()
        try:
            languages = await asyncio.to_thread(
                load_languages,
                shell=sandbox.shell,
                images=settings.docker_image_overrides(),
                path=settings.languages_file or None,
            )
        except BaseException:
            await sandbox.close()
            raise
        catalog = Catalog(languages, settings)
        await catalog.probe(sandbox)
        for runtime in catalog.runtimes.values():
            if runtime.available:
                log.info("language %s %s ready", runtime.language.name, runtime.version)
            else:
                log.warning(
                    "language %s unavailable: %s", runtime.language.name, runtime.unavailable_reason
                )
        return cls(settings, sandbox, catalog)

    async def close(self) -> None:
        await self.sandbox.close()

    def prepare(self, request: ExecutionRequest) -> Job:
        """Validate a request and resolve its limits; raises ExecutionError for bad input."""
        runtime = self.catalog.find(request.language, request.version)
        files = []
        for index, item in enumerate(request.files):
            name = item.name
            if not name and index == 0:
                name = runtime.language.entry_for_code(item.content.decode(errors="replace"))
            elif not name:
                name = f"file{index}{PurePosixPath(runtime.language.entry).suffix}"
            files.append(SourceFile(name, item.content))
        request = dataclasses.replace(
            request,
            language=runtime.language.name,
            files=check_files(files, self.settings.max_files),
            outputs=resolve_outputs(request.outputs, self.settings),
        )
        if request.compile_options and not runtime.language.compile_options:
            raise InvalidRequest(f"{runtime.language.name} takes no compiler options")
        if request.cases is not None and not 1 <= len(request.cases) <= self.settings.max_cases:
            raise InvalidRequest(
                f"an execution takes 1 to {self.settings.max_cases} test cases, "
                f"got {len(request.cases)}"
            )
        return Job(
            runtime,
            request,
            run_limits=self.catalog.limits(runtime, request.limits, "run"),
            compile_limits=self.catalog.limits(runtime, request.compile_limits, "compile"),
            output_budget_bytes=self.settings.max_result_bytes,
        )

    @contextlib.contextmanager
    def expecting(self, job: Job) -> Iterator[None]:
        """Around a job's wait for its slot: its first sandbox may start during the wait, so
        that the slot is spent running programs rather than starting sandboxes."""
        expectation = self.sandbox.expect(job.first_stage(self.compile_cache))
        try:
            yield
        finally:
            expectation.withdraw()

    async def execute(self, job: Job, interactive: Interactive | None = None) -> ExecutionResult:
        if interactive is not None and not self.sandbox.interactive:
            raise InvalidRequest(
                f"interactive runs need the native backend, not {self.sandbox.name}"
            )
        return await job.execute(self.sandbox, self.compile_cache, interactive)
