"""Judge0 CE's API, as of release 1.13.1: a client of Judge0 changes only its URL.

Submissions are stored and run asynchronously (``wait=true`` waits for the result without
polling); each carries Judge0's fields, limits in Judge0's units, and is shown with Judge0's
14 statuses, its field selection (``fields``) and its base64 rules.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import platform
import shlex
import signal as signals
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from execbox.api.archives import BadArchive, run_bounded, unzip
from execbox.api.bodies import JSONRoute
from execbox.api.routes import caller_of
from execbox.config import Settings
from execbox.engine import (
    Engine,
    ExecutionError,
    ExecutionRequest,
    ExecutionResult,
    LimitRequest,
    SourceFile,
    StageReport,
    Status,
)
from execbox.engine.compare import output_matches
from execbox.submissions import NewSubmission, Submission, SubmissionRunner, SubmissionState, codec
from execbox.submissions.callbacks import ForbiddenDestination, check_destination

router = APIRouter(tags=["judge0"], route_class=JSONRoute)

VERSION = "1.13.1"
# Judge0 CE's ids for the languages execbox has; 52 and 54 are both C++ (two GCC versions
# there, the one installed here).
LANGUAGE_IDS = {
    46: ("bash", "Bash"),
    50: ("c", "C (GCC {version})"),
    52: ("c++", "C++ (GCC {version})"),
    54: ("c++", "C++ (GCC {version})"),
    60: ("go", "Go ({version})"),
    62: ("java", "Java (OpenJDK {version})"),
    63: ("javascript", "JavaScript (Node.js {version})"),
    71: ("python", "Python ({version})"),
    73: ("rust", "Rust ({version})"),
}
SOURCE_FILES = {
    "bash": "script.sh",
    "c": "main.c",
    "c++": "main.cpp",
    "go": "main.go",
    "java": "Main.java",
    "javascript": "script.js",
    "python": "script.py",
    "rust": "main.rs",
}
STATUSES = {
    1: "In Queue",
    2: "Processing",
    3: "Accepted",
    4: "Wrong Answer",
    5: "Time Limit Exceeded",
    6: "Compilation Error",
    7: "Runtime Error (SIGSEGV)",
    8: "Runtime Error (SIGXFSZ)",
    9: "Runtime Error (SIGFPE)",
    10: "Runtime Error (SIGABRT)",
    11: "Runtime Error (NZEC)",
    12: "Runtime Error (Other)",
    13: "Internal Error",
    14: "Exec Format Error",
}
SIGNAL_STATUS = {"SIGSEGV": 7, "SIGXFSZ": 8, "SIGFPE": 9, "SIGABRT": 10}

# Judge0's defaults and maxima (seconds, KB), as its configuration documents them.
DEFAULTS = {
    "cpu_time_limit": 5.0,
    "cpu_extra_time": 1.0,
    "wall_time_limit": 10.0,
    "memory_limit": 128000,
    "stack_limit": 64000,
    "max_processes_and_or_threads": 60,
    "max_file_size": 1024,
    "number_of_runs": 1,
}
MAXIMA = {
    "cpu_time_limit": 15.0,
    "cpu_extra_time": 5.0,
    "wall_time_limit": 20.0,
    "memory_limit": 512000,
    "stack_limit": 128000,
    "max_processes_and_or_threads": 120,
    "max_file_size": 4096,
    "number_of_runs": 20,
}
DEFAULT_FIELDS = (
    "token",
    "time",
    "memory",
    "stdout",
    "stderr",
    "compile_output",
    "message",
    "status",
)
ALL_FIELDS = (
    "source_code", "language_id", "stdin", "expected_output", "stdout", "status_id",
    "created_at", "finished_at", "time", "memory", "stderr", "token", "number_of_runs",
    "cpu_time_limit", "cpu_extra_time", "wall_time_limit", "memory_limit", "stack_limit",
    "max_processes_and_or_threads", "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit", "max_file_size", "compile_output",
    "exit_code", "exit_signal", "message", "wall_time", "compiler_options",
    "command_line_arguments", "redirect_stderr_to_stdout", "callback_url", "additional_files",
    "enable_network", "status", "language",
)  # fmt: skip
WAIT_TIMEOUT_S = 300.0


class Judge0Error(ExecutionError):
    """A refusal in Judge0's shape: ``{field: [messages]}`` (422) or ``{"error": ...}``."""

    def __init__(self, message: str, status_code: int = 422, field: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.field = field

    def body(self) -> dict:
        return {self.field: [self.message]} if self.field else {"error": self.message}


class SubmissionBody(BaseModel):
    # Judge0 ignores fields it does not know.
    model_config = ConfigDict(extra="ignore")

    source_code: str | None = None
    language_id: int | None = None
    compiler_options: str | None = None
    command_line_arguments: str | None = None
    stdin: str | None = None
    expected_output: str | None = None
    cpu_time_limit: float | None = None
    cpu_extra_time: float | None = None
    wall_time_limit: float | None = None
    memory_limit: float | None = None
    stack_limit: int | None = None
    max_processes_and_or_threads: int | None = None
    enable_per_process_and_thread_time_limit: bool | None = None
    enable_per_process_and_thread_memory_limit: bool | None = None
    max_file_size: int | None = None
    redirect_stderr_to_stdout: bool | None = None
    enable_network: bool | None = None
    number_of_runs: int | None = None
    additional_files: str | None = None
    callback_url: str | None = None


# --- turning a Judge0 submission into an execution -----------------------------------------


def _decode(value: str | None, base64_encoded: bool, field: str) -> bytes | None:
    if value is None:
        return None
    if not base64_encoded:
        return value.encode("utf-8", errors="surrogatepass")
    try:
        # Accept base64 wrapped at any width, as Ruby's Base64.encode64 writes it.
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Judge0Error("is not valid base64", field=field) from None


def _setting(body: SubmissionBody, name: str) -> float:
    value = getattr(body, name)
    if value is None:
        return DEFAULTS[name]
    if not 0 <= value <= MAXIMA[name] or (name == "number_of_runs" and value < 1):
        low = 1 if name == "number_of_runs" else 0
        raise Judge0Error(f"must be between {low} and {MAXIMA[name]}", field=name)
    return value


async def _additional_files(body: SubmissionBody, settings: Settings) -> list[SourceFile]:
    """Judge0's additional_files: a zip whose files go beside the source, unpacked off the
    event loop under bounds on count, size and ratio (archives.py)."""
    if not body.additional_files:
        return []
    zipped = _decode(body.additional_files, True, "additional_files") or b""
    try:
        return await run_bounded(
            lambda: unzip(zipped, settings.max_files - 1, settings.max_request_bytes)
        )
    except BadArchive as err:
        raise Judge0Error(str(err), field="additional_files") from None


def to_execution(
    body: SubmissionBody,
    base64_encoded: bool,
    engine: Engine,
    additional_files: list[SourceFile] | None = None,
) -> tuple[ExecutionRequest, dict]:
    """The execution a submission asks for, and the Judge0 fields to show with it
    (``additional_files``: its zip, already unpacked)."""
    if body.source_code is None:
        raise Judge0Error("can't be blank", field="source_code")
    if body.language_id is None:
        raise Judge0Error("can't be blank", field="language_id")
    if body.language_id not in LANGUAGE_IDS:
        raise Judge0Error(f"language with id {body.language_id} doesn't exist", field="language_id")
    if body.enable_network:
        raise Judge0Error("execbox runs nothing with network access", field="enable_network")
    for flag in (
        "enable_per_process_and_thread_time_limit",
        "enable_per_process_and_thread_memory_limit",
    ):
        if getattr(body, flag):
            raise Judge0Error("is not allowed: limits apply to all processes together", field=flag)
    language = LANGUAGE_IDS[body.language_id][0]
    settings = engine.settings
    source = _decode(body.source_code, base64_encoded, "source_code") or b""
    stdin = _decode(body.stdin, base64_encoded, "stdin") or b""
    expected = _decode(body.expected_output, base64_encoded, "expected_output")
    cpu = _setting(body, "cpu_time_limit")
    extra = _setting(body, "cpu_extra_time")
    wall = _setting(body, "wall_time_limit")
    memory_kb = body.memory_limit
    if memory_kb is not None:
        memory_kb = _setting(body, "memory_limit")
    if body.stack_limit is not None:
        _setting(body, "stack_limit")
    processes = body.max_processes_and_or_threads
    if processes is not None:
        processes = int(_setting(body, "max_processes_and_or_threads"))
    file_kb = int(_setting(body, "max_file_size"))
    runs = int(_setting(body, "number_of_runs"))
    # A NUL would end an argument where the kernel reads it: one word would become several.
    for name in ("command_line_arguments", "compiler_options"):
        if "\x00" in (getattr(body, name) or ""):
            raise Judge0Error("cannot contain NUL bytes", field=name)
    try:
        args = shlex.split(body.command_line_arguments or "")
        options = shlex.split(body.compiler_options or "")
    except ValueError as err:
        raise Judge0Error(
            f"cannot be split into words: {err}", field="command_line_arguments"
        ) from None
    if options:
        runtime = engine.catalog.runtimes.get(language)
        if runtime is None or not runtime.language.compile_options:
            allowed = sorted(
                LANGUAGE_IDS[i][1].split(" (")[0]
                for i, (n, _) in LANGUAGE_IDS.items()
                if (r := engine.catalog.runtimes.get(n)) and r.language.compile_options
            )
            raise Judge0Error(
                f"setting compiler options is only allowed for {', '.join(sorted(set(allowed)))}",
                field="compiler_options",
            )
    files = [SourceFile(SOURCE_FILES[language] if language != "java" else "", source)]
    files += additional_files or []
    limits = LimitRequest(
        cpu_time_ms=int((cpu + extra) * 1000) or 1,
        wall_time_ms=int(wall * 1000) or 1,
        memory_mb=max(8, math.ceil(memory_kb / 1024)) if memory_kb is not None else None,
        processes=processes,
        file_size_mb=max(1, math.ceil(file_kb / 1024)),
        output_bytes=file_kb * 1024,
    )
    execution = ExecutionRequest(
        language=language,
        files=files,
        args=args,
        limits=limits,
        cases=[stdin] * runs if runs > 1 else None,
        stdin=stdin,
        merge_stderr=bool(body.redirect_stderr_to_stdout),
        compile_options=options,
    )
    shown = {
        "source_code": base64.b64encode(source).decode(),
        "language_id": body.language_id,
        "stdin": base64.b64encode(stdin).decode(),
        "expected_output": base64.b64encode(expected).decode() if expected is not None else None,
        "number_of_runs": runs,
        "cpu_time_limit": cpu,
        "cpu_extra_time": extra,
        "wall_time_limit": wall,
        "memory_limit": memory_kb if memory_kb is not None else settings.run_memory_mb * 1024,
        "stack_limit": body.stack_limit
        if body.stack_limit is not None
        else DEFAULTS["stack_limit"],
        "max_processes_and_or_threads": processes
        if processes is not None
        else settings.run_processes,
        "enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "max_file_size": file_kb,
        "compiler_options": body.compiler_options,
        "command_line_arguments": body.command_line_arguments,
        "redirect_stderr_to_stdout": bool(body.redirect_stderr_to_stdout),
        "callback_url": body.callback_url,
        "additional_files": body.additional_files,
        "enable_network": False,
        "base64_encoded": base64_encoded,
    }
    return execution, shown


# --- showing a submission as Judge0 does -------------------------------------------------


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.3f}"


