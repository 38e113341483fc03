"""What an execution is asked to do and what it reports: plain data, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from execbox.config import Limits
from execbox.sandbox.outputs import Outputs


class Status(StrEnum):
    OK = "ok"
    RUNTIME_ERROR = "runtime_error"
    TIME_LIMIT = "time_limit"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    COMPILE_ERROR = "compile_error"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class SourceFile:
    name: str
    content: bytes


@dataclass(frozen=True)
class LimitRequest:
    """Limits a client asked for; None means the configured default."""

    wall_time_ms: int | None = None
    cpu_time_ms: int | None = None
    memory_mb: int | None = None
    processes: int | None = None
    output_bytes: int | None = None
    file_size_mb: int | None = None

    def given(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class OutputsRequest:
    """Files the program leaves that should come back (globs relative to the work dir), and
    bounds that may lower the configured ones (None: the configured bound)."""

    patterns: tuple[str, ...]
    max_files: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class ExecutionRequest:
    language: str
    files: list[SourceFile]
    version: str = "*"
    stdin: bytes = b""
    args: list[str] = field(default_factory=list)
    limits: LimitRequest = field(default_factory=LimitRequest)
    compile_limits: LimitRequest = field(default_factory=LimitRequest)
    # Test cases: the program is compiled once and run once per stdin here, each run in its
    # own sandbox (``stdin`` is then unused).
    cases: list[bytes] | None = None
    merge_stderr: bool = False  # the program's stderr goes to its stdout (one stream)
    compile_options: list[str] = field(default_factory=list)  # extra compiler flags
    # Output files each run gives back, bounded over the whole execution (see outputs.py).
    outputs: OutputsRequest | None = None


@dataclass
class StageReport:
    status: Status
    exit_code: int | None
    signal: str | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    wall_time_ms: float
    cpu_time_ms: float
    memory_bytes: int
    limits: Limits
    message: str | None = None  # why the stage ended, in words, for a non-ok status
    cached: bool = False  # a compile stage answered from the compile cache
    output: bytes | None = None  # stdout and stderr interleaved, where the sandbox can tell
    outputs: Outputs | None = None  # a run's output files, when the request asked for some

    def combined_output(self) -> bytes:
        """Both streams as one: interleaved as written where the sandbox could tell the order,
        else stdout followed by stderr."""
        return self.output if self.output is not None else self.stdout + self.stderr


@dataclass
class ExecutionResult:
    language: str
    version: str
    status: Status
    compile: StageReport | None
    run: StageReport | None
    # One report per test case, when the request had cases (``run`` is then the first).
    cases: list[StageReport] = field(default_factory=list)
