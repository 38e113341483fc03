"""The HTTP routes: execbox's own API, the original endpoint, health."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from execbox.api.models import (
    ErrorModel,
    ExecuteRequest,
    ExecuteResponse,
    LanguageModel,
    OriginalRequest,
    OriginalResponse,
)
from execbox.engine import Engine, ExecutionRequest, ExecutionResult, SourceFile, Status
from execbox.scheduler import Scheduler

router = APIRouter()

ERRORS = {
    400: {"model": ErrorModel, "description": "Bad input (unknown language, bad file name...)"},
    413: {"model": ErrorModel, "description": "Request body too large"},
    422: {"model": ErrorModel, "description": "The body does not match the schema"},
    429: {"model": ErrorModel, "description": "Queue full; retry after Retry-After seconds"},
    503: {"model": ErrorModel, "description": "Busy, shutting down, or language unavailable"},
}


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _scheduler(request: Request) -> Scheduler:
    return request.app.state.scheduler


async def execute(request: Request, execution: ExecutionRequest) -> ExecutionResult:
    """Validate, queue, run: the life of every execution, whichever API it came through."""
    engine = _engine(request)
    job = engine.prepare(execution)
    return await _scheduler(request).run(lambda: engine.execute(job))


@router.post(
    "/api/v1/execute",
    response_model=ExecuteResponse,
    responses=ERRORS,
    tags=["execute"],
    summary="Run a program and return its output and statuses",
)
async def execute_v1(body: ExecuteRequest, request: Request) -> ExecuteResponse:
    result = await execute(request, body.to_request())
    return ExecuteResponse.of(result, body.output_encoding)


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
async def execute_original(request: Request) -> OriginalResponse:
    # Parsed by hand so that a JSON body is accepted whatever Content-Type the client sent.
    try:
        body = OriginalRequest.model_validate_json(await request.body())
    except ValidationError as err:
        raise RequestValidationError(err.errors()) from None
    execution = ExecutionRequest(language=body.lang, files=[SourceFile("", body.code.encode())])
    result = await execute(request, execution)
    if result.compile is not None and result.status is Status.COMPILE_ERROR:
        output = result.compile.stdout + result.compile.stderr
    else:
        stage = result.run or result.compile
        output = (stage.stdout + stage.stderr) if stage else b""
    return OriginalResponse(
        output=output.decode("utf-8", errors="replace").strip(),
        error=result.status is not Status.OK,
        status=result.status.value,
    )


@router.get("/healthz", tags=["health"], summary="Alive and able to run code")
async def healthz(request: Request) -> JSONResponse:
    engine: Engine | None = getattr(request.app.state, "engine", None)
    ready = engine is not None and any(r.available for r in engine.catalog.runtimes.values())
    body = {"status": "ok" if ready else "unavailable", "backend": engine and engine.sandbox.name}
    return JSONResponse(body, status_code=200 if ready else 503)
