"""One execution: write the files, compile if the language needs it, run, and judge each stage."""

from __future__ import annotations

import dataclasses
import logging
import signal as signals

from execbox.config import Limits
from execbox.engine.catalog import Runtime
from execbox.engine.compile_cache import CompileCache, CompileOutcome, cache_key
from execbox.engine.model import ExecutionRequest, ExecutionResult, StageReport, Status
from execbox.engine.output_budget import OutputBudget
from execbox.engine.outputs import OutputsBudget
from execbox.sandbox import Interactive, LimitHit, Sandbox, SandboxFile, StageResult, StageSpec
from execbox.sandbox.outputs import OutputRequest

log = logging.getLogger("execbox.engine")

LIMIT_STATUS = {
    LimitHit.TIME: Status.TIME_LIMIT,
    LimitHit.MEMORY: Status.MEMORY_LIMIT,
    LimitHit.OUTPUT: Status.OUTPUT_LIMIT,
}


def signal_name(number: int | None) -> str | None:
    if number is None:
        return None
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def _message(status: Status, result: StageResult, limits: Limits) -> str | None:
    match status:
        case Status.TIME_LIMIT:
            return (
                f"time limit exceeded (wall {limits.wall_time_ms} ms, CPU {limits.cpu_time_ms} ms)"
            )
        case Status.MEMORY_LIMIT:
            return f"memory limit exceeded ({limits.memory_mb} MB)"
        case Status.OUTPUT_LIMIT:
            return f"output limit exceeded ({limits.output_bytes} bytes per stream)"
        case Status.INTERNAL_ERROR:
            return "the sandbox failed; this is not the program's fault"
        case Status.RUNTIME_ERROR | Status.COMPILE_ERROR if result.signal is not None:
            return f"killed by {signal_name(result.signal)}"
        case Status.RUNTIME_ERROR | Status.COMPILE_ERROR:
            return f"exited with code {result.exit_code}"
    return None


def judge(result: StageResult, limits: Limits, compile_stage: bool) -> StageReport:
    if result.internal_error is not None:
        log.error("sandbox internal error: %s", result.internal_error)
        status = Status.INTERNAL_ERROR
    elif result.limit is not None:
        status = LIMIT_STATUS[result.limit]
    elif result.refusal is not None or result.exit_code != 0 or result.signal is not None:
        status = Status.COMPILE_ERROR if compile_stage else Status.RUNTIME_ERROR
    else:
        status = Status.OK
    return StageReport(
        status=status,
        exit_code=result.exit_code,
        signal=signal_name(result.signal),
        stdout=result.stdout,
        stderr=result.stderr,
        stdout_truncated=result.stdout_truncated,
        stderr_truncated=result.stderr_truncated,
        wall_time_ms=result.wall_time_ms,
        cpu_time_ms=result.cpu_time_ms,
        memory_bytes=result.memory_bytes,
        limits=limits,
        message=result.refusal or _message(status, result, limits),
        output=result.output,
        outputs=result.outputs,
    )


