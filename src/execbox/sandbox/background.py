"""Work a sandbox backend leaves running after a stage returns (removal, cleanup), kept
referenced until done and waited for, up to a bound, when the backend closes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

# How long closing a backend waits for its background work (removing sandboxes) to finish.
CLOSE_WAIT_S = 15


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Future] = set()

    def spawn(self, work: Awaitable) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self, timeout_s: float) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
