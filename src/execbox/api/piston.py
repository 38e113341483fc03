"""Piston's v2 API: a client of Piston changes only its URL.

``GET /api/v2/runtimes`` and ``POST /api/v2/execute`` (the interactive WebSocket
``/api/v2/connect`` is in piston_interactive.py), with Piston's field names, units (ms, bytes),
status codes and errors (``400 {"message"}``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import signal as signals
from typing import Any

from fastapi import Request, WebSocket
from fastapi.responses import JSONResponse

from execbox.api.bodies import BadBody
from execbox.api.dialects import Dialect, Problem
from execbox.api.middleware import CLIENT_CONTENT_TYPE
from execbox.api.models import MAX_NAME_CHARS
from execbox.api.routes import execute
from execbox.engine import (
    Engine,
    ExecutionError,
    ExecutionRequest,
    ExecutionResult,
    LanguageUnavailable,
    LimitRequest,
    SourceFile,
    StageReport,
    Status,
    UnknownLanguage,
    UnknownVersion,
)
from execbox.languages import PistonDialect


class PistonError(Exception):
    """A bad Piston request: 400 {"message"}."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PistonNotJSON(PistonError):
    """A body that is not JSON, sent as something else: Piston's 415."""

    status_code = 415

    def __init__(self) -> None:
        super().__init__("requests must be of type application/json")


def _own_errors(exc: Exception) -> Problem | None:
    """Piston answers a bad request, a body it cannot read included, with 400."""
    if isinstance(exc, PistonError):
        return Problem(exc.status_code, "invalid_request", exc.message)
    if isinstance(exc, BadBody):
        return Problem(400, "invalid_json", exc.message)
    return None


PISTON = Dialect("piston", lambda problem: {"message": problem.message}, _own_errors)
router = PISTON.router(tags=["piston"])


def engine_of(request: Request | WebSocket) -> Engine:
    return request.app.state.engine


@router.get("/api/v2/runtimes/", include_in_schema=False)
@router.get("/api/v2/runtimes")
async def runtimes(request: Request) -> list[dict]:
    listed = []
    for runtime in engine_of(request).catalog.runtimes.values():
        if not runtime.available:
            continue
        name = runtime.language.name
        entry: dict[str, Any] = {
            "language": name,
            "version": runtime.version,
            "aliases": list(runtime.language.aliases),
        }
        if runtime.language.piston.runtime:
            entry["runtime"] = runtime.language.piston.runtime
        listed.append(entry)
    return listed


