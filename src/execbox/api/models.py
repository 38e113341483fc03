"""Request and response bodies of the HTTP API (pydantic at the edge)."""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from execbox.engine import (
    ExecutionRequest,
    ExecutionResult,
    InvalidRequest,
    LimitRequest,
    SourceFile,
    StageReport,
)
from execbox.engine.model import OutputsRequest
from execbox.sandbox.outputs import OutputFile, Outputs

# A language name or version, far longer than any real one: refused before it is parsed.
MAX_NAME_CHARS = 64


class LimitsModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wall_time_ms: int | None = Field(None, description="Wall-clock time limit, ms")
    cpu_time_ms: int | None = Field(None, description="CPU time of all processes, ms")
    memory_mb: int | None = Field(None, description="Memory of all processes, MiB (no swap)")
    processes: int | None = Field(None, description="Processes and threads at once")
    output_bytes: int | None = Field(None, description="Bytes kept per stream (stdout, stderr)")
    file_size_mb: int | None = Field(None, description="Largest file the program may write, MiB")

    def to_request(self) -> LimitRequest:
        return LimitRequest(**self.model_dump())


class FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="Relative path; the first file is the entry point")
    content: str
    encoding: Literal["utf8", "base64"] = "utf8"

    def to_source(self) -> SourceFile:
        if self.encoding == "base64":
            try:
                content = base64.b64decode(self.content, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidRequest(f"file {self.name or '(entry)'} is not valid base64") from None
        else:
            content = self.content.encode("utf-8", errors="surrogatepass")
        return SourceFile(self.name or "", content)


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"language": "python", "code": "print(input()[::-1])", "stdin": "olleh"}]
        },
    )

    language: str = Field(
        max_length=MAX_NAME_CHARS, description="Language name or alias: python, py, js, c++ ..."
    )
    version: str = Field(
        "*",
        max_length=MAX_NAME_CHARS,
        description="'*', an exact version, or a prefix such as '3.11'",
    )
    code: str | None = Field(None, description="The program, when it fits in one file")
    files: list[FileModel] | None = Field(None, description="The program's files instead of code")
    stdin: str = ""
    args: list[str] = Field(default_factory=list)
    limits: LimitsModel | None = None
    compile_limits: LimitsModel | None = None
    output_encoding: Literal["utf8", "base64"] = "utf8"
    outputs: list[str] | None = Field(
        None,
        description="Files the program leaves to give back: globs relative to the work dir "
        "('*.png', 'results/*.csv', 'out/**/*.json'); regular files only, base64",
    )
    outputs_max_files: int | None = Field(
        None, description="At most this many output files (default and maximum: the server's)"
    )
    outputs_max_bytes: int | None = Field(
        None, description="At most this many bytes of output files in all (the server's bound)"
    )

    @model_validator(mode="after")
    def _code_or_files(self) -> ExecuteRequest:
        if (self.code is None) == (not self.files):
            raise ValueError("send either `code` or a non-empty `files` list (not both)")
        return self

    @field_validator("args")
    @classmethod
    def _no_nul(cls, args: list[str]) -> list[str]:
        if any("\x00" in arg for arg in args):
            raise ValueError("arguments cannot contain NUL bytes")
        return args

    def to_request(self) -> ExecutionRequest:
        if self.code is not None:
            files = [SourceFile("", self.code.encode("utf-8", errors="surrogatepass"))]
        else:
            files = [f.to_source() for f in self.files or []]
        return ExecutionRequest(
            language=self.language,
            files=files,
            version=self.version,
            stdin=self.stdin.encode("utf-8", errors="surrogatepass"),
            args=list(self.args),
            limits=(self.limits or LimitsModel()).to_request(),
            compile_limits=(self.compile_limits or LimitsModel()).to_request(),
            outputs=self._outputs_request(),
        )

    def _outputs_request(self) -> OutputsRequest | None:
        if self.outputs is None:
            if self.outputs_max_files is not None or self.outputs_max_bytes is not None:
                raise InvalidRequest("outputs_max_files/outputs_max_bytes need `outputs`")
            return None
        return OutputsRequest(tuple(self.outputs), self.outputs_max_files, self.outputs_max_bytes)


Status = Literal[
    "ok",
    "runtime_error",
    "time_limit",
    "memory_limit",
    "output_limit",
    "compile_error",
    "internal_error",
]


