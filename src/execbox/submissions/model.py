"""A submission as stored: what was asked (plain JSON), its state, and its result (JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from execbox.engine import ExecutionRequest


class SubmissionState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass
class Submission:
    id: str
    dialect: str  # which API created it ("v1", "judge0"): how it is shown
    caller: str  # who sent it: fairness in the queue
    request: dict  # the execution, as the dialect's encoder wrote it (JSON-safe)
    state: SubmissionState = SubmissionState.QUEUED
    result: dict | None = None  # the execution's result, JSON-safe, once done
    created_at: float = 0.0  # Unix time
    finished_at: float | None = None
    callback_url: str | None = None
    extra: dict = field(default_factory=dict)  # dialect-specific details (Judge0's fields)
    attempts: int = 0  # times a server started running it


@dataclass
class NewSubmission:
    """What a client submits: the execution, where to call back, and what its dialect shows."""

    execution: ExecutionRequest
    callback_url: str | None = None
    extra: dict = field(default_factory=dict)
