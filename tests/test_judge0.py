"""Judge0 CE 1.13.1's API, driven by the official Judge0 Python SDK (PyPI ``judge0``) pointed
at execbox: the client code is what a Judge0 user already has, only the URL changes."""

from __future__ import annotations

import base64

import httpx
import judge0
import pytest
from conftest import slow

HELLO = {
    judge0.PYTHON: "print('hello from python')",
    judge0.BASH: "echo 'hello from bash'",
    judge0.JAVASCRIPT: "console.log('hello from javascript')",
    judge0.C: '#include <stdio.h>\nint main(){puts("hello from c");}',
    judge0.CPP: '#include <iostream>\nint main(){std::cout << "hello from cpp" << std::endl;}',
    judge0.JAVA: 'public class Main { public static void main(String[] a) { System.out.println("hello from java"); } }',
    judge0.GO: 'package main\nimport "fmt"\nfunc main(){ fmt.Println("hello from go") }',
    judge0.RUST: 'fn main(){ println!("hello from rust"); }',
}


# Judge0's own default limits (5 s CPU, 10 s wall), stretched on a slow host within its maxima:
# node alone needs seconds of CPU to start under software emulation.
LIMITS = {"cpu_time_limit": min(15.0, slow(5.0)), "wall_time_limit": min(20.0, slow(10.0))}


@pytest.fixture(scope="module")
def client(server):
    return judge0.Client(server.url)


@pytest.mark.parametrize("language", list(HELLO), ids=lambda lang: lang.name.lower())
def test_hello_world_in_every_language(client, language):
    result = judge0.run(client=client, source_code=HELLO[language], language=language, **LIMITS)
    assert result.status == judge0.Status.ACCEPTED, (
        result.status,
        result.compile_output,
        result.stderr,
    )
    assert result.stdout == f"hello from {language.name.lower()}\n"
    assert result.time is not None and result.memory > 0


def test_stdin_and_expected_output(client):
    code = "a, b = map(int, input().split())\nprint(a + b)"
    right = judge0.run(
        client=client, source_code=code, language=judge0.PYTHON, stdin="2 3", expected_output="5"
    )
    wrong = judge0.run(
        client=client, source_code=code, language=judge0.PYTHON, stdin="2 3", expected_output="6"
    )
    assert right.status == judge0.Status.ACCEPTED and right.stdout == "5\n"
    assert wrong.status == judge0.Status.WRONG_ANSWER


def test_test_cases_are_judged_each(client):
    code = '#include <stdio.h>\nint main(){int a,b; scanf("%d %d",&a,&b); printf("%d\\n", a*b);}'
    results = judge0.run(
        client=client,
        source_code=code,
        language=judge0.C,
        test_cases=[("2 3", "6"), ("4 5", "20"), ("1 1", "2")],
    )
    assert [r.status for r in results] == [
        judge0.Status.ACCEPTED,
        judge0.Status.ACCEPTED,
        judge0.Status.WRONG_ANSWER,
    ]
    assert [r.stdout for r in results] == ["6\n", "20\n", "1\n"]


def test_compile_error_has_the_line(client):
    result = judge0.run(
        client=client, source_code="int main() {\n  return x;\n}", language=judge0.C
    )
    assert result.status == judge0.Status.COMPILATION_ERROR
    assert "main.c:2" in result.compile_output


def test_time_limit(client):
    result = judge0.run(
        client=client, source_code="while True: pass", language=judge0.PYTHON, cpu_time_limit=1
    )
    assert result.status == judge0.Status.TIME_LIMIT_EXCEEDED


def test_runtime_errors_by_kind(client):
    nzec = judge0.run(client=client, source_code="import sys; sys.exit(3)", language=judge0.PYTHON)
    segv = judge0.run(
        client=client, source_code="int main(){ int *p = 0; return *p; }", language=judge0.C
    )
    fpe = judge0.run(
        client=client,
        source_code="int main(){ volatile int z = 0, a = 100; return a / z; }",
        language=judge0.C,
    )
    assert nzec.status == judge0.Status.RUNTIME_ERROR_NZEC and nzec.exit_code == 3
    assert segv.status == judge0.Status.RUNTIME_ERROR_SIGSEGV and segv.exit_signal == 11
    assert fpe.status == judge0.Status.RUNTIME_ERROR_SIGFPE


# --- the raw API, where the SDK does not reach -------------------------------------------------


def test_wait_true_returns_the_result(server):
    body = {"source_code": "print(input()[::-1])", "language_id": 71, "stdin": "olleh"}
    response = httpx.post(server.url + "/submissions?wait=true", json=body, timeout=60)
    assert response.status_code == 201
    data = response.json()
    assert data["stdout"] == "hello\n" and data["status"] == {"id": 3, "description": "Accepted"}
    assert set(data) == {
        "token",
        "time",
        "memory",
        "stdout",
        "stderr",
        "compile_output",
        "message",
        "status",
    }


