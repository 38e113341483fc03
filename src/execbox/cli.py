"""Command line: serve the API, run a file through the sandbox, list languages."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path, PurePosixPath

from execbox.config import BadSettings, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key, value in (
            ("host", getattr(args, "host", None)),
            ("port", getattr(args, "port", None)),
            ("backend", getattr(args, "backend", None)),
            ("role", getattr(args, "role", None)),
        )
        if value is not None
    }
    return load_settings(**overrides)


def serve(args: argparse.Namespace) -> int:
    from execbox.server import serve as serve_forever

    settings = _settings(args)
    if settings.role == "api" and not settings.database_url:
        print(
            "execbox: --no-worker needs cluster mode (EXECBOX_DATABASE_URL=postgresql://...): "
            "a node alone must run its own submissions",
            file=sys.stderr,
        )
        return 2
    serve_forever(settings)
    return 0


def worker(args: argparse.Namespace) -> int:
    from execbox.server import log_to_stderr, refuse_unfit_host

    settings = _settings(args)
    if not settings.database_url:
        print(
            "execbox: a worker takes its jobs from the cluster's database; set "
            "EXECBOX_DATABASE_URL=postgresql://...",
            file=sys.stderr,
        )
        return 2
    log_to_stderr(settings)
    refuse_unfit_host(settings)
    from execbox.api import judge0, submissions
    from execbox.submissions.worker_node import run_worker

    render = {"judge0": judge0.callback_body, "v1": submissions.callback_body}
    asyncio.run(run_worker(settings, render))
    return 0


async def _with_engine(settings: Settings, work):
    from execbox.engine import Engine

    engine = await Engine.start(settings)
    try:
        return await work(engine)
    finally:
        await engine.close()


def _language_for(path: Path) -> str | None:
    from execbox.languages import load_languages

    suffix = path.suffix
    for language in load_languages().values():
        if PurePosixPath(language.entry).suffix == suffix:
            return language.name
    return None


def run(args: argparse.Namespace) -> int:
    from execbox.api.models import ExecuteResponse
    from execbox.engine import ExecutionError, ExecutionRequest, SourceFile

    path = Path(args.file)
    language = args.language or _language_for(path)
    if language is None:
        print(f"execbox: cannot tell the language of {path}; use --language", file=sys.stderr)
        return 2
    stdin = args.stdin.encode() if args.stdin is not None else b""
    if args.stdin_file:
        stdin = Path(args.stdin_file).read_bytes()
    request = ExecutionRequest(
        language=language,
        files=[SourceFile(path.name if args.keep_name else "", path.read_bytes())],
        stdin=stdin,
        args=args.args,
    )

    async def work(engine):
        return await engine.execute(engine.prepare(request))

    try:
        result = asyncio.run(_with_engine(_settings(args), work))
    except ExecutionError as err:
        print(f"execbox: {err.message}", file=sys.stderr)
        return 2
    if args.json:
        print(ExecuteResponse.of(result, "utf8").model_dump_json(indent=2))
        return 0 if result.status.value == "ok" else 1
    stage = result.run or result.compile
    if stage is not None:
        sys.stdout.buffer.write(stage.stdout)
        sys.stdout.flush()
        sys.stderr.buffer.write(stage.stderr)
    note = stage.message if stage and stage.message else ""
    print(f"[{result.language} {result.version}: {result.status.value}] {note}", file=sys.stderr)
    if result.run is not None and result.run.exit_code is not None:
        return result.run.exit_code
    return 0 if result.status.value == "ok" else 1


def languages(args: argparse.Namespace) -> int:
    async def work(engine):
        return list(engine.catalog.runtimes.values())

    for runtime in asyncio.run(_with_engine(_settings(args), work)):
        state = "ok" if runtime.available else f"unavailable: {runtime.unavailable_reason}"
        aliases = ", ".join(runtime.language.aliases)
        print(f"{runtime.language.name:<12} {runtime.version:<10} {state}  ({aliases})")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="execbox", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    p = commands.add_parser("serve", help="serve the HTTP API")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--backend", choices=["native", "docker"])
    p.add_argument(
        "--no-worker",
        dest="role",
        action="store_const",
        const="api",
        help="cluster mode: serve the API only, run no sandbox (needs no privileges)",
    )
    p.set_defaults(func=serve)

    p = commands.add_parser(
        "worker", help="cluster mode: run stored submissions from the database, serve no HTTP"
    )
    p.add_argument("--backend", choices=["native", "docker"])
    p.set_defaults(func=worker, role="worker")

    p = commands.add_parser("run", help="run a file through the sandbox and print its output")
    p.add_argument("file")
    p.add_argument("args", nargs="*", help="arguments for the program")
    p.add_argument("--language", "-l")
    p.add_argument("--stdin", help="text for the program's standard input")
    p.add_argument("--stdin-file", help="a file for the program's standard input")
    p.add_argument("--keep-name", action="store_true", help="keep the file's own name")
    p.add_argument("--json", action="store_true", help="print the API's JSON response")
    p.add_argument("--backend", choices=["native", "docker"])
    p.set_defaults(func=run)

    p = commands.add_parser("languages", help="list the languages and whether they run here")
    p.add_argument("--backend", choices=["native", "docker"])
    p.set_defaults(func=languages)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if os.environ.get("EXECBOX_DEBUG"):
        logging.basicConfig(level=logging.DEBUG)
    try:
        sys.exit(args.func(args))
    except BadSettings as err:
        print(f"execbox cannot start: bad settings:\n{err}", file=sys.stderr)
        sys.exit(2)
