"""The compile cache: the same sources compile once; runs never write into it."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx


def unique_c(body: str) -> str:
    # A comment makes the source (and so the cache key) new for every test run.
    return f"/* {uuid.uuid4()} */\n#include <stdio.h>\n{body}\n"


def test_second_compile_of_the_same_source_is_cached(run):
    code = unique_c('int main(void) { puts("cached?"); return 0; }')
    first = run("c", code)
    second = run("c", code)
    assert first["compile"]["cached"] is False
    assert second["compile"]["cached"] is True
    assert first["run"]["stdout"] == second["run"]["stdout"] == "cached?\n"


def test_any_change_to_the_sources_misses(run):
    code = unique_c('int main(void) { puts("a"); return 0; }')
    run("c", code)
    assert run("c", code + "\n")["compile"]["cached"] is False
    files = [{"name": "main.c", "content": code}]
    renamed = [{"name": "prog.c", "content": code}]
    # `code` is stored as main.c: the same file sent by name is the same key.
    assert run("c", None, files=files)["compile"]["cached"] is True
    assert run("c", None, files=renamed)["compile"]["cached"] is False


def test_compile_errors_are_cached_too(run):
    code = unique_c("int main(void) { return nope; }")
    first = run("c", code)
    second = run("c", code)
    assert first["status"] == second["status"] == "compile_error"
    assert second["compile"]["cached"] is True
    assert second["compile"]["stderr"] == first["compile"]["stderr"]
    assert "nope" in second["compile"]["stderr"]


def test_concurrent_identical_requests_compile_once(server):
    code = unique_c('int main(void) { puts("once"); return 0; }')
    body = {"language": "c++", "code": code.replace("stdio.h", "cstdio")}
    with ThreadPoolExecutor(3) as pool:
        responses = list(
            pool.map(
                lambda _: httpx.post(server.url + "/api/v1/execute", json=body, timeout=120).json(),
                range(3),
            )
        )
    assert [r["run"]["stdout"] for r in responses] == ["once\n"] * 3
    assert sorted(r["compile"]["cached"] for r in responses) == [False, True, True]


def test_a_run_cannot_poison_the_cache(run):
    code = unique_c(
        "int main(void) {\n"
        '  FILE *seen = fopen("poison", "r"); if (seen) { puts("POISONED"); return 1; }\n'
        '  FILE *f = fopen("poison", "w"); fputs("x", f); fclose(f);\n'
        '  f = fopen("main.c", "w"); if (f) { fputs("garbage", f); fclose(f); }\n'
        '  remove("main");\n'
        '  puts("clean"); return 0; }'
    )
    first = run("c", code)
    second = run("c", code)
    assert second["compile"]["cached"] is True
    assert first["run"]["stdout"] == second["run"]["stdout"] == "clean\n"


def test_cache_metrics(client, run):
    run("c", unique_c("int main(void) { return 0; }"))
    text = client.get("/metrics").text
    assert "execbox_compile_cache_entries" in text and "execbox_compile_cache_hits" in text


def _outcome(status, size):
    import asyncio  # noqa: F401  (keeps this helper self-contained)

    from execbox.config import Limits
    from execbox.engine.compile_cache import CompileOutcome
    from execbox.engine.model import StageReport
    from execbox.sandbox import SandboxFile

    limits = Limits(1, 1, 8, 1, 0, 1)
    report = StageReport(status, 0, None, b"", b"", False, False, 1.0, 1.0, 1, limits)
    return CompileOutcome(report, (SandboxFile("main", b"x" * size),))


def test_cache_evicts_least_recently_used_and_skips_limit_failures():
    import asyncio

    from execbox.engine.compile_cache import CompileCache
    from execbox.engine.model import Status

    async def main():
        cache = CompileCache(max_bytes=250)

        async def make(status=Status.OK, size=100):
            return _outcome(status, size)

        await cache.get_or_compile("a", make)
        await cache.get_or_compile("b", make)
        await cache.get_or_compile("a", make)  # a is now the most recent
        await cache.get_or_compile("c", make)  # evicts b
        kept = set(cache._entries)
        await cache.get_or_compile("t", lambda: make(Status.TIME_LIMIT, 1))
        _, cached = await cache.get_or_compile("t", lambda: make(Status.TIME_LIMIT, 1))
        return kept, cached, cache.bytes

    kept, time_limit_cached, size = asyncio.run(main())
    assert kept == {"a", "c"}
    assert time_limit_cached is False
    assert size <= 250


def test_another_callers_compile_is_not_revealed(tmp_path):
    """The cache is shared, but only the caller who compiled a source hears that it hit: to
    another caller, the same source's compile stage reads as a compile of its own."""
    from conftest import Server

    srv = Server(
        env={
            "EXECBOX_API_KEYS": "key-a,key-b",
            "EXECBOX_SUBMISSIONS_DB": str(tmp_path / "s.db"),
        }
    ).start()
    body = {"language": "c", "code": unique_c('int main(void) { puts("mine"); return 0; }')}

    def compile_as(key: str) -> dict:
        response = httpx.post(
            srv.url + "/api/v1/execute", json=body, headers={"X-API-Key": key}, timeout=120
        )
        assert response.status_code == 200, response.text
        assert response.json()["run"]["stdout"] == "mine\n"
        return response.json()["compile"]

    try:
        first = compile_as("key-a")
        again = compile_as("key-a")
        other = compile_as("key-b")
    finally:
        srv.stop()
    assert first["cached"] is False and again["cached"] is True
    assert other == first  # not cached, and nothing else differs from a compile of its own
