"""Cluster mode's guarantees beyond recovery, on real PostgreSQL: callers take turns in the
shared queue, every node's /metrics shows that queue, callbacks go out from the nodes that
serve HTTP (never from workers), a callback pending when its node dies is sent by another
node, and receivers that stall do not hold up the others' callbacks."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import procrastinate
import psycopg
from callback_receivers import RawReceiver, ok, trickle
from cluster_support import Worker, fresh_database
from conftest import Server, slow, wait_for

from execbox.submissions.cluster import CALLBACK_SENDERS
from execbox.submissions.fair_priority import priorities
from execbox.submissions.model import Submission
from execbox.submissions.postgres import QUEUE, PostgresStore

pytest_plugins = ["postgres_fixture"]

STALLED_AFTER_S = 5
KEYS = {"a": "key-of-caller-a", "b": "key-of-caller-b"}


def _env(url: str, **more: str) -> dict[str, str]:
    return {
        "EXECBOX_DATABASE_URL": url,
        "EXECBOX_CLUSTER_HEARTBEAT_S": "1",
        "EXECBOX_CLUSTER_STALLED_AFTER_S": str(STALLED_AFTER_S),
        **more,
    }


def _stop(nodes: list[Server]) -> None:
    for node in nodes:
        node.stop(signal.SIGKILL)


# --- fairness ------------------------------------------------------------------------------


def test_turns_interleave_callers_and_keep_each_callers_order():
    assert priorities(None, None, 3) == [0, -2, -4]  # an empty queue
    assert priorities(-2, None, 3) == [-1, -2, -4]  # a newcomer: just ahead of the head
    assert priorities(-1, None, 2) == [-1, -2]  # after the newcomer already there
    assert priorities(-2, -38, 2) == [-40, -42]  # after the caller's own last
    assert priorities(-1, -1, 1) == [-2]  # after its newcomer's slot, in the next turn


def _submission(id: str, caller: str) -> Submission:
    return Submission(id=id, dialect="v1", caller=caller, request={}, created_at=time.time())


async def _take_all(url: str) -> list[str]:
    """The ids of the jobs in the order procrastinate's workers take them."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    async with app.open_async():
        worker_id = await app.job_manager.register_worker()
        taken = []
        while job := await app.job_manager.fetch_job(queues=[QUEUE], worker_id=worker_id):
            taken.append(job.task_kwargs["id"])
        return taken


def test_a_newcomer_is_taken_next_however_long_another_callers_backlog(postgres):
    url = fresh_database(postgres, "turns")
    store = PostgresStore(url)
    store.migrate()
    store.add([_submission(f"a{i}", "a") for i in range(20)])
    assert asyncio.run(_take_one(url)) == "a0"  # a worker is running A's first
    store.add([_submission("b0", "b")])
    store.add([_submission(f"c{i}", "c") for i in range(2)])
    store.add([_submission("a20", "a")])
    taken = asyncio.run(_take_all(url))
    store.close()
    # B and C come next (in their order of arrival), then the callers take turns; A's own
    # submissions stay in order, its latest last.
    assert taken[:5] == ["b0", "c0", "a1", "c1", "a2"], taken
    assert taken[5:] == [f"a{i}" for i in range(3, 21)]


async def _take_one(url: str) -> str:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    async with app.open_async():
        worker_id = await app.job_manager.register_worker()
        job = await app.job_manager.fetch_job(queues=[QUEUE], worker_id=worker_id)
        return job.task_kwargs["id"]


def _depth(node: Server) -> dict[str, float] | None:
    """The cluster queue depth a node's /metrics shows, by state; None when it shows none."""
    text = httpx.get(node.url + "/metrics", timeout=slow(5)).text
    found = re.findall(r'^execbox_cluster_queue_depth\{state="(\w+)"\} (\S+)$', text, re.M)
    return {state: float(value) for state, value in found} or None


