"""A compile stage's artifacts, as the container hands them back: an archive of its work dir
after the stdout marker, parsed here (untrusted) within the bytes the run may hold."""

from __future__ import annotations

import io
import tarfile

from execbox.sandbox.base import SandboxFile, StageResult, StageSpec
from execbox.sandbox.docker.frames import Stream


def artifact_budget(spec: StageSpec) -> int:
    """The most bytes of artifacts a compile stage may hand back."""
    return spec.collect_limit_bytes or spec.limits.memory_mb << 20


class TooLarge(ValueError):
    """A compile stage's artifacts are larger than they may be."""


def too_large_message(budget: int) -> str:
    return f"compile output too large: more than the {budget >> 20} MB of files the run may hold"


def collect_artifacts(result: StageResult, stdout: Stream, spec: StageSpec) -> None:
    """Put the compile stage's artifacts into ``result``, or refuse the stage (too large), or
    fail it (the archive is missing or unreadable: the sandbox's fault)."""
    budget = artifact_budget(spec)
    try:
        if stdout.archive_too_large:
            raise TooLarge(too_large_message(budget))
        if stdout.archive is None:
            raise ValueError("no archive of the work dir")
        result.files = read_archive(bytes(stdout.archive), budget)
    except TooLarge as err:
        result.refusal = str(err)
    except (ValueError, OSError, tarfile.TarError) as err:
        result.internal_error = f"artifacts: {err}"


def read_archive(data: bytes, budget: int) -> list[SandboxFile]:
    """The regular files of a work-dir archive made inside the container (untrusted: links,
    devices and odd names are skipped, and the total is bounded)."""
    files: list[SandboxFile] = []
    total = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            if not member.isreg():
                continue
            name = member.name.removeprefix("./")
            parts = name.split("/")
            if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
                continue
            total += member.size
            if total > budget:
                raise TooLarge(too_large_message(budget))
            content = tar.extractfile(member)
            assert content is not None
            files.append(SandboxFile(name, content.read(), bool(member.mode & 0o100)))
    return files
