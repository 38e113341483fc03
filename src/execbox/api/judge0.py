"""Judge0 CE's API, as of release 1.13.1: a client of Judge0 changes only its URL.

Submissions are stored and run asynchronously (``wait=true`` waits for the result without
polling); each carries Judge0's fields and limits (judge0_model.py) and is shown as Judge0
shows it (judge0_render.py). The same API is served twice: Judge0 CE at the root, and Judge0
Extra CE under /extra (its own language ids and version; judge0_info.py lists them).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from execbox.api.auth import caller_of
from execbox.api.bodies import BadBody
from execbox.api.dialects import Dialect, Problem
from execbox.api.judge0_info import add_info_routes
from execbox.api.judge0_model import (
    CE,
    EXTRA_CE,
    WAIT_TIMEOUT_S,
    Flavour,
    Judge0Error,
    SubmissionBody,
    to_execution,
    unpack_additional_files,
)
from execbox.api.judge0_render import callback_body, fields_of, render
from execbox.config import Settings
from execbox.engine import Engine, ExecutionError, LanguageUnavailable
from execbox.submissions import NewSubmission, SubmissionRunner
from execbox.submissions.callbacks import ForbiddenDestination, check_destination


def _own_errors(exc: Exception) -> JSONResponse | Problem | None:
    """Judge0's refusals carry their own status and shape; a body it cannot read is a 400."""
    if isinstance(exc, Judge0Error):
        return JSONResponse(exc.body(), status_code=exc.status_code)
    if isinstance(exc, BadBody):
        return Problem(400, "invalid_json", exc.message)
    return None


# Every route needs the token when keys are configured: Judge0 asks for X-Auth-Token "in
# every API request" once AUTHN_TOKEN is set.
JUDGE0 = Dialect("judge0", lambda problem: {"error": problem.message}, _own_errors)

__all__ = ["Judge0Error", "callback_body", "extra_router", "router"]


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


def _runner(request: Request) -> SubmissionRunner:
    return request.app.state.submissions


def _engine(request: Request) -> Engine:
    return request.app.state.engine


async def _body(request: Request) -> Any:
    return await request.json() if await request.body() else {}


def _parse(item: Any) -> SubmissionBody:
    if not isinstance(item, dict):
        raise Judge0Error("a submission must be a JSON object", status_code=400)
    try:
        return SubmissionBody.model_validate(item)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else None
        raise Judge0Error(f"is not valid ({first['msg']})", field=field) from None


def shown_or_400(render_one) -> Any:
    try:
        return render_one()
    except UnicodeDecodeError:
        raise Judge0Error(
            "some attributes for this submission cannot be converted to UTF-8, use "
            "base64_encoded=true query parameter",
            status_code=400,
        ) from None


async def _check_callback(body: SubmissionBody, settings: Settings) -> None:
    if not body.callback_url:
        return
    try:
        await check_destination(
            body.callback_url, settings.callback_allow_private, settings.callback_timeout_s
        )
    except ForbiddenDestination as err:
        raise Judge0Error(str(err), field="callback_url") from None


async def _translate(body: SubmissionBody, encoded: bool, request: Request, flavour: Flavour):
    engine = _engine(request)
    try:
        additional = await unpack_additional_files(body, engine.settings)
        translated = to_execution(body, encoded, engine, additional, flavour)
        await _check_callback(body, engine.settings)
        return translated
    except Judge0Error:
        raise
    except ExecutionError as err:
        status = 503 if isinstance(err, LanguageUnavailable) else 422
        raise Judge0Error(err.message, status_code=status) from None


def build_router(flavour: Flavour) -> APIRouter:
    """One edition's routes, under its prefix."""
    router = JUDGE0.router(tags=[f"judge0 {flavour.title}"], prefix=flavour.prefix)

    @router.post("/submissions", status_code=201)
    async def create_submission(
        request: Request,
        base64_encoded: str | None = Query(None),
        wait: str | None = Query(None),
        fields: str | None = Query(None),
        caller: str = Depends(caller_of),
    ) -> JSONResponse:
        encoded = _flag(base64_encoded)
        body = _parse(await _body(request))
        execution, shown = await _translate(body, encoded, request, flavour)
        runner = _runner(request)
        (submission,) = runner.submit(
            "judge0", caller, [NewSubmission(execution, body.callback_url, shown)]
        )
        if not _flag(wait):
            return JSONResponse({"token": submission.id}, status_code=201)
        finished = await runner.wait(submission.id, WAIT_TIMEOUT_S) or submission
        selected = fields_of(fields)
        answer = shown_or_400(lambda: render(finished, encoded, selected))
        return JSONResponse(answer, status_code=201)

    @router.post("/submissions/batch", status_code=201)
    async def create_batch(
        request: Request,
        base64_encoded: str | None = Query(None),
        caller: str = Depends(caller_of),
    ) -> JSONResponse:
        encoded = _flag(base64_encoded)
        data = await _body(request)
        items = data.get("submissions") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise Judge0Error("submissions: a non-empty list is required", status_code=400)
        limit = _engine(request).settings.judge0_max_batch
        if len(items) > limit:
            raise Judge0Error(
                f"number of submissions in a batch must be at most {limit}", status_code=400
            )
        # Each item is answered in place: its token, or why it was refused (as Judge0 does).
        answers: list[dict] = []
        runner = _runner(request)
        for item in items:
            try:
                body = _parse(item)
                execution, shown = await _translate(body, encoded, request, flavour)
                (submission,) = runner.submit(
                    "judge0", caller, [NewSubmission(execution, body.callback_url, shown)]
                )
                answers.append({"token": submission.id})
            except Judge0Error as err:
                answers.append(err.body())
            except ExecutionError as err:
                answers.append({"error": err.message})
        return JSONResponse(answers, status_code=201)

    @router.get("/submissions/batch")
    async def get_batch(
        request: Request,
        tokens: str = Query(""),
        base64_encoded: str | None = Query(None),
        fields: str | None = Query(None),
    ) -> JSONResponse:
        wanted = [t.strip() for t in tokens.split(",") if t.strip()]
        if not wanted:
            raise Judge0Error("tokens: at least one token is required", status_code=400)
        limit = _engine(request).settings.judge0_max_batch
        if len(wanted) > limit:
            raise Judge0Error(f"number of tokens must be at most {limit}", status_code=400)
        selected = fields_of(fields)
        found = _runner(request).get(wanted)
        encoded = _flag(base64_encoded)
        shown = [
            shown_or_400(lambda s=found[t]: render(s, encoded, selected)) if t in found else None
            for t in wanted
        ]
        return JSONResponse({"submissions": shown})

    @router.get("/submissions/{token}")
    async def get_submission(
        request: Request,
        token: str,
        base64_encoded: str | None = Query(None),
        fields: str | None = Query(None),
    ) -> JSONResponse:
        selected = fields_of(fields)
        submission = _runner(request).get([token]).get(token)
        if submission is None:
            raise Judge0Error(f"submission with token {token} not found", status_code=404)
        encoded = _flag(base64_encoded)
        return JSONResponse(shown_or_400(lambda: render(submission, encoded, selected)))

    add_info_routes(router, flavour)
    return router


router = build_router(CE)
extra_router = build_router(EXTRA_CE)
