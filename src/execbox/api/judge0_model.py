"""Judge0 CE 1.13.1's submissions: their fields, Judge0's defaults and maxima in its units
(seconds, KB), and the execution a submission asks for."""

from __future__ import annotations

import base64
import binascii
import math
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict

from execbox.api.archives import BadArchive, run_bounded, unzip
from execbox.api.judge0_limits import Judge0Limits, judge0_limits
from execbox.config import Settings
from execbox.engine import (
    Catalog,
    Engine,
    ExecutionRequest,
    LimitRequest,
    SourceFile,
)


@dataclass(frozen=True)
class Flavour:
    """One of Judge0's editions, each with its own language ids."""

    key: str  # whose ids: "ce" (languages.toml's judge0.ids) or "extra" (judge0_extra.ids)
    title: str
    version: str  # what /about says: the Judge0 SDK picks its table of ids by it
    prefix: str  # where it is served


CE = Flavour("ce", "Judge0 CE", "1.13.1", "")
EXTRA_CE = Flavour("extra", "Judge0 Extra CE", "1.13.1-extra", "/extra")
VERSION = CE.version
# Judge0's "Executable": a program that cannot be executed is its own status.
EXECUTABLE_ID = 44
EXEC_FORMAT_ERROR = 14
PROJECT_RUN_SCRIPTS = ("run.sh", "run")
STATUSES = {
    1: "In Queue",
    2: "Processing",
    3: "Accepted",
    4: "Wrong Answer",
    5: "Time Limit Exceeded",
    6: "Compilation Error",
    7: "Runtime Error (SIGSEGV)",
    8: "Runtime Error (SIGXFSZ)",
    9: "Runtime Error (SIGFPE)",
    10: "Runtime Error (SIGABRT)",
    11: "Runtime Error (NZEC)",
    12: "Runtime Error (Other)",
    13: "Internal Error",
    14: "Exec Format Error",
}
SIGNAL_STATUS = {"SIGSEGV": 7, "SIGXFSZ": 8, "SIGFPE": 9, "SIGABRT": 10}

DEFAULT_FIELDS = (
    "token",
    "time",
    "memory",
    "stdout",
    "stderr",
    "compile_output",
    "message",
    "status",
)
ALL_FIELDS = (
    "source_code", "language_id", "stdin", "expected_output", "stdout", "status_id",
    "created_at", "finished_at", "time", "memory", "stderr", "token", "number_of_runs",
    "cpu_time_limit", "cpu_extra_time", "wall_time_limit", "memory_limit", "stack_limit",
    "max_processes_and_or_threads", "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit", "max_file_size", "compile_output",
    "exit_code", "exit_signal", "message", "wall_time", "compiler_options",
    "command_line_arguments", "redirect_stderr_to_stdout", "callback_url", "additional_files",
    "enable_network", "status", "language",
)  # fmt: skip
WAIT_TIMEOUT_S = 300.0


