"""A content-addressed cache of compile stages: the same sources never compile twice.

The key covers everything that decides the artifact: language, toolchain version, the compile
command, and every file's name and bytes. Artifacts are kept in memory as immutable bytes and
copied into each run's fresh work dir, so a run can change only its own copy and never the
cache. Failed compiles are cached too (the same source fails the same way); a compile that hit
a limit or failed inside the sandbox is not, since another try may succeed. Concurrent requests
for the same key compile once.

The cache is shared by all callers, but a hit is reported (``cached: true``) only to the
caller whose request compiled the entry: to any other the compile stage reads exactly as a
compile of its own (the same fields, the original compile's times), so sending someone's
source does not reveal that they compiled it. A faster answer still does (a timing channel
that a shared cache cannot close).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from execbox.engine.model import SourceFile, StageReport, Status
from execbox.sandbox import SandboxFile
from execbox.scheduler import current_caller

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


@dataclass(frozen=True)
class _Entry:
    outcome: CompileOutcome
    owner: str  # the caller whose request compiled it


@dataclass
class _Flight:
    task: asyncio.Task[CompileOutcome]
    owner: str
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
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
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
        """The outcome for key, and whether to report it as cached: it came from the cache (or
        from another request's compile of the same key, awaited rather than repeated), and
        the caller running this is the one whose request compiled it."""
        caller = current_caller.get()
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.outcome, entry.owner == caller
        flight = self._inflight.get(key)
        shared = flight is not None
        if flight is None:
            self.misses += 1
            flight = self._inflight[key] = _Flight(asyncio.create_task(compile_()), caller)
            flight.task.add_done_callback(lambda task: self._landed(key, task, caller))
        else:
            self.hits += 1
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task), shared and flight.owner == caller
        except asyncio.CancelledError:
            # The last requester to leave takes the compile down with it.
            flight.waiters -= 1
            if flight.waiters == 0:
                flight.task.cancel()
            raise

    def _landed(self, key: str, task: asyncio.Task[CompileOutcome], owner: str) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return
        outcome = task.result()
        if outcome.report.status in CACHEABLE:
            self._store(key, _Entry(outcome, owner))

    def _store(self, key: str, entry: _Entry) -> None:
        if self.max_bytes <= 0 or entry.outcome.size > self.max_bytes:
            return
        self._entries[key] = entry
        self._bytes += entry.outcome.size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.outcome.size