def _timestamp(unix: float | None) -> str | None:
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _run_status(report: StageReport, shown: dict) -> tuple[int, str | None]:
    if report.status is Status.OK:
        # The CPU limit includes cpu_extra_time; past cpu_time_limit it is still a TLE.
        if report.cpu_time_ms > shown["cpu_time_limit"] * 1000:
            return 5, "Time limit exceeded"
        expected = shown.get("expected_output")
        if expected is not None and not output_matches(report.stdout, base64.b64decode(expected)):
            return 4, None
        return 3, None
    match report.status:
        case Status.TIME_LIMIT:
            return 5, "Time limit exceeded"
        case Status.OUTPUT_LIMIT:
            return 8, "Output limit exceeded (max_file_size)"
        case Status.MEMORY_LIMIT:
            return 12, "Memory limit exceeded"
        case Status.INTERNAL_ERROR:
            return 13, report.message
    if report.signal is not None:
        number = getattr(signals, report.signal, None)
        return SIGNAL_STATUS.get(report.signal, 12), f"Exited with signal {int(number or 0)}"
    return 11, f"Exited with error status {report.exit_code}"


def outcome(submission: Submission) -> dict[str, Any]:
    """The result fields (raw bytes for the text ones) of a submission, as Judge0 shows them."""
    shown = submission.extra
    fields: dict[str, Any] = {
        "stdout": None, "stderr": None, "compile_output": None, "message": None,
        "exit_code": None, "exit_signal": None, "time": None, "wall_time": None, "memory": None,
    }  # fmt: skip
    if submission.state is not SubmissionState.DONE or submission.result is None:
        status = 1 if submission.state is SubmissionState.QUEUED else 2
        return {**fields, "status": status}
    if "error" in submission.result:
        return {**fields, "status": 13, "message": submission.result["error"]}
    result: ExecutionResult = codec.result_from_json(submission.result)
    if result.compile is not None and result.compile.status is not Status.OK:
        compile_ = result.compile
        status = 6 if compile_.status is Status.COMPILE_ERROR else 13
        message = None if status == 6 else compile_.message
        if compile_.status in (Status.TIME_LIMIT, Status.MEMORY_LIMIT):
            status, message = 6, compile_.message
        return {
            **fields,
            "status": status,
            "compile_output": compile_.combined_output(),
            "message": message,
        }
    runs = result.cases or ([result.run] if result.run else [])
    last = runs[-1]
    status, message = _run_status(last, shown)
    return {
        **fields,
        "status": status,
        "message": message,
        "stdout": last.stdout,
        "stderr": last.stderr if not shown["redirect_stderr_to_stdout"] else b"",
        "compile_output": result.compile.combined_output() if result.compile else None,
        "exit_code": last.exit_code if last.exit_code is not None else (None if last.signal else 0),
        "exit_signal": int(getattr(signals, last.signal, 0)) or None if last.signal else None,
        "time": _seconds(sum(r.cpu_time_ms for r in runs) / len(runs)),
        "wall_time": _seconds(sum(r.wall_time_ms for r in runs) / len(runs)),
        "memory": max(r.memory_bytes for r in runs) // 1024,
    }


