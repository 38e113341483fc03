"""Submissions waiting for a worker, taken round-robin by caller: one caller's backlog does
not hold back another's (the synchronous scheduler serves callers the same way)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque


class FairQueue:
    def __init__(self) -> None:
        self._queues: OrderedDict[str, deque[str]] = OrderedDict()
        self._available = asyncio.Semaphore(0)  # counts the ids held
        self._last: str | None = None  # the caller served last

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def put(self, caller: str, id: str) -> None:
        if caller not in self._queues:
            self._queues[caller] = deque()
            # A caller that just arrived goes before the one served last, not after it: with
            # one busy caller, the next turn is the newcomer's.
            if self._last in self._queues:
                self._queues.move_to_end(self._last)
        self._queues[caller].append(id)
        self._available.release()

    async def get(self) -> tuple[str, str]:
        """The next caller in turn and its oldest waiting id."""
        await self._available.acquire()
        caller, queue = next(iter(self._queues.items()))
        id = queue.popleft()
        self._last = caller
        if queue:
            self._queues.move_to_end(caller)
        else:
            del self._queues[caller]
        return caller, id
