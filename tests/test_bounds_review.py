"""Bounds a security review found missing: a zip whose end record lies about its entry count,
stored results that carried output files beyond the documented bound, and a language whose
discovery asks to bind-mount a whole system directory."""

from __future__ import annotations

import base64
import struct
import time
import zipfile
import zlib

import httpx
import pytest
from conftest import Server, slow

from execbox.api.archives import BadArchive, unzip
from execbox.config import Limits
from execbox.engine import ExecutionResult, StageReport, Status
from execbox.engine.model import OutputsRequest
from execbox.engine.outputs import OutputsBudget
from execbox.sandbox.docker.outputs import outputs_script
from execbox.sandbox.outputs import (
    COLLECT_TIME_S,
    MAX_BYTES,
    MAX_WALK_DEPTH,
    OutputFile,
    OutputRequest,
    Outputs,
)
from execbox.submissions.codec import result_from_json, result_to_json
from execbox.submissions.result_bound import bound_result

BACKENDS = ("native", "docker")
MiB = 1024 * 1024


def zip_with_understated_count(entries: int, claimed: int) -> bytes:
    """A zip of ``entries`` empty stored files whose end record claims only ``claimed``."""
    local = bytearray()
    central = bytearray()
    crc = zlib.crc32(b"")
    for index in range(entries):
        name = f"f{index:05}".encode()
        offset = len(local)
        local += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, 0, 0,
                             len(name), 0) + name  # fmt: skip
        central += struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 0, 20, 0, 0, 0, 0, 0, crc,
                               0, 0, len(name), 0, 0, 0, 0, 0, offset) + name  # fmt: skip
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, claimed, claimed, len(central),
                      len(local), 0)  # fmt: skip
    return bytes(local + central + end)


def test_a_zip_that_understates_its_entry_count_is_refused_before_it_is_parsed(monkeypatch):
    archive = zip_with_understated_count(entries=60_000, claimed=1)
    assert len(archive) < 10 * MiB  # under the request limit: the service would accept it
    parsed = []
    real_zipfile = zipfile.ZipFile
    monkeypatch.setattr(
        zipfile,
        "ZipFile",
        lambda *args, **kwargs: parsed.append(1) or real_zipfile(*args, **kwargs),
    )
    started = time.monotonic()
    with pytest.raises(BadArchive, match=r"more than 126 entries \(at most 63 files\)"):
        unzip(archive, max_files=63, max_bytes=10 * MiB)
    # zipfile parsing all 60,000 headers takes seconds; counting 127 of them, milliseconds.
    assert time.monotonic() - started < slow(0.5)
    assert not parsed, "zipfile parsed the whole central directory before the refusal"


def test_a_zip_within_the_entry_count_still_unpacks():
    files = unzip(zip_with_understated_count(entries=5, claimed=5), max_files=63, max_bytes=MiB)
    assert [file.name for file in files] == [f"f{index:05}" for index in range(5)]
    assert all(file.content == b"" for file in files)


def test_a_zip_with_a_garbled_central_directory_is_refused_as_invalid():
    archive = bytearray(zip_with_understated_count(entries=3, claimed=3))
    central = archive.index(b"PK\x01\x02")
    archive[central : central + 4] = b"XXXX"
    with pytest.raises(BadArchive, match="is not a valid zip archive"):
        unzip(bytes(archive), max_files=63, max_bytes=MiB)


# Output files: the same answer on both backends, whatever the tree the program left.


def outputs_of(client: httpx.Client, code: str, patterns: list[str], **fields) -> dict:
    body = {"language": "python", "code": code, "outputs": patterns, **fields}
    response = client.post("/api/v1/execute", json=body)
    assert response.status_code == 200, response.text
    run = response.json()["run"]
    assert run["status"] == "ok", run
    return run


def test_a_hard_linked_second_name_comes_back_with_its_bytes(client):
    code = "import os\nopen('a.txt', 'w').write('shared')\nos.link('a.txt', 'b.txt')\n"
    run = outputs_of(client, code, ["*.txt"])
    files = {f["name"]: base64.b64decode(f["content"]) for f in run["outputs"]}
    assert files == {"a.txt": b"shared", "b.txt": b"shared"}
    assert run["outputs_limits_hit"] == []


def test_near_misses_of_a_double_star_pattern_do_not_crowd_out_the_match(client):
    # ``**/x*.txt`` matches x.txt, not d/ax1.txt: the near misses, written after it (listed
    # first by tmpfs), must not take the max_files + 1 places it competes for.
    code = (
        "import os\nopen('x.txt', 'w').write('hit')\nos.mkdir('d')\n"
        "for i in range(20): open(f'd/ax{i}.txt', 'w').write('miss')\n"
    )
    run = outputs_of(client, code, ["**/x*.txt"], outputs_max_files=1)
    assert [f["name"] for f in run["outputs"]] == ["x.txt"]
    assert run["outputs_limits_hit"] == []


def test_a_file_deeper_than_the_walk_goes_is_not_found_on_either_backend(client):
    deep = "/".join(["d"] * MAX_WALK_DEPTH) + "/deep.txt"
    shallow = "/".join(["d"] * (MAX_WALK_DEPTH - 1)) + "/ok.txt"
    code = (
        "import os\n"
        f"os.makedirs({deep.rsplit('/', 1)[0]!r})\n"
        f"open({deep!r}, 'w').write('too deep')\nopen({shallow!r}, 'w').write('ok')\n"
    )
    run = outputs_of(client, code, ["**/*.txt"])
    assert [f["name"] for f in run["outputs"]] == [shallow]


