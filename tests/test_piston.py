"""Piston's v2 API, written from its documentation: runtimes, execute (statuses, limits,
encodings, errors) and the interactive WebSocket (stdin echo, a signal, a time limit)."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from websockets.sync.client import connect


def execute(server, body: dict, content_type: str | None = "application/json") -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return httpx.post(
        server.url + "/api/v2/execute", content=json.dumps(body), headers=headers, timeout=60
    )


def test_runtimes_list_languages_versions_aliases(server):
    runtimes = httpx.get(server.url + "/api/v2/runtimes").json()
    by_language = {r["language"]: r for r in runtimes}
    assert {"python", "bash", "javascript", "go", "java", "rust", "c++", "c"} <= set(by_language)
    assert "py" in by_language["python"]["aliases"]
    assert by_language["javascript"]["runtime"] == "node"
    assert all(r["version"][0].isdigit() for r in runtimes)


def test_execute_answers_in_pistons_shape(server):
    body = {
        "language": "py",
        "version": "3.x",
        "files": [
            {
                "name": "main.py",
                "content": "import sys\nprint(input())\nprint('e', file=sys.stderr)",
            }
        ],
        "stdin": "hi",
    }
    data = execute(server, body, content_type=None).json()  # real clients often send none
    assert data["language"] == "python" and data["version"].startswith("3.")
    run = data["run"]
    assert run["stdout"] == "hi\n" and run["stderr"] == "e\n" and run["output"] == "hi\ne\n"
    assert run["code"] == 0 and run["signal"] is None and run["status"] is None
    assert run["message"] is None and run["wall_time"] >= 0 and run["memory"] > 0
    assert "compile" not in data


def test_output_interleaves_the_streams_as_written(server):
    # Each line is written, flushed, and given time to be read before the next.
    code = (
        "import sys, time\nfor i in range(3):\n"
        "    print('out', i, flush=True); time.sleep(0.05)\n"
        "    print('err', i, file=sys.stderr, flush=True); time.sleep(0.05)"
    )
    body = {"language": "python", "version": "*", "files": [{"content": code}]}
    run = execute(server, body).json()["run"]
    assert run["output"] == "out 0\nerr 0\nout 1\nerr 1\nout 2\nerr 2\n"
    assert run["stdout"] == "out 0\nout 1\nout 2\n" and run["stderr"] == "err 0\nerr 1\nerr 2\n"


def test_compiled_language_reports_both_stages(server):
    body = {
        "language": "c++",
        "version": "*",
        "files": [{"content": '#include <cstdio>\nint main(){puts("ok");}'}],
        "args": [],
    }
    data = execute(server, body).json()
    assert data["compile"]["code"] == 0 and data["run"]["stdout"] == "ok\n"


def test_compile_error_has_no_run_stage(server):
    data = execute(
        server, {"language": "c", "version": "*", "files": [{"content": "int main(){x}"}]}
    ).json()
    assert data["compile"]["code"] != 0 and "main.c:1" in data["compile"]["stderr"]
    assert "run" not in data


def test_encodings_and_args(server):
    source = "import sys\nprint(sys.argv[1:])"
    body = {
        "language": "python",
        "version": "*",
        "files": [{"content": base64.b64encode(source.encode()).decode(), "encoding": "base64"}],
        "args": ["a b", "c"],
    }
    assert execute(server, body).json()["run"]["stdout"] == "['a b', 'c']\n"
    body["files"] = [{"content": source.encode().hex(), "encoding": "hex"}]
    assert execute(server, body).json()["run"]["stdout"] == "['a b', 'c']\n"


@pytest.mark.parametrize(
    "code,limits,status,signal",
    [
        ("import sys; sys.exit(2)", {}, "RE", None),
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", {}, "SG", "SIGSEGV"),
        ("while True: pass", {"run_timeout": 500}, "TO", "SIGKILL"),
        ("while True: pass", {"run_cpu_time": 300}, "TO", "SIGKILL"),
        ("print('x' * 10**6)", {}, "OL", "SIGKILL"),
        ("import sys; sys.stderr.write('x' * 10**6)", {}, "EL", "SIGKILL"),
        (
            "x = bytearray(300 * 1024 * 1024)",
            {"run_memory_limit": 64 * 1024 * 1024},
            "SG",
            "SIGKILL",
        ),
    ],
)
def test_statuses(server, code, limits, status, signal):
    body = {"language": "python", "version": "*", "files": [{"content": code}], **limits}
    run = execute(server, body).json()["run"]
    assert run["status"] == status, run
    assert run["signal"] == signal
    assert run["message"]


def test_minus_one_means_the_default(server):
    body = {
        "language": "bash",
        "version": "*",
        "files": [{"content": "echo ok"}],
        "run_timeout": -1,
        "run_memory_limit": -1,
    }
    assert execute(server, body).json()["run"]["stdout"] == "ok\n"


@pytest.mark.parametrize(
    "body,fragment",
    [
        ({"version": "*", "files": [{"content": "x"}]}, "language"),
        ({"language": "python", "version": "*"}, "files"),
        ({"language": "python", "version": "*", "files": [{}]}, "content"),
        ({"language": "cobol", "version": "*", "files": [{"content": "x"}]}, "cobol"),
        ({"language": "python", "version": "9.x", "files": [{"content": "x"}]}, "9.x"),
        (
            {
                "language": "python",
                "version": "*",
                "files": [{"content": "!", "encoding": "base64"}],
            },
            "base64",
        ),
        (
            {
                "language": "python",
                "version": "*",
                "files": [{"content": "x"}],
                "run_timeout": 10**9,
            },
            "wall_time",
        ),
    ],
)
def test_bad_requests_are_400_with_a_message(server, body, fragment):
    response = execute(server, body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["message"]


def test_non_json_body_is_400(server):
    response = httpx.post(server.url + "/api/v2/execute", content=b"{nope")
    assert response.status_code == 400 and "JSON" in response.json()["message"]


# --- the interactive WebSocket -----------------------------------------------------------


def ws(server):
    return connect(server.url.replace("http://", "ws://") + "/api/v2/connect", open_timeout=10)


def events_until_close(socket, limit_s: float = 20) -> list[dict]:
    events = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            events.append(json.loads(socket.recv(timeout=deadline - time.monotonic())))
        except Exception:
            break
    return events


def send_init(socket, language: str, code: str, **extra) -> None:
    init = {"type": "init", "language": language, "version": "*", "files": [{"content": code}]}
    socket.send(json.dumps({**init, **extra}))


def test_interactive_echo_of_stdin(server, backend):
    code = "import sys\nfor line in sys.stdin:\n    print('echo:', line.strip(), flush=True)\n    if line.strip() == 'bye': break"
    with ws(server) as socket:
        send_init(socket, "python", code)
        assert json.loads(socket.recv(timeout=10))["type"] == "runtime"
        assert json.loads(socket.recv(timeout=10)) == {"type": "stage", "stage": "run"}
        socket.send(json.dumps({"type": "data", "stream": "stdin", "data": "hello\n"}))
        # The answer comes while the program still runs (it waits for more input).
        seen = ""
        while "echo: hello\n" not in seen:
            event = json.loads(socket.recv(timeout=10))
            assert event["type"] == "data" and event["stream"] == "stdout", event
            seen += event["data"]
        socket.send(json.dumps({"type": "data", "stream": "stdin", "data": "bye\n"}))
        rest = events_until_close(socket)
        assert "echo: bye\n" in "".join(e.get("data", "") for e in rest), rest
        assert {"type": "exit", "stage": "run", "code": 0, "signal": None} in rest, rest
    assert socket.close_code == 4999


def test_interactive_signal(server):
    with ws(server) as socket:
        send_init(socket, "bash", "echo ready; sleep 30")
        while json.loads(socket.recv(timeout=10)).get("data") != "ready\n":
            pass
        socket.send(json.dumps({"type": "signal", "signal": "SIGTERM"}))
        rest = events_until_close(socket)
        assert {"type": "exit", "stage": "run", "code": None, "signal": "SIGTERM"} in rest


def test_interactive_signal_reaches_the_program_only(server):
    # A program that handles the signal goes on: the signal reached it, and nothing around it
    # (the sandbox's pid 1, bwrap) was hit by it.
    code = "trap 'echo caught' INT; echo ready; sleep 1; echo after"
    with ws(server) as socket:
        send_init(socket, "bash", code)
        while json.loads(socket.recv(timeout=10)).get("data") != "ready\n":
            pass
        socket.send(json.dumps({"type": "signal", "signal": "SIGINT"}))
        rest = events_until_close(socket)
        output = "".join(e.get("data", "") for e in rest if e["type"] == "data")
        assert output == "caught\nafter\n", rest
        assert {"type": "exit", "stage": "run", "code": 0, "signal": None} in rest, rest


def test_interactive_time_limit(server):
    with ws(server) as socket:
        send_init(socket, "bash", "sleep 30", run_timeout=700)
        started = time.monotonic()
        rest = events_until_close(socket)
        assert any(e["type"] == "exit" and e["stage"] == "run" for e in rest)
        assert time.monotonic() - started < 10


def test_interactive_protocol_errors(server):
    with ws(server) as socket:
        socket.send(json.dumps({"type": "data", "stream": "stdin", "data": "x"}))
        events_until_close(socket, 5)
    assert socket.close_code == 4003
    with ws(server) as socket:
        events_until_close(socket, 5)  # no init within a second
    assert socket.close_code == 4001
    with ws(server) as socket:
        send_init(socket, "bash", "sleep 5")
        socket.recv(timeout=10)
        socket.send(json.dumps({"type": "signal", "signal": "SIGNOPE"}))
        events_until_close(socket, 10)
    assert socket.close_code == 4005
    with ws(server) as socket:
        send_init(socket, "cobol", "x")
        events = events_until_close(socket, 5)
    assert events[0]["type"] == "error" and socket.close_code == 4002