def _string(data: dict, key: str, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise PistonError(f"{key} is required as a string")
    return value


def _limit(data: dict, key: str) -> int | None:
    """A limit in Piston's units; -1, 0 or missing means the server's default."""
    value = data.get(key)
    if value is None or value in (-1, 0):
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise PistonError(f"{key} must be a number")
    return int(value)


def _file(index: int, item: Any) -> SourceFile:
    if not isinstance(item, dict):
        raise PistonError(f"files[{index}] must be an object")
    content = item.get("content")
    if not isinstance(content, str):
        raise PistonError(f"files[{index}].content is required as a string")
    encoding = item.get("encoding", "utf8")
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise PistonError(f"files[{index}].name must be a string")
    try:
        match encoding:
            case "utf8":
                data = content.encode("utf-8", errors="surrogatepass")
            case "base64":
                data = base64.b64decode(content, validate=True)
            case "hex":
                data = bytes.fromhex(content)
            case _:
                raise PistonError(f"files[{index}].encoding must be one of utf8, base64, hex")
    except (binascii.Error, ValueError):
        raise PistonError(f"files[{index}].content is not valid {encoding}") from None
    return SourceFile(name or "", data)


def _piston_files(items: list) -> list[SourceFile]:
    """The files as Piston writes them: an unnamed one is ``file<i>.code``, a name given again
    overwrites the earlier file, and the program is the first utf8 file (the first file when
    none is: execbox runs a base64 or hex program too). Unnamed, the program is named as its
    language needs (main.c, Main.java), so that it compiles."""
    files = [_file(index, item) for index, item in enumerate(items)]
    utf8 = (i for i, item in enumerate(items) if item.get("encoding", "utf8") == "utf8")
    entry = next(utf8, 0)
    written: dict[str, bytes] = {}
    for index, file in enumerate(files):
        written[file.name or ("" if index == entry else f"file{index}.code")] = file.content
    entry_name = files[entry].name
    entry_file = SourceFile(entry_name, written.pop(entry_name))
    return [entry_file, *(SourceFile(name, content) for name, content in written.items())]


def to_execution(data: Any, end_stdin_with_newline: bool = False) -> ExecutionRequest:
    """The execution a Piston request asks for. Over HTTP, Piston ends stdin with a newline
    when it has none (so always gives one); its WebSocket sends stdin as it comes."""
    if not isinstance(data, dict):
        raise PistonError("the body must be a JSON object")
    language = _string(data, "language", required=True)
    version = _string(data, "version") or "*"
    for key, value in (("language", language), ("version", version)):
        if len(value or "") > MAX_NAME_CHARS:
            raise PistonError(f"{key} is longer than {MAX_NAME_CHARS} characters")
    files = data.get("files")
    if not isinstance(files, list) or not files:
        raise PistonError("files is required as an array")
    args = data.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise PistonError("args must be an array of strings")
    if any("\x00" in a for a in args):
        raise PistonError("args cannot contain NUL bytes")
    stdin = data.get("stdin", "")
    if not isinstance(stdin, str):
        raise PistonError("stdin must be a string")

    def limits(stage: str) -> LimitRequest:
        memory = _limit(data, f"{stage}_memory_limit")
        return LimitRequest(
            wall_time_ms=_limit(data, f"{stage}_timeout"),
            cpu_time_ms=_limit(data, f"{stage}_cpu_time"),
            memory_mb=max(8, math.ceil(memory / (1024 * 1024))) if memory else None,
        )

    assert language is not None
    return ExecutionRequest(
        language=language,
        version=version,
        files=_piston_files(files),
        stdin=(
            stdin + "\n" if end_stdin_with_newline and not stdin.endswith("\n") else stdin
        ).encode("utf-8", errors="surrogatepass"),
        args=list(args),
        limits=limits("run"),
        compile_limits=limits("compile"),
    )


def as_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _status_and_message(report: StageReport) -> tuple[str | None, str | None]:
    """Piston's status code and message for a stage: isolate's words, which Piston passes on
    (and its own for output past the limit)."""
    match report.status:
        case Status.TIME_LIMIT if report.cpu_time_ms >= report.limits.cpu_time_ms:
            return "TO", "Time limit exceeded"
        case Status.TIME_LIMIT:
            return "TO", "Time limit exceeded (wall clock)"
        case Status.OUTPUT_LIMIT if report.stdout_truncated:
            return "OL", "stdout length exceeded"
        case Status.OUTPUT_LIMIT:
            return "EL", "stderr length exceeded"
        case Status.MEMORY_LIMIT:
            return "SG", f"Caught fatal signal {int(signals.SIGKILL)}"
        case Status.INTERNAL_ERROR:
            return "XX", report.message
        case Status.RUNTIME_ERROR | Status.COMPILE_ERROR if report.signal:
            number = getattr(signals, report.signal, None)
            return "SG", f"Caught fatal signal {int(number) if number else report.signal}"
        case Status.RUNTIME_ERROR | Status.COMPILE_ERROR:
            return "RE", f"Exited with error status {report.exit_code}"
    return None, None


def stage(report: StageReport) -> dict:
    status, message = _status_and_message(report)
    signal, code = report.signal, report.exit_code
    if status in ("TO", "OL", "EL") or report.status is Status.MEMORY_LIMIT:
        # Piston's limits end a run with SIGKILL, and say so.
        signal, code = "SIGKILL", None
    return {
        "stdout": as_text(report.stdout),
        "stderr": as_text(report.stderr),
        "output": as_text(report.combined_output()),
        "code": code,
        "signal": signal,
        "message": message,
        "status": status,
        "cpu_time": round(report.cpu_time_ms),
        "wall_time": round(report.wall_time_ms),
        "memory": report.memory_bytes,
    }


def compiled_and_run(compile: StageReport, run: StageReport | None) -> StageReport:
    """One stage for both, as Piston shows a package that compiles and runs in one command
    (``go run``, ``java File.java``): the compile when it failed, else the run with the
    compiler's output before the program's and the times of both."""
    if run is None:
        return compile
    return dataclasses.replace(
        run,
        stdout=compile.stdout + run.stdout,
        stderr=compile.stderr + run.stderr,
        output=compile.combined_output() + run.combined_output(),
        wall_time_ms=compile.wall_time_ms + run.wall_time_ms,
        cpu_time_ms=compile.cpu_time_ms + run.cpu_time_ms,
        memory_bytes=max(compile.memory_bytes, run.memory_bytes),
    )


def response(result: ExecutionResult, piston: PistonDialect) -> dict:
    body: dict[str, Any] = {"language": result.language, "version": result.version}
    if result.compile is not None and not piston.compile_stage:
        body["run"] = stage(compiled_and_run(result.compile, result.run))
        return body
    if result.compile is not None:
        body["compile"] = stage(result.compile)
    # After a failed compile Piston repeats it as the run, for clients that need a run.
    ran = result.run if result.run is not None else result.compile
    if ran is not None:
        body["run"] = stage(ran)
    return body


async def _json(request: Request) -> Any:
    # Piston's clients often send no Content-Type: a JSON body is read whatever it says. One
    # that is not JSON gets Piston's 415 unless it claimed to be JSON.
    if not await request.body():
        return None
    try:
        return await request.json()
    except BadBody:
        sent = request.scope.get(CLIENT_CONTENT_TYPE, request.headers.get("content-type", ""))
        if not sent.lower().startswith("application/json"):
            raise PistonNotJSON() from None
        raise


def _piston_errors(
    error: ExecutionError, execution: ExecutionRequest
) -> PistonError | ExecutionError:
    if isinstance(error, UnknownLanguage | UnknownVersion):
        return PistonError(f"{execution.language}-{execution.version} runtime is unknown")
    if not isinstance(error, LanguageUnavailable):
        return PistonError(error.message)
    return error


# Piston (Express) answers these with a trailing slash too, where a redirect would lose the
# body of a POST with some clients.
@router.post("/api/v2/execute/", include_in_schema=False)
@router.post("/api/v2/execute")
async def execute_v2(request: Request) -> JSONResponse:
    execution = to_execution(await _json(request), end_stdin_with_newline=True)
    try:
        result = await execute(request, execution, api="piston")
    except ExecutionError as err:
        raise _piston_errors(err, execution) from None
    language = engine_of(request).catalog.runtimes[result.language].language
    return JSONResponse(response(result, language.piston))
