"""The HTTP routes of execbox's own API (v1), of the original endpoint, and of health (public)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from execbox.api.auth import caller_of
from execbox.api.dialects import EXECBOX, ORIGINAL
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
    ExecutionRequest,
    ExecutionResult,
    SourceFile,
    Status,
)
from execbox.executor import Executor
from execbox.scheduler import Scheduler

v1 = EXECBOX.router(tags=["execute"])
original = ORIGINAL.router(tags=["original"])
health = EXECBOX.router(public=True, tags=["health"])

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


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def execute(request: Request, execution: ExecutionRequest, api: str) -> ExecutionResult:
    """Run an execution for this request through the executor; a client that disconnects
    leaves the queue, or has its run killed (ClientGone)."""
    executor: Executor = request.app.state.executor
    caller = caller_of(request)
    return await executor.execute(execution, caller, gone=_disconnected(request), api=api)


@v1.post(
    "/api/v1/execute",
    response_model=ExecuteResponse,
    responses=ERRORS,
    summary="Run a program and return its output and statuses",
)
async def execute_v1(body: ExecuteRequest, request: Request) -> Response:
    result = await execute(request, body.to_request(), api="v1")
    return _json(ExecuteResponse.of(result, body.output_encoding))


def _json(answer: BaseModel) -> Response:
    """A model built here needs no validation on its way out: serialised as it is (FastAPI's
    response_model check costs ~0.15 ms per request; the schema still documents it)."""
    return Response(answer.model_dump_json(), media_type="application/json")


@v1.get("/api/v1/languages", response_model=list[LanguageModel])
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


@original.post(
    "/",
    response_model=OriginalResponse,
    responses=ERRORS,
    summary="The original endpoint: {lang, code} in, {output, error} out",
)
async def execute_original(body: OriginalRequest, request: Request) -> Response:
    execution = ExecutionRequest(language=body.lang, files=[SourceFile("", body.code.encode())])
    result = await execute(request, execution, api="original")
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


@health.get("/healthz", summary="Alive and able to run code")
async def healthz(request: Request) -> JSONResponse:
    engine: Engine | None = getattr(request.app.state, "engine", None)
    ready = engine is not None and any(r.available for r in engine.catalog.runtimes.values())
    body = {"status": "ok" if ready else "unavailable", "backend": engine and engine.sandbox.name}
    return JSONResponse(body, status_code=200 if ready else 503)


@health.get("/readyz", summary="Accepting work (not draining, not saturated)")
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


@health.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