def _text(value: bytes | None, base64_encoded: bool) -> str | None:
    if value is None:
        return None
    if base64_encoded:
        return base64.b64encode(value).decode()
    return value.decode("utf-8")  # UnicodeDecodeError: the caller answers 400


def render(submission: Submission, base64_encoded: bool, fields: tuple[str, ...]) -> dict:
    """A submission's selected fields, as Judge0 writes them."""
    shown = submission.extra
    result = outcome(submission)
    status = result.pop("status")
    values: dict[str, Any] = {
        **{k: v for k, v in shown.items() if k != "base64_encoded"},
        **result,
        "token": submission.id,
        "status": {"id": status, "description": STATUSES[status]},
        "status_id": status,
        "language": {
            "id": shown["language_id"],
            "name": _language_name(shown["language_id"], submission),
        },
        "created_at": _timestamp(submission.created_at),
        "finished_at": _timestamp(submission.finished_at),
    }
    for name in ("cpu_time_limit", "cpu_extra_time", "wall_time_limit"):
        values[name] = f"{float(values[name]):.1f}"
    for name in {"source_code", "stdin", "expected_output"} & set(fields):
        stored = shown.get(name)
        values[name] = (
            _text(base64.b64decode(stored), base64_encoded) if stored is not None else None
        )
    for name in {"stdout", "stderr", "compile_output"} & set(fields):
        values[name] = _text(values[name], base64_encoded) if values[name] is not None else None
    return {name: values.get(name) for name in fields}


