"""Output files (``outputs``): the files a run leaves come back, on both backends, never
through a link, never blocking on a FIFO, bounded in count and bytes whatever the program
left, and kept in a stored submission's result."""

from __future__ import annotations

import base64
import struct
import time
import uuid
import zlib
from pathlib import Path

import httpx
import pytest
from conftest import slow

from execbox.engine.errors import InvalidRequest
from execbox.engine.outputs import check_pattern
from execbox.sandbox.docker.frames import Demultiplexer
from execbox.sandbox.docker.outputs import read_outputs
from execbox.sandbox.outputs import OutputRequest, matcher

BACKENDS = ("native", "docker")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A 1x1 red PNG, built by hand (no imaging library in the sandbox needed).
WRITE_PNG = """
import struct, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
pixels = zlib.compress(b"\\x00\\xff\\x00\\x00")
png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
open("chart.png", "wb").write(png)
print("wrote", len(png))
"""


def execute(client: httpx.Client, code: str, outputs, **fields) -> httpx.Response:
    body = {"language": "python", "code": code, "outputs": outputs, **fields}
    return client.post("/api/v1/execute", json=body)


def run_ok(client: httpx.Client, code: str, outputs, **fields) -> dict:
    response = execute(client, code, outputs, **fields)
    assert response.status_code == 200, response.text
    return response.json()


def files_of(stage: dict) -> dict[str, bytes]:
    return {f["name"]: base64.b64decode(f["content"]) for f in stage["outputs"]}


# Server tests, on both backends.


def test_a_png_written_by_python_comes_back_whole(client):
    body = run_ok(client, WRITE_PNG, ["*.png"])
    run = body["run"]
    assert run["status"] == "ok", run
    [item] = run["outputs"]
    assert item["name"] == "chart.png" and item["encoding"] == "base64"
    png = base64.b64decode(item["content"])
    assert png.startswith(PNG_SIGNATURE) and item["size"] == len(png)
    # The chunks are intact: the IHDR's CRC checks.
    length, kind = struct.unpack(">I4s", png[8:16])
    assert kind == b"IHDR"
    (crc,) = struct.unpack(">I", png[16 + length : 20 + length])
    assert crc == zlib.crc32(png[12 : 16 + length])
    assert run["outputs_truncated"] is False and run["outputs_limits_hit"] == []


def test_globs_reach_into_subdirectories_only_as_written(client):
    code = """
import os
os.makedirs("results/deep", exist_ok=True)
for name in ("results/a.csv", "results/b.csv", "results/deep/c.csv", "top.csv", "results/x.txt"):
    open(name, "w").write(name)
"""
    run = run_ok(client, code, ["results/*.csv"])["run"]
    assert files_of(run) == {"results/a.csv": b"results/a.csv", "results/b.csv": b"results/b.csv"}
    assert [f["name"] for f in run["outputs"]] == ["results/a.csv", "results/b.csv"]  # sorted
    deep = run_ok(client, code, ["**/*.csv"])["run"]
    assert set(files_of(deep)) == {
        "results/a.csv",
        "results/b.csv",
        "results/deep/c.csv",
        "top.csv",
    }


def test_no_outputs_asked_none_given(client):
    run = run_ok(client, "open('a.txt', 'w').write('x')", None)["run"]
    assert run["outputs"] is None and run["outputs_truncated"] is None


def test_a_program_that_crashes_after_writing_still_gives_its_file(client):
    code = "open('partial.csv', 'w').write('1,2\\n')\nraise SystemExit(3)"
    run = run_ok(client, code, ["*.csv"])["run"]
    assert run["status"] == "runtime_error" and run["exit_code"] == 3
    assert files_of(run) == {"partial.csv": b"1,2\n"}


