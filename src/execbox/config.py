"""Service configuration, read once from the environment (prefix ``EXECBOX_``)."""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True)
class Limits:
    """Resource limits of one stage (compile or run) of an execution."""

    wall_time_ms: int
    cpu_time_ms: int
    memory_mb: int
    processes: int
    output_bytes: int
    file_size_mb: int

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return LIMIT_NAMES

    def replace(self, **changes: int | None) -> Limits:
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given) if given else self


LIMIT_NAMES = tuple(f.name for f in dataclasses.fields(Limits))

# The smallest value that still makes sense for each limit.
LIMIT_MINIMUMS = Limits(
    wall_time_ms=1, cpu_time_ms=1, memory_mb=8, processes=1, output_bytes=0, file_size_mb=1
)


class Settings(BaseSettings):
    # An infinite time would undo every "nothing waits forever" bound below.
    model_config = SettingsConfigDict(env_prefix="EXECBOX_", extra="ignore", allow_inf_nan=False)

    host: str = "127.0.0.1"
    port: int = Field(8081, ge=0, le=65535)
    backend: Literal["native", "docker"] = "native"
    languages_file: str = ""  # the language data (TOML); empty: the packaged languages.toml
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"

    # Where per-run work directories and per-server state live (root-owned). Executables
    # the server makes (its sandbox helper) go on a tmpfs of its own below it, so a noexec
    # mount here (Debian's /run) does not matter.
    state_dir: str = "/run/execbox"
    # The cgroup (a path below the cgroup mount) whose children are the stage cgroups; empty:
    # chosen at start (see README, "Where it runs"). And which cgroup version to use: auto prefers
    # v1 where its controllers are mounted (hybrid hosts), else v2.
    cgroup: str = ""
    cgroup_version: Literal["auto", "1", "2"] = "auto"
    # First host uid of the unprivileged uids that sandboxes run as (one per concurrent stage).
    sandbox_uid_base: int = Field(61000, ge=1000, le=2**31)
    # CPU cores one stage may use at once (cgroup CPU quota); 0 = no quota.
    cpus_per_stage: float = Field(1.0, ge=0, le=1024)
    # Sandboxes kept started and waiting, per toolchain, each for one program; 0 = none.
    warm_pool: int = Field(2, ge=0)

    # Docker backend: the default image of every language, and per-language overrides
    # ("python=python:3.12-slim,go=golang:1.22"); the engine is found as the Docker CLI does
    # (DOCKER_HOST, or the local socket).
    docker_image: str = "execbox-runtime:latest"
    docker_images: str = ""

    # Run-stage limits: defaults when a request omits them, and the maximum a request may ask.
    run_wall_time_ms: int = 5_000
    run_cpu_time_ms: int = 3_000
    run_memory_mb: int = 256
    run_processes: int = 64
    run_output_bytes: int = 64 * 1024
    run_file_size_mb: int = 16

    compile_wall_time_ms: int = 20_000
    compile_cpu_time_ms: int = 15_000
    compile_memory_mb: int = 1024
    compile_processes: int = 128
    compile_output_bytes: int = 64 * 1024
    compile_file_size_mb: int = 128

    max_wall_time_ms: int = 60_000
    max_cpu_time_ms: int = 30_000
    max_memory_mb: int = 2048
    max_processes: int = 512
    max_output_bytes: int = 16 * 1024 * 1024
    max_file_size_mb: int = 512

    # Compiled artifacts (and compile errors) kept for identical sources; 0 disables the cache.
    compile_cache_mb: int = Field(256, ge=0)

    max_request_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # A request body must arrive whole within this (else 408): a stalled client holds nothing.
    body_timeout_s: float = Field(30.0, gt=0)
    # Submissions in one batch: execbox's own (v1), and Judge0's (its MAX_SUBMISSION_BATCH_SIZE).
    max_batch_submissions: int = Field(100, ge=1)
    judge0_max_batch: int = Field(20, ge=1)
    # Judge0's time limits, changed as judge0.conf would (api/judge0_limits.py): comma-separated
    # name=seconds by their /config_info names, e.g. "cpu_time_limit=2,max_wall_time_limit=30".
    judge0_limits: str = ""
    max_files: int = Field(64, ge=1)
    # Test cases one execution may carry (each is one run of the compiled program).
    max_cases: int = Field(64, ge=1)

    # Admission: executions running at once, and how many requests may wait and for how long.
    max_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    queue_size: int = Field(256, ge=0)
    queue_timeout_s: float = Field(30.0, gt=0)
    # Memory limits of running executions may add up to this much (MiB); 0 = half the host's.
    memory_budget_mb: int = Field(0, ge=0)
    # The share of the queue one caller (API key, or client address) may hold.
    caller_queue_share: float = Field(0.5, gt=0, le=1)
    # Comma-separated API keys (header X-API-Key); empty = the service is open.
    api_keys: str = ""
    # On SIGTERM: how long running and queued work may take to finish before it is killed.
    shutdown_grace_s: float = Field(30.0, ge=0)

    # Asynchronous submissions: the embedded store (SQLite file), how long finished ones are
    # kept, and how many may wait at once (more get 429).
    submissions_db: str = "/var/lib/execbox/submissions.sqlite3"
    submission_ttl_s: float = Field(24 * 3600.0, gt=0)
    max_pending_submissions: int = Field(10_000, ge=1)
    # Output one execution keeps, over all its stages and test cases (the engine caps each
    # stage at what is left; a stored submission result is bound by it too).
    max_result_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # Output files (a request's ``outputs``) one execution gives back at most, over all its
    # runs; a request may ask for less. Past them the answer says which bound cut it.
    outputs_max_files: int = Field(64, ge=0)
    outputs_max_bytes: int = Field(10 * 1024 * 1024, ge=0)
    # Callbacks: also to loopback/private/link-local addresses (off: only public ones).
    callback_allow_private: bool = False
    callback_timeout_s: float = Field(5.0, gt=0)
    callback_max_tries: int = Field(3, ge=1)
    # Cluster mode (README, "Cluster mode"): a postgresql:// URL puts submissions in that
    # database, shared by every node; empty: the embedded SQLite store and in-process queue.
    database_url: str = ""
    # What this node does: the API and sandboxes ("all"), the API only ("api": no sandbox, no
    # privileges), or sandboxes only ("worker"). Set by `execbox serve --no-worker` and
    # `execbox worker`.
    role: Literal["all", "api", "worker"] = "all"
    # How often a worker tells the database it is alive, and after how long without word a
    # job it holds is run again by another worker (False: never; only for testing recovery).
    cluster_heartbeat_s: float = Field(2.0, gt=0)
    cluster_stalled_after_s: float = Field(10.0, gt=0)
    cluster_stalled_retry: bool = True
    # Origins (comma-separated, e.g. https://docs.example.org) whose pages may call the API
    # routes the embeddable snippets use (playground.CORS_PATHS); empty = same-origin only.
    cors_origins: str = ""

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _values_make_sense(self) -> Settings:
        """What one field's bounds cannot say. A run default above its maximum is allowed: it
        is cut to the maximum (an operator lowering MAX_ alone keeps a working server)."""
        problems = []
        for prefix in ("run_", "compile_", "max_"):
            for name in Limits.names():
                value, low = getattr(self, prefix + name), getattr(LIMIT_MINIMUMS, name)
                if value < low:
                    problems.append(
                        f"EXECBOX_{(prefix + name).upper()}: must be at least {low} (got {value})"
                    )
        if self.cpus_per_stage and self.cpus_per_stage < 0.01:
            # The kernel's smallest CPU quota is 1 ms a 100 ms period; Docker's is 0.01 CPUs.
            problems.append(
                f"EXECBOX_CPUS_PER_STAGE: must be 0 (no quota) or at least 0.01 "
                f"(got {self.cpus_per_stage})"
            )
        if self.cluster_stalled_after_s < 2 * self.cluster_heartbeat_s:
            # A live worker between two heartbeats would look stalled: its jobs would run twice.
            problems.append(
                f"EXECBOX_CLUSTER_STALLED_AFTER_S: must be at least twice "
                f"EXECBOX_CLUSTER_HEARTBEAT_S ({self.cluster_heartbeat_s:g}), "
                f"got {self.cluster_stalled_after_s:g}"
            )
        if not self.host.strip():
            problems.append("EXECBOX_HOST: empty (that would listen on every interface)")
        if self.api_keys.strip() and not self.api_key_set():
            problems.append("EXECBOX_API_KEYS: set, but holds no key (that would leave it open)")
        problems += self._text_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _text_problems(self) -> list[str]:
        """Settings written as text that would otherwise be misread without a word."""
        problems = []
        if not self.state_dir.startswith("/"):
            problems.append(f"EXECBOX_STATE_DIR: must be an absolute path (got {self.state_dir!r})")
        for item, name, image in self._docker_image_items():
            if not name or not image:
                problems.append(
                    f"EXECBOX_DOCKER_IMAGES: {item!r} is not language=image "
                    '(e.g. "python=python:3.12-slim,go=golang:1.22")'
                )
        for origin in self.cors_origin_list():
            if origin != "*" and not re.fullmatch(r"https?://[^/\s*]+", origin):
                problems.append(
                    f"EXECBOX_CORS_ORIGINS: {origin!r} is not an origin such as "
                    "https://docs.example.org (scheme and host, no path or wildcard)"
                )
        url = self.database_url.strip()
        scheme = url.partition("://")[0] if "://" in url else ""
        if url and scheme not in ("postgres", "postgresql") and (scheme or "=" not in url):
            problems.append(
                "EXECBOX_DATABASE_URL: must be a PostgreSQL URL, postgresql://user:password@host/db"
            )
        return problems

    def _docker_image_items(self) -> list[tuple[str, str, str]]:
        """Each ``language=image`` item, with its two parts (checked at start)."""
        items = []
        for item in (i.strip() for i in self.docker_images.split(",") if i.strip()):
            name, _, image = item.partition("=")
            items.append((item, name.strip(), image.strip()))
        return items

    def docker_image_overrides(self) -> dict[str, str]:
        return {name: image for _, name, image in self._docker_image_items()}

    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())

    def memory_budget_bytes(self) -> int:
        if self.memory_budget_mb > 0:
            return self.memory_budget_mb * 1024 * 1024
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2

    def run_limits(self) -> Limits:
        return self._limits("run_")

    def compile_limits(self) -> Limits:
        return self._limits("compile_")

    def max_limits(self) -> Limits:
        return self._limits("max_")

    def _limits(self, prefix: str) -> Limits:
        return Limits(**{name: getattr(self, prefix + name) for name in Limits.names()})


