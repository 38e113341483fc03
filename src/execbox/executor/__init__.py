"""The executor: the one path every execution takes, whichever API it came through —
prepare, pre-start, admission, run, and what is observed of it (metrics, the access log,
cancellation)."""

from execbox.executor.executor import ClientGone, Executor
from execbox.executor.metrics import Metrics

__all__ = ["ClientGone", "Executor", "Metrics"]