class Job:
    """Owns one execution's life, from the request's files to the judged stages."""

    def __init__(
        self,
        runtime: Runtime,
        request: ExecutionRequest,
        run_limits: Limits,
        compile_limits: Limits,
        output_budget_bytes: int,
    ) -> None:
        self.runtime = runtime
        self.request = request
        self.run_limits = run_limits
        self.compile_limits = compile_limits
        # Output kept over all the execution's stages and cases (see output_budget.py).
        self.output_budget_bytes = output_budget_bytes
        self._key: str | None = None

    @property
    def language(self):
        return self.runtime.language

    @property
    def memory_bytes(self) -> int:
        """The most memory the execution may hold at once (its stages run one after another)."""
        stages = [self.run_limits] + ([self.compile_limits] if self.language.compiled else [])
        return max(limits.memory_mb for limits in stages) * 1024 * 1024

    def _spec(self, template, files: list[SandboxFile], limits: Limits, **extra) -> StageSpec:
        names = [f.name for f in self.request.files]
        argv = self.language.command(template, names[0], names, limits.memory_mb)
        return StageSpec(
            argv=argv,
            files=files,
            limits=limits,
            env=self.language.env,
            mounts=self.language.mounts,
            image=self.language.image,
            **extra,
        )

    async def execute(
        self,
        sandbox: Sandbox,
        cache: CompileCache | None = None,
        interactive: Interactive | None = None,
    ) -> ExecutionResult:
        """Compile if needed, then run once per test case (or once with the request's stdin);
        an interactive run streams its run stage and hears of each stage's start and end."""

        async def tell(stage: str, report: StageReport | None) -> None:
            if interactive is not None and interactive.stage is not None:
                await interactive.stage(stage, report)

        files = [SandboxFile(f.name, f.content) for f in self.request.files]
        budget = OutputBudget(self.output_budget_bytes)
        outputs = OutputsBudget.of(self.request.outputs)
        compile_report = None
        if self.language.compile is not None:
            await tell("compile", None)
            outcome, cached = await self._compile(sandbox, files, cache)
            capped = self.compile_limits.output_bytes > self.output_budget_bytes
            report = budget.charge(outcome.report, capped, is_run=False)
            compile_report = dataclasses.replace(report, cached=cached)
            if interactive is not None and interactive.output is not None:
                for stream in ("stdout", "stderr"):
                    if data := getattr(compile_report, stream):
                        await interactive.output(stream, data)
            await tell("compile", compile_report)
            if compile_report.status is not Status.OK:
                return self._result(compile_report.status, compile_report, [])
            files = list(outcome.files)
        stdins = self.request.cases if self.request.cases is not None else [self.request.stdin]
        reports = []
        for stdin in stdins:
            await tell("run", None)
            reports.append(await self._run(sandbox, files, stdin, budget, outputs, interactive))
            await tell("run", reports[-1])
        worst = next((r.status for r in reports if r.status is not Status.OK), Status.OK)
        return self._result(worst, compile_report, reports)

    def first_stage(self, cache: CompileCache | None = None) -> StageSpec:
        """The stage this job starts with (its files aside): what its sandbox is started as.
        A compile the cache already holds is skipped: the job starts with its run."""
        if self.language.compile is not None:
            spec = self._compile_spec([])
            if cache is None or self._compile_key(spec) not in cache:
                return spec
        outputs = OutputsBudget.of(self.request.outputs)
        return self._run_spec([], b"", outputs=outputs.stage() if outputs else None)

    def _compile_key(self, spec: StageSpec) -> str:
        """The compile cache's key (computed once: it hashes every source file)."""
        if self._key is None:
            limits = [str(getattr(spec.limits, n)) for n in Limits.names()]
            argv = [*spec.argv, *limits, str(spec.collect_limit_bytes)]
            files = self.request.files
            self._key = cache_key(self.language.name, self.runtime.version, argv, files)
        return self._key

    def _run_spec(
        self,
        files: list[SandboxFile],
        stdin: bytes,
        interactive: Interactive | None = None,
        limits: Limits | None = None,
        outputs: OutputRequest | None = None,
    ) -> StageSpec:
        template = self.language.run_template([(f.name, f.content) for f in self.request.files])
        # Sandboxes are kept warm for requests with the default limits only: a pool per
        # custom combination would hold idle sandboxes that few requests can use.
        spec = self._spec(
            template,
            files,
            limits or self.run_limits,
            stdin=stdin,
            merge_stderr=self.request.merge_stderr,
            interactive=interactive,
            keep_warm=not self.request.limits.given(),
            outputs=outputs,
        )
        spec.argv.extend(self.request.args)
        return spec

    def _compile_spec(self, files: list[SandboxFile]) -> StageSpec:
        assert self.language.compile is not None
        spec = self._spec(
            self.language.compile,
            files,
            # The compile is the first stage: the whole budget is left.
            OutputBudget(self.output_budget_bytes).cap(self.compile_limits),
            collect_files=True,
            # The artifacts go into the run's sandbox: they count against the run's memory.
            collect_limit_bytes=min(self.compile_limits.memory_mb, self.run_limits.memory_mb) << 20,
            keep_warm=not self.request.compile_limits.given(),
        )
        # Extra flags go after the language's own (gcc reads them anywhere on its line).
        spec.argv.extend(self.request.compile_options)
        return spec

    async def _run(
        self,
        sandbox: Sandbox,
        files: list[SandboxFile],
        stdin: bytes,
        budget: OutputBudget,
        outputs: OutputsBudget | None = None,
        interactive: Interactive | None = None,
    ) -> StageReport:
        limits = budget.cap(self.run_limits)
        wanted = outputs.stage() if outputs is not None else None
        spec = self._run_spec(files, stdin, interactive, limits, wanted)
        report = judge(await sandbox.run(spec), self.run_limits, compile_stage=False)
        if outputs is not None:
            report.outputs = outputs.charge(report.outputs)
        return budget.charge(report, capped=limits != self.run_limits, is_run=True)

    async def _compile(
        self, sandbox: Sandbox, files: list[SandboxFile], cache: CompileCache | None
    ) -> tuple[CompileOutcome, bool]:
        spec = self._compile_spec(files)

        async def compile_() -> CompileOutcome:
            result = await sandbox.run(spec)
            report = judge(result, self.compile_limits, compile_stage=True)
            return CompileOutcome(report, tuple(result.files))

        if cache is None:
            return await compile_(), False
        return await cache.get_or_compile(self._compile_key(spec), compile_)

    def _result(self, status, compile_report, reports: list[StageReport]) -> ExecutionResult:
        return ExecutionResult(
            language=self.language.name,
            version=self.runtime.version,
            status=status,
            compile=compile_report,
            run=reports[0] if reports else None,
            cases=reports if self.request.cases is not None else [],
        )
