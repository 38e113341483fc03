"""Every error a client can cause becomes a JSON 4xx (or a retryable 429/503) that names it."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from execbox.api.bodies import BadBody
from execbox.api.dialects import dialect, error_body
from execbox.api.judge0 import Judge0Error
from execbox.engine import ExecutionError, UnknownLanguage
from execbox.executor import ClientGone
from execbox.scheduler import Refused

log = logging.getLogger("execbox.api")


def _code(exc: Exception) -> str:
    name = type(exc).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def error_response(request: Request, status: int, code: str, message: str, **extra) -> JSONResponse:
    return JSONResponse(error_body(request.url.path, code, message, **extra), status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        text = error.get("msg", "invalid")
        if error.get("type") == "json_invalid":
            text = "the body is not valid JSON"
        elif error.get("type") == "missing":
            text = "this field is required"
        elif error.get("type") == "extra_forbidden":
            text = "unknown field"
        elif error.get("type") == "model_attributes_type":
            text = "expected a JSON object"
        parts.append(f"{location}: {text}" if location else text)
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, 422, "invalid_request", _validation_message(exc))

    @app.exception_handler(BadBody)
    async def _bad_body(request: Request, exc: BadBody) -> JSONResponse:
        # Piston and Judge0 answer a body they cannot read with 400; execbox with 422.
        status = 400 if dialect(request.url.path) in ("piston", "judge0") else 422
        return error_response(request, status, "invalid_json", exc.message)

    @app.exception_handler(UnknownLanguage)
    async def _unknown_language(request: Request, exc: UnknownLanguage) -> JSONResponse:
        return error_response(
            request, 400, "unknown_language", exc.message, language=exc.language,
            supported=exc.supported,
        )  # fmt: skip

    @app.exception_handler(Judge0Error)
    async def _judge0(request: Request, exc: Judge0Error) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(ExecutionError)
    async def _execution(request: Request, exc: ExecutionError) -> JSONResponse:
        return error_response(request, exc.status_code, _code(exc), exc.message)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        response = error_response(request, exc.status_code, exc.reason, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone) -> JSONResponse:
        # Nobody reads this: the client has left. 499 is nginx's code for it, seen in logs.
        return error_response(request, 499, "client_closed_request", "the client disconnected")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = error_response(request, exc.status_code, code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal_error", "an unexpected server error")
