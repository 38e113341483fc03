"""Executions and their results as JSON, for the store (bytes travel as base64)."""

from __future__ import annotations

import base64
import dataclasses

from execbox.config import Limits
from execbox.engine import (
    ExecutionRequest,
    ExecutionResult,
    LimitRequest,
    SourceFile,
    StageReport,
    Status,
)
from execbox.engine.model import OutputsRequest
from execbox.sandbox.outputs import OutputFile, Outputs
from execbox.submissions.result_bound import bound_result


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bytes(text: str) -> bytes:
    return base64.b64decode(text)


def request_to_json(request: ExecutionRequest) -> dict:
    return {
        "language": request.language,
        "version": request.version,
        "files": [{"name": f.name, "content": _b64(f.content)} for f in request.files],
        "stdin": _b64(request.stdin),
        "args": list(request.args),
        "limits": request.limits.given(),
        "compile_limits": request.compile_limits.given(),
        "cases": [_b64(c) for c in request.cases] if request.cases is not None else None,
        "merge_stderr": request.merge_stderr,
        "compile_options": list(request.compile_options),
        "outputs": None if request.outputs is None else dataclasses.asdict(request.outputs),
    }


def request_from_json(data: dict) -> ExecutionRequest:
    cases = data.get("cases")
    return ExecutionRequest(
        language=data["language"],
        version=data["version"],
        files=[SourceFile(f["name"], _bytes(f["content"])) for f in data["files"]],
        stdin=_bytes(data["stdin"]),
        args=list(data["args"]),
        limits=LimitRequest(**data["limits"]),
        compile_limits=LimitRequest(**data["compile_limits"]),
        cases=[_bytes(c) for c in cases] if cases is not None else None,
        merge_stderr=data["merge_stderr"],
        compile_options=list(data["compile_options"]),
        outputs=_outputs_request_from_json(data.get("outputs")),
    )


def _outputs_request_from_json(data: dict | None) -> OutputsRequest | None:
    if data is None:
        return None
    return OutputsRequest(tuple(data["patterns"]), data["max_files"], data["max_bytes"])


def _outputs_to_json(outputs: Outputs | None) -> dict | None:
    if outputs is None:
        return None
    files = [{"name": f.name, "content": _b64(f.content)} for f in outputs.files]
    return {"files": files, "limits_hit": list(outputs.limits_hit)}


def _outputs_from_json(data: dict | None) -> Outputs | None:
    if data is None:
        return None
    files = tuple(OutputFile(f["name"], _bytes(f["content"])) for f in data["files"])
    return Outputs(files, tuple(data["limits_hit"]))


def _report_to_json(report: StageReport | None) -> dict | None:
    if report is None:
        return None
    data = dataclasses.asdict(report)
    data["status"] = report.status.value
    data["stdout"], data["stderr"] = _b64(report.stdout), _b64(report.stderr)
    data["output"] = None if report.output is None else _b64(report.output)
    data["outputs"] = _outputs_to_json(report.outputs)
    return data


def _report_from_json(data: dict | None) -> StageReport | None:
    if data is None:
        return None
    return StageReport(
        **{
            **data,
            "status": Status(data["status"]),
            "stdout": _bytes(data["stdout"]),
            "stderr": _bytes(data["stderr"]),
            "limits": Limits(**data["limits"]),
            "output": None if data.get("output") is None else _bytes(data["output"]),
            "outputs": _outputs_from_json(data.get("outputs")),
        }
    )


def result_to_json(result: ExecutionResult, max_output_bytes: int) -> dict:
    """The result to store, with at most ``max_output_bytes`` of output in all."""
    result = bound_result(result, max_output_bytes)
    return {
        "language": result.language,
        "version": result.version,
        "status": result.status.value,
        "compile": _report_to_json(result.compile),
        # With test cases the run is the first case: stored once.
        "run": None if result.cases else _report_to_json(result.run),
        "cases": [_report_to_json(r) for r in result.cases],
    }


def result_from_json(data: dict) -> ExecutionResult:
    cases = [r for r in map(_report_from_json, data["cases"]) if r is not None]
    return ExecutionResult(
        language=data["language"],
        version=data["version"],
        status=Status(data["status"]),
        compile=_report_from_json(data["compile"]),
        run=_report_from_json(data["run"]) or (cases[0] if cases else None),
        cases=cases,
    )


def failure(message: str) -> dict:
    """The stored result of a submission that could not run at all (e.g. its language is
    gone after a restart): shown as an internal error."""
    return {"error": message}
