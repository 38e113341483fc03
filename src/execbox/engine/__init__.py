"""The engine: one execution (files, compile, run, statuses) on top of a sandbox."""

from execbox.engine.catalog import Catalog, Runtime
from execbox.engine.errors import (
    ExecutionError,
    InvalidRequest,
    LanguageNotOffered,
    LanguageUnavailable,
    UnknownLanguage,
    UnknownVersion,
)
from execbox.engine.files import check_files
from execbox.engine.job import Job
from execbox.engine.model import (
    ExecutionRequest,
    ExecutionResult,
    LimitRequest,
    SourceFile,
    StageReport,
    Status,
)

__all__ = [
    "Catalog",
    "ExecutionError",
    "ExecutionRequest",
    "ExecutionResult",
    "InvalidRequest",
    "Job",
    "LanguageNotOffered",
    "LanguageUnavailable",
    "LimitRequest",
    "Runtime",
    "SourceFile",
    "StageReport",
    "Status",
    "UnknownLanguage",
    "UnknownVersion",
    "check_files",
]

from execbox.engine.engine import Engine

__all__ += ["Engine"]