def test_one_callers_backlog_does_not_hold_back_anothers_submission_and_metrics_show_it(
    postgres,
):
    """One worker slot; caller A posts 8 one-second sleeps, then caller B one echo: B's ends
    after at most the one of A's that was running (FIFO: after all 8)."""
    url = fresh_database(postgres, "fairness")
    env = _env(url, EXECBOX_MAX_CONCURRENCY="1", EXECBOX_API_KEYS=",".join(KEYS.values()))
    worker = Worker(env=env, command=("worker",)).start()
    api = Server(env=env, command=("serve", "--no-worker")).start()
    try:
        with httpx.Client(base_url=api.url, timeout=60) as client:
            backlog = client.post(
                "/api/v1/submissions/batch",
                headers={"X-API-Key": KEYS["a"]},
                json={
                    "submissions": [
                        {"language": "bash", "code": f"sleep 1; echo a{i}"} for i in range(8)
                    ]
                },
            )
            assert backlog.status_code == 202, backlog.text
            single = client.post(
                "/api/v1/submissions",
                headers={"X-API-Key": KEYS["b"]},
                json={"language": "bash", "code": "echo b"},
            )
            assert single.status_code == 202, single.text
            # The API-only node, which runs nothing, shows the shared queue: one running, the
            # rest waiting.
            wait_for(
                lambda: (d := _depth(api)) is not None and d["doing"] == 1 and d["todo"] >= 1,
                30,
                "the API node's /metrics to show the queue",
            )
            b_id, a_ids = single.json()["id"], backlog.json()["ids"]
            wait_for(
                lambda: (
                    client.get(
                        f"/api/v1/submissions/{b_id}", headers={"X-API-Key": KEYS["b"]}
                    ).json()["state"]
                    == "done"
                ),
                60,
                "B's submission",
            )
        with psycopg.connect(url) as db:
            (b_end,) = db.execute(
                "SELECT finished_at FROM execbox_submissions WHERE id = %s", (b_id,)
            ).fetchone()
            (a_before_b,) = db.execute(
                "SELECT count(*) FROM execbox_submissions WHERE id = ANY(%s) AND finished_at < %s",
                (a_ids, b_end),
            ).fetchone()
        assert a_before_b <= 1, f"{a_before_b} of A's 8 sleeps ended before B's echo"
        wait_for(lambda: _depth(api) == {"todo": 0, "doing": 0}, 60, "the queue to empty")
        # The database going away: a scrape still answers at once, and stops showing a depth
        # it can no longer know.
        with psycopg.connect(postgres, autocommit=True) as db:
            db.execute("ALTER DATABASE fairness ALLOW_CONNECTIONS false")
            db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = 'fairness' AND pid != pg_backend_pid()"
            )
        try:
            asked = time.monotonic()
            assert httpx.get(api.url + "/metrics", timeout=slow(5)).status_code == 200
            assert time.monotonic() - asked < slow(1)
            wait_for(lambda: _depth(api) is None, 30, "the stale depth to go")
        finally:
            with psycopg.connect(postgres, autocommit=True) as db:
                db.execute("ALTER DATABASE fairness ALLOW_CONNECTIONS true")
    finally:
        _stop([worker, api])


# --- callbacks ------------------------------------------------------------------------------


class HoldingReceiver:
    """A callback receiver on 127.0.0.1 that holds the first request it gets, unanswered,
    until its sender hangs up (``first_hung_up``) or the receiver closes, and answers 200 to
    those after it."""

    def __init__(self) -> None:
        self.first_arrived = threading.Event()
        self.first_hung_up = threading.Event()
        self._closing = threading.Event()
        self.delivered: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not receiver.first_arrived.is_set():
                    receiver.first_arrived.set()
                    self._hold()
                    return
                receiver.delivered.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _hold(self) -> None:
                """Until the sender hangs up (its node died) or the receiver closes."""
                self.connection.settimeout(0.2)
                while not receiver._closing.is_set():
                    try:
                        hung_up = self.connection.recv(1, socket.MSG_PEEK) == b""
                    except TimeoutError:
                        continue
                    except OSError:
                        hung_up = True
                    if hung_up:
                        receiver.first_hung_up.set()
                        return

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/callback"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()


