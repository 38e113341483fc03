"""Every language: hello world, stdin, args, errors with their messages, exact bytes."""

from __future__ import annotations

import base64
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import Server

# Every test here runs against both sandbox backends.
BACKENDS = ("native", "docker")


@dataclass(frozen=True)
class Programs:
    """One language's test programs (tests/languages/<name>.toml)."""

    language: str
    hello: str
    echo: str  # reads a line of stdin, prints it reversed, then each argument on its own line
    crash: str
    crash_stderr: tuple[str, ...]
    judge0_id: int | None = None
    broken: str | None = None  # a compile error on line 2
    broken_message: tuple[str, ...] = ()


def _load(path: Path) -> Programs:
    data = tomllib.loads(path.read_text())
    compile_error = data.get("compile_error", {})
    return Programs(
        language=data["language"],
        hello=data["hello"],
        echo=data["echo"],
        crash=data["runtime_error"]["code"],
        crash_stderr=tuple(data["runtime_error"]["stderr"]),
        judge0_id=data.get("judge0_id"),
        broken=compile_error.get("code"),
        broken_message=tuple(compile_error.get("message", ())),
    )


PROGRAMS = {
    p.language: p for p in map(_load, sorted((Path(__file__).parent / "languages").glob("*.toml")))
}
LANGUAGES = list(PROGRAMS)
COMPILED = [name for name, p in PROGRAMS.items() if p.broken is not None]
JUDGE0 = [name for name, p in PROGRAMS.items() if p.judge0_id is not None]

ECHOED = "dlrow olleh\none\ntwo words\n-x\n"


def test_every_language_is_listed_and_available(client):
    listed = {item["language"]: item for item in client.get("/api/v1/languages").json()}
    assert set(LANGUAGES) <= set(listed)
    for name in LANGUAGES:
        assert listed[name]["available"], listed[name]
        assert listed[name]["version"][0].isdigit()
    assert listed["python"]["compiled"] is False
    assert listed["rust"]["compiled"] is True


@pytest.mark.parametrize("language", LANGUAGES)
def test_hello_world(run, language):
    body = run(language, PROGRAMS[language].hello)
    assert body["status"] == "ok", body
    assert body["run"]["stdout"] == "Hello world!\n"
    assert body["run"]["exit_code"] == 0
    assert body["run"]["wall_time_ms"] > 0
    assert body["run"]["memory_bytes"] > 0
    assert (body["compile"] is not None) == (language in COMPILED)


@pytest.mark.parametrize("language", LANGUAGES)
def test_stdin_and_args(run, language):
    body = run(
        language, PROGRAMS[language].echo, stdin="hello world\n", args=["one", "two words", "-x"]
    )
    assert body["status"] == "ok", body
    assert body["run"]["stdout"] == "dlrow olleh\none\ntwo words\n-x\n"


@pytest.mark.parametrize("language", LANGUAGES)
def test_piston_runs_every_language(client, language):
    body = client.post(
        "/api/v2/execute",
        json={
            "language": language,
            "version": "*",
            "files": [{"content": PROGRAMS[language].echo}],
            "stdin": "hello world\n",
            "args": ["one", "two words", "-x"],
        },
    ).json()
    assert body["language"] == language, body
    assert body["run"]["stdout"] == ECHOED, body
    assert body["run"]["code"] == 0


@pytest.mark.parametrize("language", JUDGE0)
def test_judge0_ids_run_every_language(client, backend, language):
    # Go's 1.3 MB binary is above Judge0's default max_file_size (1 MB): the limit is the
    # program's, not what bounds putting its files in place (it did on Docker).
    programs = PROGRAMS[language]

    def submit(source: str, **fields) -> dict:
        fields = {"language_id": programs.judge0_id, "source_code": source, **fields}
        return client.post("/submissions?wait=true", json=fields).json()

    echoed = submit(
        programs.echo, stdin="hello world\n", command_line_arguments="one 'two words' -x"
    )
    assert echoed["status"]["description"] == "Accepted", echoed
    assert echoed["stdout"] == ECHOED
    crashed = submit(programs.crash)
    assert crashed["status"]["description"].startswith("Runtime Error"), crashed
    # Judge0 names the source file its own way (script.rb): one of the texts, or the word.
    assert any(text in crashed["stderr"] for text in (*programs.crash_stderr, "boom")), crashed
    if programs.broken is not None:
        broken = submit(programs.broken)
        assert broken["status"]["description"] == "Compilation Error", broken
        # Line 2 as compilers print it: main.c:2, main.pas(2,5), OCaml's `File "main.ml", line 2`.
        output = broken["compile_output"]
        assert any(mark in output for mark in (":2", "(2,", "line 2")), broken


