"""A content-addressed cache of compile stages: the same sources never compile twice.

The key covers everything that decides the artifact: language, toolchain version, the compile
command, and every file's name and bytes. Artifacts are kept in memory as immutable bytes and
copied into each run's fresh work dir, so a run can change only its own copy and never the
cache. Failed compiles are cached too (the same source fails the same way); a compile that hit
a limit or failed inside the sandbox is not, since another try may succeed. Concurrent requests
for the same key compile once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from execbox.engine.model import SourceFile, StageReport, Status
from execbox.sandbox import SandboxFile

CACHEABLE = {Status.OK, Status.COMPILE_ERROR}


@dataclass(frozen=True)
class CompileOutcome:
    report: StageReport
    files: tuple[SandboxFile, ...]

    @property
    def size(self) -> int:
        return (
            sum(len(f.content) for f in self.files)
            + len(self.report.stdout)
            + len(self.report.stderr)
        )


@dataclass
class _Flight:
    task: asyncio.Task[CompileOutcome]
    waiters: int = 0


def cache_key(language: str, version: str, command: list[str], files: list[SourceFile]) -> str:
    digest = hashlib.sha256()
    for part in (language, version, *command):
        digest.update(part.encode() + b"\0")
    digest.update(b"\1")
    for item in files:
        digest.update(item.name.encode() + b"\0")
        digest.update(len(item.content).to_bytes(8, "little"))
        digest.update(item.content)
    return digest.hexdigest()


class CompileCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, CompileOutcome] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[str, _Flight] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    @property
    def bytes(self) -> int:
        return self._bytes

    async def get_or_compile(
        self, key: str, compile_: Callable[[], Awaitable[CompileOutcome]]
    ) -> tuple[CompileOutcome, bool]:
        """The outcome for key, and whether it came from the cache (or from another request's
        compile of the same key, awaited rather than repeated)."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry, True
        flight = self._inflight.get(key)
        shared = flight is not None
        if flight is None:
            self.misses += 1
            flight = self._inflight[key] = _Flight(asyncio.create_task(compile_()))
            flight.task.add_done_callback(lambda task: self._landed(key, task))
        else:
            self.hits += 1
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task), shared
        except asyncio.CancelledError:
            # The last requester to leave takes the compile down with it.
            flight.waiters -= 1
            if flight.waiters == 0:
                flight.task.cancel()
            raise

    def _landed(self, key: str, task: asyncio.Task[CompileOutcome]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return
        outcome = task.result()
        if outcome.report.status in CACHEABLE:
            self._store(key, outcome)

    def _store(self, key: str, outcome: CompileOutcome) -> None:
        if self.max_bytes <= 0 or outcome.size > self.max_bytes:
            return
        self._entries[key] = outcome
        self._bytes += outcome.size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size
