"""The host uids a native server's sandboxes run as: one per box, never two boxes at once, and
a range no other execbox server on this host uses (one server's program could otherwise signal
another's)."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from execbox.sandbox.native.launch import BoxStartError

POOL_SIZE = 256
# Boxes waiting in the warm pool hold uids: at most half of them, so that a stage starting now
# finds one free. A stage that still finds none waits this long for one, then fails: it never
# hangs while holding an execution slot.
MOST_IDLE_BOXES = POOL_SIZE // 2
WAIT_S = 30
# Servers on one host take disjoint ranges (SANDBOX_UID_BASE + 1000 k; the Docker backend uses
# +500..+999 of its base), each held by a lock that dies with its server.
LOCK_DIR = Path("/run/lock/execbox")
RANGE_STEP = 1000
RANGES = 16


class UidRangesTaken(Exception):
    """Every range from the configured base is held by another server on this host."""


class UidPool:
    def __init__(self, uids: Iterable[int] = ()) -> None:
        self._free: asyncio.Queue[int] = asyncio.Queue()
        for uid in uids:
            self._free.put_nowait(uid)

    def claim_range(self, first: int) -> int:
        """Take the first range no other server holds; returns the lock's descriptor (closing
        it gives the range back)."""
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        for k in range(RANGES):
            base = first + k * RANGE_STEP
            fd = os.open(
                LOCK_DIR / f"uids-{base}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            for uid in range(base, base + POOL_SIZE):
                self._free.put_nowait(uid)
            return fd
        raise UidRangesTaken(
            f"every sandbox uid range from {first} is held by another execbox server on this "
            f"host (at most {RANGES}); set EXECBOX_SANDBOX_UID_BASE to another range"
        )

    async def take(self, free_one: Callable[[], bool]) -> int:
        """A free uid; while none is, ``free_one`` is asked now and then to let an idle box go
        (its uid comes back once the box is gone)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while True:
            if self._free.empty():
                free_one()
            left = deadline - loop.time()
            if left <= 0:
                raise BoxStartError(
                    f"every one of this server's {POOL_SIZE} sandbox uids is in use"
                )
            try:
                return await asyncio.wait_for(self._free.get(), min(1.0, left))
            except TimeoutError:
                continue

    def give_back(self, uid: int) -> None:
        self._free.put_nowait(uid)
