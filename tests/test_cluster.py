"""Cluster mode on real PostgreSQL (Debian's, started here as an unprivileged user): two
workers and one API-only node share one database; a worker SIGKILLed mid-run loses nothing,
and every submission ends with exactly one result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import psycopg
import pytest
from cluster_support import Worker, fresh_database
from conftest import Server, slow, wait_for

from execbox.submissions.model import Submission
from execbox.submissions.postgres import PostgresStore

pytest_plugins = ["postgres_fixture"]

N_HELLO = int(os.environ.get("EXECBOX_CLUSTER_N", "500"))
N_SLEEP = 8
SLEEP_S = 2
KILLED_HOLDS = 2  # jobs one worker runs at once
STALLED_AFTER_S = 5  # a worker silent this long is presumed dead


def _cluster(url: str, stalled_retry: bool) -> tuple[list[Worker], Server]:
    env = {
        "EXECBOX_DATABASE_URL": url,
        "EXECBOX_CLUSTER_HEARTBEAT_S": "1",
        "EXECBOX_CLUSTER_STALLED_AFTER_S": str(STALLED_AFTER_S),
        "EXECBOX_CLUSTER_STALLED_RETRY": str(stalled_retry).lower(),
        "EXECBOX_MAX_CONCURRENCY": str(KILLED_HOLDS),
    }
    workers = [Worker(env=env, command=("worker",)).start() for _ in range(2)]
    api = Server(env=env, command=("serve", "--no-worker")).start()
    return workers, api


def _stop(nodes: list[Server]) -> None:
    for node in nodes:
        node.stop(signal.SIGKILL)


def _running_on(worker: Worker) -> bool:
    """Whether one of the worker's sandboxes runs a `sleep` now."""
    out = subprocess.run(
        ["ps", "-eo", "ppid=,pid=,args="], capture_output=True, text=True, check=True
    ).stdout
    children: dict[int, list[int]] = {}
    args: dict[int, str] = {}
    for line in out.splitlines():
        ppid, pid, *rest = line.split(None, 2)
        children.setdefault(int(ppid), []).append(int(pid))
        args[int(pid)] = rest[0] if rest else ""
    todo, seen = [worker.process.pid], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(children.get(pid, []))
    return any(args.get(pid, "").startswith("sleep ") for pid in seen)