def _language_name(language_id: int, submission: Submission) -> str:
    _, label = LANGUAGE_IDS[language_id]
    version = (submission.result or {}).get("version", "")
    return label.format(version=version) if version else label.split(" (")[0]


def _fields(fields: str | None, default: tuple[str, ...] = DEFAULT_FIELDS) -> tuple[str, ...]:
    if not fields:
        return default
    if fields.strip() == "*":
        return ALL_FIELDS
    wanted = tuple(f.strip() for f in fields.split(",") if f.strip())
    unknown = [f for f in wanted if f not in ALL_FIELDS]
    if unknown:
        raise Judge0Error(f"invalid fields: [{', '.join(unknown)}]", status_code=400)
    return wanted


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


def _shown_or_400(render_one) -> Any:
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
) -> JSONResponse:
    caller = caller_of(request)
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
    selected = _fields(fields)
    return JSONResponse(_shown_or_400(lambda: render(finished, encoded, selected)), status_code=201)


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
        additional = await _additional_files(body, engine.settings)
        translated = to_execution(body, encoded, engine, additional)
        await _check_callback(body, engine.settings)
        return translated
    except Judge0Error:
        raise
    except ExecutionError as err:
        raise Judge0Error(
            err.message, status_code=err.status_code if err.status_code != 400 else 422
        ) from None