def test_a_compiled_program_gives_its_files_and_a_compile_error_gives_none(client):
    code = '#include <stdio.h>\nint main(){FILE *f = fopen("out.txt", "w"); fputs("c!", f);}'
    body = client.post(
        "/api/v1/execute", json={"language": "c", "code": code, "outputs": ["*.txt"]}
    ).json()
    assert body["status"] == "ok", body
    assert files_of(body["run"]) == {"out.txt": b"c!"}
    broken = client.post(
        "/api/v1/execute", json={"language": "c", "code": "int main(){ x }", "outputs": ["*"]}
    ).json()
    assert broken["status"] == "compile_error" and broken["run"] is None
    assert broken["compile"]["outputs"] is None


@pytest.fixture()
def host_secret():
    """A file on the host, outside any sandbox: a link to it must never be read back."""
    path = Path(f"/tmp/execbox-outputs-secret-{uuid.uuid4().hex}")
    path.write_text("host secret")
    path.chmod(0o644)
    yield path
    path.unlink()


def test_links_are_never_followed(client, host_secret):
    code = f"""
import os
os.symlink("/etc/passwd", "passwd.txt")
os.symlink("{host_secret}", "secret.txt")
os.symlink("/etc", "etc")
os.makedirs("real")
open("real/ok.txt", "w").write("mine")
os.symlink("real", "linked")
"""
    run = run_ok(client, code, ["*.txt", "etc/*", "linked/*", "**/passwd", "real/*"])["run"]
    assert run["status"] == "ok", run
    assert files_of(run) == {"real/ok.txt": b"mine"}


def test_a_fifo_is_skipped_without_hanging(client):
    code = "import os\nos.mkfifo('pipe.txt')\nopen('plain.txt', 'w').write('p')"
    started = time.monotonic()
    run = run_ok(client, code, ["*.txt"])["run"]
    assert time.monotonic() - started < slow(20)
    assert run["status"] == "ok"
    assert files_of(run) == {"plain.txt": b"p"}


def test_a_file_past_the_byte_bound_is_left_out_and_said_so(client):
    # A 500 MB sparse file (nothing of it is read) and a 12 MiB one, past the 10 MiB default.
    code = """
with open("huge.bin", "wb") as f:
    f.truncate(500 << 20)
open("big.bin", "wb").write(b"b" * (12 << 20))
open("small.bin", "wb").write(b"s" * 100)
"""
    started = time.monotonic()
    run = run_ok(client, code, ["*.bin"], limits={"file_size_mb": 512})["run"]
    assert time.monotonic() - started < slow(30)
    assert run["status"] == "ok", run
    assert files_of(run) == {"small.bin": b"s" * 100}
    assert run["outputs_truncated"] is True and run["outputs_limits_hit"] == ["max_bytes"]
    # A request may lower the bound.
    lowered = run_ok(client, "open('a.txt','w').write('x' * 50)", ["*"], outputs_max_bytes=10)
    assert lowered["run"]["outputs"] == []
    assert lowered["run"]["outputs_limits_hit"] == ["max_bytes"]


def test_ten_thousand_files_hit_the_count_bound_in_bounded_time(client):
    code = "for i in range(10000):\n    open(f'f{i:05}.txt', 'w').write(str(i))"
    started = time.monotonic()
    run = run_ok(client, code, ["*.txt"], limits={"wall_time_ms": int(slow(20_000))})["run"]
    assert time.monotonic() - started < slow(60)
    assert run["status"] == "ok", run
    assert len(run["outputs"]) == 64
    assert run["outputs_truncated"] is True and "max_files" in run["outputs_limits_hit"]
    for name, content in files_of(run).items():
        assert content == str(int(name[1:6])).encode()
    few = run_ok(client, "open('a.txt','w');open('b.txt','w')", ["*.txt"], outputs_max_files=1)
    assert len(few["run"]["outputs"]) == 1 and few["run"]["outputs_limits_hit"] == ["max_files"]


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("../etc/passwd", "leaves the work dir"),
        ("a/../../x", "leaves the work dir"),
        ("/etc/*", "is absolute"),
        ("a**/x", "'**' must be a whole path part"),
        ("a\x00b", "NUL"),
        ("", "must not be empty"),
    ],
)
def test_patterns_that_could_leave_the_work_dir_are_a_400(client, pattern, problem):
    response = execute(client, "print(1)", [pattern])
    assert response.status_code == 400, response.text
    assert problem in response.json()["message"]


