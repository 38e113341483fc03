"""Clients waiting for submissions to finish (Judge0's wait=true): one event per awaited id,
kept while someone waits on it and set by whoever learns the submission finished."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from execbox.submissions.model import Submission, SubmissionState


class Waiters:
    def __init__(self) -> None:
        self._finished: dict[str, asyncio.Event] = {}
        self._count: dict[str, int] = {}

    def finished(self, id: str) -> None:
        if (event := self._finished.get(id)) is not None:
            event.set()

    def wake_all(self) -> None:
        """Every waiter reads its submission again (news of a finish may have been missed)."""
        for event in self._finished.values():
            event.set()

    async def wait(
        self, id: str, timeout_s: float, read: Callable[[str], Submission | None]
    ) -> Submission | None:
        """The submission once finished (or as it is when the timeout passes)."""
        event = self._finished.setdefault(id, asyncio.Event())
        self._count[id] = self._count.get(id, 0) + 1
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                event.clear()  # before reading: a finish after the read still wakes us
                found = read(id)
                left = deadline - time.monotonic()
                if found is None or found.state is SubmissionState.DONE or left <= 0:
                    return found
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), left)
        finally:
            # The event goes with its last waiter: another may still be waiting on it.
            self._count[id] -= 1
            if not self._count[id]:
                del self._count[id]
                self._finished.pop(id, None)
