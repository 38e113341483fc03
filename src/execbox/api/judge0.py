"""Judge0 CE's API, as of release 1.13.1: a client of Judge0 changes only its URL.

Submissions are stored and run asynchronously (``wait=true`` waits for the result without
polling); each carries Judge0's fields and limits (judge0_model.py) and is shown as Judge0
shows it (judge0_render.py).
"""

from __future__ import annotations

import os
import platform
from typing import Any

from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from execbox.api.auth import caller_of
from execbox.api.bodies import BadBody
from execbox.api.dialects import Dialect, Problem
from execbox.api.judge0_model import (
    DEFAULTS,
    MAXIMA,
    STATUSES,
    VERSION,
    WAIT_TIMEOUT_S,
    Judge0Error,
    SubmissionBody,
    compile_option_languages,
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
router = JUDGE0.router(tags=["judge0"])

__all__ = ["Judge0Error", "callback_body", "router"]


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


# --- routes ---------------------------------------------------------------------------------


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
    execution, shown = await _translate(body, encoded, request)
    runner = _runner(request)
    (submission,) = runner.submit(
        "judge0", caller, [NewSubmission(execution, body.callback_url, shown)]
    )
    if not _flag(wait):
        return JSONResponse({"token": submission.id}, status_code=201)
    finished = await runner.wait(submission.id, WAIT_TIMEOUT_S) or submission
    selected = fields_of(fields)
    return JSONResponse(shown_or_400(lambda: render(finished, encoded, selected)), status_code=201)


async def _check_callback(body: SubmissionBody, settings: Settings) -> None:
    if not body.callback_url:
        return
    try:
        await check_destination(
            body.callback_url, settings.callback_allow_private, settings.callback_timeout_s
        )
    except ForbiddenDestination as err:
        raise Judge0Error(str(err), field="callback_url") from None


async def _translate(body: SubmissionBody, encoded: bool, request: Request):
    engine = _engine(request)
    try:
        additional = await unpack_additional_files(body, engine.settings)
        translated = to_execution(body, encoded, engine, additional)
        await _check_callback(body, engine.settings)
        return translated
    except Judge0Error:
        raise
    except ExecutionError as err:
        status = 503 if isinstance(err, LanguageUnavailable) else 422
        raise Judge0Error(err.message, status_code=status) from None


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
    # Each item is answered in place: its token, or why it was refused (Judge0 does the same).
    answers: list[dict] = []
    runner = _runner(request)
    for item in items:
        try:
            body = _parse(item)
            execution, shown = await _translate(body, encoded, request)
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
    return JSONResponse(shown_or_400(lambda: render(submission, _flag(base64_encoded), selected)))


@router.get("/languages")
async def languages(request: Request) -> list[dict]:
    return [{"id": id, "name": name} for id, name in _language_list(request) if name is not None]


def _language_list(request: Request) -> list[tuple[int, str | None]]:
    return [
        (id, judge0_id.label.format(version=runtime.version) if runtime.available else None)
        for id, (runtime, judge0_id) in _engine(request).catalog.judge0_ids().items()
    ]


@router.get("/languages/all")
async def all_languages(request: Request) -> list[dict]:
    return [
        {"id": id, "name": name, "is_archived": False}
        for id, name in _language_list(request)
        if name
    ]


@router.get("/languages/{language_id}")
async def language(request: Request, language_id: int) -> dict:
    names = dict(_language_list(request))
    if not names.get(language_id):
        raise Judge0Error(f"language with id {language_id} doesn't exist", status_code=404)
    runtime, _ = _engine(request).catalog.judge0_ids()[language_id]
    lang = runtime.language
    return {
        "id": language_id,
        "name": names[language_id],
        "is_archived": False,
        "source_file": lang.judge0.source_file or lang.entry,
        "compile_cmd": " ".join(lang.compile) if lang.compile else None,
        "run_cmd": " ".join(lang.run),
    }


@router.get("/statuses")
async def statuses(request: Request) -> list[dict]:
    return [{"id": id, "description": text} for id, text in STATUSES.items()]


@router.get("/about")
async def about() -> dict:
    from execbox import __version__

    return {
        "version": VERSION,
        "homepage": "https://judge0.com",
        "source_code": "https://github.com/judge0/judge0",
        "maintainer": "execbox (Judge0 CE API compatible)",
        "execbox": __version__,
    }


@router.get("/config_info")
async def config_info(request: Request) -> dict:
    settings = _engine(request).settings
    return {
        "maintenance_mode": False,
        "enable_wait_result": True,
        "enable_compiler_options": True,
        "allowed_languages_for_compile_options": compile_option_languages(_engine(request).catalog),
        "enable_command_line_arguments": True,
        "enable_submission_delete": False,
        "enable_callbacks": True,
        "callbacks_max_tries": settings.callback_max_tries,
        "callbacks_timeout": settings.callback_timeout_s,
        "enable_additional_files": True,
        "max_queue_size": settings.max_pending_submissions,
        "cpu_time_limit": DEFAULTS["cpu_time_limit"],
        "max_cpu_time_limit": MAXIMA["cpu_time_limit"],
        "cpu_extra_time": DEFAULTS["cpu_extra_time"],
        "max_cpu_extra_time": MAXIMA["cpu_extra_time"],
        "wall_time_limit": DEFAULTS["wall_time_limit"],
        "max_wall_time_limit": MAXIMA["wall_time_limit"],
        "memory_limit": settings.run_memory_mb * 1024,
        "max_memory_limit": MAXIMA["memory_limit"],
        "stack_limit": DEFAULTS["stack_limit"],
        "max_stack_limit": MAXIMA["stack_limit"],
        "max_processes_and_or_threads": settings.run_processes,
        "max_max_processes_and_or_threads": MAXIMA["max_processes_and_or_threads"],
        "enable_per_process_and_thread_time_limit": False,
        "allow_enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "allow_enable_per_process_and_thread_memory_limit": False,
        "max_file_size": DEFAULTS["max_file_size"],
        "max_max_file_size": MAXIMA["max_file_size"],
        "number_of_runs": DEFAULTS["number_of_runs"],
        "max_number_of_runs": MAXIMA["number_of_runs"],
        "redirect_stderr_to_stdout": False,
        "max_extract_size": settings.max_request_bytes // 1024,
        "enable_batched_submissions": True,
        "max_submission_batch_size": settings.judge0_max_batch,
        "submission_cache_duration": 1.0,
        "use_docs_as_homepage": False,
        "allow_enable_network": False,
        "enable_network": False,
    }


@router.get("/system_info")
async def system_info() -> dict:
    return {
        "Architecture": platform.machine(),
        "CPU(s)": os.cpu_count(),
        "Kernel": platform.release(),
        "Mem": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024),
    }


@router.post("/authenticate")
async def authenticate(request: Request) -> Response:
    # The router's caller_of answers 401 unless the token (X-Auth-Token) is one of the keys.
    return Response(status_code=200)


@router.post("/authorize")
async def authorize(request: Request) -> Response:
    return Response(status_code=200)