def _submit_all(api: Server) -> list[str]:
    bodies = [{"language": "bash", "code": f"echo hello {i}"} for i in range(N_HELLO)]
    bodies[:: max(1, N_HELLO // N_SLEEP)] = [
        {"language": "bash", "code": f"sleep {SLEEP_S}; echo slept {i}"}
        for i in range(len(bodies[:: max(1, N_HELLO // N_SLEEP)]))
    ]
    ids = []
    with httpx.Client(base_url=api.url, timeout=60) as client:
        for start in range(0, len(bodies), 50):
            response = client.post(
                "/api/v1/submissions/batch", json={"submissions": bodies[start : start + 50]}
            )
            assert response.status_code == 202, response.text
            ids += response.json()["ids"]
    return ids


def _results(api: Server, ids: list[str]) -> dict[str, dict]:
    found = {}
    with httpx.Client(base_url=api.url, timeout=60) as client:
        for start in range(0, len(ids), 100):
            response = client.get(
                "/api/v1/submissions", params={"ids": ",".join(ids[start : start + 100])}
            )
            assert response.status_code == 200, response.text
            for item in response.json()["submissions"]:
                found[item["id"]] = item
    return found


def _kill_a_busy_worker(workers: list[Worker]) -> Worker:
    busy: list[Worker] = []

    def one_is_busy() -> bool:
        busy[:] = [w for w in workers if _running_on(w)]
        return bool(busy)

    wait_for(one_is_busy, 60, "a worker running a sleep")
    busy[0].stop(signal.SIGKILL)
    return busy[0]


def test_a_killed_worker_loses_no_submission_and_none_finishes_twice(postgres):
    url = fresh_database(postgres, "recovery")
    workers, api = _cluster(url, stalled_retry=True)
    try:
        started = time.monotonic()
        ids = _submit_all(api)
        killed = _kill_a_busy_worker(workers)
        finished: dict[str, dict] = {}

        def all_done() -> bool:
            finished.update(_results(api, ids))
            return all(finished[i]["state"] == "done" for i in ids)

        wait_for(all_done, 300, "every submission's end")
        elapsed = time.monotonic() - started
        print(f"{len(ids)} submissions done in {elapsed:.1f} s, one worker killed")
        for i in ids:
            run = finished[i]["result"]["run"]
            assert run["status"] == "ok", finished[i]
            assert run["stdout"] in (f"hello {n}\n" for n in range(N_HELLO)) or run[
                "stdout"
            ].startswith("slept "), run
        # Exactly one result each, in the database itself (not only as the API shows it).
        with psycopg.connect(url) as db:
            rows = db.execute(
                "SELECT count(*), count(DISTINCT id), sum((state = 'done')::int) "
                "FROM execbox_submissions"
            ).fetchone()
            retried = db.execute(
                "SELECT count(*) FROM execbox_submissions WHERE attempts > 1"
            ).fetchone()[0]
        assert rows == (len(ids), len(ids), len(ids))
        assert retried >= 1, "the killed worker held no running submission"
        assert killed.process.returncode == -signal.SIGKILL
    finally:
        _stop([*workers, api])


def test_without_recovery_a_killed_workers_submission_is_left_unfinished(postgres):
    """The negative control: the same kill with stalled-job retry switched off."""
    url = fresh_database(postgres, "norecovery")
    workers, api = _cluster(url, stalled_retry=False)
    try:
        ids = _submit_all(api)
        _kill_a_busy_worker(workers)
        finished: dict[str, dict] = {}

        def all_done() -> bool:
            finished.update(_results(api, ids))
            return all(finished[i]["state"] == "done" for i in ids)

        def only_the_killed_workers_left() -> bool:
            finished.update(_results(api, ids))
            return sum(finished[i]["state"] != "done" for i in ids) <= KILLED_HOLDS

        wait_for(only_the_killed_workers_left, 300, "the surviving worker's share to end")
        # Longer than recovery takes when it is on (see the test above): nothing comes.
        with pytest.raises(AssertionError):
            wait_for(all_done, 4 * STALLED_AFTER_S, "every submission's end")
        stuck = [i for i in ids if finished[i]["state"] != "done"]
        assert stuck, "with recovery off, the killed worker's submissions stay unfinished"
    finally:
        _stop([*workers, api])


def test_an_api_only_node_dispatches_synchronous_runs_and_the_database_going_away_is_503(
    postgres,
):
    url = fresh_database(postgres, "roles")
    workers, api = _cluster(url, stalled_retry=True)
    try:
        with httpx.Client(base_url=api.url, timeout=60) as client:
            # Synchronous runs through the API-only node: dispatched to a worker, awaited.
            response = client.post(
                "/api/v1/execute", json={"language": "bash", "code": "echo synchronous"}
            )
            assert response.status_code == 200, response.text
            assert response.json()["run"]["stdout"] == "synchronous\n"
            response = client.post(
                "/api/v2/execute",
                json={"language": "bash", "version": "*", "files": [{"content": "echo p"}]},
            )
            assert response.status_code == 200, response.text
            assert response.json()["run"]["stdout"] == "p\n"
            # Judge0 through the API-only node, run by a worker.
            created = client.post(
                "/submissions?wait=true",
                json={"source_code": "echo judged", "language_id": 46},
            )
            assert created.status_code == 201, created.text
            assert created.json()["stdout"] == "judged\n", created.text
            # The database going away: 503 with Retry-After, promptly.
            with psycopg.connect(postgres, autocommit=True) as db:
                db.execute("ALTER DATABASE roles ALLOW_CONNECTIONS false")
                db.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = 'roles' AND pid != pg_backend_pid()"
                )
            asked = time.monotonic()
            response = client.post("/api/v1/submissions", json={"language": "bash", "code": "echo"})
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]
            assert time.monotonic() - asked < slow(10)
            response = client.get(f"/submissions/{created.json()['token']}")
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]
            # And back on its own once the database is.
            with psycopg.connect(postgres, autocommit=True) as db:
                db.execute("ALTER DATABASE roles ALLOW_CONNECTIONS true")
            response = client.get(f"/submissions/{created.json()['token']}")
            assert response.status_code == 200, response.text
            assert response.json()["stdout"] == "judged\n"
    finally:
        _stop([*workers, api])


def _submission(id: str) -> Submission:
    return Submission(id=id, dialect="v1", caller="test", request={}, created_at=time.time())


def test_only_the_attempt_that_owns_a_submission_stores_its_result(postgres):
    store = PostgresStore(fresh_database(postgres, "attempts"))
    store.migrate()
    store.add([_submission("a")])
    first = store.start_attempt("a")
    second = store.start_attempt("a")  # the first one's worker was presumed dead
    assert store.finish("a", {"error": "late"}, first) is False
    assert store.finish("a", {"error": "owner"}, second) is True
    assert store.finish("a", {"error": "again"}, second) is False
    assert store.get(["a"])["a"].result == {"error": "owner"}
    store.close()


def test_a_batch_is_stored_and_queued_whole_or_not_at_all(postgres):
    url = fresh_database(postgres, "atomic")
    store = PostgresStore(url)
    store.migrate()
    store.add([_submission("a")])
    with pytest.raises(psycopg.errors.UniqueViolation):
        store.add([_submission("b"), _submission("a")])
    with psycopg.connect(url) as db:
        (jobs,) = db.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()
    assert set(store.get(["a", "b"])) == {"a"}
    assert jobs == 1
    store.close()


def test_a_full_node_runs_both_kinds_and_a_worker_stops_on_sigterm(postgres):
    url = fresh_database(postgres, "fullnode")
    env = {"EXECBOX_DATABASE_URL": url}
    worker = Worker(env=env, command=("worker",)).start()
    node = Server(env=env).start()  # `execbox serve`: the API and a worker
    try:
        with httpx.Client(base_url=node.url, timeout=60) as client:
            ran = client.post("/api/v1/execute", json={"language": "bash", "code": "echo now"})
            assert ran.status_code == 200, ran.text
            assert ran.json()["run"]["stdout"] == "now\n"
            created = client.post(
                "/submissions?wait=true", json={"source_code": "echo later", "language_id": 46}
            )
            assert created.status_code == 201, created.text
            assert created.json()["stdout"] == "later\n"
        assert worker.stop(signal.SIGTERM, timeout=slow(30)) == 0
    finally:
        _stop([worker, node])


def test_an_api_only_node_needs_cluster_mode():
    done = subprocess.run(
        [sys.executable, "-m", "execbox", "serve", "--no-worker"],
        capture_output=True,
        text=True,
        env={**os.environ, "EXECBOX_DATABASE_URL": ""},
        timeout=60,
    )
    assert done.returncode == 2
    assert "needs cluster mode" in done.stderr


def test_an_api_only_node_follows_the_languages_the_workers_publish(postgres, tmp_path):
    """A node started while the only worker offers bash takes Python as soon as a worker with
    Python publishes it (before: refused until the API node restarted)."""
    url = fresh_database(postgres, "following")
    only_bash = tmp_path / "languages.toml"
    only_bash.write_text(
        '[bash]\nentry = "main.sh"\nversion = ["/bin/bash", "-c", "echo $BASH_VERSION"]\n'
        'run = ["/bin/bash", "{entry}"]\n'
    )
    env = {"EXECBOX_DATABASE_URL": url}
    bash_worker = Worker(env={**env, "EXECBOX_LANGUAGES_FILE": str(only_bash)}, command=("worker",))
    api = Server(env=env, command=("serve", "--no-worker"))
    nodes: list[Server] = [bash_worker, api]
    python = {"language": "python", "code": "print('from the new worker')"}
    try:
        bash_worker.start()
        api.start()
        with httpx.Client(base_url=api.url, timeout=60) as client:
            refused = client.post("/api/v1/execute", json=python)
            assert refused.status_code == 503 and "no worker offers it" in refused.text
            nodes.append(Worker(env=env, command=("worker",)).start())
            # Workers are meant to be alike: the bash-only one goes, so Python lands on the new one.
            assert bash_worker.stop(signal.SIGTERM, timeout=slow(30)) == 0
            wait_for(
                lambda: client.post("/api/v1/execute", json=python).status_code == 200,
                40,
                "python on the API-only node",
            )
            ran = client.post("/api/v1/execute", json=python).json()
            assert ran["run"]["stdout"] == "from the new worker\n"
    finally:
        _stop(nodes)
