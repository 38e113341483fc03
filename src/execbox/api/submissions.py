"""execbox's own asynchronous API: submit now, read the result later (or get a callback)."""

from __future__ import annotations

import asyncio
import base64

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from execbox.api.auth import caller_of
from execbox.api.bodies import OFFLOAD_BYTES
from execbox.api.dialects import EXECBOX
from execbox.api.models import (
    CaseModel,
    StageModel,
    SubmissionBatchRequest,
    SubmissionModel,
    SubmissionRequest,
    SubmissionResult,
)
from execbox.api.routes import ERRORS
from execbox.engine import InvalidRequest
from execbox.engine.compare import output_matches
from execbox.submissions import NewSubmission, Submission, SubmissionRunner, codec
from execbox.submissions.callbacks import ForbiddenDestination, check_destination

router = EXECBOX.router(tags=["submissions"])
MAX_IDS = 100


def _runner(request: Request) -> SubmissionRunner:
    return request.app.state.submissions


async def _accept(
    request: Request, caller: str, bodies: list[SubmissionRequest]
) -> list[Submission]:
    """Check, store and queue submissions: all of them, or none when one is bad."""
    settings = request.app.state.settings
    items = []
    for body in bodies:
        if body.callback_url:
            try:
                await check_destination(
                    body.callback_url, settings.callback_allow_private, settings.callback_timeout_s
                )
            except ForbiddenDestination as err:
                raise InvalidRequest(str(err)) from None
        expected = [
            base64.b64encode(c.expected_output.encode()).decode()
            if c.expected_output is not None
            else None
            for c in body.test_cases or []
        ]
        extra = {"expected": expected, "output_encoding": body.output_encoding}
        items.append(NewSubmission(body.to_request(), body.callback_url, extra))
    return _runner(request).submit("v1", caller, items)


@router.post("/api/v1/submissions", status_code=202, responses=ERRORS)
async def submit(
    body: SubmissionRequest, request: Request, caller: str = Depends(caller_of)
) -> dict:
    """Queue one execution; its id comes back at once."""
    (submission,) = await _accept(request, caller, [body])
    return {"id": submission.id}


# The batch's body is read by hand (the count is checked before its items are validated, and
# a big one is validated off the event loop); its schema is documented here instead.
BATCH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["submissions"],
                "additionalProperties": False,
                "properties": {
                    "submissions": {
                        "type": "array",
                        "minItems": 1,
                        "description": "At most EXECBOX_MAX_BATCH_SUBMISSIONS (100)",
                        "items": {"$ref": "#/components/schemas/SubmissionRequest"},
                    }
                },
            }
        }
    },
}


@router.post(
    "/api/v1/submissions/batch",
    status_code=202,
    responses=ERRORS,
    openapi_extra={"requestBody": BATCH_BODY},
)
async def submit_batch(request: Request, caller: str = Depends(caller_of)) -> dict:
    """Queue several executions (all are checked before any is queued)."""
    data = await request.json()
    items = data.get("submissions") if isinstance(data, dict) else None
    limit = request.app.state.settings.max_batch_submissions
    if isinstance(items, list) and len(items) > limit:
        raise InvalidRequest(f"submissions: at most {limit} in a batch, got {len(items)}")
    big = len(await request.body()) > OFFLOAD_BYTES
    try:
        if big:
            body = await asyncio.to_thread(SubmissionBatchRequest.model_validate, data)
        else:
            body = SubmissionBatchRequest.model_validate(data)
    except ValidationError as err:
        raise RequestValidationError(err.errors(include_input=False)) from None
    return {"ids": [s.id for s in await _accept(request, caller, body.submissions)]}


def show(submission: Submission) -> SubmissionModel:
    model = SubmissionModel(
        id=submission.id,
        state=submission.state.value,
        created_at=submission.created_at,
        finished_at=submission.finished_at,
    )
    if submission.result is None:
        return model
    if "error" in submission.result:
        model.error = submission.result["error"]
        return model
    encoding = submission.extra.get("output_encoding", "utf8")
    result = codec.result_from_json(submission.result)
    shown = SubmissionResult.of(result, encoding)
    expected = submission.extra.get("expected") or []
    if result.cases:
        shown.cases = []
        for index, report in enumerate(result.cases):
            want = expected[index] if index < len(expected) else None
            passed = None
            if want is not None:
                passed = report.status.value == "ok" and output_matches(
                    report.stdout, base64.b64decode(want)
                )
            stage = StageModel.of(report, encoding).model_dump()
            shown.cases.append(CaseModel(**stage, passed=passed))
    model.result = shown
    return model


@router.get("/api/v1/submissions/{id}", response_model=SubmissionModel, responses=ERRORS)
async def get_submission(id: str, request: Request) -> SubmissionModel:
    found = _runner(request).get([id]).get(id)
    if found is None:
        return JSONResponse(
            {"error": "not_found", "message": f"no submission {id}"}, status_code=404
        )  # type: ignore[return-value]
    return show(found)


@router.get("/api/v1/submissions", responses=ERRORS)
async def get_submissions(request: Request, ids: str = Query(...)) -> dict:
    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    if not 1 <= len(wanted) <= MAX_IDS:
        raise InvalidRequest(f"ids: give 1 to {MAX_IDS} comma-separated ids")
    found = _runner(request).get(wanted)
    return {"submissions": [show(found[i]).model_dump() if i in found else None for i in wanted]}


def callback_body(submission: Submission) -> dict:
    return show(submission).model_dump()
