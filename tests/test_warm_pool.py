"""The warm pool: sandboxes started ahead, each used once; and the path without a pool."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import Server, slow

from execbox.sandbox.native import helper
from execbox.sandbox.warm_pool import WarmPool


def warm_boxes(server_pid: int) -> list[str]:
    """The waiting boxes of one server (other servers on the host have their own)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in out.splitlines()]
    parent = {int(pid): int(ppid) for pid, ppid, _ in rows}

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parent.get(pid, 0)
            if pid == server_pid:
                return True
        return False

    return [
        pid
        for pid, _, args in rows
        if f"{helper.SANDBOX_PATH} stub " in args and descends(int(pid))
    ]


def settled_boxes(server_pid: int) -> set[str]:
    """The waiting boxes once the pool has stopped changing (refills run in the background)."""
    previous: set[str] = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        current = set(warm_boxes(server_pid))
        if current and current == previous:
            return current
        previous = current
        time.sleep(0.3)
    return previous


def test_boxes_wait_ahead_and_are_used_once(run, server):
    run("bash", "echo warm-up")
    pid = server.process.pid
    before = settled_boxes(pid)
    assert before, "a warm pool keeps started sandboxes waiting"
    body = run("bash", "ls -A /tmp /box")
    assert body["status"] == "ok" and body["run"]["stdout"] == "/box:\nmain.sh\n\n/tmp:\n"
    # The box that ran the program is gone (its two processes: bwrap outside, the stub as the
    # sandbox's pid 1), however the pool refills.
    deadline = time.monotonic() + 10
    while len(before - set(warm_boxes(pid))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(before - set(warm_boxes(pid))) >= 2, "the box that was used must not wait again"


def test_without_a_warm_pool():
    server = Server(env={"EXECBOX_WARM_POOL": "0"}).start()
    try:
        for language, code in [("bash", "echo cold"), ("python", "print('cold')")]:
            body = httpx.post(
                server.url + "/api/v1/execute",
                timeout=60,
                json={"language": language, "code": code},
            ).json()
            assert body["run"]["stdout"] == "cold\n"
        body = httpx.post(
            server.url + "/api/v1/execute",
            timeout=60,
            json={"language": "bash", "code": "sleep 5", "limits": {"wall_time_ms": 300}},
        ).json()
        assert body["status"] == "time_limit"
    finally:
        server.stop()


def boxes_of(server: Server) -> int:
    """The boxes a server has started that wait for (or run) a program: stubs whose bwrap it
    spawned."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    parents = {}
    stubs = []
    for line in out.splitlines():
        pid, ppid, args = line.split(None, 2)
        parents[pid] = ppid
        if f"{helper.SANDBOX_PATH} stub " in args:
            stubs.append(pid)
    assert server.process is not None
    return sum(parents.get(parents.get(stub, ""), "") == str(server.process.pid) for stub in stubs)


def test_queued_requests_have_their_boxes_started_while_they_wait():
    # One slot, a pool of one (at most 1 + 2 per slot waiting): while a long run holds the slot,
    # the requests queued behind it get their boxes started during the wait, not one by one
    # inside the slot.
    server = Server(env={"EXECBOX_WARM_POOL": "1", "EXECBOX_MAX_CONCURRENCY": "1"}).start()
    queued = 3
    try:
        with httpx.Client(timeout=60) as client, ThreadPoolExecutor(queued + 1) as pool:
            url = server.url + "/api/v1/execute"
            long = pool.submit(client.post, url, json={"language": "bash", "code": "sleep 3"})
            time.sleep(0.5)
            before = boxes_of(server)  # every language's pool, and the running one
            waiting = [
                pool.submit(client.post, url, json={"language": "bash", "code": f"echo {i}"})
                for i in range(queued)
            ]
            deadline = time.monotonic() + 2.5
            most = 0
            while time.monotonic() < deadline and not long.done():
                most = max(most, boxes_of(server))
                time.sleep(0.1)
            # a box waits for each queued request (one of them was the pool's already)
            assert most - before >= queued - 1, (before, most)
            assert long.result().json()["status"] == "ok"
            outputs = sorted(f.result().json()["run"]["stdout"] for f in waiting)
            assert outputs == [f"{i}\n" for i in range(queued)]
    finally:
        server.stop()


# The pool's bookkeeping on its own (its sandboxes are plain objects here).


class Starts:
    def __init__(self, fail: bool = False) -> None:
        self.count = 0
        self.fail = fail

    async def __call__(self, profile: str) -> object:
        self.count += 1
        await asyncio.sleep(0)
        if self.fail:
            raise OSError("no sandbox today")
        return object()


def synchronously(test: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """A test of asyncio code, run to its end in an event loop of its own."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def nothing(_sandbox: object) -> None:
    pass


@synchronously
async def test_announced_stages_get_sandboxes_beyond_the_size_up_to_most():
    starts = Starts()
    pool: WarmPool[str, object] = WarmPool(2, starts, nothing, most=4)
    pool.refill_soon("bash")
    await settle()
    assert starts.count == 2
    expectations = [pool.expect("bash") for _ in range(5)]
    await settle()
    assert starts.count == 4  # capped at most
    for _ in range(4):
        assert await pool.take("bash") is not None
    assert await pool.take("bash") is None  # none left: the caller starts one on the spot
    for expectation in expectations:
        expectation.withdraw()
    pool.refill_soon("bash")
    await settle()
    assert starts.count == 6  # back to the pool's size once nobody is expected
    await pool.close()


@synchronously
async def test_a_withdrawn_or_settled_expectation_counts_once():
    starts = Starts()
    pool: WarmPool[str, object] = WarmPool(1, starts, nothing, most=10)
    first, second = pool.expect("py"), pool.expect("py")
    await settle()
    assert starts.count == 2  # one waiting sandbox for each announced stage
    await pool.take("py")  # settles one announcement
    first.withdraw()
    first.withdraw()
    second.withdraw()
    assert pool._target("py") == 1
    await pool.close()


@synchronously
async def test_expectations_are_ignored_without_a_pool_and_failures_do_not_loop():
    starts = Starts()
    pool: WarmPool[str, object] = WarmPool(0, starts, nothing, most=10)
    pool.expect("bash").withdraw()
    await settle()
    assert starts.count == 0
    failing = Starts(fail=True)
    pool = WarmPool(2, failing, nothing, most=4)
    pool.expect("bash")
    await settle()
    assert failing.count == 2  # one round to the pool's size, then no retry loop
    assert await pool.take("bash") is None
    await pool.close()


class Disposed:
    def __init__(self) -> None:
        self.sandboxes: list[object] = []

    async def __call__(self, sandbox: object) -> None:
        self.sandboxes.append(sandbox)


@synchronously
async def test_after_a_surge_a_profile_keeps_only_what_it_wants():
    starts, disposed = Starts(), Disposed()
    pool: WarmPool[str, object] = WarmPool(1, starts, disposed, most=4)
    expectations = [pool.expect("bash") for _ in range(4)]
    await settle()
    assert starts.count == 4
    for expectation in expectations:  # the requests ended before they ran
        expectation.withdraw()
    await settle()
    assert len(disposed.sandboxes) == 3  # back to the pool's size: one waits
    assert await pool.take("bash") is not None
    await pool.close()


@synchronously
async def test_idle_sandboxes_of_every_profile_together_stay_bounded():
    starts, disposed = Starts(), Disposed()
    pool: WarmPool[str, object] = WarmPool(2, starts, disposed, most_idle=4)
    for profile in ("a", "b", "c"):
        pool.refill_soon(profile)
        await settle()
    # c gets one (no more fit), which pushes out one of a's: the least recently used.
    assert starts.count == 5 and len(disposed.sandboxes) == 1
    assert await pool.take("c") is not None
    assert pool.evict_idle()  # a's other one
    await settle()
    assert await pool.take("a") is None
    assert await pool.take("b") is not None and await pool.take("b") is not None
    assert not pool.evict_idle()
    await pool.close()


@synchronously
async def test_sandboxes_for_announced_stages_are_evicted_last():
    starts, disposed = Starts(), Disposed()
    pool: WarmPool[str, object] = WarmPool(1, starts, disposed, most=3, most_idle=3)
    announced = [pool.expect("a") for _ in range(3)]  # queued requests: a is least recent
    await settle()
    pool.refill_soon("b")  # one for b though the budget is spent
    await settle()
    assert starts.count == 4 and len(disposed.sandboxes) == 1
    assert await pool.take("b") is None  # b's went: every one of a's is for an announced stage
    for _ in announced:
        assert await pool.take("a") is not None
    await pool.close()


@synchronously
async def test_as_many_announced_stages_as_most_all_find_a_sandbox():
    pool: WarmPool[str, object] = WarmPool(1, Starts(), nothing, most=4)
    for _ in range(4):
        pool.expect("bash")
    await settle()
    for _ in range(4):
        assert await pool.take("bash") is not None
    await pool.close()


@synchronously
async def test_nothing_to_evict_is_said():
    pool: WarmPool[str, object] = WarmPool(2, Starts(), nothing, most_idle=4)
    assert not pool.evict_idle()
    await pool.close()


def test_a_large_warm_pool_never_takes_every_sandbox_uid():
    # Waiting boxes hold uids of the server's range: a pool this size for each language would
    # hold them all, and the next program would wait for a uid for ever (a server that hangs).
    server = Server(env={"EXECBOX_WARM_POOL": "120"}).start()
    try:
        with httpx.Client(timeout=slow(120)) as client:
            for language, code in [
                ("bash", "echo 1"),
                ("python", "print(2)"),
                ("javascript", "console.log(3)"),
                ("bash", "echo 4"),
                ("python", "print(5)"),
            ]:
                body = client.post(
                    server.url + "/api/v1/execute", json={"language": language, "code": code}
                ).json()
                assert body["status"] == "ok", body
        assert len(settled_boxes(server.process.pid)) <= 128 * 2  # bwrap and its stub each
    finally:
        server.stop()


@synchronously
async def test_a_stage_without_a_free_uid_lets_an_idle_box_go_and_never_waits_for_ever():
    from execbox.sandbox.native import uids
    from execbox.sandbox.native.launch import BoxStartError

    pool = uids.UidPool([7])
    assert await pool.take(lambda: False) == 7

    def let_one_go() -> bool:  # an idle box disposed: its uid comes back a moment later
        asyncio.get_running_loop().call_later(0.05, pool.give_back, 7)
        return True

    assert await pool.take(let_one_go) == 7
    saved, uids.WAIT_S = uids.WAIT_S, 0.3
    try:
        with pytest.raises(BoxStartError, match="sandbox uids is in use"):
            await pool.take(lambda: False)
    finally:
        uids.WAIT_S = saved
