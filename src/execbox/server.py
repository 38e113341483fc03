"""Serve the API with uvicorn, draining gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.config import TRACE_LOG_LEVEL

from execbox.api import create_app
from execbox.api.judge0_limits import judge0_limits
from execbox.api.piston_interactive import MAX_MESSAGE_BYTES, MAX_QUEUED_MESSAGES
from execbox.config import Settings, unknown_settings

log = logging.getLogger("execbox")


class DrainingServer(uvicorn.Server):
    """On the first SIGTERM or SIGINT: refuse new work (503 with Retry-After) while still
    listening, let running and queued work finish within the grace period, then stop as
    uvicorn does. A second signal stops at once."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, grace_s: float) -> None:
        super().__init__(config)
        self.app = app
        self.grace_s = grace_s
        self._draining = False

    def handle_exit(self, sig, frame) -> None:
        scheduler = getattr(self.app.state, "scheduler", None)
        if self._draining or scheduler is None:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        scheduler.stop_admitting()
        log.info("draining: refusing new work, letting the rest finish")
        loop = asyncio.get_event_loop()

        async def drain_then_exit() -> None:
            finished = await scheduler.drain(self.grace_s)
            if not finished:
                log.warning("grace period over: killing the work that is left")
            super(DrainingServer, self).handle_exit(sig, frame)

        loop.call_soon_threadsafe(lambda: loop.create_task(drain_then_exit()))


class HostUnfit(Exception):
    """The host lacks what the sandbox needs; the message says what and how to fix it."""


def check_host(settings: Settings) -> None:
    if settings.backend != "native":
        return
    from execbox.sandbox.native import host

    problems = host.problems(settings)
    if problems:
        raise HostUnfit("\n".join(f"  - {problem}" for problem in problems))


def log_to_stderr(settings: Settings) -> None:
    # uvicorn's "trace" level is known to logging only once uvicorn configures it.
    logging.addLevelName(TRACE_LOG_LEVEL, "TRACE")
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    for warning in unknown_settings(os.environ):
        log.warning("%s", warning)


def refuse_unfit_host(settings: Settings) -> None:
    try:
        check_host(settings)
    except HostUnfit as err:
        print(
            f"execbox cannot start: this host cannot run sandboxes with limits:\n{err}",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


def refuse_bad_settings(settings: Settings) -> None:
    try:
        judge0_limits(settings)
    except ValueError as err:
        print(f"execbox cannot start: EXECBOX_JUDGE0_LIMITS: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if not settings.database_url:
        # The embedded store's file is opened later, inside the app's start: say it here.
        directory = Path(settings.submissions_db).parent
        reason = ""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if not os.access(directory, os.W_OK | os.X_OK):
                reason = " (not writable)"
        except OSError as err:
            reason = f" ({err.strerror})"
        if reason:
            print(
                f"execbox cannot start: EXECBOX_SUBMISSIONS_DB: cannot write in {directory}"
                f"{reason}; "
                "set it to a file in a directory this user may write",
                file=sys.stderr,
            )
            raise SystemExit(2)


def serve(settings: Settings) -> None:
    log_to_stderr(settings)
    refuse_bad_settings(settings)
    if settings.role != "api":  # an API-only node runs no sandbox
        refuse_unfit_host(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=5,
        # WebSocket messages: one is bounded, and few wait unread (piston_interactive.py).
        ws_max_size=MAX_MESSAGE_BYTES,
        ws_max_queue=MAX_QUEUED_MESSAGES,
        # The standard event loop: the sandbox attaches pipes and pidfds to it, which uvloop
        # mishandles when a closed descriptor's number comes back (EEXIST).
        loop="asyncio",
    )
    DrainingServer(config, app, settings.shutdown_grace_s).run()
