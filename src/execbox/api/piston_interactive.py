"""Piston's interactive WebSocket, ``/api/v2/connect``: init, then stdin data and signals in;
runtime, stage, stdout/stderr data, exit and error events out, with Piston's close codes.

Every buffer a client fills is bounded: one message is at most ``MAX_MESSAGE_BYTES`` (the
server refuses a larger one with close code 1009, see server.py); stdin waits in a queue of
``STDIN_QUEUE_PIECES`` messages, and while it is full (the program does not read, or has not
started yet) no more messages are read from the socket: the client is slowed down by TCP, not
buffered for. A run takes at most ``MAX_REQUEST_BYTES`` of stdin in all, as over HTTP; past
that the socket is closed with 4002 and an error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal as signals
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from execbox.api.auth import Unauthorized, caller_of
from execbox.api.bodies import BadBody, load_json
from execbox.api.piston import PistonError, as_text, engine_of, stage, to_execution
from execbox.engine import ExecutionError, StageReport, Status
from execbox.executor import ClientGone, Executor
from execbox.sandbox import Interactive
from execbox.scheduler import Refused

# Not a router of the Piston dialect's: a WebSocket reports errors as events once it is open,
# so the key is checked after init (an error event and close code 4002), not before.
router = APIRouter(tags=["piston"])

MAX_MESSAGE_BYTES = 1024 * 1024
# Messages uvicorn may hold that the handler has not read yet.
MAX_QUEUED_MESSAGES = 4
STDIN_QUEUE_PIECES = 4
INIT_TIMEOUT_S = 1.0
SIGNALS_PENDING = 8
CLOSE = {
    "already_initialized": (4000, "Already Initialized"),
    "init_timeout": (4001, "Initialization Timeout"),
    "error": (4002, "Notified Error"),
    "not_initialized": (4003, "Not yet Initialized"),
    "stdin_only": (4004, "Can only write to stdin"),
    "bad_signal": (4005, "Invalid signal"),
    "done": (4999, "Job Completed"),
}


@router.websocket("/api/v2/connect")
async def connect(socket: WebSocket) -> None:
    await socket.accept()
    engine = engine_of(socket)

    async def close(reason: str) -> None:
        code, text = CLOSE[reason]
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await socket.close(code, text)

    async def send(event: dict) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await socket.send_text(json.dumps(event))

    try:
        message = await asyncio.wait_for(_receive(socket), INIT_TIMEOUT_S)
    except TimeoutError:
        return await close("init_timeout")
    except WebSocketDisconnect:
        return
    try:
        event = await _parsed(message)
    except BadBody as err:
        await send({"type": "error", "message": err.message})
        return await close("error")
    if not isinstance(event, dict) or event.get("type") != "init":
        return await close("not_initialized")
    try:
        api_key = event.get("api_key")
        caller = caller_of(socket, api_key if isinstance(api_key, str) else None)
        job = engine.prepare(to_execution(event))
    except (Unauthorized, PistonError, ExecutionError) as err:
        await send({"type": "error", "message": err.message})
        return await close("error")
    await send({"type": "runtime", "language": job.language.name, "version": job.runtime.version})

    interactive = Interactive(
        stdin=asyncio.Queue(maxsize=STDIN_QUEUE_PIECES),
        signals=asyncio.Queue(maxsize=SIGNALS_PENDING),
    )

    async def on_output(stream: str, data: bytes) -> None:
        await send({"type": "data", "stream": stream, "data": as_text(data)})

    # Piston shows Go and Java as one run stage (``go run``, ``java File.java``): their
    # compile is announced as the run, and its end is shown only when it failed.
    one_stage = not job.language.piston.compile_stage
    announced: set[str] = set()

    async def on_stage(name: str, report: StageReport | None) -> None:
        if one_stage and name == "compile":
            if report is not None and report.status is Status.OK:
                return
            name = "run"
        if report is None:
            if name in announced:
                return  # a compile announced as the run, then the run itself
            announced.add(name)
            await send({"type": "stage", "stage": name})
        else:
            body = stage(report)
            await send(
                {"type": "exit", "stage": name, "code": body["code"], "signal": body["signal"]}
            )

    interactive.output = on_output
    interactive.stage = on_stage

    stdin_budget = engine.settings.max_request_bytes

    async def inbound() -> None:
        nonlocal stdin_budget
        while True:
            text = await _receive(socket)
            try:
                item = await _parsed(text)
            except BadBody as err:
                await send({"type": "error", "message": err.message})
                await close("error")
                raise WebSocketDisconnect(CLOSE["error"][0]) from None
            match item.get("type") if isinstance(item, dict) else None:
                case "init":
                    await close("already_initialized")
                    raise WebSocketDisconnect(CLOSE["already_initialized"][0])
                case "data":
                    if item.get("stream") != "stdin" or not isinstance(item.get("data"), str):
                        await close("stdin_only")
                        raise WebSocketDisconnect(CLOSE["stdin_only"][0])
                    piece = item["data"].encode()
                    stdin_budget -= len(piece)
                    if stdin_budget < 0:
                        limit = engine.settings.max_request_bytes
                        await send({"type": "error", "message": f"stdin is over {limit} bytes"})
                        await close("error")
                        raise WebSocketDisconnect(CLOSE["error"][0])
                    # Waits while the queue is full: backpressure, not an unbounded buffer.
                    await interactive.stdin.put(piece)
                case "signal":
                    number = _signal(item.get("signal"))
                    if number is None:
                        await close("bad_signal")
                        raise WebSocketDisconnect(CLOSE["bad_signal"][0])
                    # A few pending are enough (the first kill ends the run); more are dropped.
                    with contextlib.suppress(asyncio.QueueFull):
                        interactive.signals.put_nowait(number)
                case _:
                    await send({"type": "error", "message": "unknown message type"})

    reader = asyncio.create_task(inbound())
    # Its end (the client left, or broke the protocol and was closed) is expected: retrieved.
    reader.add_done_callback(lambda task: task.cancelled() or task.exception())
    executor: Executor = socket.app.state.executor
    try:
        # The reader ending first (the client left, or broke the protocol) ends the run.
        await executor.execute(job, caller, interactive, gone=reader, api="piston")
    except ClientGone:
        return
    except (ExecutionError, Refused) as err:
        await send({"type": "error", "message": err.message})
        return await close("error")
    await close("done")


async def _receive(socket: WebSocket) -> str | bytes:
    """The next message, text or binary (parse_json reads both as UTF-8 JSON)."""
    message = await socket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


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


async def _parsed(message: str | bytes) -> Any:
    """A message read as a body is (bodies.load_json): bounded in values, and a large one
    parsed off the event loop."""
    raw = message.encode("utf-8", "surrogatepass") if isinstance(message, str) else message
    return await load_json(raw)
