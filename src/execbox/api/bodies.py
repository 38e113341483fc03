"""The one JSON reader of every dialect (execbox, the original endpoint, Piston, Judge0).

A body is read as strict JSON: UTF-8 text only; no NaN, Infinity or number that overflows
to one; nesting at most ``MAX_DEPTH`` deep; no string (key or value) holding a lone UTF-16
surrogate, which no file name, argument or program text can be written as; at most
``MAX_VALUES`` values. What it refuses is a ``BadBody``, answered as a 4xx in the dialect's
own shape (dialects.py).

Bodies larger than ``OFFLOAD_BYTES`` are parsed in a worker process: parsing builds its objects
under the GIL, so even in a thread a body of millions of tiny values would stall the event loop
for a good part of a second. The worker refuses such a body itself; only a value that passed
(a few values, however long its strings) comes back.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import re
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

MAX_DEPTH = 32
# Far above any real request (a batch of 100 submissions holds a few thousand values).
MAX_VALUES = 100_000
OFFLOAD_BYTES = 64 * 1024
PARSERS = 2
# A surrogate can only reach a parsed string through a \uD800-\uDFFF escape: the text itself
# is strict UTF-8, which cannot encode one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class BadBody(HTTPException):
    """The body is not JSON this service reads; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=422, detail=message)
        self.message = message


def parse_json(raw: bytes | str) -> Any:
    """The body's value, or BadBody naming what is wrong with it."""
    try:
        text = raw if isinstance(raw, str) else raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadBody(f"the body is not UTF-8 text (byte {err.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadBody(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as err:
        raise BadBody(f"the body is not valid JSON: {err}") from None
    _check_depth(value)
    if _SURROGATE_ESCAPE.search(text):
        _check_strings(value)
    return value


def _check_count(value: Any) -> None:
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise BadBody(f"the body holds more than {MAX_VALUES} JSON values")
        if type(item) is dict:
            count += len(item)  # the keys
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)


def _parse_bounded(raw: bytes) -> tuple[bool, Any]:
    """In a worker process: (True, value), or (False, why it is refused)."""
    try:
        value = parse_json(raw)
        _check_count(value)
    except BadBody as err:
        return False, err.message
    return True, value


_parsers: ProcessPoolExecutor | None = None


def _pool() -> ProcessPoolExecutor:
    global _parsers
    if _parsers is None:
        # spawn: a fork of the server would copy its threads, descriptors and sandboxes.
        context = multiprocessing.get_context("spawn")
        _parsers = ProcessPoolExecutor(PARSERS, mp_context=context)
    return _parsers


async def load_json(raw: bytes) -> Any:
    if len(raw) <= OFFLOAD_BYTES:
        value = parse_json(raw)
        _check_count(value)
        return value
    global _parsers
    try:
        passed, value = await asyncio.get_running_loop().run_in_executor(
            _pool(), _parse_bounded, raw
        )
    except BrokenProcessPool:
        _parsers = None  # a parser died (killed for its memory): the next body gets a new one
        raise BadBody("the body could not be read") from None
    if not passed:
        raise BadBody(value)
    return value


def _no_constant(name: str) -> Any:
    raise BadBody(f"the body holds {name}, which is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadBody(f"the number {text[:40]} is out of range")
    return value


def _check_depth(value: Any) -> None:
    """At most MAX_DEPTH levels, level by level; a container holding no container is judged
    by one pass in C (``set(map(type, ...))``), not by a Python loop over its items."""
    level = [value] if type(value) in (dict, list) else []
    for _ in range(MAX_DEPTH):
        nested: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            kinds = set(map(type, children))
            if dict in kinds or list in kinds:
                nested.extend(c for c in children if type(c) in (dict, list))
        if not nested:
            return
        level = nested
    raise BadBody(f"the body is nested deeper than {MAX_DEPTH} levels")


def _check_strings(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is str:
            _check_text(item)
        elif type(item) is dict:
            for key, child in item.items():
                _check_text(key)
                stack.append(child)
        elif type(item) is list:
            stack.extend(item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise BadBody(
            f"the body holds a lone UTF-16 surrogate (\\u{ord(text[err.start]):04x}), "
            "which is not text"
        ) from None


class JSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = await load_json(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """A route whose body (FastAPI's own parsing included) goes through ``parse_json``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(JSONRequest(request.scope, request.receive))

        return handle
