"""Errors outside any route — an unknown path, a wrong method, a failure before routing — are
answered by the dialect whose route the request matches (errors inside a route are answered
by the route's own dialect, dialects.py)."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException

from execbox.api.dialects import dialect_of


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return dialect_of(request.scope).respond(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return dialect_of(request.scope).respond(request, exc)
