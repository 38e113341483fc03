"""Piston's v2 API, written from its documentation: runtimes, execute (statuses, limits,
encodings, errors) and the interactive WebSocket (stdin echo, a signal, a time limit)."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from conftest import Server
from websockets.sync.client import connect

from execbox.api.piston import response
from execbox.config import Limits
from execbox.engine import ExecutionResult, StageReport, Status
from execbox.languages import PistonDialect


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


def test_compile_error_is_repeated_as_the_run_stage(server):
    # v2.js: "if (result.run === undefined) result.run = result.compile"
    data = execute(
        server, {"language": "c", "version": "*", "files": [{"content": "int main(){x}"}]}
    ).json()
    assert data["compile"]["code"] != 0 and "main.c:1" in data["compile"]["stderr"]
    assert data["run"] == data["compile"]
    assert data["run"]["status"] == "RE"
    assert data["run"]["message"] == f"Exited with error status {data['run']['code']}"


@pytest.mark.parametrize(
    "language,good,bad,compiler_says",
    [
        ("go", 'package main\nimport "fmt"\nfunc main() { fmt.Println("ok") }', "package main\nfunc main() { x }", "main.go:2"),
        ("java", 'class Main { public static void main(String[] a) { System.out.println("ok"); } }', "class Main { void f() { x } }", "Main.java:1"),
    ],
)  # fmt: skip
def test_go_and_java_show_no_compile_stage(server, language, good, bad, compiler_says):
    # Piston's packages run `go run` and `java File.java`: one stage, the run.
    ok = execute(server, {"language": language, "version": "*", "files": [{"content": good}]})
    assert "compile" not in ok.json() and ok.json()["run"]["stdout"] == "ok\n"
    failed = execute(server, {"language": language, "version": "*", "files": [{"content": bad}]})
    data = failed.json()
    assert "compile" not in data, data
    assert data["run"]["code"] not in (0, None) and data["run"]["status"] == "RE"
    assert compiler_says in data["run"]["stderr"]


@pytest.mark.parametrize("path", ["/api/v2/runtimes/", "/api/v2/execute/"])
def test_trailing_slash_is_answered_directly(server, path):
    if path.endswith("runtimes/"):
        response = httpx.get(server.url + path)
        assert response.status_code == 200 and response.json()[0]["language"]
    else:
        body = {"language": "bash", "version": "*", "files": [{"content": "echo ok"}]}
        response = httpx.post(server.url + path, json=body, timeout=60)
        assert response.status_code == 200 and response.json()["run"]["stdout"] == "ok\n"


def test_a_file_name_given_twice_the_last_wins(server):
    files = [
        {"name": "main.py", "content": "print('first')"},
        {"name": "util.py", "content": "x = 1"},
        {"name": "main.py", "content": "import util\nprint('last', util.x)"},
    ]
    response = execute(server, {"language": "python", "version": "*", "files": files})
    assert response.status_code == 200, response.text
    assert response.json()["run"]["stdout"] == "last 1\n"


@pytest.mark.parametrize("stdin,read", [("a", "'a\\n'"), ("", "'\\n'"), ("b\n", "'b\\n'")])
def test_stdin_gets_a_final_newline(server, stdin, read):
    # job.js: "Add a trailing newline if it doesn't exist"
    body = {
        "language": "python",
        "version": "*",
        "files": [{"content": "import sys; print(repr(sys.stdin.read()))"}],
        "stdin": stdin,
    }
    assert execute(server, body).json()["run"]["stdout"] == read + "\n"


def test_unnamed_files_are_file_index_dot_code(server):
    # job.js: name: file.name || `file${i}.code`
    files = [
        {"content": "import os\nprint(sorted(os.listdir('.')), open('file1.code').read())"},
        {"content": "data one"},
        {"name": "named.txt", "content": "x"},
    ]
    stdout = execute(server, {"language": "python", "version": "*", "files": files}).json()
    assert stdout["run"]["stdout"] == "['file1.code', 'main.py', 'named.txt'] data one\n"


def test_the_program_is_the_first_utf8_file(server):
    files = [
        {"name": "data.bin", "content": base64.b64encode(b"\x00\x01").decode(), "encoding": "base64"},
        {"content": "print(open('data.bin', 'rb').read())"},
    ]  # fmt: skip
    run = execute(server, {"language": "python", "version": "*", "files": files}).json()["run"]
    assert run["stdout"] == "b'\\x00\\x01'\n"


def test_aliases_from_pistons_packages(server):
    by_language = {r["language"]: r for r in httpx.get(server.url + "/api/v2/runtimes").json()}
    assert {"node-javascript", "node-js"} <= set(by_language["javascript"]["aliases"])
    major, minor = by_language["python"]["version"].split(".")[:2]
    assert f"python{major}.{minor}" in by_language["python"]["aliases"]
    for alias in ("node-javascript", f"python{major}.{minor}"):
        code = "console.log(1)" if alias.startswith("node") else "print(1)"
        body = {"language": alias, "version": "*", "files": [{"content": code}]}
        assert execute(server, body).json()["run"]["stdout"] == "1\n"


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


@pytest.mark.parametrize(
    "code,limits,message",
    [
        ("import sys; sys.exit(3)", {}, "Exited with error status 3"),
        ("import time; time.sleep(30)", {"run_timeout": 500}, "Time limit exceeded (wall clock)"),
        ("while True: pass", {"run_cpu_time": 300, "run_timeout": 20000}, "Time limit exceeded"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", {}, "Caught fatal signal 11"),
        ("print('x' * 10**6)", {}, "stdout length exceeded"),
        ("import sys; sys.stderr.write('x' * 10**6)", {}, "stderr length exceeded"),
    ],
)
def test_messages_are_pistons(server, code, limits, message):
    # isolate's words, which job.js passes on as the stage's message; its own for output
    body = {"language": "python", "version": "*", "files": [{"content": code}], **limits}
    run = execute(server, body).json()["run"]
    assert run["message"] == message, run


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
        (
            {"language": "brainfuck", "version": "*", "files": [{"content": "x"}]},
            "brainfuck-* runtime is unknown",
        ),
        (
            {"language": "python", "version": "9.x", "files": [{"content": "x"}]},
            "python-9.x runtime is unknown",
        ),
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


def test_non_json_body_is_400_when_sent_as_json(server):
    response = httpx.post(
        server.url + "/api/v2/execute",
        content=b"{nope",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400 and "JSON" in response.json()["message"]


@pytest.mark.parametrize("content_type", [None, "text/plain"])
def test_non_json_body_sent_as_something_else_is_415(server, content_type):
    # v2.js: requests whose Content-Type is not application/json get 415
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(server.url + "/api/v2/execute", content=b"{nope", headers=headers)
    assert response.status_code == 415
    assert response.json() == {"message": "requests must be of type application/json"}


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
        send_init(socket, "brainfuck", "x")
        events = events_until_close(socket, 5)
    assert events[0]["type"] == "error" and socket.close_code == 4002


# --- the translation alone (pure functions, no server) ---------------------------------------


def _report(status: Status, stdout: bytes = b"", stderr: bytes = b"", **fields) -> StageReport:
    limits = Limits(1000, 1000, 64, 8, 1024, 1)
    values = {"exit_code": 0, "signal": None, "wall_time_ms": 10.0, "cpu_time_ms": 5.0}
    return StageReport(
        status=status, stdout=stdout, stderr=stderr, stdout_truncated=False,
        stderr_truncated=False, memory_bytes=100, limits=limits, **{**values, **fields},
    )  # fmt: skip


def test_one_stage_where_pistons_package_compiles_and_runs_at_once():
    compiled = _report(Status.OK, stderr=b"note\n")
    ran = _report(Status.OK, stdout=b"ok\n")
    result = ExecutionResult("java", "21", Status.OK, compiled, ran)
    body = response(result, PistonDialect(compile_stage=False))
    assert "compile" not in body
    assert body["run"]["stdout"] == "ok\n" and body["run"]["stderr"] == "note\n"
    assert body["run"]["wall_time"] == 20 and body["run"]["cpu_time"] == 10
    failed = _report(Status.COMPILE_ERROR, stderr=b"Main.java:1: error\n", exit_code=1)
    body = response(ExecutionResult("java", "21", failed.status, failed, None), PistonDialect())
    assert body["run"] == body["compile"] and body["run"]["message"] == "Exited with error status 1"


@pytest.mark.parametrize(
    ("code", "succeeds"),
    [
        ('package main\nimport "fmt"\nfunc main() { fmt.Println("go") }', True),
        ("package main\nfunc main() { undefined() }", False),
    ],
)
def test_interactive_go_is_one_run_stage_as_in_piston(server, code, succeeds):
    """Piston runs Go with `go run`: over the WebSocket it shows one run stage, whose exit is
    the compiler's when the compile failed."""
    with ws(server) as socket:
        send_init(socket, "go", code)
        events = events_until_close(socket, 120)
    stages = [e for e in events if e["type"] in ("stage", "exit")]
    assert stages[0] == {"type": "stage", "stage": "run"}, events
    assert [e["stage"] for e in stages] == ["run", "run"], events
    assert (stages[-1]["code"] == 0) is succeeds, events
    if not succeeds:
        assert "undefined" in "".join(e.get("data", "") for e in events)


def test_interactive_key_in_the_init_message_when_keys_are_required():
    """A browser's WebSocket cannot send headers: with API keys configured, the key may come
    in the init message (as execbox's playground sends it)."""
    keyed = Server(env={"EXECBOX_API_KEYS": "secret"}).start()
    try:
        answers = {}
        for key in ("secret", "wrong"):
            with ws(keyed) as socket:
                send_init(socket, "bash", "echo keyed", api_key=key)
                answers[key] = events_until_close(socket)
    finally:
        keyed.stop()
    assert answers["secret"][0]["type"] == "runtime", answers
    assert "keyed\n" in "".join(e.get("data", "") for e in answers["secret"])
    assert answers["wrong"][0]["type"] == "error", answers