class BadSettings(Exception):
    """The environment (or the command line) sets something execbox cannot use; the message
    has a line per problem, named by the variable an operator sets."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as err:
        raise BadSettings(describe_bad_settings(err)) from None


def describe_bad_settings(err: ValidationError) -> str:
    lines = []
    for problem in err.errors():
        message = problem["msg"].removeprefix("Value error, ")
        if problem["loc"]:
            name = "EXECBOX_" + str(problem["loc"][0]).upper()
            given = str(problem["input"])
            shown = given if len(given) <= 80 else given[:80] + "..."
            lines.append(f"  - {name}: {message} (got {shown!r})")
        else:
            lines.extend(f"  - {part}" for part in message.splitlines())
    return "\n".join(lines)


# EXECBOX_ names that are not settings of the server but of its tooling (compose files, make,
# the tests): not worth a warning.
TOOLING_NAMES = frozenset(
    ["DEBUG", "DB_PASSWORD", "FULL_PORT", "NATIVE_IMAGE", "PUBLISH_PORT", "SCREENSHOTS"]
)


def unknown_settings(environ: Mapping[str, str]) -> list[str]:
    """A warning for each EXECBOX_ variable that sets nothing (a typo is otherwise silent)."""
    known = {name.upper() for name in Settings.model_fields}
    warnings = []
    for variable in sorted(environ):
        name = variable.removeprefix("EXECBOX_")
        if name == variable or name in known or name in TOOLING_NAMES or name.startswith("TEST_"):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean EXECBOX_{close[0]}?)" if close else ""
        warnings.append(f"{variable} is not a setting of execbox: ignored{hint}")
    return warnings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
