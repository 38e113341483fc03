"""Errors a request can cause, one class per kind. Only the API decides what each becomes
(a status code and a body in its dialect's shape)."""

from __future__ import annotations


class ExecutionError(Exception):
    """The execution cannot be run as asked; the message says why, in words for the user."""

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
    """The language is known but cannot run on this host now (a missing toolchain)."""

    def __init__(self, language: str, reason: str) -> None:
        super().__init__(f"{language} is not available on this host: {reason}")


class LanguageNotOffered(ExecutionError):
    """The language is known but never offered here (no toolchain for this platform)."""

    def __init__(self, language: str, reason: str) -> None:
        super().__init__(f"{language} is not available: {reason}")
