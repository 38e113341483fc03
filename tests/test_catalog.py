"""How the service finds out, at start, which languages really run: version probes.

Pure logic (how many probes run at once, with which limits), so the sandbox here only
records what it was asked; the probes themselves run in real sandboxes in every server test.
"""

from __future__ import annotations

import asyncio

from execbox.config import Settings
from execbox.engine.catalog import PROBE_LIMITS, PROBES_PER_SLOT, Catalog
from execbox.languages import load_languages
from execbox.sandbox import StageResult, StageSpec

LANGUAGES = "\n".join(
    f'[lang{i}]\nentry = "main.sh"\nversion = ["sh", "-c", "echo 1.{i}"]\nrun = ["sh", "{{entry}}"]\n'
    for i in range(40)
)


class RecordingSandbox:
    """Answers every probe with a version after a moment; notes how many ran at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most_at_once = 0
        self.limits: list = []

    async def run(self, spec: StageSpec) -> StageResult:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.limits.append(spec.limits)
        await asyncio.sleep(0.01)
        self.running -= 1
        return StageResult(0, None, b"version 1.2.3\n", b"")


def probe(settings: Settings) -> tuple[Catalog, RecordingSandbox]:
    catalog = Catalog(load_languages(LANGUAGES), settings)
    sandbox = RecordingSandbox()
    asyncio.run(catalog.probe(sandbox))  # type: ignore[arg-type]
    return catalog, sandbox


def test_probes_run_a_few_per_execution_slot_not_all_at_once():
    catalog, sandbox = probe(Settings(max_concurrency=2))
    assert all(runtime.version == "1.2.3" for runtime in catalog.runtimes.values())
    assert len(sandbox.limits) == 40
    assert sandbox.most_at_once == PROBES_PER_SLOT * 2


def test_a_slow_hosts_compile_limits_reach_the_probes():
    _, sandbox = probe(Settings(compile_wall_time_ms=200_000, compile_cpu_time_ms=150_000))
    assert {(lim.wall_time_ms, lim.cpu_time_ms) for lim in sandbox.limits} == {(200_000, 150_000)}


def test_small_compile_limits_do_not_shorten_the_probes():
    _, sandbox = probe(Settings(compile_wall_time_ms=2_000, compile_cpu_time_ms=1_000))
    assert {(lim.wall_time_ms, lim.cpu_time_ms) for lim in sandbox.limits} == {
        (PROBE_LIMITS.wall_time_ms, PROBE_LIMITS.cpu_time_ms)
    }
