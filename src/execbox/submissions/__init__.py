"""Asynchronous submissions: accepted now, run through the same queue and engine as
synchronous requests, kept in a store that survives restarts, with optional callbacks."""

from execbox.submissions.model import NewSubmission, Submission, SubmissionState
from execbox.submissions.runner import SubmissionRunner
from execbox.submissions.store import SQLiteStore, SubmissionStore

__all__ = [
    "NewSubmission",
    "SQLiteStore",
    "Submission",
    "SubmissionRunner",
    "SubmissionState",
    "SubmissionStore",
]