def encode_output(data: bytes, encoding: str) -> str:
    if encoding == "base64":
        return base64.b64encode(data).decode()
    return data.decode("utf-8", errors="replace")


class OutputFileModel(BaseModel):
    name: str = Field(description="Path relative to the work dir")
    size: int = Field(description="Bytes")
    encoding: Literal["base64"] = "base64"
    content: str


class StageModel(BaseModel):
    status: Status
    exit_code: int | None
    signal: str | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    encoding: Literal["utf8", "base64"]
    wall_time_ms: float
    cpu_time_ms: float
    memory_bytes: int
    message: str | None = None
    cached: bool = Field(False, description="Compile stage: answered from the compile cache")
    outputs: list[OutputFileModel] | None = Field(
        None, description="Run stage: the files `outputs` named (null when it named none)"
    )
    outputs_truncated: bool | None = Field(
        None, description="Some matching files were left out (see outputs_limits_hit)"
    )
    outputs_limits_hit: list[str] | None = Field(
        None, description="Why files were left out: max_files, max_bytes, unavailable"
    )

    @classmethod
    def of(cls, report: StageReport, encoding: str) -> StageModel:
        found: Outputs | None = report.outputs
        return cls(
            status=report.status.value,
            exit_code=report.exit_code,
            signal=report.signal,
            stdout=encode_output(report.stdout, encoding),
            stderr=encode_output(report.stderr, encoding),
            stdout_truncated=report.stdout_truncated,
            stderr_truncated=report.stderr_truncated,
            encoding=encoding,
            wall_time_ms=report.wall_time_ms,
            cpu_time_ms=report.cpu_time_ms,
            memory_bytes=report.memory_bytes,
            message=report.message,
            cached=report.cached,
            outputs=None if found is None else list(map(_output_file, found.files)),
            outputs_truncated=None if found is None else found.truncated,
            outputs_limits_hit=None if found is None else list(found.limits_hit),
        )


def _output_file(found: OutputFile) -> OutputFileModel:
    content = base64.b64encode(found.content).decode()
    return OutputFileModel(name=found.name, size=len(found.content), content=content)


class ExecuteResponse(BaseModel):
    language: str
    version: str
    status: Status
    compile: StageModel | None
    run: StageModel | None

    @classmethod
    def of(cls, result: ExecutionResult, encoding: str):
        return cls(
            language=result.language,
            version=result.version,
            status=result.status.value,
            compile=StageModel.of(result.compile, encoding) if result.compile else None,
            run=StageModel.of(result.run, encoding) if result.run else None,
        )


class LanguageModel(BaseModel):
    language: str
    version: str
    aliases: list[str]
    compiled: bool
    available: bool
    reason: str | None = None


class ErrorModel(BaseModel):
    error: str = Field(description="A stable code: invalid_request, unknown_language, ...")
    message: str = Field(description="What is wrong, in words")


class OriginalRequest(BaseModel):
    """The body the original service took on POST /."""

    lang: str = Field(max_length=MAX_NAME_CHARS)
    code: str


class OriginalResponse(BaseModel):
    output: str = Field(description="stdout then stderr, surrounding whitespace trimmed")
    error: bool
    status: Status | None = None


class TestCaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stdin: str = ""
    expected_output: str | None = Field(
        None, description="Compared with stdout, trailing whitespace of each line ignored"
    )


class SubmissionRequest(ExecuteRequest):
    test_cases: list[TestCaseModel] | None = Field(
        None, description="Compile once, run once per case (its stdin), judge each case"
    )
    callback_url: str | None = Field(None, description="The finished submission is PUT here")

    def to_request(self) -> ExecutionRequest:
        request = super().to_request()
        if self.test_cases is None:
            return request
        cases = [c.stdin.encode("utf-8", errors="surrogatepass") for c in self.test_cases]
        return ExecutionRequest(**{**request.__dict__, "cases": cases})


class SubmissionBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    submissions: list[SubmissionRequest] = Field(min_length=1)


class CaseModel(StageModel):
    passed: bool | None = Field(None, description="stdout matched expected_output (if given)")


class SubmissionResult(ExecuteResponse):
    cases: list[CaseModel] | None = None


class SubmissionModel(BaseModel):
    id: str
    state: Literal["queued", "running", "done"]
    created_at: float
    finished_at: float | None
    result: SubmissionResult | None = None
    error: str | None = Field(None, description="Why a submission could not run at all")