def test_judge0_lists_each_language_with_its_installed_version(client):
    listed = {item["id"]: item["name"] for item in client.get("/languages").json()}
    versions = {x["language"]: x["version"] for x in client.get("/api/v1/languages").json()}
    assert listed[72] == f"Ruby ({versions['ruby']})"
    assert listed[75] == f"C (Clang {versions['clang']})"
    assert listed[82] == f"SQL (SQLite {versions['sqlite3']})"
    assert listed[45] == f"Assembly (NASM {versions['nasm']})"


def test_unicode_stdin_round_trips(run):
    body = run("python", "import sys; sys.stdout.write(sys.stdin.read())", stdin="héllo wörld ✓\n")
    assert body["run"]["stdout"] == "héllo wörld ✓\n"


def test_large_stdin_echoed_without_deadlock(run):
    data = "x" * 2_000_000
    code = "import sys; sys.stdout.write(sys.stdin.read())"
    body = run("python", code, stdin=data, limits={"output_bytes": 4_000_000})
    assert body["status"] == "ok"
    assert body["run"]["stdout"] == data


@pytest.mark.parametrize("language", LANGUAGES)
def test_runtime_error_reports_message(run, language):
    programs = PROGRAMS[language]
    body = run(language, programs.crash)
    assert body["status"] == "runtime_error", body
    assert body["run"]["exit_code"] != 0 or body["run"]["signal"] is not None
    for text in programs.crash_stderr:
        assert text in body["run"]["stderr"], body


@pytest.mark.parametrize("language", COMPILED)
def test_compile_error_has_line_number(run, language):
    programs = PROGRAMS[language]
    body = run(language, programs.broken)
    assert body["status"] == "compile_error", body
    assert body["run"] is None
    compile_ = body["compile"]
    assert compile_["status"] == "compile_error"
    for text in programs.broken_message:
        assert text in compile_["stdout"] + compile_["stderr"], compile_


def test_python_syntax_error_is_a_runtime_error_with_line(run):
    body = run("python", "x = 1\ndef f(:\n")
    assert body["status"] == "runtime_error"
    assert "line 2" in body["run"]["stderr"] and "SyntaxError" in body["run"]["stderr"]


def test_output_is_byte_exact(run):
    body = run("python", "import sys; sys.stdout.write('  a\\r\\n\\tb  ')")
    assert body["run"]["stdout"] == "  a\r\n\tb  "


def test_binary_output_in_base64(run):
    code = "import sys; sys.stdout.buffer.write(bytes(range(256)))"
    body = run("python", code, output_encoding="base64")
    assert body["run"]["encoding"] == "base64"
    assert base64.b64decode(body["run"]["stdout"]) == bytes(range(256))


def test_invalid_utf8_is_replaced_not_an_error(run):
    body = run("python", "import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe end')")
    assert body["status"] == "ok"
    assert body["run"]["stdout"] == "ok \ufffd\ufffd end"


def test_stdout_and_stderr_are_separate(run):
    body = run("bash", "echo out; echo err >&2")
    assert body["run"]["stdout"] == "out\n"
    assert body["run"]["stderr"] == "err\n"


def test_a_program_may_reopen_its_standard_streams_by_name(run):
    # (Native stdin is a pipe, Docker's a file: a reopened file starts again at its beginning,
    # so the program reads it by name only.)
    code = "cat /dev/stdin > /dev/stdout\necho err > /dev/stderr\n"
    body = run("bash", code, stdin="one\ntwo\n")
    assert body["status"] == "ok", body
    assert body["run"]["stdout"] == "one\ntwo\n"
    assert body["run"]["stderr"] == "err\n"


def test_aliases(run):
    for alias, language in [
        ("py", "python"),
        ("js", "javascript"),
        ("golang", "go"),
        ("sh", "bash"),
        ("cpp", "c++"),
        ("rs", "rust"),
        ("Python3", "python"),
    ]:
        body = run(alias, PROGRAMS[language].hello)
        assert body["language"] == language
        assert body["run"]["stdout"] == "Hello world!\n"