def test_a_callback_pending_when_its_api_node_dies_is_sent_by_another_not_by_a_worker(
    postgres,
):
    """Callbacks go out from the nodes that serve HTTP: the API node starts the callback and
    is SIGKILLed while the receiver holds that request; the worker, alive all along, sends
    nothing; a second API node, started after, sends it."""
    url = fresh_database(postgres, "callbacks")
    # A try lasts long enough that only its sender's death ends it while the test looks.
    env = _env(url, EXECBOX_CALLBACK_ALLOW_PRIVATE="true", EXECBOX_CALLBACK_TIMEOUT_S="30")
    receiver = HoldingReceiver()
    worker = Worker(env=env, command=("worker",)).start()
    first = Server(env=env, command=("serve", "--no-worker")).start()
    nodes: list[Server] = [worker, first]
    try:
        created = httpx.post(
            first.url + "/api/v1/submissions",
            json={"language": "bash", "code": "echo called back", "callback_url": receiver.url},
            timeout=60,
        )
        assert created.status_code == 202, created.text
        assert receiver.first_arrived.wait(slow(60)), "no callback was sent"
        first.stop(signal.SIGKILL)
        # The request held was the API node's: it ended with that node.
        assert receiver.first_hung_up.wait(slow(3)), "the held callback was not the API node's"
        # Long past the dead sender's heartbeat: a worker would have taken the job by now.
        time.sleep(STALLED_AFTER_S + slow(3))
        assert receiver.delivered == []
        nodes.append(Server(env=env, command=("serve", "--no-worker")).start())
        wait_for(lambda: receiver.delivered, 60, "the callback from the second API node")
        (body,) = receiver.delivered
        assert body["id"] == created.json()["id"]
        assert body["result"]["run"]["stdout"] == "called back\n"
        assert first.process.returncode == -signal.SIGKILL
        # Delivered: the job is gone, and no other copy follows.
        time.sleep(slow(2))
        with psycopg.connect(url) as db:
            (left,) = db.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'execbox_callbacks'"
            ).fetchone()
        assert left == 0
        assert len(receiver.delivered) == 1
    finally:
        _stop(nodes)
        receiver.close()


def test_receivers_that_trickle_their_answers_do_not_hold_up_other_callbacks(postgres):
    """One node (`execbox serve`, so it sends callbacks too): more callbacks to a receiver
    that answers a byte a second than the node sends at once, then one to a receiver that
    answers at once. Each try at the trickling one ends at its 2 s deadline, so the other
    is delivered within seconds; every trickling one is tried twice, then given up."""
    url = fresh_database(postgres, "hostile_callbacks")
    env = _env(
        url,
        EXECBOX_CALLBACK_ALLOW_PRIVATE="true",
        EXECBOX_CALLBACK_TIMEOUT_S="2",
        EXECBOX_CALLBACK_MAX_TRIES="2",
    )
    stalling, answering = RawReceiver(trickle), RawReceiver(ok)
    node = Server(env=env, command=("serve",)).start()
    try:
        with httpx.Client(base_url=node.url, timeout=60) as client:

            def submit(callback_url: str) -> str:
                created = client.post(
                    "/api/v1/submissions",
                    json={"language": "bash", "code": "echo hi", "callback_url": callback_url},
                )
                assert created.status_code == 202, created.text
                return created.json()["id"]

            stalled = [submit(stalling.url) for _ in range(CALLBACK_SENDERS + 1)]
            wait_for(
                lambda: stalling.requests >= CALLBACK_SENDERS,
                60,
                "every callback sender to be held by the trickling receiver",
            )
            other = submit(answering.url)
            # Unbounded tries would hold every sender forever: it would never come.
            wait_for(lambda: answering.bodies, 30, "the other callback")
        assert [body["id"] for body in answering.bodies] == [other]
        wait_for(
            lambda: stalling.requests == 2 * len(stalled), 60, "two tries of each trickling one"
        )
        assert sorted(body["id"] for body in stalling.bodies) == sorted(stalled * 2)
        with psycopg.connect(url) as db:
            wait_for(
                lambda: (
                    db.execute(
                        "SELECT count(*) FROM procrastinate_jobs "
                        "WHERE queue_name = 'execbox_callbacks'"
                    ).fetchone()
                    == (0,)
                ),
                30,
                "the given-up callbacks' jobs to go",
            )
        time.sleep(slow(2))
        assert stalling.requests == 2 * len(stalled)  # given up: no third try
    finally:
        _stop([node])
        stalling.close()
        answering.close()
