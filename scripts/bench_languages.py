"""Hello world in every language: execbox over HTTP beside the bare toolchain (issue #15).

For each language the started server lists as available, its hello-world program from
tests/languages/<name>.toml runs a few times through `/api/v1/execute` and, interleaved with
those requests, directly on the host with the same command lines (no sandbox, no HTTP): the
engine's own templates from languages.toml, expanded by `Language.command` as the engine does,
with the sandbox's fixed environment. Paths inside the box (/box, /tmp) become a fresh
directory per repeat, as each sandbox starts with an empty /tmp.

Compiled languages are measured with a real compile every time: each request carries one more
file holding a fresh salt (the compile cache's key covers every file; the compiler never
reads it), and the same request once more shows the cached answer.

Run by `python scripts/bench.py --languages-only [--only python,go]` (or `make
bench-languages`), and at the end of a full `make bench`.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from execbox.config import Limits, Settings
from execbox.languages import Language, alias_table, load_languages
from execbox.sandbox.policy import ENVIRONMENT, WORKDIR

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS_DIR = ROOT / "tests" / "languages"
REPEATS = 3
GAP_S = 0.2  # between requests: the warm pools refill, as between a playground's requests
BARE_TIMEOUT_S = 120
SALT_FILE = "bench-salt.txt"
START_MARK = "<!-- bench-languages:start -->"
END_MARK = "<!-- bench-languages:end -->"
# /box and /tmp as whole path components (not /usr/lib/tmp, not /boxes), in argv words, shell
# one-liners (`>/tmp/x`, `f=/tmp/...`, `--nimcache:/tmp/...`) and environment values.
IN_BOX_PATH = re.compile(r"(?<![\w.-])/(box|tmp)(?=/|$|[^\w.-])")


class Client(Protocol):
    def post(self, path: str, body: dict) -> tuple[int, bytes]: ...

    def close(self) -> None: ...


Connect = Callable[[], Client]  # opens a new keep-alive connection to the server


class BareFailure(Exception):
    """The bare run cannot give a fair figure; the message says why."""


@dataclass
class Row:
    language: str
    compiled: bool
    compile_ms: list[float] = field(default_factory=list)  # execbox, the API's wall_time_ms
    run_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)  # the whole HTTP request
    cached_total_ms: list[float] = field(default_factory=list)
    bare_compile_ms: list[float] = field(default_factory=list)
    bare_run_ms: list[float] = field(default_factory=list)
    load: float = 0.0
    execbox_failure: str | None = None
    bare_failure: str | None = None


def hello_programs(languages: dict[str, Language]) -> dict[str, str]:
    """Each language's hello-world program, keyed by canonical name."""
    aliases = alias_table(languages)
    programs = {}
    for path in sorted(PROGRAMS_DIR.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        name = aliases.get(str(data["language"]).lower())
        if name is not None and "hello" in data:
            programs[name] = data["hello"]
    return programs


def stage_limits(language: Language, stage: str) -> Limits:
    """The limits the server gives a request that sets none (for {memory_mb})."""
    settings = Settings()
    if stage == "compile":
        limits = settings.compile_limits().replace(**language.compile_limit_overrides)
    else:
        limits = settings.run_limits().replace(**language.limit_overrides)
    maximum = settings.max_limits()
    return Limits(**{n: min(getattr(limits, n), getattr(maximum, n)) for n in Limits.names()})


def outside_the_box(text: str, root: Path) -> str:
    return IN_BOX_PATH.sub(lambda m: str(root / m.group(1)), text)


@dataclass
class BareProgram:
    """One language's hello world with the engine's command lines, run on the host."""

    language: Language
    files: dict[str, str]

    def commands(self, root: Path) -> tuple[list[str] | None, list[str], dict[str, str]]:
        lang, names = self.language, list(self.files)
        entry = names[0]

        def argv(template: tuple[str, ...], stage: str) -> list[str]:
            words = lang.command(template, entry, names, stage_limits(lang, stage).memory_mb)
            return [outside_the_box(word, root) for word in words]

        compile_argv = argv(lang.compile, "compile") if lang.compile else None
        encoded = [(name, text.encode()) for name, text in self.files.items()]
        run_argv = argv(lang.run_template(encoded), "run")
        env = {
            key: outside_the_box(value, root) for key, value in {**ENVIRONMENT, **lang.env}.items()
        }
        return compile_argv, run_argv, env

    def once(self, workdir: Path) -> tuple[float | None, float, bytes]:
        """Compile (if the language does) and run once in a fresh directory: the stage times
        in ms and the run's stdout. Raises BareFailure when a stage fails."""
        root = Path(tempfile.mkdtemp(dir=workdir))
        try:
            box = root / WORKDIR.strip("/")
            box.mkdir()
            (root / "tmp").mkdir()
            for name, text in self.files.items():
                (box / name).write_text(text)
            compile_argv, run_argv, env = self.commands(root)
            compile_ms = None
            if compile_argv is not None:
                compile_ms, _ = self._stage("compile", compile_argv, box, env)
            run_ms, stdout = self._stage("run", run_argv, box, env)
            return compile_ms, run_ms, stdout
        finally:
            shutil.rmtree(root, ignore_errors=True)

    @staticmethod
    def _stage(stage: str, argv: list[str], cwd: Path, env: dict[str, str]):
        started = time.perf_counter()
        try:
            done = subprocess.run(
                argv,
                cwd=cwd,
                env={**env, "PWD": str(cwd)},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=BARE_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise BareFailure(f"bare {stage}: {err}") from None
        elapsed = (time.perf_counter() - started) * 1000
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise BareFailure(f"bare {stage} exited {done.returncode}: {tail[0][:120]}")
        return elapsed, done.stdout


def execute(connect: Connect, language: str, files: dict[str, str]) -> tuple[dict, float]:
    """One request (default limits, so the warm pools serve it); the answer and its ms.

    A connection of its own, opened before the clock starts: between requests a bare compile
    may take longer than the server keeps an idle connection open.
    """
    body = {"language": language, "files": [{"name": n, "content": c} for n, c in files.items()]}
    client = connect()
    try:
        started = time.perf_counter()
        status, answer = client.post("/api/v1/execute", body)
        elapsed = (time.perf_counter() - started) * 1000
    finally:
        client.close()
    result = httpx.Response(status, content=answer).json()
    if status != 200 or result.get("status") != "ok":
        stage = (result.get("compile") or {}) if result.get("status") == "compile_error" else {}
        stage = stage or result.get("run") or {}
        detail = result.get("message") or stage.get("message") or stage.get("stderr", "")[:120]
        raise RuntimeError(f"HTTP {status}, {result.get('status')}: {detail}")
    return result, elapsed


def measure(connect: Connect, language: Language, code: str, workdir: Path, repeats: int) -> Row:
    row = Row(language.name, language.compiled)
    entry = language.entry_for_code(code)
    bare = BareProgram(language, {entry: code})
    try:
        reference, _ = execute(connect, language.name, {entry: code})  # warms the pools
    except RuntimeError as err:
        row.execbox_failure = str(err)
        return row
    try:
        _, _, stdout = bare.once(workdir)  # warms the page cache for the bare run too
        if stdout.decode(errors="replace") != reference["run"]["stdout"]:
            raise BareFailure(f"bare stdout differs: {stdout[:60]!r}")
    except BareFailure as err:
        row.bare_failure = str(err)
    loads = []
    for _ in range(repeats):
        files = {entry: code}
        if language.compiled:
            files[SALT_FILE] = uuid.uuid4().hex  # a new cache key: a real compile
        loads.append(_load())
        time.sleep(GAP_S)
        try:
            result, elapsed = execute(connect, language.name, files)
            row.total_ms.append(elapsed)
            row.run_ms.append(result["run"]["wall_time_ms"])
            if language.compiled:
                assert result["compile"]["cached"] is False, "the salt did not defeat the cache"
                row.compile_ms.append(result["compile"]["wall_time_ms"])
                time.sleep(GAP_S)
                again, elapsed = execute(connect, language.name, files)
                assert again["compile"]["cached"] is True, "the same request was compiled again"
                row.cached_total_ms.append(elapsed)
        except RuntimeError as err:
            row.execbox_failure = str(err)
            break
        if row.bare_failure is None:
            time.sleep(GAP_S)
            try:
                compile_ms, run_ms, _ = BareProgram(language, files).once(workdir)
            except BareFailure as err:
                row.bare_failure = str(err)
                continue
            row.bare_run_ms.append(run_ms)
            if compile_ms is not None:
                row.bare_compile_ms.append(compile_ms)
    row.load = statistics.mean(loads)
    return row


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def available_languages(url: str) -> list[str]:
    listed = httpx.get(url + "/api/v1/languages", timeout=30).json()
    return [item["language"] for item in listed if item["available"]]


def run_languages(
    connect: Connect, url: str, only: list[str] | None, repeats: int = REPEATS
) -> list[Row]:
    languages = load_languages()
    programs = hello_programs(languages)
    names = available_languages(url)
    if only:
        aliases = alias_table(languages)
        wanted = {aliases.get(name.strip().lower(), name.strip()) for name in only}
        unknown = wanted - set(languages)
        if unknown:
            raise SystemExit(f"--only: unknown languages {sorted(unknown)}")
        names = [name for name in names if name in wanted]
    rows = []
    with tempfile.TemporaryDirectory(prefix="execbox-bench-") as workdir:
        for name in names:
            if name not in programs:
                row = Row(name, languages[name].compiled)
                row.execbox_failure = "no hello world in tests/languages (not a toolchain)"
            else:
                row = measure(connect, languages[name], programs[name], Path(workdir), repeats)
            rows.append(row)
            print("  " + summary(row), flush=True)
    return rows


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.0f}" if values else "—"


def summary(row: Row) -> str:
    text = (
        f"{row.language:<12} execbox {_ms(row.compile_ms):>6} + {_ms(row.run_ms):>5} "
        f"= {_ms(row.total_ms):>6} ms  bare {_ms(row.bare_compile_ms):>6} + "
        f"{_ms(row.bare_run_ms):>5} ms  load {row.load:.1f}"
    )
    for failure in (row.execbox_failure, row.bare_failure):
        if failure:
            text += f"  ({failure})"
    return text


def _ratio(row: Row) -> str:
    if row.execbox_failure or row.bare_failure or not row.total_ms or not row.bare_run_ms:
        return "—"
    bare = statistics.median(row.bare_run_ms)
    if row.compiled:
        bare += statistics.median(row.bare_compile_ms)
    return f"{statistics.median(row.total_ms) / bare:.2f}x"


def report(rows: list[Row], started_at: str, repeats: int) -> str:
    loads = [row.load for row in rows if row.load]
    lines = [
        START_MARK,
        "## Hello world in every language",
        "",
        f"Run {started_at} by `make bench-languages` (scripts/bench_languages.py); load average "
        f"(1 min) {min(loads, default=0):.1f} to {max(loads, default=0):.1f} during the run, per "
        f"row below. Medians of {repeats} repeats, each a request and then the bare toolchain, "
        "one after the other. *execbox compile* and *run* are the API's `wall_time_ms` of each "
        "stage; *total* is the whole HTTP request, with a real compile (a fresh salt file "
        "defeats the compile cache) and *cached* the same request again. *bare* runs the same "
        "command lines (languages.toml, expanded as the engine does, the sandbox's "
        "environment) directly on the host in a fresh directory; *ratio* is total / (bare "
        "compile + bare run). — marks a figure that could not be measured fairly; the note says "
        "why.",
        "",
        "| language | execbox compile ms | execbox run ms | execbox total ms | cached total ms "
        "| bare compile ms | bare run ms | ratio | load | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        note = "; ".join(filter(None, (row.execbox_failure, row.bare_failure)))
        note = note.replace("|", "\\|").replace("\n", " ")
        compile_ms = _ms(row.compile_ms) if row.compiled else ""
        bare_compile = _ms(row.bare_compile_ms) if row.compiled else ""
        cached = _ms(row.cached_total_ms) if row.compiled else ""
        lines.append(
            f"| {row.language} | {compile_ms} | {_ms(row.run_ms)} | {_ms(row.total_ms)} "
            f"| {cached} | {bare_compile} | {_ms(row.bare_run_ms)} | {_ratio(row)} "
            f"| {f'{row.load:.1f}' if row.load else '—'} | {note} |"
        )
    return "\n".join([*lines, END_MARK, ""])


def splice(document: str, section: str) -> str:
    """The document with its languages section replaced by `section` (or appended)."""
    start, end = document.find(START_MARK), document.find(END_MARK)
    if start != -1 and end > start:
        rest = document[end + len(END_MARK) :].lstrip("\n")
        return document[:start] + section + ("\n" + rest if rest else "")
    return document.rstrip("\n") + "\n\n" + section
