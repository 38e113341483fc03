"""Judge0 CE 1.13.1's API, driven by the official Judge0 Python SDK (PyPI ``judge0``) pointed
at execbox: the client code is what a Judge0 user already has, only the URL changes."""

from __future__ import annotations

import base64
import io
import subprocess
import zipfile

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


# --- Judge0's special ids: Plain Text, Executable, Multi-file program ---------------------


def _submit(server, body: dict, base64_encoded: bool = False) -> httpx.Response:
    flag = "true" if base64_encoded else "false"
    return httpx.post(
        f"{server.url}/submissions?wait=true&base64_encoded={flag}&fields=*",
        json={**LIMITS, **body},
        timeout=slow(120),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_plain_text_is_shown_back(server):
    text = "first line\n  second, indented ✓\n"
    answer = _submit(server, {"language_id": 43, "source_code": text}).json()
    assert answer["status"]["id"] == 3, answer
    assert answer["stdout"] == text and answer["language"]["name"] == "Plain Text"


def test_executable_runs_the_binary_it_is_given(server, tmp_path):
    source = tmp_path / "prog.c"
    source.write_text(
        "#include <stdio.h>\nint main(int argc, char **argv) {\n char line[64];\n"
        ' fgets(line, sizeof line, stdin);\n printf("%s got %s", argv[1], line);\n return 4; }\n'
    )
    subprocess.run(["gcc", "-O2", "-o", str(tmp_path / "prog"), str(source)], check=True)
    answer = _submit(
        server,
        {
            "language_id": 44,
            "source_code": _b64((tmp_path / "prog").read_bytes()),
            "stdin": _b64(b"input\n"),
            "command_line_arguments": "binary",
        },
        base64_encoded=True,
    ).json()
    assert base64.b64decode(answer["stdout"]) == b"binary got input\n", answer
    assert answer["status"]["id"] == 11 and answer["exit_code"] == 4


@pytest.mark.parametrize(
    "content",
    [b"just some text, not a program\n", b"\x00\x01\x02\x03 garbage", b"\x7fELF\x02\x01\x01"],
    ids=["text", "garbage", "truncated-elf"],
)
def test_an_executable_that_is_no_program_is_exec_format_error(server, content):
    answer = _submit(
        server, {"language_id": 44, "source_code": _b64(content)}, base64_encoded=True
    ).json()
    assert answer["status"] == {"id": 14, "description": "Exec Format Error"}, answer
    assert "Exec format error" in answer["message"]


def _zip(files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return _b64(buffer.getvalue())


PROJECT = {
    "main.c": '#include <stdio.h>\n#include "greet.h"\n'
    'int main(void) { char n[32]; scanf("%31s", n); greet(n); return 0; }\n',
    "greet.h": '#include <stdio.h>\nstatic void greet(const char *n) { printf("hello, %s\\n", n); }\n',
    "compile": "gcc -O2 -o greeter main.c\n",
    "run": "./greeter\n",
}


def test_multi_file_program_compiles_then_runs_its_scripts(server):
    answer = _submit(
        server, {"language_id": 89, "additional_files": _zip(PROJECT), "stdin": "world"}
    ).json()
    assert answer["status"]["id"] == 3, answer
    assert answer["stdout"] == "hello, world\n" and answer["compile_output"] is None


def test_multi_file_program_without_compile_script_and_with_run_sh(server):
    files = {"run.sh": "source lib.sh\nshout quiet\n", "lib.sh": 'shout() { echo "${1^^}"; }\n'}
    answer = _submit(server, {"language_id": 89, "additional_files": _zip(files)}).json()
    assert answer["status"]["id"] == 3 and answer["stdout"] == "QUIET\n", answer


def test_multi_file_program_compile_error(server):
    broken = {**PROJECT, "main.c": "int main(void) {\n  return missing;\n}\n"}
    answer = _submit(server, {"language_id": 89, "additional_files": _zip(broken)}).json()
    assert answer["status"]["id"] == 6, answer
    assert "main.c:2" in answer["compile_output"]


@pytest.mark.parametrize(
    "body,message",
    [
        ({"language_id": 89, "source_code": "echo hi"}, "can't be blank"),
        ({"language_id": 89, "additional_files": _zip({"main.c": "x"})}, "no run script"),
    ],
)
def test_multi_file_program_needs_an_archive_with_a_run_script(server, body, message):
    response = httpx.post(f"{server.url}/submissions", json=body)
    assert response.status_code == 422, response.text
    assert message in response.json()["additional_files"][0]


# --- ids whose toolchain Debian 12 does not have ------------------------------------------

UNAVAILABLE = {
    47: ("Basic (FBC 1.07.1)", "FreeBASIC"),
    70: ("Python (2.7.17)", "Python 2"),
    83: ("Swift (5.2.3)", "Swift"),
    84: ("Visual Basic.Net (vbnc 0.0.0.5943)", "vbnc"),
    87: ("F# (.NET Core SDK 3.1.202)", ".NET SDK"),
}


@pytest.mark.parametrize("language_id", list(UNAVAILABLE))
def test_an_unavailable_id_is_refused_with_the_reason(server, language_id):
    name, missing = UNAVAILABLE[language_id]
    response = httpx.post(
        f"{server.url}/submissions", json={"language_id": language_id, "source_code": "x"}
    )
    assert response.status_code == 422, response.text
    (message,) = response.json()["language_id"]
    assert message.startswith(f"{name} is not available: Debian 12 has no") and missing in message


def test_unavailable_ids_are_listed_as_archived_only(server):
    active = {item["id"] for item in httpx.get(server.url + "/languages").json()}
    everything = {item["id"]: item for item in httpx.get(server.url + "/languages/all").json()}
    assert {43, 44, 89} <= active and not active & set(UNAVAILABLE)
    for language_id, (name, _) in UNAVAILABLE.items():
        assert everything[language_id] == {"id": language_id, "name": name, "is_archived": True}
    assert everything[71]["is_archived"] is False
    assert httpx.get(server.url + "/languages/83").json()["is_archived"] is True
    listed = {x["language"]: x for x in httpx.get(server.url + "/api/v1/languages").json()}
    assert listed["swift"]["available"] is False
    assert "Debian 12 has no Swift" in listed["swift"]["reason"]
    refused = httpx.post(server.url + "/api/v1/execute", json={"language": "swift", "code": "x"})
    assert refused.status_code == 400 and "Debian 12 has no Swift" in refused.json()["message"]