@router.post("/submissions/batch", status_code=201)
async def create_batch(request: Request, base64_encoded: str | None = Query(None)) -> JSONResponse:
    caller = caller_of(request)
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
    caller_of(request)
    wanted = [t.strip() for t in tokens.split(",") if t.strip()]
    if not wanted:
        raise Judge0Error("tokens: at least one token is required", status_code=400)
    limit = _engine(request).settings.judge0_max_batch
    if len(wanted) > limit:
        raise Judge0Error(f"number of tokens must be at most {limit}", status_code=400)
    selected = _fields(fields)
    found = _runner(request).get(wanted)
    encoded = _flag(base64_encoded)
    shown = [
        _shown_or_400(lambda s=found[t]: render(s, encoded, selected)) if t in found else None
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
    caller_of(request)
    selected = _fields(fields)
    submission = _runner(request).get([token]).get(token)
    if submission is None:
        raise Judge0Error(f"submission with token {token} not found", status_code=404)
    return JSONResponse(_shown_or_400(lambda: render(submission, _flag(base64_encoded), selected)))


@router.get("/languages")
async def languages(request: Request) -> list[dict]:
    caller_of(request)
    return [{"id": id, "name": name} for id, name in _language_list(request) if name is not None]


def _language_list(request: Request) -> list[tuple[int, str | None]]:
    catalog = _engine(request).catalog
    listed = []
    for id, (language, label) in LANGUAGE_IDS.items():
        runtime = catalog.runtimes.get(language)
        available = runtime is not None and runtime.available
        listed.append(
            (id, label.format(version=runtime.version) if available and runtime else None)
        )
    return listed


@router.get("/languages/all")
async def all_languages(request: Request) -> list[dict]:
    caller_of(request)
    return [
        {"id": id, "name": name, "is_archived": False}
        for id, name in _language_list(request)
        if name
    ]


@router.get("/languages/{language_id}")
async def language(request: Request, language_id: int) -> dict:
    caller_of(request)
    names = dict(_language_list(request))
    if not names.get(language_id):
        raise Judge0Error(f"language with id {language_id} doesn't exist", status_code=404)
    name = LANGUAGE_IDS[language_id][0]
    runtime = _engine(request).catalog.runtimes[name]
    lang = runtime.language
    return {
        "id": language_id,
        "name": names[language_id],
        "is_archived": False,
        "source_file": SOURCE_FILES[name],
        "compile_cmd": " ".join(lang.compile) if lang.compile else None,
        "run_cmd": " ".join(lang.run),
    }


@router.get("/statuses")
async def statuses(request: Request) -> list[dict]:
    caller_of(request)
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
        "allowed_languages_for_compile_options": ["C", "C++", "Java", "Rust"],
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
    caller_of(request)  # 401 unless the token (X-Auth-Token) is one of the API keys
    return Response(status_code=200)


@router.post("/authorize")
async def authorize(request: Request) -> Response:
    caller_of(request)
    return Response(status_code=200)


def callback_body(submission: Submission) -> dict:
    """What a callback carries: the submission's default fields, encoded as it was created."""
    encoded = bool(submission.extra.get("base64_encoded"))
    try:
        return render(submission, encoded, DEFAULT_FIELDS)
    except UnicodeDecodeError:
        return render(submission, True, DEFAULT_FIELDS)
