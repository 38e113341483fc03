"""Asynchronous submissions: execbox's own API, test cases, the store surviving a crash,
expiry, and callbacks (delivered, retried, and refused where they must be)."""

from __future__ import annotations

import asyncio
import http.server
import json
import signal
import threading
import time

import httpx
import pytest
from conftest import Server, slow, wait_for

ADD = '#include <stdio.h>\nint main(){int a,b; scanf("%d %d",&a,&b); printf("%d\\n",a+b);}'


def wait_state(url: str, id: str, state: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{url}/api/v1/submissions/{id}").json()
        if body["state"] == state:
            return body
        assert time.monotonic() < deadline, f"submission {id} never got {state}: {body}"
        time.sleep(0.05)


def wait_done(url: str, id: str, timeout: float = 60) -> dict:
    return wait_state(url, id, "done", timeout)


def test_test_cases_compile_once_and_are_judged_each(server):
    cases = [
        {"stdin": "1 2", "expected_output": "3"},
        {"stdin": "20 22", "expected_output": "42  \n"},  # trailing whitespace is ignored
        {"stdin": "2 2", "expected_output": "5"},
        {"stdin": "5 5"},
    ]
    response = httpx.post(
        server.url + "/api/v1/submissions", json={"language": "c", "code": ADD, "test_cases": cases}
    )
    assert response.status_code == 202
    done = wait_done(server.url, response.json()["id"])
    result = done["result"]
    assert result["compile"]["status"] == "ok"
    assert [c["stdout"] for c in result["cases"]] == ["3\n", "42\n", "4\n", "10\n"]
    assert [c["passed"] for c in result["cases"]] == [True, True, False, None]


def test_single_submission_and_many_ids(server):
    ids = httpx.post(
        server.url + "/api/v1/submissions/batch",
        json={
            "submissions": [
                {"language": "bash", "code": "echo one"},
                {"language": "python", "code": "print('two')"},
            ]
        },
    ).json()["ids"]
    for id in ids:
        wait_done(server.url, id)
    got = httpx.get(f"{server.url}/api/v1/submissions?ids={ids[0]},{ids[1]},missing").json()
    assert [s and s["result"]["run"]["stdout"] for s in got["submissions"]] == [
        "one\n",
        "two\n",
        None,
    ]


@pytest.mark.parametrize(
    "body,status",
    [
        ({"language": "brainfuck", "code": "x"}, 400),
        ({"language": "python"}, 422),
        ({"language": "python", "code": "x", "test_cases": [{"stdin": "", "bogus": 1}]}, 422),
        ({"language": "python", "code": "x", "test_cases": [{}] * 65}, 400),
        ({"language": "python", "code": "x", "callback_url": "http://127.0.0.1:1/"}, 400),
        ({"language": "python", "code": "x", "callback_url": "file:///etc/passwd"}, 400),
    ],
)
def test_bad_submissions_are_refused_before_anything_is_stored(server, body, status):
    response = httpx.post(server.url + "/api/v1/submissions", json=body)
    assert response.status_code == status, response.text
    assert response.json()["message"]


def test_a_batch_with_one_bad_item_stores_nothing(server):
    items = [{"language": "python", "code": "print(1)"}, {"language": "brainfuck", "code": "x"}]
    response = httpx.post(server.url + "/api/v1/submissions/batch", json={"submissions": items})
    assert response.status_code == 400 and "brainfuck" in response.json()["message"]


def test_unknown_id_is_404(server):
    assert httpx.get(server.url + "/api/v1/submissions/nope").status_code == 404


def test_a_crash_loses_no_submission(tmp_path):
    """SIGKILL the server with one submission running and more queued; the next server, on the
    same store, runs every one of them to the end."""
    db = str(tmp_path / "store.db")
    env = {"EXECBOX_SUBMISSIONS_DB": db, "EXECBOX_MAX_CONCURRENCY": "1"}
    first = Server(env=env).start()
    try:
        slow_id = httpx.post(
            first.url + "/api/v1/submissions",
            json={
                "language": "bash",
                "code": f"sleep {slow(3):.0f}; echo slow",
                "limits": {"wall_time_ms": int(slow(20) * 1000)},
            },
        ).json()["id"]
        quick = [
            httpx.post(
                first.url + "/api/v1/submissions",
                json={"language": "bash", "code": f"echo quick {i}"},
            ).json()["id"]
            for i in range(4)
        ]
        # The slow one is running, the others wait behind it (one slot).
        wait_state(first.url, slow_id, "running")
        states = [httpx.get(f"{first.url}/api/v1/submissions/{id}").json() for id in quick]
        assert [s["state"] for s in states] == ["queued"] * 4
    except BaseException:
        first.stop()  # gracefully: a test that fails here leaves nothing behind
        raise
    first.stop(signal.SIGKILL)  # the next server removes what this one leaves
    second = Server(env=env).start()
    try:
        assert wait_done(second.url, slow_id)["result"]["run"]["stdout"] == "slow\n"
        outputs = [wait_done(second.url, id)["result"]["run"]["stdout"] for id in quick]
        assert outputs == [f"quick {i}\n" for i in range(4)]
    finally:
        second.stop()


def test_a_graceful_stop_keeps_queued_submissions(tmp_path):
    db = str(tmp_path / "store.db")
    env = {
        "EXECBOX_SUBMISSIONS_DB": db,
        "EXECBOX_MAX_CONCURRENCY": "1",
        "EXECBOX_SHUTDOWN_GRACE_S": "5",
    }
    first = Server(env=env).start()
    try:
        ids = [
            httpx.post(
                first.url + "/api/v1/submissions",
                json={"language": "bash", "code": f"sleep {slow(1):.0f}; echo {i}"},
            ).json()["id"]
            for i in range(6)
        ]
        # Stopped while the first runs (or has just run) and the others wait.
        wait_for(
            lambda: (
                httpx.get(f"{first.url}/api/v1/submissions/{ids[0]}").json()["state"] != "queued"
            ),
            what="the first submission starting",
        )
    finally:
        first.stop(signal.SIGTERM)
    second = Server(env=env).start()
    try:
        assert [wait_done(second.url, id)["result"]["run"]["stdout"] for id in ids] == [
            f"{i}\n" for i in range(6)
        ]
    finally:
        second.stop()


def test_finished_submissions_expire(tmp_path):
    srv = Server(
        env={"EXECBOX_SUBMISSIONS_DB": str(tmp_path / "s.db"), "EXECBOX_SUBMISSION_TTL_S": "1"}
    ).start()
    try:
        id = httpx.post(
            srv.url + "/api/v1/submissions", json={"language": "bash", "code": "echo x"}
        ).json()["id"]
        wait_done(srv.url, id)
        deadline = time.monotonic() + 10
        while httpx.get(f"{srv.url}/api/v1/submissions/{id}").status_code == 200:
            assert time.monotonic() < deadline, "never expired"
            time.sleep(0.2)
    finally:
        srv.stop()


# --- callbacks ----------------------------------------------------------------------------


class Receiver:
    """A local HTTP server that records PUTs; the first ``failures`` answers are 500."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[dict] = []
        self.failures = failures
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(500)
                else:
                    receiver.bodies.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.bodies

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def open_server():
    """A server whose operator allows callbacks to private addresses (the test's receiver)."""
    srv = Server(env={"EXECBOX_CALLBACK_ALLOW_PRIVATE": "true"}).start()
    yield srv
    srv.stop()


def test_callbacks_arrive_in_each_dialect(open_server):
    receiver = Receiver()
    try:
        judge0 = httpx.post(
            open_server.url + "/submissions",
            json={"source_code": "print(6*7)", "language_id": 71, "callback_url": receiver.url},
        ).json()["token"]
        own = httpx.post(
            open_server.url + "/api/v1/submissions",
            json={"language": "bash", "code": "echo own", "callback_url": receiver.url},
        ).json()["id"]
        bodies = receiver.wait(2)
        by_id = {b.get("token") or b.get("id"): b for b in bodies}
        assert by_id[judge0]["stdout"] == "42\n" and by_id[judge0]["status"]["id"] == 3
        assert by_id[own]["result"]["run"]["stdout"] == "own\n" and by_id[own]["state"] == "done"
    finally:
        receiver.close()


def test_callbacks_are_retried(open_server):
    receiver = Receiver(failures=2)
    try:
        httpx.post(
            open_server.url + "/api/v1/submissions",
            json={"language": "bash", "code": "echo retried", "callback_url": receiver.url},
        )
        bodies = receiver.wait(1, timeout=20)
        assert bodies and bodies[0]["result"]["run"]["stdout"] == "retried\n"
    finally:
        receiver.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://localhost/x",
        "ftp://example.com/x",
    ],
)
def test_forbidden_destinations_are_refused_by_default(server, url):
    judge0 = httpx.post(
        server.url + "/submissions",
        json={"source_code": "x", "language_id": 71, "callback_url": url},
    )
    own = httpx.post(
        server.url + "/api/v1/submissions",
        json={"language": "python", "code": "x", "callback_url": url},
    )
    assert judge0.status_code == 422 and "callback_url" in judge0.json()
    assert own.status_code == 400 and "callback_url" in own.json()["message"]


def test_every_waiter_on_a_submission_sees_it_finish(tmp_path):
    """Two callers waiting on one submission: the first giving up must not leave the second
    waiting out its whole timeout once the run is over."""
    from execbox.api import create_app
    from execbox.config import Settings
    from execbox.engine import ExecutionRequest, SourceFile
    from execbox.submissions import NewSubmission

    # The state dir must be reachable by the sandbox's uids, as the servers' is.
    settings = Settings(state_dir="/run/execbox-test", submissions_db=str(tmp_path / "db.sqlite3"))
    app = create_app(settings)

    async def scenario() -> tuple[float, str]:
        async with app.router.lifespan_context(app):
            runner = app.state.submissions
            program = ExecutionRequest(language="bash", files=[SourceFile("", b"sleep 1; echo x")])
            [submission] = runner.submit("execbox", "test", [NewSubmission(program)])
            impatient = asyncio.create_task(runner.wait(submission.id, 0.1))
            started = time.monotonic()
            patient = await runner.wait(submission.id, 30)
            await impatient
            return time.monotonic() - started, patient.state.value

    waited, state = asyncio.run(scenario())
    assert state == "done"
    assert waited < 10, f"the second waiter was only woken by its timeout ({waited:.1f} s)"