def test_bounds_above_the_servers_are_a_400(client):
    response = execute(client, "print(1)", ["*"], outputs_max_files=65)
    assert response.status_code == 400
    assert "at most 64" in response.json()["message"]


def test_outputs_are_kept_in_a_stored_submission(server):
    code = "import sys\nname = sys.stdin.read().strip()\nopen(name + '.txt', 'w').write(name)"
    body = {
        "language": "python",
        "code": code,
        "outputs": ["*.txt"],
        "outputs_max_files": 3,
        "test_cases": [{"stdin": "one"}, {"stdin": "two"}, {"stdin": "three"}, {"stdin": "four"}],
    }
    bad = httpx.post(server.url + "/api/v1/submissions", json={**body, "outputs": ["/x"]})
    assert bad.status_code == 400 and "absolute" in bad.json()["message"]
    response = httpx.post(server.url + "/api/v1/submissions", json=body)
    assert response.status_code == 202, response.text
    result = _wait_done(server.url, response.json()["id"])["result"]
    cases = result["cases"]
    # Each run in its own sandbox: its own file only; the bound holds over the execution.
    assert [files_of(c) for c in cases] == [
        {"one.txt": b"one"},
        {"two.txt": b"two"},
        {"three.txt": b"three"},
        {},
    ]
    assert cases[3]["outputs_limits_hit"] == ["max_files"]
    single = httpx.post(
        server.url + "/api/v1/submissions",
        json={"language": "python", "code": WRITE_PNG, "outputs": ["chart.png"]},
    )
    stored = _wait_done(server.url, single.json()["id"])["result"]["run"]
    assert files_of(stored)["chart.png"].startswith(PNG_SIGNATURE)


def _wait_done(url: str, id: str) -> dict:
    deadline = time.monotonic() + slow(60)
    while True:
        body = httpx.get(f"{url}/api/v1/submissions/{id}").json()
        if body["state"] == "done":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


# Pure logic: the patterns' rules, and the Docker archive's reader (untrusted bytes).


def test_pattern_rules():
    matches = matcher(["*.png", "out/**/*.csv", "[!x]y.txt"])
    assert matches("a.png") and matches(".hidden.png")
    assert not matches("d/a.png")
    assert matches("out/a.csv") and matches("out/x/y/a.csv") and not matches("outa.csv")
    assert matches("ay.txt") and not matches("xy.txt") and not matches("/y.txt")
    assert check_pattern("./a//b/") == "a/b"
    with pytest.raises(InvalidRequest, match="backslash"):
        check_pattern("a\\*")


def test_the_docker_archive_is_checked_again_on_the_host():
    """Names the container should not have sent (a link, a non-match, '..') are dropped, and
    the bounds hold whatever the archive holds."""
    import io
    import tarfile

    nonce = "n" * 32
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in [
            ("./a.txt", b"a"),
            ("./b.md", b"b"),
            ("../c.txt", b"c"),
            ("./d.txt", b"dd"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("./e.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    archive = buffer.getvalue()
    request = OutputRequest(("*.txt",), max_files=5, max_bytes=2)
    demux = Demultiplexer(cap=100, nonce=nonce, archive_cap=len(archive))
    frame = f"\n{nonce} outputs {len(archive)} -\n".encode() + archive
    demux.feed(struct.pack(">BxxxI", 1, len(frame)) + frame)
    outputs = read_outputs(demux.stdout, request)
    assert [(f.name, f.content) for f in outputs.files] == [("a.txt", b"a")]
    assert outputs.limits_hit == ("max_bytes",)
    # Nothing arrived (a limit stopped the container first): said so.
    empty = Demultiplexer(cap=100, nonce=nonce, archive_cap=100)
    assert read_outputs(empty.stdout, request).limits_hit == ("unavailable",)
