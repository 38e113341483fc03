"""The runtimes this host offers: languages resolved from data, versions probed in the sandbox."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace

from execbox.config import LIMIT_MINIMUMS, Limits, Settings
from execbox.engine.errors import (
    InvalidRequest,
    LanguageNotOffered,
    LanguageUnavailable,
    UnknownLanguage,
    UnknownVersion,
)
from execbox.engine.model import LimitRequest
from execbox.engine.versions import BadVersion, version_matches
from execbox.languages import Judge0Id, Language, alias_table
from execbox.sandbox import Sandbox, StageSpec

VERSION_PATTERN = re.compile(rb"\d+(?:\.\d+)+")
# A version probe starts a toolchain, as a compile does: it gets the compile stage's default
# time limits where those are larger (a slow host raises them), and at least these.
PROBE_LIMITS = Limits(
    wall_time_ms=15_000,
    cpu_time_ms=10_000,
    memory_mb=1024,
    processes=128,
    output_bytes=16_384,
    file_size_mb=1,
)
PROBES_PER_SLOT = 4


def probe_limits(settings: Settings) -> Limits:
    compile_limits = settings.compile_limits()
    return replace(
        PROBE_LIMITS,
        wall_time_ms=max(PROBE_LIMITS.wall_time_ms, compile_limits.wall_time_ms),
        cpu_time_ms=max(PROBE_LIMITS.cpu_time_ms, compile_limits.cpu_time_ms),
    )


@dataclass
class Runtime:
    language: Language
    version: str = "unknown"
    unavailable_reason: str | None = None

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None


class Catalog:
    def __init__(self, languages: dict[str, Language], settings: Settings) -> None:
        self.settings = settings
        self.runtimes = {
            name: Runtime(lang, unavailable_reason=lang.unavailable_reason)
            for name, lang in languages.items()
        }
        self.aliases = alias_table(languages)
        # Settings do not change while the service runs: resolved once, not per request.
        self._run_defaults = settings.run_limits()
        self._compile_defaults = settings.compile_limits()
        self._maximum = settings.max_limits()

    async def probe(self, sandbox: Sandbox) -> None:
        """Ask each toolchain for its version, inside the sandbox: a language is available
        only if its toolchain really runs there. Aliases naming the version follow from it.
        A few probes per execution slot run at once (they wait on the disk as much as on the
        CPU); all of them at once would share the CPU so thinly that a slow starter, a JVM,
        misses its time limit on a small host and its languages stay unavailable."""
        admitted = asyncio.Semaphore(PROBES_PER_SLOT * max(1, self.settings.max_concurrency))
        limits = probe_limits(self.settings)

        async def probe_one(runtime: Runtime) -> None:
            async with admitted:
                await self._probe(runtime, sandbox, limits)

        await asyncio.gather(
            *(probe_one(runtime) for runtime in self.runtimes.values() if runtime.available)
        )
        self._settle()

    def adopt(self, offered: dict[str, tuple[str, str | None]]) -> None:
        """Take each language's version, or why it is unavailable, from elsewhere (what a
        cluster's workers found by probing), by name; a language not named is unavailable."""
        for name, runtime in self.runtimes.items():
            if runtime.available:
                version, reason = offered.get(name, ("", "no worker offers it"))
                if reason is None:
                    runtime.version = version
                else:
                    runtime.unavailable_reason = reason
        self._settle()

    def _settle(self) -> None:
        for runtime in self.runtimes.values():
            runtime.language = runtime.language.with_version(runtime.version)
        self.aliases = alias_table({name: r.language for name, r in self.runtimes.items()})

    def judge0_ids(self, flavour: str = "ce") -> dict[int, tuple[Runtime, Judge0Id]]:
        """Judge0's language ids ("ce", or Extra CE's: "extra"), in order, each with the
        runtime it names."""
        table = {
            judge0_id.id: (runtime, judge0_id)
            for runtime in self.runtimes.values()
            for judge0_id in runtime.language.judge0.ids_of(flavour)
        }
        return dict(sorted(table.items()))

    async def _probe(self, runtime: Runtime, sandbox: Sandbox, limits: Limits) -> None:
        language = runtime.language
        result = await sandbox.run(
            StageSpec(
                argv=list(language.version_command),
                files=[],
                limits=limits,
                env=language.env,
                mounts=language.mounts,
                image=language.image,
                keep_warm=False,
            )
        )
        output = result.stdout + result.stderr
        match = VERSION_PATTERN.search(output)
        if result.internal_error or result.exit_code != 0 or not match:
            detail = result.internal_error or output.decode(errors="replace").strip()[:300]
            runtime.unavailable_reason = f"the toolchain does not run in the sandbox: {detail}"
            return
        runtime.version = match.group().decode()

    def find(self, name: str, version: str = "*") -> Runtime:
        canonical = self.aliases.get(name.strip().lower())
        if canonical is None:
            raise UnknownLanguage(name, list(self.runtimes))
        runtime = self.runtimes[canonical]
        if runtime.language.never_available:
            raise LanguageNotOffered(canonical, runtime.unavailable_reason or "unknown")
        if not runtime.available:
            raise LanguageUnavailable(canonical, runtime.unavailable_reason or "unknown")
        try:
            matches = version_matches(version, runtime.version)
        except BadVersion:
            raise InvalidRequest(
                f"version {version!r} is neither a version nor a semver range"
            ) from None
        if not matches:
            raise UnknownVersion(canonical, version, runtime.version)
        return runtime

    def limits(self, runtime: Runtime, requested: LimitRequest, stage: str) -> Limits:
        """Configured defaults, then the language's overrides, then the request's values."""
        if stage == "compile":
            defaults = self._compile_defaults
            overrides = runtime.language.compile_limit_overrides
        else:
            defaults = self._run_defaults
            overrides = runtime.language.limit_overrides
        maximum = self._maximum
        for name, value in requested.given().items():
            low, high = getattr(LIMIT_MINIMUMS, name), getattr(maximum, name)
            if not low <= value <= high:
                prefix = "compile_limits" if stage == "compile" else "limits"
                raise InvalidRequest(
                    f"{prefix}.{name} must be between {low} and {high} (maximum), got {value}"
                )
        # A language's values say what its runtime needs at least: they raise the configured
        # defaults, never lower them (a host configured for slow machines keeps its margin).
        needs = {name: max(value, getattr(defaults, name)) for name, value in overrides.items()}
        limits = defaults.replace(**needs).replace(**requested.given())
        # Defaults may exceed a lowered maximum; never run above it.
        return Limits(
            **{name: min(getattr(limits, name), getattr(maximum, name)) for name in Limits.names()}
        )
