"""Piston's v2 API: a client of Piston changes only its URL.

``GET /api/v2/runtimes`` and ``POST /api/v2/execute`` (the interactive WebSocket
``/api/v2/connect`` is in piston_interactive.py), with Piston's field names, units (ms, bytes),
status codes and errors (``400 {"message"}``).
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse

from execbox.api.bodies import JSONRoute
from execbox.api.models import MAX_NAME_CHARS
from execbox.api.routes import execute
from execbox.engine import (
    Engine,
    ExecutionError,
    ExecutionRequest,
    ExecutionResult,
    InvalidRequest,
    LimitRequest,
    SourceFile,
    StageReport,
    Status,
)

router = APIRouter(tags=["piston"], route_class=JSONRoute)


class PistonError(InvalidRequest):
    """A bad Piston request: 400 {"message"}."""


def engine_of(request: Request | WebSocket) -> Engine:
    return request.app.state.engine


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


def to_execution(data: Any) -> ExecutionRequest:
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
        files=[_file(i, item) for i, item in enumerate(files)],
        stdin=stdin.encode("utf-8", errors="surrogatepass"),
        args=list(args),
        limits=limits("run"),
        compile_limits=limits("compile"),
    )


def as_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def stage(report: StageReport) -> dict:
    status, message = None, report.message
    match report.status:
        case Status.TIME_LIMIT:
            status, message = "TO", "Time limit exceeded"
        case Status.OUTPUT_LIMIT:
            status = "OL" if report.stdout_truncated else "EL"
        case Status.MEMORY_LIMIT:
            status = "SG"
        case Status.INTERNAL_ERROR:
            status = "XX"
        case Status.RUNTIME_ERROR | Status.COMPILE_ERROR:
            status = "SG" if report.signal else "RE"
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
        "message": message if status else None,
        "status": status,
        "cpu_time": round(report.cpu_time_ms),
        "wall_time": round(report.wall_time_ms),
        "memory": report.memory_bytes,
    }


def response(result: ExecutionResult) -> dict:
    body: dict[str, Any] = {"language": result.language, "version": result.version}
    if result.compile is not None:
        body["compile"] = stage(result.compile)
    if result.run is not None:
        body["run"] = stage(result.run)
    return body


async def _json(request: Request) -> Any:
    # Piston's clients often send no Content-Type: the body is JSON whatever it says.
    return await request.json() if await request.body() else None


def _piston_errors(error: ExecutionError) -> PistonError | ExecutionError:
    if error.status_code == 400 and not isinstance(error, PistonError):
        return PistonError(error.message)
    return error


@router.post("/api/v2/execute")
async def execute_v2(request: Request) -> JSONResponse:
    execution = to_execution(await _json(request))
    try:
        result = await execute(request, execution)
    except ExecutionError as err:
        raise _piston_errors(err) from None
    return JSONResponse(response(result))
