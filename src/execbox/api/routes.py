"""The HTTP routes: execbox's own API, the original endpoint, health."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from execbox.api.bodies import JSONRoute
from execbox.api.metrics import Metrics
from execbox.api.models import (
    ErrorModel,
    ExecuteRequest,
    ExecuteResponse,
    LanguageModel,
    OriginalRequest,
    OriginalResponse,
)
from execbox.engine import (
    Engine,
    ExecutionError,
    ExecutionRequest,
    ExecutionResult,
    SourceFile,
    Status,
)
from execbox.scheduler import Refused, Scheduler

router = APIRouter(route_class=JSONRoute)
access_log = logging.getLogger("execbox.access")


class Unauthorized(ExecutionError):
    status_code = 401


ERRORS = {
    400: {"model": ErrorModel, "description": "Bad input (unknown language, bad file name...)"},
    401: {"model": ErrorModel, "description": "API keys are configured and none was given"},
    413: {"model": ErrorModel, "description": "Request body too large"},
    422: {"model": ErrorModel, "description": "The body does not match the schema"},
    429: {"model": ErrorModel, "description": "Queue full; retry after Retry-After seconds"},
    503: {"model": ErrorModel, "description": "Busy, shutting down, or language unavailable"},
}


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _scheduler(request: Request) -> Scheduler:
    return request.app.state.scheduler


class ClientGone(Exception):
    """The client disconnected before its result was ready; its execution was abandoned."""


def caller_of(request: Request) -> str:
    """Who is asking: the API key when keys are configured (then one is required), else the
    client's address. Used for fairness and in logs; a key is never logged whole."""
    keys: frozenset[str] = request.app.state.api_keys
    if keys:
        key = request.headers.get("x-api-key") or request.headers.get("x-auth-token") or ""
        if key not in keys:
            raise Unauthorized("a valid X-API-Key header is required")
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]
    return "addr:" + (request.client.host if request.client else "unknown")


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def execute(request: Request, execution: ExecutionRequest) -> ExecutionResult:
    """Validate, queue, run: the life of every execution, whichever API it came through.

    A client that disconnects leaves the queue, or has its run killed."""
    metrics: Metrics = request.app.state.metrics
    caller = caller_of(request)
    engine = _engine(request)
    job = engine.prepare(execution)
    admitted_at: list[float] = []

    def on_admitted(waited_s: float) -> None:
        admitted_at.append(time.monotonic())
        metrics.queue_wait.observe(waited_s)

    async def queued_run() -> ExecutionResult:
        with engine.expecting(job):
            return await _scheduler(request).run(
                lambda: engine.execute(job), caller, job.memory_bytes, on_admitted=on_admitted
            )

    arrived = time.monotonic()
    work = asyncio.create_task(queued_run())
    gone = asyncio.create_task(_disconnected(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    fields = {"caller": caller, "language": job.language.name}
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        stage = "running" if admitted_at else "queued"
        metrics.cancellations.labels(stage).inc()
        access_log.info(json.dumps({"event": "client_gone", "while": stage, **fields}))
        raise ClientGone()
    try:
        result = work.result()
    except Refused as refused:
        metrics.rejections.labels(refused.reason).inc()
        access_log.info(json.dumps({"event": "refused", "reason": refused.reason, **fields}))
        raise
    finished = time.monotonic()
    ran_s = finished - (admitted_at[0] if admitted_at else arrived)
    metrics.executions.labels(result.language, result.status.value).inc()
    metrics.execution_time.labels(result.language).observe(ran_s)
    access_log.info(
        json.dumps(
            {
                "event": "execution",
                **fields,
                "status": result.status.value,
                "queue_ms": round(((admitted_at or [arrived])[0] - arrived) * 1000, 1),
                "run_ms": round(ran_s * 1000, 1),
            }
        )
    )
    return result


@router.post(
    "/api/v1/execute",
    response_model=ExecuteResponse,
    responses=ERRORS,
    tags=["execute"],
    summary="Run a program and return its output and statuses",
)
async def execute_v1(body: ExecuteRequest, request: Request) -> Response:
    result = await execute(request, body.to_request())
    return _json(ExecuteResponse.of(result, body.output_encoding))


def _json(answer: BaseModel) -> Response:
    """A model built here needs no validation on its way out: serialised as it is (FastAPI's
    response_model check costs ~0.15 ms per request; the schema still documents it)."""
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get("/api/v1/languages", response_model=list[LanguageModel], tags=["execute"])
async def languages(request: Request) -> list[LanguageModel]:
    return [
        LanguageModel(
            language=runtime.language.name,
            version=runtime.version,
            aliases=list(runtime.language.aliases),
            compiled=runtime.language.compiled,
            available=runtime.available,
            reason=runtime.unavailable_reason,
        )
        for runtime in _engine(request).catalog.runtimes.values()
    ]


@router.post(
    "/",
    response_model=OriginalResponse,
    responses=ERRORS,
    tags=["original"],
    summary="The original endpoint: {lang, code} in, {output, error} out",
)
async def execute_original(body: OriginalRequest, request: Request) -> Response:
    execution = ExecutionRequest(language=body.lang, files=[SourceFile("", body.code.encode())])
    result = await execute(request, execution)
    if result.compile is not None and result.status is Status.COMPILE_ERROR:
        output = result.compile.combined_output()
    else:
        stage = result.run or result.compile
        output = stage.combined_output() if stage else b""
    return _json(
        OriginalResponse(
            output=output.decode("utf-8", errors="replace").strip(),
            error=result.status is not Status.OK,
            status=result.status.value,
        )
    )


@router.get("/healthz", tags=["health"], summary="Alive and able to run code")
async def healthz(request: Request) -> JSONResponse:
    engine: Engine | None = getattr(request.app.state, "engine", None)
    ready = engine is not None and any(r.available for r in engine.catalog.runtimes.values())
    body = {"status": "ok" if ready else "unavailable", "backend": engine and engine.sandbox.name}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/readyz", tags=["health"], summary="Accepting work (not draining, not saturated)")
async def readyz(request: Request) -> JSONResponse:
    stats = _scheduler(request).stats()
    if stats.draining:
        state = "draining"
    elif stats.queued >= stats.queue_size:
        state = "saturated"
    else:
        state = "ready"
    body = {"status": state, "running": stats.running, "queued": stats.queued}
    return JSONResponse(body, status_code=200 if state == "ready" else 503)


@router.get("/metrics", tags=["health"], summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
