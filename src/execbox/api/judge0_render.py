"""Showing a submission as Judge0 does: its 14 statuses, its field selection (``fields``)
and its base64 rules."""

from __future__ import annotations

import base64
import signal as signals
from datetime import UTC, datetime
from typing import Any

from execbox.api.judge0_model import (
    ALL_FIELDS,
    DEFAULT_FIELDS,
    EXEC_FORMAT_ERROR,
    EXECUTABLE_ID,
    SIGNAL_STATUS,
    STATUSES,
    Judge0Error,
)
from execbox.engine import (
    ExecutionResult,
    StageReport,
    Status,
)
from execbox.engine.compare import output_matches
from execbox.submissions import Submission, SubmissionState, codec

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
    if _exec_format_error(report, shown):
        return EXEC_FORMAT_ERROR, "execve(./a.out): Exec format error"
    if report.signal is not None:
        number = getattr(signals, report.signal, None)
        return SIGNAL_STATUS.get(report.signal, 12), f"Exited with signal {int(number or 0)}"
    return 11, f"Exited with error status {report.exit_code}"


def _exec_format_error(report: StageReport, shown: dict) -> bool:
    """Judge0's Executable that is no program: its run script's exit 126 with execve's words
    (languages.toml), from the script's check or from the kernel."""
    return (
        shown.get("language_id") == EXECUTABLE_ID
        and shown.get("flavour", "ce") == "ce"
        and report.exit_code == 126
        and b"Exec format error" in report.stderr + report.stdout
    )


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
        # Judge0 shows a compile that printed nothing (or none at all) as null.
        "compile_output": (result.compile.combined_output() or None) if result.compile else None,
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
    label = submission.extra.get("language_label") or f"Language {language_id}"
    version = (submission.result or {}).get("version", "")
    return label.format(version=version) if version else label.split(" (")[0]


def fields_of(fields: str | None, default: tuple[str, ...] = DEFAULT_FIELDS) -> tuple[str, ...]:
    if not fields:
        return default
    if fields.strip() == "*":
        return ALL_FIELDS
    wanted = tuple(f.strip() for f in fields.split(",") if f.strip())
    unknown = [f for f in wanted if f not in ALL_FIELDS]
    if unknown:
        raise Judge0Error(f"invalid fields: [{', '.join(unknown)}]", status_code=400)
    return wanted


def callback_body(submission: Submission) -> dict:
    """What a callback carries: the submission's default fields, encoded as it was created."""
    encoded = bool(submission.extra.get("base64_encoded"))
    try:
        return render(submission, encoded, DEFAULT_FIELDS)
    except UnicodeDecodeError:
        return render(submission, True, DEFAULT_FIELDS)
