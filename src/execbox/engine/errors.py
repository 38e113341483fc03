"""Errors a request can cause; the API turns each into a 4xx (or 503) with its message."""

from __future__ import annotations


class ExecutionError(Exception):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ExecutionError):
    """The request is malformed: bad file names, limits out of range, and so on."""


class UnknownLanguage(ExecutionError):
    def __init__(self, language: str, supported: list[str]) -> None:
        super().__init__(
            f"unsupported language {language!r}; supported: {', '.join(sorted(supported))}"
        )
        self.language = language
        self.supported = sorted(supported)


class UnknownVersion(ExecutionError):
    def __init__(self, language: str, version: str, available: str) -> None:
        super().__init__(
            f"{language} version {version!r} is not available (this host has {available})"
        )


class LanguageUnavailable(ExecutionError):
    status_code = 503

    def __init__(self, language: str, reason: str) -> None:
        super().__init__(f"{language} is not available on this host: {reason}")
