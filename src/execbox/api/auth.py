"""Who is asking, and whether they may: every dialect's routers depend on ``caller_of``.

Public (no key needed even when keys are configured): health, readiness, metrics and the
documentation. Everything else — executions, submissions, language lists, Judge0's
informational routes — needs a key when keys are configured, as Judge0 asks for its token on
every request."""

from __future__ import annotations

import hashlib

from starlette.requests import HTTPConnection


class Unauthorized(Exception):
    """API keys are configured and the request has none, or a wrong one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def caller_of(connection: HTTPConnection, given_key: str | None = None) -> str:
    """Who is asking: the API key when keys are configured (then one is required), else the
    client's address. Used for fairness and in logs; a key is never logged whole.

    ``given_key``: a key sent in the body where headers cannot carry it (a browser's
    WebSocket sends its key in the init message)."""
    keys: frozenset[str] = connection.app.state.api_keys
    if keys:
        key = (
            connection.headers.get("x-api-key")
            or connection.headers.get("x-auth-token")
            or given_key
            or ""
        )
        if key not in keys:
            raise Unauthorized("a valid X-API-Key header is required")
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]
    return "addr:" + (connection.client.host if connection.client else "unknown")
