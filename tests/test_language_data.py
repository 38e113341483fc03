"""Adding a language is a data entry: a server pointed at a test-only TOML
(EXECBOX_LANGUAGES_FILE) serves a language no Python names, through execbox's v1, Piston
and Judge0; and the packaged data carries what each dialect needs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import Server

from execbox.languages import LanguageError, load_languages

TEST_LANGUAGES = Path(__file__).parent / "data" / "languages-bash2.toml"
PROGRAM = 'echo "$GREETING $0 $(cat)"'


@pytest.fixture(scope="module")
def bash2_server():
    server = Server(env={"EXECBOX_LANGUAGES_FILE": str(TEST_LANGUAGES)}).start()
    yield server
    server.stop()


def test_v1_runs_and_lists_the_new_language(bash2_server):
    listed = httpx.get(bash2_server.url + "/api/v1/languages").json()
    assert [entry["language"] for entry in listed] == ["bash2"]
    major = listed[0]["version"].split(".")[0]
    assert listed[0]["available"] and f"bash2-{major}" in listed[0]["aliases"]
    body = {"language": "b2", "code": PROGRAM, "stdin": "in"}
    answer = httpx.post(bash2_server.url + "/api/v1/execute", json=body, timeout=60).json()
    assert answer["language"] == "bash2"
    assert answer["run"]["stdout"] == "from bash2 prog.b2 in\n"
    # python is not in this server's data
    refused = httpx.post(
        bash2_server.url + "/api/v1/execute", json={"language": "python", "code": "1"}
    )
    assert refused.status_code == 400


def test_piston_runs_and_lists_the_new_language(bash2_server):
    runtimes = httpx.get(bash2_server.url + "/api/v2/runtimes").json()
    assert [(r["language"], r["runtime"]) for r in runtimes] == [("bash2", "bash-two")]
    major = runtimes[0]["version"].split(".")[0]
    body = {
        "language": f"bash2-{major}",
        "version": "*",
        "files": [{"name": "p.sh", "content": PROGRAM}],
        "stdin": "in",
    }
    answer = httpx.post(bash2_server.url + "/api/v2/execute", json=body, timeout=60).json()
    assert answer["language"] == "bash2" and answer["run"]["stdout"] == "from bash2 p.sh in\n"


def test_judge0_runs_and_lists_the_new_language(bash2_server):
    url = bash2_server.url
    version = httpx.get(url + "/api/v2/runtimes").json()[0]["version"]
    assert httpx.get(url + "/languages").json() == [{"id": 9001, "name": f"Bash Two ({version})"}]
    detail = httpx.get(url + "/languages/9001").json()
    assert detail["source_file"] == "judged.b2"
    body = {"language_id": 9001, "source_code": PROGRAM, "stdin": "in"}
    answer = httpx.post(url + "/submissions?wait=true&fields=*", json=body, timeout=60).json()
    assert answer["status"]["id"] == 3, answer
    assert answer["stdout"] == "from bash2 judged.b2 in\n"
    assert answer["language"] == {"id": 9001, "name": f"Bash Two ({version})"}
    assert httpx.post(url + "/submissions", json={**body, "language_id": 46}).status_code == 422


# --- the packaged data (pure parsing: no server) ---------------------------------------------


def test_packaged_data_has_every_dialects_table():
    languages = load_languages(shell=lambda command, image: "/bin/true\n")
    ids = {i.id: name for name, lang in languages.items() for i in lang.judge0.ids}
    assert ids.items() >= {
        46: "bash", 50: "c", 52: "c++", 54: "c++", 60: "go", 62: "java", 63: "javascript",
        71: "python", 73: "rust", 72: "ruby", 68: "php", 85: "perl", 64: "lua", 82: "sqlite3",
        75: "clang", 76: "clang++", 74: "typescript", 45: "nasm",
    }.items()  # fmt: skip
    assert languages["python"].judge0.source_file == "script.py"
    assert languages["java"].judge0.source_file is None  # named after its public class
    runtimes = {n: lang.piston.runtime for n, lang in languages.items() if lang.piston.runtime}
    assert runtimes.items() >= {"javascript": "node", "c": "gcc", "c++": "gcc"}.items()
    assert {n for n, lang in languages.items() if not lang.piston.compile_stage} == {"go", "java"}
    assert "node-javascript" in languages["javascript"].aliases
    assert "python3.11" in languages["python"].with_version("3.11.7").aliases


def test_a_judge0_id_given_twice_is_refused():
    text = TEST_LANGUAGES.read_text()
    twice = text + "\n" + text.replace("[bash2]", "[bash3]").replace('"b2", ', "")
    with pytest.raises(LanguageError, match="9001"):
        load_languages(twice, shell=lambda command, image: "/bin/true\n")


def test_a_stray_brace_in_a_command_is_refused_when_the_file_is_read():
    toml = """
[oops]
entry = "main.sh"
discover.bash = "readlink -f \\"$(command -v bash)\\""
version = ["{bash}", "-c", "echo 1"]
run = ["{bash}", "-c", "echo {unknown}", "{entry}"]
"""
    with pytest.raises(LanguageError, match="stray brace"):
        load_languages(toml)
