"""ASGI middleware at the edge of the API: a body size and time limit, and JSON whatever the
header."""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from execbox.api.dialects import Problem, dialect_of


class BodyLimit:
    """Every request body is read here, whole, before the app sees it: at most ``max_bytes``
    (413, refused as soon as it is declared or seen larger) and within ``timeout_s`` of the
    request's start (408): a client that stops half-way holds nothing for long."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send, 413, "body_too_large", self._too_large())
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                body = await self._read(receive)
        except TimeoutError:
            message = f"the request body did not arrive within {self.timeout_s:g} s"
            await self._refuse(scope, send, 408, "body_timeout", message)
            return
        except _TooLarge:
            await self._refuse(scope, send, 413, "body_too_large", self._too_large())
            return
        if body is None:
            return  # the client left while sending: nobody to answer
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                raise _TooLarge()
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> str:
        return f"request body is larger than {self.max_bytes} bytes"

    async def _refuse(self, scope: Scope, send: Send, status: int, code: str, message: str) -> None:
        # In the shape of the dialect whose route the request is for.
        shape = dialect_of(scope).shape
        body = json.dumps(shape(Problem(status, code, message))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


CLIENT_CONTENT_TYPE = "execbox.client_content_type"


class JSONBodies:
    """Treat every request body as JSON: real clients (curl -d, the original service's) often
    send another Content-Type, or none, with a JSON body. The one the client sent stays in the
    scope (``CLIENT_CONTENT_TYPE``) for a dialect that judges a body by it (Piston's 415)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            sent = b"".join(v for k, v in scope["headers"] if k == b"content-type")
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {
                **scope,
                "headers": [*headers, (b"content-type", b"application/json")],
                CLIENT_CONTENT_TYPE: sent.decode("latin-1"),
            }
        await self.app(scope, receive, send)
