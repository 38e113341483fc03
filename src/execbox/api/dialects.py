"""Which API a path belongs to, and an error body in that API's own shape."""

from __future__ import annotations

JUDGE0_PATHS = (
    "/submissions", "/languages", "/statuses", "/about", "/config_info", "/system_info",
    "/authenticate", "/authorize",
)  # fmt: skip


def dialect(path: str) -> str:
    """Which API a path belongs to: errors are written in that API's own shape."""
    if path == "/":
        return "original"
    if path.startswith("/api/v2/"):
        return "piston"
    if path.startswith(JUDGE0_PATHS):
        return "judge0"
    return "execbox"


def error_body(path: str, code: str, message: str, **extra) -> dict:
    """The error body in the dialect of the API it answers: execbox's {error, message};
    the original endpoint's {output, error: true}; Piston's {message}; Judge0's {error}."""
    match dialect(path):
        case "original":
            return {"output": message, "error": True, "code": code, "message": message, **extra}
        case "piston":
            return {"message": message}
        case "judge0":
            return {"error": message}
    return {"error": code, "message": message, **extra}