def test_the_time_to_collect_output_files_is_spent_over_the_whole_execution():
    request = OutputsRequest(("*.txt",), max_files=10, max_bytes=1000)
    budget = OutputsBudget.of(request)
    assert budget is not None
    assert budget.stage().collect_time_s == COLLECT_TIME_S
    budget.charge(Outputs((), (), collect_time_s=COLLECT_TIME_S - 1))
    assert budget.stage().collect_time_s == pytest.approx(1)
    budget.charge(Outputs((), (), collect_time_s=5))
    assert budget.stage().collect_time_s == 0
    # A spent budget: the container does not even look for files.
    spent = outputs_script(OutputRequest(("*.txt",), 10, 1000, collect_time_s=0), "n")
    assert "find" not in spent and "n end" in spent


# Stored results: output and output files together within MAX_RESULT_BYTES.

LIMITS = Limits(
    wall_time_ms=1000, cpu_time_ms=1000, memory_mb=64, processes=8, output_bytes=1000,
    file_size_mb=1,
)  # fmt: skip


def run_with_files(stdout: bytes, *sizes: int) -> StageReport:
    files = tuple(OutputFile(f"f{index}.bin", b"x" * size) for index, size in enumerate(sizes))
    return StageReport(
        Status.OK, 0, None, stdout, b"", False, False, 1, 1, 0, LIMITS,
        output=stdout, outputs=Outputs(files, ()),
    )  # fmt: skip


def stored_bytes(stored: dict) -> int:
    """Output and file bytes a stored result holds, decoded."""
    total = 0
    for case in stored["cases"]:
        total += len(base64.b64decode(case["stdout"])) + len(base64.b64decode(case["stderr"]))
        total += sum(len(base64.b64decode(f["content"])) for f in case["outputs"]["files"])
    return total


def test_a_stored_result_keeps_output_and_files_together_within_its_bound():
    cases = [run_with_files(b"o" * 300, 200, 400), run_with_files(b"p" * 300, 100, 50)]
    result = ExecutionResult("python", "3", Status.OK, None, cases[0], cases)
    stored = result_to_json(result, 1000)
    assert stored_bytes(stored) <= 1000
    first, second = (result_from_json(stored).cases[i] for i in (0, 1))
    # The streams come first and are kept whole: statuses are the engine's.
    assert [first.status, second.status] == [Status.OK, Status.OK]
    assert len(first.stdout) == len(second.stdout) == 300
    # 400 bytes left for files, in order: f0 (200) fits, f1 (400) does not, then 100 and 50 fit.
    assert first.outputs is not None and second.outputs is not None
    assert [f.name for f in first.outputs.files] == ["f0.bin"]
    assert first.outputs.limits_hit == (MAX_BYTES,) and first.outputs.truncated
    assert [f.name for f in second.outputs.files] == ["f0.bin", "f1.bin"]
    assert second.outputs.limits_hit == ()


def test_a_stored_result_within_its_bound_keeps_every_file():
    case = run_with_files(b"o" * 10, 100, 100)
    result = ExecutionResult("python", "3", Status.OK, None, case, [case])
    assert bound_result(result, 1000).cases == [case]


# A language whose discovery names a whole system directory to mount is unavailable.


def test_a_toolchain_mount_of_a_whole_system_directory_makes_the_language_unavailable(tmp_path):
    data = tmp_path / "languages.toml"
    shell = "/bin/sh"
    data.write_text(
        # Discovery prints /etc: binding it would show the sandbox the host's configuration.
        f'[etcsh]\nentry = "main.sh"\ndiscover.dir = "echo /etc/"\nmounts = ["{{dir}}"]\n'
        f'version = ["{shell}", "-c", "echo 1.0"]\nrun = ["{shell}", "{{entry}}"]\n'
        f'[rootsh]\nentry = "main.sh"\ndiscover.dir = "echo /usr/.."\nmounts = ["{{dir}}"]\n'
        f'version = ["{shell}", "-c", "echo 1.0"]\nrun = ["{shell}", "{{entry}}"]\n'
        # A directory below one of them stays allowed.
        f'[sslsh]\nentry = "main.sh"\nmounts = ["/etc/ssl"]\n'
        f'version = ["{shell}", "-c", "echo 1.0"]\nrun = ["{shell}", "{{entry}}"]\n'
    )
    server = Server(env={"EXECBOX_LANGUAGES_FILE": str(data)}).start()
    try:
        listed = {
            item["language"]: item for item in httpx.get(server.url + "/api/v1/languages").json()
        }
        body = {"language": "etcsh", "code": "cat /etc/shadow"}
        refused = httpx.post(server.url + "/api/v1/execute", json=body, timeout=slow(60))
    finally:
        server.stop()
    assert not listed["etcsh"]["available"] and not listed["rootsh"]["available"]
    assert "toolchain directory /etc/ is refused" in listed["etcsh"]["reason"], listed["etcsh"]
    assert "toolchain directory /usr/.. is refused" in listed["rootsh"]["reason"]
    assert listed["sslsh"]["available"], listed["sslsh"]
    assert refused.status_code != 200 and "refused" in refused.text, refused.text