class Judge0Error(Exception):
    """A refusal in Judge0's shape: ``{field: [messages]}`` (422) or ``{"error": ...}``."""

    def __init__(self, message: str, status_code: int = 422, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.field = field

    def body(self) -> dict:
        return {self.field: [self.message]} if self.field else {"error": self.message}


class SubmissionBody(BaseModel):
    # Judge0 ignores fields it does not know.
    model_config = ConfigDict(extra="ignore")

    source_code: str | None = None
    language_id: int | None = None
    compiler_options: str | None = None
    command_line_arguments: str | None = None
    stdin: str | None = None
    expected_output: str | None = None
    cpu_time_limit: float | None = None
    cpu_extra_time: float | None = None
    wall_time_limit: float | None = None
    memory_limit: float | None = None
    stack_limit: int | None = None
    max_processes_and_or_threads: int | None = None
    enable_per_process_and_thread_time_limit: bool | None = None
    enable_per_process_and_thread_memory_limit: bool | None = None
    max_file_size: int | None = None
    redirect_stderr_to_stdout: bool | None = None
    enable_network: bool | None = None
    number_of_runs: int | None = None
    additional_files: str | None = None
    callback_url: str | None = None


# --- turning a Judge0 submission into an execution -----------------------------------------


def _decode(value: str | None, base64_encoded: bool, field: str) -> bytes | None:
    if value is None:
        return None
    if not base64_encoded:
        return value.encode("utf-8", errors="surrogatepass")
    try:
        # Accept base64 wrapped at any width, as Ruby's Base64.encode64 writes it.
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Judge0Error("is not valid base64", field=field) from None


def _setting(body: SubmissionBody, name: str, limits: Judge0Limits) -> float:
    value = getattr(body, name)
    if value is None:
        return limits.defaults[name]
    highest = limits.maxima[name]
    if not 0 <= value <= highest or (name == "number_of_runs" and value < 1):
        low = 1 if name == "number_of_runs" else 0
        raise Judge0Error(f"must be between {low} and {highest:g}", field=name)
    return value


async def unpack_additional_files(body: SubmissionBody, settings: Settings) -> list[SourceFile]:
    """Judge0's additional_files: a zip whose files go beside the source, unpacked off the
    event loop under bounds on count, size and ratio (archives.py)."""
    if not body.additional_files:
        return []
    zipped = _decode(body.additional_files, True, "additional_files") or b""
    try:
        return await run_bounded(
            lambda: unzip(zipped, settings.max_files - 1, settings.max_request_bytes)
        )
    except BadArchive as err:
        raise Judge0Error(str(err), field="additional_files") from None


def compile_option_languages(catalog: Catalog, flavour: Flavour = CE) -> list[str]:
    """The names (as Judge0 lists them, without versions) of the languages that take
    compiler options."""
    return sorted(
        {
            judge0_id.short_name
            for runtime, judge0_id in catalog.judge0_ids(flavour.key).values()
            if runtime.language.compile_options
        }
    )


def _language_of(body: SubmissionBody, engine: Engine, flavour: Flavour):
    """The runtime a submission's language_id names in this edition, or Judge0's refusal."""
    if body.language_id is None:
        raise Judge0Error("can't be blank", field="language_id")
    judge0_ids = engine.catalog.judge0_ids(flavour.key)
    if body.language_id not in judge0_ids:
        raise Judge0Error(f"language with id {body.language_id} doesn't exist", field="language_id")
    runtime, judge0_id = judge0_ids[body.language_id]
    if runtime.language.never_available:
        raise Judge0Error(
            f"{judge0_id.label} is not available: {runtime.unavailable_reason}",
            field="language_id",
        )
    return runtime, judge0_id


def _project_files(additional_files: list[SourceFile]) -> list[SourceFile]:
    """A multi-file program's files: Judge0 runs its run script, which it must have."""
    if not additional_files:
        raise Judge0Error("can't be blank for a multi-file program", field="additional_files")
    names = {str(PurePosixPath(f.name)) for f in additional_files}
    if not names & set(PROJECT_RUN_SCRIPTS):
        raise Judge0Error(
            "has no run script (run.sh or run, at the top of the archive)",
            field="additional_files",
        )
    return additional_files


def to_execution(
    body: SubmissionBody,
    base64_encoded: bool,
    engine: Engine,
    additional_files: list[SourceFile] | None = None,
    flavour: Flavour = CE,
) -> tuple[ExecutionRequest, dict]:
    """The execution a submission asks for, and the Judge0 fields to show with it
    (``additional_files``: its zip, already unpacked)."""
    if body.source_code is None and body.language_id is None:
        raise Judge0Error("can't be blank", field="source_code")
    runtime, judge0_id = _language_of(body, engine, flavour)
    language = runtime.language
    if body.source_code is None and not language.judge0.project:
        raise Judge0Error("can't be blank", field="source_code")
    if body.enable_network:
        raise Judge0Error("execbox runs nothing with network access", field="enable_network")
    for flag in (
        "enable_per_process_and_thread_time_limit",
        "enable_per_process_and_thread_memory_limit",
    ):
        if getattr(body, flag):
            raise Judge0Error("is not allowed: limits apply to all processes together", field=flag)
    settings = engine.settings
    allowed = judge0_limits(settings)
    source = _decode(body.source_code, base64_encoded, "source_code") or b""
    stdin = _decode(body.stdin, base64_encoded, "stdin") or b""
    expected = _decode(body.expected_output, base64_encoded, "expected_output")
    cpu = _setting(body, "cpu_time_limit", allowed)
    extra = _setting(body, "cpu_extra_time", allowed)
    wall = _setting(body, "wall_time_limit", allowed)
    memory_kb = body.memory_limit
    if memory_kb is not None:
        memory_kb = _setting(body, "memory_limit", allowed)
    if body.stack_limit is not None:
        _setting(body, "stack_limit", allowed)
    processes = body.max_processes_and_or_threads
    if processes is not None:
        processes = int(_setting(body, "max_processes_and_or_threads", allowed))
    file_kb = int(_setting(body, "max_file_size", allowed))
    runs = int(_setting(body, "number_of_runs", allowed))
    # A NUL would end an argument where the kernel reads it: one word would become several.
    for name in ("command_line_arguments", "compiler_options"):
        if "\x00" in (getattr(body, name) or ""):
            raise Judge0Error("cannot contain NUL bytes", field=name)
    try:
        args = shlex.split(body.command_line_arguments or "")
        options = shlex.split(body.compiler_options or "")
    except ValueError as err:
        raise Judge0Error(
            f"cannot be split into words: {err}", field="command_line_arguments"
        ) from None
    if options and not language.compile_options:
        raise Judge0Error(
            "setting compiler options is only allowed for "
            + ", ".join(compile_option_languages(engine.catalog)),
            field="compiler_options",
        )
    if language.judge0.project:
        # Judge0 writes no source file for a multi-file program: the archive is the program.
        files = _project_files(additional_files or [])
    else:
        files = [SourceFile(language.judge0.source_file or "", source)]
        files += additional_files or []
    limits = LimitRequest(
        cpu_time_ms=int((cpu + extra) * 1000) or 1,
        wall_time_ms=int(wall * 1000) or 1,
        memory_mb=max(8, math.ceil(memory_kb / 1024)) if memory_kb is not None else None,
        processes=processes,
        file_size_mb=max(1, math.ceil(file_kb / 1024)),
        output_bytes=file_kb * 1024,
    )
    execution = ExecutionRequest(
        language=language.name,
        files=files,
        args=args,
        limits=limits,
        cases=[stdin] * runs if runs > 1 else None,
        stdin=stdin,
        merge_stderr=bool(body.redirect_stderr_to_stdout),
        compile_options=options,
    )
    shown = {
        "source_code": base64.b64encode(source).decode(),
        "language_id": body.language_id,
        # The name Judge0 lists the language by (its "{version}" filled in when shown).
        "language_label": judge0_id.label,
        "stdin": base64.b64encode(stdin).decode(),
        "expected_output": base64.b64encode(expected).decode() if expected is not None else None,
        "number_of_runs": runs,
        "cpu_time_limit": cpu,
        "cpu_extra_time": extra,
        "wall_time_limit": wall,
        "memory_limit": memory_kb if memory_kb is not None else settings.run_memory_mb * 1024,
        "stack_limit": body.stack_limit
        if body.stack_limit is not None
        else allowed.defaults["stack_limit"],
        "max_processes_and_or_threads": processes
        if processes is not None
        else settings.run_processes,
        "enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "max_file_size": file_kb,
        "compiler_options": body.compiler_options,
        "command_line_arguments": body.command_line_arguments,
        "redirect_stderr_to_stdout": bool(body.redirect_stderr_to_stdout),
        "callback_url": body.callback_url,
        "additional_files": body.additional_files,
        "enable_network": False,
        "base64_encoded": base64_encoded,
        "flavour": flavour.key,
    }
    return execution, shown
