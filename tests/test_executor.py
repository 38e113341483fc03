"""Every execution goes through one executor, whichever API it came through: each appears
once in /metrics and once in the access log."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from conftest import Server, wait_for
from websockets.sync.client import connect


@pytest.fixture(scope="module")
def own_server() -> Iterator[Server]:
    server = Server().start()
    yield server
    server.stop()


def executions_total(server: Server) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("execbox_executions_total{")
    )


def logged_executions(server: Server) -> list[dict]:
    entries = []
    for line in server.log.read_text(errors="replace").splitlines():
        if " execbox.access " in line:
            entry = json.loads(line.split(" execbox.access ", 1)[1])
            if entry["event"] == "execution":
                entries.append(entry)
    return entries


def v1(server: Server) -> None:
    body = {"language": "bash", "code": "echo v1"}
    response = httpx.post(server.url + "/api/v1/execute", json=body, timeout=60)
    assert response.json()["run"]["stdout"] == "v1\n"


def original(server: Server) -> None:
    response = httpx.post(server.url + "/", json={"lang": "bash", "code": "echo hi"}, timeout=60)
    assert response.json()["output"] == "hi"


def piston_http(server: Server) -> None:
    body = {"language": "bash", "version": "*", "files": [{"content": "echo p"}]}
    response = httpx.post(server.url + "/api/v2/execute", json=body, timeout=60)
    assert response.json()["run"]["stdout"] == "p\n"


def piston_websocket(server: Server) -> None:
    url = server.url.replace("http://", "ws://") + "/api/v2/connect"
    with connect(url, open_timeout=10) as socket:
        init = {
            "type": "init",
            "language": "bash",
            "version": "*",
            "files": [{"content": "echo w"}],
        }
        socket.send(json.dumps(init))
        events = []
        while not events or events[-1]["type"] != "exit":
            events.append(json.loads(socket.recv(timeout=30)))
    assert {"type": "data", "stream": "stdout", "data": "w\n"} in events, events


def judge0_wait(server: Server) -> None:
    body = {"source_code": "print('j')", "language_id": 71}
    response = httpx.post(server.url + "/submissions?wait=true", json=body, timeout=60)
    assert response.json()["stdout"] == "j\n"


def judge0_stored(server: Server) -> None:
    body = {"source_code": "print('s')", "language_id": 71}
    token = httpx.post(server.url + "/submissions", json=body, timeout=30).json()["token"]

    def finished() -> bool:
        shown = httpx.get(f"{server.url}/submissions/{token}", timeout=10).json()
        return shown["status"]["id"] > 2

    wait_for(finished, 60, "the stored Judge0 submission finishing")


def v1_submission(server: Server) -> None:
    body = {"language": "bash", "code": "echo sub"}
    id = httpx.post(server.url + "/api/v1/submissions", json=body, timeout=30).json()["id"]

    def finished() -> bool:
        return httpx.get(f"{server.url}/api/v1/submissions/{id}").json()["state"] == "done"

    wait_for(finished, 60, "the v1 submission finishing")


DIALECTS: list[tuple[str, Callable[[Server], None], str]] = [
    ("v1", v1, "v1"),
    ("original", original, "original"),
    ("piston http", piston_http, "piston"),
    ("piston websocket", piston_websocket, "piston"),
    ("judge0 wait=true", judge0_wait, "judge0"),
    ("judge0 stored", judge0_stored, "judge0"),
    ("v1 submission", v1_submission, "v1"),
]


@pytest.mark.parametrize(("name", "drive", "api"), DIALECTS, ids=[d[0] for d in DIALECTS])
def test_each_execution_is_counted_and_logged_once(own_server, name, drive, api):
    counted, logged = executions_total(own_server), len(logged_executions(own_server))
    drive(own_server)
    wait_for(
        lambda: executions_total(own_server) >= counted + 1,
        10,
        f"the {name} execution in execbox_executions_total",
    )
    wait_for(
        lambda: len(logged_executions(own_server)) >= logged + 1,
        10,
        f"the {name} execution in the access log",
    )
    assert executions_total(own_server) == counted + 1
    new = logged_executions(own_server)[logged:]
    assert len(new) == 1, new
    assert new[0]["api"] == api and new[0]["status"] == "ok", new[0]
