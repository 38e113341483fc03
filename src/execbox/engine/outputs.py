"""A request's output files (``outputs``): its patterns checked, its bounds resolved, and the
bounds spent over the execution's runs.

A pattern that could name something outside the work dir is refused (400) rather than left
to match nothing: a client that asks for ``../etc/passwd`` or ``/etc/*`` learns at once that
it cannot be had. The bounds (``OUTPUTS_MAX_FILES``, ``OUTPUTS_MAX_BYTES``) hold for the
whole execution: with test cases, each run gets what the runs before it left, so that a
stored result holds at most that much of files, whatever the number of cases.
"""

from __future__ import annotations

import dataclasses

from execbox.config import Settings
from execbox.engine.errors import InvalidRequest
from execbox.engine.model import OutputsRequest
from execbox.sandbox.outputs import (
    COLLECT_TIME_S,
    MAX_WALK_DEPTH,
    UNAVAILABLE,
    OutputRequest,
    Outputs,
)

MAX_PATTERNS = 32
MAX_PATTERN_BYTES = 1024


def check_pattern(pattern: str) -> str:
    """The normalised pattern (no empty or ``.`` parts), or InvalidRequest naming the
    problem."""
    shown = repr(pattern) if len(pattern) <= 80 else repr(pattern[:80] + "...")
    if not pattern:
        raise InvalidRequest("outputs: a pattern must not be empty")
    if "\x00" in pattern:
        raise InvalidRequest(f"outputs: pattern {shown} contains a NUL byte")
    if len(pattern.encode(errors="surrogatepass")) > MAX_PATTERN_BYTES:
        raise InvalidRequest(f"outputs: a pattern is longer than {MAX_PATTERN_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in pattern):
        raise InvalidRequest(f"outputs: pattern {shown} contains a control character")
    if pattern.startswith("/"):
        raise InvalidRequest(
            f"outputs: pattern {shown} is absolute; patterns are relative to the work dir"
        )
    if "\\" in pattern:
        raise InvalidRequest(f"outputs: pattern {shown} contains a backslash (no escapes)")
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidRequest(f"outputs: pattern {shown} leaves the work dir ('..' is not allowed)")
    if not parts:
        raise InvalidRequest(f"outputs: pattern {shown} names no file")
    if any("**" in p and p != "**" for p in parts):
        raise InvalidRequest(
            f"outputs: pattern {shown}: '**' must be a whole path part (as in 'a/**/*.csv')"
        )
    if len(parts) > MAX_WALK_DEPTH:
        raise InvalidRequest(f"outputs: pattern {shown} is deeper than {MAX_WALK_DEPTH} parts")
    return "/".join(parts)


def _bound(name: str, given: int | None, most: int, setting: str) -> int:
    if given is None:
        return most
    if given < 0:
        raise InvalidRequest(f"{name} must be 0 or more, got {given}")
    if given > most:
        raise InvalidRequest(f"{name} is at most {most} (EXECBOX_{setting}), got {given}")
    return given


def resolve_outputs(request: OutputsRequest | None, settings: Settings) -> OutputsRequest | None:
    """The request's outputs with checked patterns and both bounds set."""
    if request is None:
        return None
    if len(request.patterns) > MAX_PATTERNS:
        raise InvalidRequest(
            f"outputs: at most {MAX_PATTERNS} patterns, got {len(request.patterns)}"
        )
    patterns = tuple(dict.fromkeys(check_pattern(p) for p in request.patterns))
    if not patterns:
        return None
    return OutputsRequest(
        patterns=patterns,
        max_files=_bound(
            "outputs_max_files", request.max_files, settings.outputs_max_files, "OUTPUTS_MAX_FILES"
        ),
        max_bytes=_bound(
            "outputs_max_bytes", request.max_bytes, settings.outputs_max_bytes, "OUTPUTS_MAX_BYTES"
        ),
    )


@dataclasses.dataclass
class OutputsBudget:
    """What is left of an execution's output-file bounds, spent run by run."""

    patterns: tuple[str, ...]
    files_left: int
    bytes_left: int
    collect_time_left_s: float = COLLECT_TIME_S

    @classmethod
    def of(cls, request: OutputsRequest | None) -> OutputsBudget | None:
        if request is None:
            return None
        assert request.max_files is not None and request.max_bytes is not None, "resolve first"
        return cls(request.patterns, request.max_files, request.max_bytes)

    def stage(self) -> OutputRequest:
        """The next run's request: whatever the runs before it left."""
        return OutputRequest(
            self.patterns, self.files_left, self.bytes_left, self.collect_time_left_s
        )

    def charge(self, outputs: Outputs | None) -> Outputs:
        """Take a run's files from the budget; a run that gave none back at all (its sandbox
        failed) says so."""
        if outputs is None:
            return Outputs((), (UNAVAILABLE,))
        self.files_left = max(0, self.files_left - len(outputs.files))
        self.bytes_left = max(0, self.bytes_left - outputs.size)
        self.collect_time_left_s = max(0.0, self.collect_time_left_s - outputs.collect_time_s)
        return outputs
