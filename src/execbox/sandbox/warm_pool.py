"""Sandboxes started ahead of time, per profile, each handed out once (both backends).

A profile is what a sandbox is started with and cannot change later. After a sandbox of a
profile is taken, the pool starts the missing ones side by side, in the background: most of a
start is waiting (for bwrap or the Docker engine), not computing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger("execbox.sandbox")

P = TypeVar("P", bound=Hashable)
S = TypeVar("S")


class WarmPool(Generic[P, S]):
    def __init__(
        self,
        size: int,
        start: Callable[[P], Awaitable[S]],  # a started sandbox (raises if it did not start)
        dispose: Callable[[S], Awaitable[None]],
        alive: Callable[[S], bool] = lambda _: True,
    ) -> None:
        self.size = size
        self._start = start
        self._dispose = dispose
        self._alive = alive
        self._waiting: dict[P, list[S]] = {}
        self._refilling: dict[P, asyncio.Task[None]] = {}
        self._closing = False

    async def take(self, profile: P) -> S | None:
        """A waiting sandbox of this profile, or None (then start one on the spot)."""
        sandboxes = self._waiting.get(profile, [])
        while sandboxes:
            sandbox = sandboxes.pop()
            if self._alive(sandbox):
                return sandbox
            await self._dispose(sandbox)
        return None

    def refill_soon(self, profile: P) -> None:
        if self.size <= 0 or self._closing or profile in self._refilling:
            return
        self._refilling[profile] = asyncio.create_task(self._refill(profile))

    async def _refill(self, profile: P) -> None:
        try:
            sandboxes = self._waiting.setdefault(profile, [])
            missing = self.size - len(sandboxes)
            started = await asyncio.gather(
                *(self._start(profile) for _ in range(missing)), return_exceptions=True
            )
            for sandbox in started:
                if isinstance(sandbox, BaseException):
                    log.warning("warm pool: a sandbox did not start: %s", sandbox)
                elif self._closing:
                    await self._dispose(sandbox)
                else:
                    sandboxes.append(sandbox)
        finally:
            self._refilling.pop(profile, None)

    async def close(self) -> None:
        """Stop refilling and dispose of every waiting sandbox."""
        self._closing = True
        if self._refilling:
            await asyncio.wait(set(self._refilling.values()), timeout=30)
        waiting = [s for sandboxes in self._waiting.values() for s in sandboxes]
        self._waiting.clear()
        await asyncio.gather(*(self._dispose(s) for s in waiting), return_exceptions=True)
