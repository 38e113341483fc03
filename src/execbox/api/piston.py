"""Piston's v2 API: a client of Piston changes only its URL.

``GET /api/v2/runtimes``, ``POST /api/v2/execute`` and the interactive WebSocket
``/api/v2/connect``, with Piston's field names, units (ms, bytes), status codes and errors
(``400 {"message"}``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
import signal as signals
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from execbox.api.routes import caller_of, execute
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
from execbox.sandbox import Interactive
from execbox.scheduler import Refused

router = APIRouter(tags=["piston"])

# Piston names a runtime by the toolchain behind a language where they differ.
RUNTIME_NAMES = {"javascript": "node", "c++": "gcc", "c": "gcc"}
INIT_TIMEOUT_S = 1.0
CLOSE = {
    "already_initialized": (4000, "Already Initialized"),
    "init_timeout": (4001, "Initialization Timeout"),
    "error": (4002, "Notified Error"),
    "not_initialized": (4003, "Not yet Initialized"),
    "stdin_only": (4004, "Can only write to stdin"),
    "bad_signal": (4005, "Invalid signal"),
    "done": (4999, "Job Completed"),
}


class PistonError(InvalidRequest):
    """A bad Piston request: 400 {"message"}."""


def _engine(request: Request | WebSocket) -> Engine:
    return request.app.state.engine


@router.get("/api/v2/runtimes")
async def runtimes(request: Request) -> list[dict]:
    listed = []
    for runtime in _engine(request).catalog.runtimes.values():
        if not runtime.available:
            continue
        name = runtime.language.name
        entry: dict[str, Any] = {
            "language": name,
            "version": runtime.version,
            "aliases": list(runtime.language.aliases),
        }
        if name in RUNTIME_NAMES:
            entry["runtime"] = RUNTIME_NAMES[name]
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
    files = data.get("files")
    if not isinstance(files, list) or not files:
        raise PistonError("files is required as an array")
    args = data.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise PistonError("args must be an array of strings")
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


def _text(data: bytes) -> str:
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
        "stdout": _text(report.stdout),
        "stderr": _text(report.stderr),
        "output": _text(report.combined_output()),
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
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        raise PistonError("the body is not valid JSON") from None


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


# --- interactive runs -----------------------------------------------------------------------


@router.websocket("/api/v2/connect")
async def connect(socket: WebSocket) -> None:
    """Piston's interactive protocol: init, then stdin data and signals in; runtime, stage,
    stdout/stderr data, exit and error events out."""
    await socket.accept()
    engine = _engine(socket)

    async def close(reason: str) -> None:
        code, text = CLOSE[reason]
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await socket.close(code, text)

    async def send(event: dict) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await socket.send_text(json.dumps(event))

    try:
        message = await asyncio.wait_for(socket.receive_text(), INIT_TIMEOUT_S)
    except TimeoutError:
        return await close("init_timeout")
    except WebSocketDisconnect:
        return
    try:
        event = json.loads(message)
    except ValueError:
        event = None
    if not isinstance(event, dict) or event.get("type") != "init":
        return await close("not_initialized")
    try:
        caller = caller_of(socket)  # type: ignore[arg-type]
        job = engine.prepare(to_execution(event))
    except ExecutionError as err:
        await send({"type": "error", "message": err.message})
        return await close("error")
    await send({"type": "runtime", "language": job.language.name, "version": job.runtime.version})

    interactive = Interactive()

    async def on_output(stream: str, data: bytes) -> None:
        await send({"type": "data", "stream": stream, "data": _text(data)})

    async def on_stage(name: str, report: StageReport | None) -> None:
        if report is None:
            await send({"type": "stage", "stage": name})
        else:
            body = stage(report)
            await send(
                {"type": "exit", "stage": name, "code": body["code"], "signal": body["signal"]}
            )

    interactive.output = on_output
    interactive.stage = on_stage

    async def inbound() -> None:
        while True:
            try:
                text = await socket.receive_text()
            except WebSocketDisconnect:
                interactive.stdin.put_nowait(None)
                raise
            try:
                item = json.loads(text)
            except ValueError:
                item = {}
            match item.get("type") if isinstance(item, dict) else None:
                case "init":
                    await close("already_initialized")
                    raise WebSocketDisconnect(CLOSE["already_initialized"][0])
                case "data":
                    if item.get("stream") != "stdin" or not isinstance(item.get("data"), str):
                        await close("stdin_only")
                        raise WebSocketDisconnect(CLOSE["stdin_only"][0])
                    interactive.stdin.put_nowait(item["data"].encode())
                case "signal":
                    number = _signal(item.get("signal"))
                    if number is None:
                        await close("bad_signal")
                        raise WebSocketDisconnect(CLOSE["bad_signal"][0])
                    interactive.signals.put_nowait(number)
                case _:
                    await send({"type": "error", "message": "unknown message type"})

    async def queued_run() -> ExecutionResult:
        with engine.expecting(job):
            return await socket.app.state.scheduler.run(
                lambda: engine.execute(job, interactive), caller, job.memory_bytes
            )

    run = asyncio.create_task(queued_run())
    reader = asyncio.create_task(inbound())
    await asyncio.wait({run, reader}, return_when=asyncio.FIRST_COMPLETED)
    if not run.done():  # the client left, or broke the protocol: end the run
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await run
        return
    reader.cancel()
    try:
        run.result()
    except (ExecutionError, Refused) as err:
        await send({"type": "error", "message": err.message})
        return await close("error")
    await close("done")


def _signal(value: Any) -> int | None:
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        number = getattr(signals, value.upper(), None)
        if not isinstance(number, signals.Signals):
            return None
    else:
        return None
    return int(number) if number in {int(s) for s in signals.Signals} else None
