"""The sandbox protocol: run one stage (compile or run) of an execution in isolation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from execbox.config import Limits
from execbox.sandbox.outputs import OutputRequest, Outputs
from execbox.sandbox.policy import Ending, LimitHit, classify

if TYPE_CHECKING:
    from execbox.sandbox.warm_pool import Expectation


@dataclass(frozen=True)
class SandboxFile:
    path: str  # relative to the work dir, already validated
    content: bytes
    executable: bool = False


@dataclass
class Interactive:
    """An interactive run: stdin arrives while the program runs, output leaves as it is
    written, signals can be sent. The limits stay as they are."""

    stdin: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)  # None: EOF
    signals: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    # Called with ("stdout" | "stderr", bytes) for each piece of output (up to the cap).
    output: Callable[[str, bytes], Awaitable[None]] | None = None
    # Called by the engine with (stage name, None) when a stage starts and (name, its report)
    # when it ends.
    stage: Callable[[str, Any], Awaitable[None]] | None = None


@dataclass(frozen=True)
class StageSpec:
    argv: list[str]
    files: list[SandboxFile]
    limits: Limits
    env: dict[str, str] = field(default_factory=dict)
    mounts: tuple[str, ...] = ()  # host directories to bind read-only at the same path
    image: str | None = None  # the container image (Docker backend); None = its default
    stdin: bytes = b""
    merge_stderr: bool = False  # the program's stderr is its stdout
    interactive: Interactive | None = None  # stream stdin/output/signals (native backend)
    # Return the work dir's files after the stage (a compile stage's artifacts).
    collect_files: bool = False
    # The most bytes of files the stage may leave for collection (0: its memory limit); more is
    # refused as "compile output too large" (StageResult.refusal) and nothing is collected.
    collect_limit_bytes: int = 0
    # Files the program leaves that come back after the stage, whatever its status
    # (StageResult.outputs; see outputs.py). A run stage's only: never with collect_files.
    outputs: OutputRequest | None = None
    # Keep a sandbox like this one started for the next stage: false for stages whose kind
    # few others share (custom limits, the version probes at start). A hint: a backend whose
    # sandboxes fit any limits (native) keeps its pool anyway.
    keep_warm: bool = True


@dataclass
class StageResult:
    exit_code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    wall_time_ms: float = 0.0
    cpu_time_ms: float = 0.0
    memory_bytes: int = 0
    limit: LimitHit | None = None
    # Set when the sandbox itself failed (not the program): the message for the operator log.
    internal_error: str | None = None
    # Set when the stage broke a rule that has no limit status of its own (a compile that left
    # more artifacts than allowed): the stage failed on its program's account, with this message.
    refusal: str | None = None
    files: list[SandboxFile] = field(default_factory=list)
    # The files StageSpec.outputs asked for; None when it asked for none.
    outputs: Outputs | None = None
    # stdout and stderr as the program wrote them, one interleaved stream (as far as the order
    # they were read in tells); None where the backend cannot tell the order.
    output: bytes | None = None

    @classmethod
    def judged(
        cls,
        ending: Ending,
        limits: Limits,
        stdout: tuple[bytes, bool],
        stderr: tuple[bytes, bool],
        wall_time_ms: float,
        memory_bytes: int,
        output: bytes | None = None,
    ) -> StageResult:
        """The result of a run that ended as ``ending`` says, judged by the policy; each
        stream is (what was kept, whether it was cut)."""
        verdict = classify(ending, limits)
        return cls(
            exit_code=verdict.exit_code,
            signal=verdict.signal,
            stdout=stdout[0],
            stderr=stderr[0],
            stdout_truncated=stdout[1],
            stderr_truncated=stderr[1],
            wall_time_ms=round(wall_time_ms, 3),
            cpu_time_ms=round(ending.cpu_time_ms, 3),
            memory_bytes=memory_bytes,
            limit=verdict.limit,
            output=output,
        )


class Sandbox(Protocol):
    name: str
    interactive: bool  # whether run() honours StageSpec.interactive

    async def start(self) -> None:
        """Prepare the backend (clean what a dead server left, check the host)."""

    def shell(self, command: str, image: str | None) -> str:
        """Run a shell command where programs run (this host, or a container of ``image``)
        and return its output: how toolchains are found. Blocking; called once at start."""
        ...

    async def close(self) -> None:
        """Kill whatever still runs and release every resource."""

    def expect(self, spec: StageSpec) -> Expectation:
        """A stage like ``spec`` will run soon (its request waits for a slot): the backend may
        start its sandbox now. The caller withdraws the expectation when the request ends."""
        ...

    async def run(self, spec: StageSpec) -> StageResult:
        """Run one stage in a fresh sandbox that is destroyed before this returns."""
        ...