def test_base64_in_wrapped_out_unwrapped(server):
    source = base64.encodebytes(
        b"print('x' * 100)\n"
    ).decode()  # wrapped at 76 columns, as Ruby does
    response = httpx.post(
        server.url + "/submissions?base64_encoded=true&wait=true",
        json={"source_code": source, "language_id": 71},
        timeout=60,
    )
    stdout = response.json()["stdout"]
    assert "\n" not in stdout and base64.b64decode(stdout) == b"x" * 100 + b"\n"


def test_non_utf8_output_needs_base64(server):
    body = {"source_code": "import sys; sys.stdout.buffer.write(b'\\xff')", "language_id": 71}
    token = httpx.post(
        server.url + "/submissions?wait=true&fields=token", json=body, timeout=60
    ).json()["token"]
    plain = httpx.get(f"{server.url}/submissions/{token}")
    assert plain.status_code == 400 and "base64_encoded=true" in plain.json()["error"]
    encoded = httpx.get(f"{server.url}/submissions/{token}?base64_encoded=true&fields=stdout")
    assert encoded.json() == {"stdout": "/w=="}


def test_fields_selection(server):
    token = httpx.post(
        server.url + "/submissions?wait=true",
        json={"source_code": "print(1)", "language_id": 71},
        timeout=60,
    ).json()["token"]
    assert set(httpx.get(f"{server.url}/submissions/{token}?fields=stdout,time").json()) == {
        "stdout",
        "time",
    }
    everything = httpx.get(f"{server.url}/submissions/{token}?fields=*").json()
    assert everything["language"]["id"] == 71 and everything["status_id"] == 3
    assert everything["created_at"].endswith("Z") and everything["source_code"] == "print(1)"
    bad = httpx.get(f"{server.url}/submissions/{token}?fields=stdout,nope")
    assert bad.status_code == 400 and "nope" in bad.json()["error"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"language_id": 71}, "source_code"),
        ({"source_code": "x"}, "language_id"),
        ({"source_code": "x", "language_id": 9999}, "language_id"),
        ({"source_code": "x", "language_id": 71, "enable_network": True}, "enable_network"),
        ({"source_code": "x", "language_id": 71, "cpu_time_limit": 1000}, "cpu_time_limit"),
        ({"source_code": "x", "language_id": 71, "memory_limit": -5}, "memory_limit"),
        ({"source_code": "x", "language_id": 71, "compiler_options": "-O3"}, "compiler_options"),
        (
            {
                "source_code": "x",
                "language_id": 71,
                "callback_url": "http://169.254.169.254/latest",
            },
            "callback_url",
        ),
        ({"source_code": "!!!", "language_id": 71}, "source_code"),
    ],
)
def test_bad_submissions_are_422_with_the_field(server, body, field):
    encoded = "true" if body.get("source_code") == "!!!" else "false"
    response = httpx.post(f"{server.url}/submissions?base64_encoded={encoded}", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()


def test_batch_create_and_get(server):
    items = [
        {"source_code": "print(1)", "language_id": 71},
        {"source_code": "x", "language_id": 9999},
        {"source_code": "echo 2", "language_id": 46},
    ]
    created = httpx.post(server.url + "/submissions/batch", json={"submissions": items}).json()
    assert "token" in created[0] and "language_id" in created[1] and "token" in created[2]
    tokens = f"{created[0]['token']},{created[2]['token']}"
    for _ in range(100):
        got = httpx.get(
            f"{server.url}/submissions/batch?tokens={tokens}&fields=stdout,status"
        ).json()
        if all(s["status"]["id"] > 2 for s in got["submissions"]):
            break
    assert [s["stdout"] for s in got["submissions"]] == ["1\n", "2\n"]
    too_many = httpx.post(server.url + "/submissions/batch", json={"submissions": items * 7})
    assert too_many.status_code == 400


def test_unknown_token_is_404(server):
    response = httpx.get(server.url + "/submissions/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404 and "error" in response.json()


def test_languages_statuses_about_config(server):
    languages = {item["id"]: item["name"] for item in httpx.get(server.url + "/languages").json()}
    assert {46, 50, 52, 54, 60, 62, 63, 71, 73} <= set(languages)
    assert languages[71].startswith("Python (3.")
    detail = httpx.get(server.url + "/languages/62").json()
    assert detail["source_file"] == "Main.java" and detail["is_archived"] is False
    assert httpx.get(server.url + "/languages/12345").status_code == 404
    statuses = httpx.get(server.url + "/statuses").json()
    assert len(statuses) == 14 and statuses[3] == {"id": 4, "description": "Wrong Answer"}
    assert httpx.get(server.url + "/about").json()["version"] == "1.13.1"
    config = httpx.get(server.url + "/config_info").json()
    assert config["enable_network"] is False and config["max_submission_batch_size"] == 20
