"""The HTTP surface: the original endpoint, and a clear 4xx for every kind of bad input."""

from __future__ import annotations

import base64

import httpx
import pytest

# Every test here runs against both sandbox backends.
BACKENDS = ("native", "docker")

GO_LOOP = (
    'package main\nimport "fmt"\nfunc main() {\n s := 0\n'
    " for i := 0; i < 1000; i++ { s++ }\n fmt.Println(s)\n}\n"
)


@pytest.mark.parametrize(
    "lang,code",
    [
        ("python", 'print("Hello world!")'),
        ("bash", 'echo "Hello world!"'),
        ("go", 'package main\nimport "fmt"\nfunc main() { fmt.Println("Hello world!") }'),
    ],
)
def test_original_endpoint_hello_world(client, lang, code):
    response = client.post("/", json={"lang": lang, "code": code})
    assert response.status_code == 200
    assert response.json()["output"] == "Hello world!"
    assert response.json()["error"] is False


@pytest.mark.parametrize(
    "lang,code",
    [
        ("python", "s = 0\nfor i in range(1000):\n    s += 1\nprint(s)"),
        ("bash", "s=0; for i in $(seq 1000); do s=$((s+1)); done; echo $s"),
        ("go", GO_LOOP),
    ],
)
def test_original_endpoint_loop(client, lang, code):
    body = client.post("/", json={"lang": lang, "code": code}).json()
    assert body == {"output": "1000", "error": False, "status": "ok"}


def test_original_endpoint_without_content_type(server):
    response = httpx.post(
        server.url + "/",
        content=b'{"lang":"bash","code":"echo hi"}',
        headers={"content-type": "text/plain"},
        timeout=30,
    )
    assert response.json()["output"] == "hi"


def test_original_endpoint_reports_errors(client):
    crash = client.post("/", json={"lang": "python", "code": "print('x')\nraise SystemExit(2)"})
    assert crash.json()["error"] is True and crash.json()["output"] == "x"
    compile_error = client.post("/", json={"lang": "go", "code": "package main\nfunc main() { x }"})
    assert compile_error.json()["error"] is True
    assert "main.go:2" in compile_error.json()["output"]
    timeout = client.post("/", json={"lang": "bash", "code": "sleep 60"})
    assert timeout.json()["error"] is True and timeout.json()["status"] == "time_limit"


def test_original_endpoint_output_keeps_the_order_of_both_streams(client, backend):
    code = (
        "import sys, time\nprint('a', flush=True); time.sleep(0.05)\n"
        "print('b', file=sys.stderr, flush=True); time.sleep(0.05)\nprint('c')"
    )
    body = client.post("/", json={"lang": "python", "code": code}).json()
    # The Docker backend cannot tell the order of its two streams: stdout, then stderr.
    assert body["output"] == {"native": "a\nb\nc", "docker": "a\nc\nb"}[backend]


def test_original_endpoint_unknown_language(client):
    response = client.post("/", json={"lang": "brainfuck", "code": "x"})
    assert response.status_code == 400
    body = response.json()
    assert "brainfuck" in body["message"] and "python" in body["supported"]
    assert body["error"] is True


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b'{"lang": "python"}', b'{"code": "x"}', b"[]", b'{"lang": 5, "code": []}', b""],
)
def test_original_endpoint_bad_bodies(server, payload):
    response = httpx.post(server.url + "/", content=payload, timeout=30)
    assert 400 <= response.status_code < 500
    assert response.json()["error"] is True and response.json()["message"]


@pytest.mark.parametrize(
    "body,fragment",
    [
        ({"language": "python"}, "code"),
        ({"language": "python", "code": "x", "files": [{"name": "a.py", "content": "x"}]}, "code"),
        ({"code": "print(1)"}, "language"),
        ({"language": "python", "code": "x", "limit": {}}, "limit"),
        ({"language": "python", "code": "x", "limits": {"memory_mb": "lots"}}, "memory_mb"),
        ({"language": "python", "code": "x", "args": ["a\u0000b"]}, "NUL"),
        ({"language": "python", "code": "x", "output_encoding": "latin1"}, "output_encoding"),
        ({"language": "python", "files": []}, "files"),
    ],
)
def test_execute_schema_errors(client, body, fragment):
    response = client.post("/api/v1/execute", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert fragment in response.json()["message"]


@pytest.mark.parametrize(
    "name,fragment",
    [
        ("../escape.py", ".."),
        ("/etc/passwd", "absolute"),
        ("a/../../b.py", ".."),
        ("nul\u0000.py", "NUL"),
        ("", "empty"),
        ("dir/", "main"),
    ],
)
def test_bad_file_names(client, name, fragment):
    files = [{"name": "main.py", "content": "print(1)"}, {"name": name, "content": "x"}]
    if fragment == "main":
        files = [{"name": "main.py", "content": "print(1)"}, {"name": "main.py/x", "content": "x"}]
        fragment = "both a file and a directory"
    if fragment == "empty":
        files = [{"name": "main.py", "content": "print(1)"}, {"name": "main.py", "content": "x"}]
        fragment = "twice"
    response = client.post("/api/v1/execute", json={"language": "python", "files": files})
    assert response.status_code == 400, response.text
    assert fragment in response.json()["message"]


def test_bad_base64_file(client):
    files = [{"name": "main.py", "content": "%%%", "encoding": "base64"}]
    response = client.post("/api/v1/execute", json={"language": "python", "files": files})
    assert response.status_code == 400
    assert "base64" in response.json()["message"]


def test_unknown_language_v1(client):
    response = client.post("/api/v1/execute", json={"language": "brainfuck", "code": "+"})
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_language"
    assert "brainfuck" in response.json()["message"]


def test_body_too_large_is_413(server):
    big = b'{"language": "python", "code": "' + b"#" * (11 * 1024 * 1024) + b'"}'
    response = httpx.post(server.url + "/api/v1/execute", content=big, timeout=30)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_chunked_body_too_large_is_413(server):
    def chunks():
        yield b'{"language": "python", "code": "'
        for _ in range(12):
            yield b"#" * (1024 * 1024)
        yield b'"}'

    response = httpx.post(server.url + "/api/v1/execute", content=chunks(), timeout=30)
    assert response.status_code == 413


def test_unknown_route_and_method(client):
    assert client.get("/nope").status_code == 404
    assert client.get("/nope").json()["error"] == "not_found"
    assert client.get("/api/v1/execute").status_code == 405


def test_healthz_languages_and_docs(client):
    assert client.get("/healthz").json()["status"] == "ok"
    languages = client.get("/api/v1/languages").json()
    assert {"language", "version", "aliases", "compiled", "available"} <= set(languages[0])
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/api/v1/execute" in schema["paths"]


def test_base64_source_files(client):
    code = base64.b64encode(b"print('from base64')").decode()
    body = client.post(
        "/api/v1/execute",
        json={
            "language": "python",
            "files": [{"name": "main.py", "content": code, "encoding": "base64"}],
        },
    ).json()
    assert body["run"]["stdout"] == "from base64\n"
