"""A dialect is one API (execbox v1, the original endpoint, Piston v2, Judge0): the routers it
owns carry it, and it alone decides how an error looks there — status code and body shape.

Errors below the API are kinds (exception classes); ``problem_of`` is the common reading of
each kind, which a dialect may override for its own errors and statuses. A dialect's routers
are built with ``dialect.router(...)``: their routes answer every error in its shape, and
depend on ``caller_of`` unless public. Errors that happen outside a route (an unknown path, a
wrong method, a body too large or too slow) are answered in the shape of the dialect whose
route the request matches (``dialect_of``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope

from execbox.api.auth import Unauthorized, caller_of
from execbox.api.bodies import BadBody, JSONRoute
from execbox.engine import ExecutionError, LanguageUnavailable, UnknownLanguage
from execbox.executor import ClientGone
from execbox.scheduler import QueueFull, Refused
from execbox.submissions.runner import TooManySubmissions

log = logging.getLogger("execbox.api")


@dataclass
class Problem:
    """What went wrong, before a dialect shapes it: status, a code, the message."""

    status: int
    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def _code(exc: Exception) -> str:
    name = type(exc).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


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


def problem_of(exc: Exception) -> Problem | None:
    """The common status of each kind of error; None for one that is not the client's doing."""
    match exc:
        case BadBody():
            return Problem(422, "invalid_json", exc.message)
        case HTTPException():
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
            return Problem(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))
        case RequestValidationError():
            return Problem(422, "invalid_request", _validation_message(exc))
        case Unauthorized():
            return Problem(401, "unauthorized", exc.message)
        case UnknownLanguage():
            extra = {"language": exc.language, "supported": exc.supported}
            return Problem(400, "unknown_language", exc.message, extra)
        case LanguageUnavailable():
            return Problem(503, "language_unavailable", exc.message)
        case TooManySubmissions():
            return Problem(429, "too_many_submissions", exc.message)
        case ExecutionError():
            return Problem(400, _code(exc), exc.message)
        case Refused():
            status = 429 if isinstance(exc, QueueFull) else 503
            return Problem(
                status, exc.reason, exc.message, headers={"Retry-After": str(exc.retry_after_s)}
            )
        case ClientGone():
            # Nobody reads this: the client has left. 499 is nginx's code for it, seen in logs.
            return Problem(499, "client_closed_request", "the client disconnected")
    return None


UNEXPECTED = Problem(500, "internal_error", "an unexpected server error")
DIALECTS: list[Dialect] = []


class Dialect:
    def __init__(
        self,
        name: str,
        shape: Callable[[Problem], dict],
        own: Callable[[Exception], Problem | Response | None] = lambda exc: None,
    ) -> None:
        """``shape`` writes a problem's body; ``own`` answers the dialect's own errors, or
        changes a kind's status (returning None leaves the common reading)."""
        self.name = name
        self.shape = shape
        self.own = own
        self.route_class = _route_class(self)
        self.routers: list[APIRouter] = []
        DIALECTS.append(self)

    def respond(self, request: Request, exc: Exception) -> Response:
        answer = self.own(exc)
        if isinstance(answer, Response):
            return answer
        problem = answer or problem_of(exc)
        if problem is None:
            log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
            problem = UNEXPECTED
        return self.error(problem)

    def error(self, problem: Problem) -> JSONResponse:
        response = JSONResponse(self.shape(problem), status_code=problem.status)
        response.headers.update(problem.headers)
        return response

    def router(self, public: bool = False, **kwargs: Any) -> APIRouter:
        """A router of this dialect: its routes answer errors in its shape, and need a key
        (when keys are configured) unless public."""
        dependencies: Sequence[Any] = [] if public else [Depends(caller_of)]
        router = APIRouter(route_class=self.route_class, dependencies=dependencies, **kwargs)
        self.routers.append(router)
        return router


def _route_class(dialect: Dialect) -> type[JSONRoute]:
    class DialectRoute(JSONRoute):
        """A route whose every error is answered by its dialect."""

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            needs_key = any(d.dependency is caller_of for d in self.dependencies)

            async def answered(request: Request) -> Response:
                try:
                    if needs_key:
                        # Before the body is read: without a key, no body is ever parsed.
                        caller_of(request)
                    return await handler(request)
                except Exception as exc:
                    return dialect.respond(request, exc)

            return answered

    DialectRoute.dialect = dialect  # type: ignore[attr-defined]
    return DialectRoute


EXECBOX = Dialect("execbox", lambda p: {"error": p.code, "message": p.message, **p.extra})
ORIGINAL = Dialect(
    "original",
    lambda p: {"output": p.message, "error": True, "code": p.code, "message": p.message, **p.extra},
)


def dialect_of(scope: Scope) -> Dialect:
    """The dialect of the route a request is for: the one routing chose, or, before routing,
    the one the dialects' routes match (their own route table, not a copy of their paths);
    execbox's for a path no route owns."""
    if (route := scope.get("route")) is not None:
        return getattr(route, "dialect", EXECBOX)
    partial = None
    for dialect in DIALECTS:
        for router in dialect.routers:
            for candidate in router.routes:
                match, _ = candidate.matches(scope)
                if match is Match.FULL:
                    return dialect
                if match is Match.PARTIAL and partial is None:
                    partial = dialect
    return partial or EXECBOX
