"""Sandboxes started ahead of time, per profile, each handed out once (both backends).

A profile is what a sandbox is started with and cannot change later. The pool keeps ``size``
sandboxes of each profile in use waiting, and more while requests that announced a profile
wait for a slot (``expect``): their sandboxes start during the wait instead of inside the slot,
where a start would hold up the programs queued behind it. Missing sandboxes start side by
side in the background: most of a start is waiting (for bwrap or the Docker engine), not
computing.

Waiting sandboxes hold resources (a native one a uid of the server's small range, a cgroup
and a few processes), so they are bounded: past a surge a profile keeps only what it wants
now, and all profiles together keep at most ``most_idle``, the least recently used profile's
going first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from execbox.sandbox.background import BackgroundTasks

log = logging.getLogger("execbox.sandbox")

# How long closing the pool waits for the sandboxes still starting.
START_WAIT_S = 30

P = TypeVar("P", bound=Hashable)
S = TypeVar("S")


class Expectation:
    """A stage of some profile will want a sandbox soon. Settled by a take of that profile or
    withdrawn by its request (which ended, or never got to run); either way once."""

    def __init__(self, pool: WarmPool | None, profile: Hashable) -> None:
        self._pool = pool
        self.profile = profile
        self.settled = pool is None

    @classmethod
    def none(cls) -> Expectation:
        """An announcement nobody acts on (no pool for this kind of stage)."""
        return cls(None, None)

    def withdraw(self) -> None:
        if not self.settled and self._pool is not None:
            self._pool._settle(self)


class WarmPool(Generic[P, S]):
    def __init__(
        self,
        size: int,
        start: Callable[[P], Awaitable[S]],  # a started sandbox (raises if it did not start)
        dispose: Callable[[S], Awaitable[None]],
        alive: Callable[[S], bool] = lambda _: True,
        most: int = 0,  # at most this many waiting or starting per profile (0: size)
        most_idle: int = 0,  # at most this many waiting over all profiles (0: no bound)
    ) -> None:
        self.size = size
        self.most = max(size, most)
        self.most_idle = most_idle
        self._start = start
        self._dispose = dispose
        self._alive = alive
        self._waiting: dict[P, list[S]] = {}
        self._starting: dict[P, int] = {}
        self._expected: dict[P, list[Expectation]] = {}
        self._recent: OrderedDict[P, None] = OrderedDict()  # least recently used first
        self._tasks = BackgroundTasks()
        self._closing = False

    def expect(self, profile: P) -> Expectation:
        """Announce a stage of this profile; its sandbox starts now unless one is waiting."""
        if self.size <= 0 or self._closing:
            return Expectation.none()
        expectation = Expectation(self, profile)
        self._used(profile)
        self._expected.setdefault(profile, []).append(expectation)
        self._top_up(profile)
        return expectation

    async def take(self, profile: P) -> S | None:
        """A waiting sandbox of this profile, or None (then start one on the spot)."""
        if profile in self._waiting or profile in self._expected:
            self._used(profile)  # (not a profile the pool never keeps: custom limits)
        taken = None
        sandboxes = self._waiting.get(profile, [])
        while sandboxes and taken is None:
            sandbox = sandboxes.pop()
            if self._alive(sandbox):
                taken = sandbox
            else:
                await self._dispose(sandbox)
        # Settled after the taking: settling trims the waiting ones to what is still wanted.
        expected = self._expected.get(profile)
        if expected:
            self._settle(expected[0])
        return taken

    def refill_soon(self, profile: P) -> None:
        """Bring the profile's waiting sandboxes back to the pool's size (after a take)."""
        self._used(profile)
        self._top_up(profile)

    def _settle(self, expectation: Expectation) -> None:
        expectation.settled = True
        expected = self._expected.get(expectation.profile, [])
        if expectation in expected:
            expected.remove(expectation)
        if not expected:
            self._expected.pop(expectation.profile, None)
        self._trim(expectation.profile)

    def _target(self, profile: P) -> int:
        return min(self.most, max(self.size, len(self._expected.get(profile, ()))))

    def _top_up(self, profile: P) -> None:
        if self.size <= 0 or self._closing:
            return
        waiting = len(self._waiting.get(profile, ()))
        missing = self._target(profile) - waiting - self._starting.get(profile, 0)
        if self.most_idle > 0 and missing > 0:
            # Within what may wait over all profiles (one at least, for the stage at hand):
            # more would only be evicted again as they arrive.
            held = sum(map(len, self._waiting.values())) + sum(self._starting.values())
            missing = min(missing, max(1, self.most_idle - held))
        for _ in range(missing):
            self._starting[profile] = self._starting.get(profile, 0) + 1
            self._tasks.spawn(self._start_one(profile))

    async def _start_one(self, profile: P) -> None:
        try:
            sandbox = await self._start(profile)
        except Exception as err:
            # Not retried here: the next take or announcement tries again (no tight loop on a
            # host that cannot start sandboxes).
            log.warning("warm pool: a sandbox did not start: %s", err)
            return
        finally:
            self._starting[profile] -= 1
        if self._closing:
            await self._dispose(sandbox)
        else:
            self._waiting.setdefault(profile, []).append(sandbox)
            self._trim(profile)

    def evict_idle(self) -> bool:
        """Dispose of one waiting sandbox, of the least recently used profile that has one
        (its resources are wanted for a stage that must start now); False if none waits.
        Sandboxes started for announced stages go last: those stages are about to run."""
        for spare_only in (True, False):
            for profile in self._recent:
                sandboxes = self._waiting.get(profile)
                announced = len(self._expected.get(profile, ())) if spare_only else 0
                if sandboxes and len(sandboxes) > announced:
                    self._tasks.spawn(self._dispose(sandboxes.pop(0)))
                    return True
        return False

    def _used(self, profile: P) -> None:
        self._recent[profile] = None
        self._recent.move_to_end(profile)

    def _trim(self, profile: P) -> None:
        waiting = self._waiting.get(profile, [])
        for _ in range(len(waiting) - self._target(profile)):
            self._tasks.spawn(self._dispose(waiting.pop(0)))
        if self.most_idle > 0:
            while sum(map(len, self._waiting.values())) > self.most_idle and self.evict_idle():
                pass

    async def close(self) -> None:
        """Stop refilling and dispose of every waiting sandbox."""
        self._closing = True
        await self._tasks.wait(START_WAIT_S)
        waiting = [s for sandboxes in self._waiting.values() for s in sandboxes]
        self._waiting.clear()
        await asyncio.gather(*(self._dispose(s) for s in waiting), return_exceptions=True)