def test_multiple_files(client):
    files = [
        {"name": "main.py", "content": "from lib.util import greet\nprint(greet())"},
        {"name": "lib/__init__.py", "content": ""},
        {"name": "lib/util.py", "content": "def greet():\n    return open('data.txt').read()"},
        {
            "name": "data.txt",
            "content": base64.b64encode(b"from a file").decode(),
            "encoding": "base64",
        },
    ]
    body = client.post("/api/v1/execute", json={"language": "python", "files": files}).json()
    assert body["run"]["stdout"] == "from a file\n", body


def test_multiple_cpp_files_compile_together(client):
    files = [
        {
            "name": "main.cpp",
            "content": '#include "add.h"\n#include <cstdio>\n'
            'int main() { printf("%d\\n", add(2, 3)); }',
        },
        {"name": "add.h", "content": "int add(int a, int b);"},
        {"name": "add.cpp", "content": "int add(int a, int b) { return a + b; }"},
    ]
    body = client.post("/api/v1/execute", json={"language": "c++", "files": files}).json()
    assert body["run"]["stdout"] == "5\n", body


def test_java_file_is_named_after_its_public_class(run):
    code = (
        'public class Solution { public static void main(String[] a) { System.out.println("s"); } }'
    )
    assert run("java", code)["run"]["stdout"] == "s\n"


def test_javac_starts_from_its_class_data_archive(client, backend):
    # With -Xshare:on the JVM refuses to start unless the archive maps: the compile stage's
    # success shows the archive is there, readable in the sandbox, and valid for this JDK.
    # (Compiler options reach javac through the Judge0 API.)
    code = 'public class Main { public static void main(String[] a) { System.out.println("j"); } }'
    body = client.post(
        "/submissions?wait=true",
        json={"language_id": 62, "source_code": code, "compiler_options": "-J-Xshare:on"},
    ).json()
    if backend == "docker":  # no archive in the image: the JVM says so and stops
        assert body["status"]["description"] == "Compilation Error", body
        return
    assert body["status"]["description"] == "Accepted", body
    assert body["stdout"] == "j\n" and not body["compile_output"], body


def test_version_selection(client, run):
    version = next(
        x["version"] for x in client.get("/api/v1/languages").json() if x["language"] == "python"
    )
    major_minor = ".".join(version.split(".")[:2])
    assert run("python", "print(1)", version=major_minor)["version"] == version
    response = client.post(
        "/api/v1/execute", json={"language": "python", "version": "2.7", "code": "print(1)"}
    )
    assert response.status_code == 400
    assert "2.7" in response.json()["message"] and version in response.json()["message"]


def test_python_with_only_the_standard_library_starts_lean(run):
    # Without `site`, the builtin `exit` is not defined: that shows which start was used.
    code = (
        "import builtins, json\nfrom collections import Counter\nprint(hasattr(builtins, 'exit'))"
    )
    assert run("python", code)["run"]["stdout"] == "False\n"


def test_python_importing_other_packages_gets_site_packages(run):
    code = (
        "try:\n    import some_third_party_package\nexcept ImportError:\n    pass\n"
        "import builtins\nprint(hasattr(builtins, 'exit'))"
    )
    assert run("python", code)["run"]["stdout"] == "True\n"


def test_python_exit_builtin_still_works(run):
    body = run("python", "print('bye')\nexit(3)")
    assert body["run"]["stdout"] == "bye\n" and body["run"]["exit_code"] == 3


def test_python_local_modules_count_as_own_files(client):
    files = [
        {
            "name": "main.py",
            "content": "import helper, builtins\nprint(helper.X, hasattr(builtins, 'exit'))",
        },
        {"name": "helper.py", "content": "X = 42"},
    ]
    body = client.post("/api/v1/execute", json={"language": "python", "files": files}).json()
    assert body["run"]["stdout"] == "42 False\n"


def test_a_missing_toolchain_is_listed_with_the_command_that_installs_it(tmp_path):
    data = tmp_path / "languages.toml"
    data.write_text(
        '[cobol]\ninstall = "gnucobol"\nentry = "main.cob"\n'
        'discover.cobc = "command -v no-such-cobc"\nversion = ["{cobc}", "-v"]\nrun = ["./main"]\n'
        # The server is healthy only with some language available.
        '[bash]\nentry = "main.sh"\nversion = ["/bin/bash", "--version"]\nrun = ["/bin/bash", "{entry}"]\n'
    )
    server = Server(env={"EXECBOX_LANGUAGES_FILE": str(data)}).start()
    try:
        listed = httpx.get(server.url + "/api/v1/languages").json()[0]
    finally:
        server.stop()
    assert listed["language"] == "cobol" and not listed["available"]
    assert "apt-get install gnucobol" in listed["reason"], listed
