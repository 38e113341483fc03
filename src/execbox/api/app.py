"""The FastAPI application: wiring of engine, scheduler, executor and each dialect's routers,
and their lifetime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from execbox import __version__
from execbox.api import errors, judge0, piston, piston_interactive, playground, submissions
from execbox.api.middleware import BodyLimit, JSONBodies
from execbox.api.routes import health, original, v1
from execbox.config import Settings, get_settings
from execbox.engine import Engine
from execbox.executor import Executor, Metrics
from execbox.sandbox import Sandbox
from execbox.scheduler import Scheduler
from execbox.submissions import SQLiteStore, SubmissionRunner
from execbox.submissions.callbacks import CallbackSender
from execbox.submissions.store import SubmissionStore

log = logging.getLogger("execbox")


def _store(settings: Settings) -> SubmissionStore:
    if settings.database_url:
        from execbox.submissions.postgres import PostgresStore  # the `cluster` extra

        return PostgresStore(settings.database_url)
    return SQLiteStore(settings.submissions_db)


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    sandbox: Sandbox | None = None,
) -> FastAPI:
    """The app. Given a started ``engine`` it serves with that one (and leaves closing it to
    whoever started it); given a ``sandbox``, it starts its engine on it; else on the sandbox
    the settings name."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Cluster mode (EXECBOX_DATABASE_URL): submissions in PostgreSQL; an API-only node
        # runs no sandbox and has the workers run its executions.
        store = _store(settings)
        api_only = bool(settings.database_url) and settings.role == "api"
        if api_only:
            from execbox.submissions.api_node import (
                api_only_engine,
                dispatch_scheduler,
                follow_published_runtimes,
            )

            await asyncio.to_thread(store.migrate)
            app.state.engine = await api_only_engine(settings, store)
            app.state.scheduler = dispatch_scheduler(settings)
            following = asyncio.create_task(follow_published_runtimes(app.state.engine, store))
        else:
            app.state.engine = engine or await Engine.start(settings, sandbox)
            app.state.scheduler = Scheduler(
                settings.max_concurrency,
                settings.queue_size,
                settings.queue_timeout_s,
                memory_budget=settings.memory_budget_bytes(),
                caller_share=settings.caller_queue_share,
            )
        app.state.metrics.bind(app.state.scheduler, app.state.engine.compile_cache)
        app.state.executor = Executor(app.state.engine, app.state.scheduler, app.state.metrics)
        runner_args = (
            store,
            app.state.executor,
            settings,
            CallbackSender(
                settings.callback_allow_private,
                settings.callback_timeout_s,
                settings.callback_max_tries,
            ),
            {"judge0": judge0.callback_body, "v1": submissions.callback_body},
        )
        if settings.database_url:
            from execbox.submissions.api_node import publish_runtimes
            from execbox.submissions.cluster import ClusterRunner

            app.state.submissions = ClusterRunner(*runner_args, worker=not api_only)
            await app.state.submissions.start()
            if api_only:
                app.state.engine.dispatch = app.state.submissions.run_elsewhere
            else:
                await asyncio.to_thread(publish_runtimes, app.state.engine, store)
        else:
            app.state.submissions = SubmissionRunner(*runner_args)
            await app.state.submissions.start()
        try:
            yield
        finally:
            if api_only:
                following.cancel()
            # `execbox serve` has already drained within the grace period (server.py); what is
            # still running now is killed with the sandboxes.
            if not await app.state.scheduler.drain(1.0):
                log.warning("shutting down with work still running; killing it")
            # Unfinished submissions stay in the store: the next server runs them.
            await app.state.submissions.close()
            if engine is None and not api_only:
                await app.state.engine.close()

    app = FastAPI(
        title="execbox",
        version=__version__,
        description="Run untrusted code snippets in a sandbox and get their output.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.api_keys = settings.api_key_set()
    app.state.metrics = Metrics()
    errors.install(app)
    app.include_router(health)
    app.include_router(v1)
    app.include_router(submissions.router)
    app.include_router(original)
    app.include_router(piston.router)
    app.include_router(piston_interactive.router)
    app.include_router(judge0.router)
    app.include_router(judge0.extra_router)  # Judge0 Extra CE, under /extra
    app.add_middleware(JSONBodies)
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_request_bytes, timeout_s=settings.body_timeout_s
    )
    playground.install(app, settings)
    return app
