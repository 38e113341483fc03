"""Sandboxes: the protocol every backend implements, and the backends."""

from __future__ import annotations

from execbox.config import Settings
from execbox.sandbox.base import (
    Interactive,
    Sandbox,
    SandboxFile,
    StageResult,
    StageSpec,
)
from execbox.sandbox.policy import LimitHit
from execbox.sandbox.warm_pool import Expectation

__all__ = [
    "Expectation",
    "Interactive",
    "LimitHit",
    "Sandbox",
    "SandboxFile",
    "StageResult",
    "StageSpec",
    "create_sandbox",
]


def create_sandbox(settings: Settings) -> Sandbox:
    if settings.backend == "native":
        from execbox.sandbox.native import NativeSandbox

        return NativeSandbox(settings)
    if settings.backend == "docker":
        from execbox.sandbox.docker import DockerSandbox

        return DockerSandbox(settings)
    raise ValueError(f"the {settings.backend!r} backend is not available in this build")
