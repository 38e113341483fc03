"""One submission's life, as both runners (embedded and cluster) live it: accepted within the
bounds, run through the executor, ended as a result or a failure, called back."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from execbox.config import Settings
from execbox.engine import Engine, ExecutionError
from execbox.executor import Executor
from execbox.submissions import codec
from execbox.submissions.model import NewSubmission, Submission
from execbox.submissions.store import SubmissionStore

log = logging.getLogger("execbox.submissions")

MAX_ATTEMPTS = 3


class TooManySubmissions(ExecutionError):
    """Accepting more would pass the server's, or the caller's, share of waiting submissions."""


def per_caller_bound(settings: Settings) -> int:
    return max(1, int(settings.max_pending_submissions * settings.caller_queue_share))


def new_submissions(
    engine: Engine,
    store: SubmissionStore,
    settings: Settings,
    dialect: str,
    caller: str,
    items: list[NewSubmission],
) -> list[Submission]:
    """Validate (raises ExecutionError) and bound the items; the submissions to store."""
    for item in items:
        engine.prepare(item.execution)  # bad input fails here, before anything is stored
    most = settings.max_pending_submissions
    pending = store.count_unfinished()
    if pending + len(items) > most:
        raise TooManySubmissions(
            f"{pending} submissions are waiting, the most this server keeps is {most}; retry later"
        )
    mine = store.count_unfinished(caller)
    per_caller = per_caller_bound(settings)
    if mine + len(items) > per_caller:
        raise TooManySubmissions(
            f"you have {mine} unfinished submissions and sent {len(items)} more; one caller "
            f"may have at most {per_caller} waiting (of the server's {most}); retry "
            "when some have finished"
        )
    now = time.time()
    return [
        Submission(
            id=str(uuid.uuid4()),
            dialect=dialect,
            caller=caller,
            request=codec.request_to_json(item.execution),
            created_at=now,
            callback_url=item.callback_url,
            extra=item.extra,
        )
        for item in items
    ]


async def execute(executor: Executor, submission: Submission, max_result_bytes: int) -> dict:
    """Run the submission; its result to store (a request that cannot run is a failure)."""
    try:
        result = await executor.execute(
            codec.request_from_json(submission.request),
            submission.caller,
            api=submission.dialect,
            patient=True,
        )
    except ExecutionError as err:
        return codec.failure(str(err))
    return codec.result_to_json(result, max_result_bytes)


def given_up(id: str, attempts: int) -> dict:
    log.error("submission %s given up after %d attempts", id, attempts)
    return codec.failure(
        f"internal error: given up after {attempts} attempts; each time, the server "
        "stopped or failed while running this submission"
    )


def callback_body(
    submission: Submission, render_callback: dict[str, Callable[[Submission], dict]]
) -> dict | None:
    """The body to call back with, or None when there is none to send."""
    if not submission.callback_url:
        return None
    render = render_callback.get(submission.dialect)
    if render is None:
        return None
    try:
        return render(submission)
    except Exception:
        log.exception("the callback of submission %s could not be made", submission.id)
        return None
