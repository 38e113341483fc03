"""Each API (execbox v1, the original endpoint, Piston, Judge0) answers its errors in its own
shape, and asks for a key on every route but health, metrics and docs.

The app runs in-process (create_app with a started engine) against a real sandbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from execbox.api import create_app
from execbox.api.auth import Unauthorized
from execbox.api.dialects import dialect_of, problem_of
from execbox.config import Settings
from execbox.engine import Engine, InvalidRequest, LanguageUnavailable, UnknownLanguage
from execbox.scheduler import CallerQueueFull, QueueTimeout, ShuttingDown
from execbox.submissions.runner import TooManySubmissions

KEY = {"x-api-key": "k"}
Scenario = Callable[[httpx.AsyncClient, FastAPI], Awaitable[None]]


def serve(tmp_path, scenario: Scenario, **overrides) -> None:
    """Run ``scenario`` against the app in this process, on an engine started here."""

    async def main() -> None:
        settings = Settings(
            state_dir="/run/execbox-test",
            submissions_db=str(tmp_path / "db.sqlite3"),
            api_keys="k",
            warm_pool=0,
            **overrides,
        )
        engine = await Engine.start(settings)
        try:
            app = create_app(settings, engine=engine)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
                    await scenario(client, app)
        finally:
            await engine.close()

    asyncio.run(main())


JSON = {"Content-Type": "application/json"}


def is_execbox(body: dict, code: str) -> bool:
    return body["error"] == code and isinstance(body["message"], str)


def is_original(body: dict) -> bool:
    return body["error"] is True and body["output"] == body["message"]


def is_piston(body: dict) -> bool:
    return set(body) == {"message"}


def is_judge0(body: dict) -> bool:
    return set(body) == {"error"}


def test_every_dialect_asks_for_the_key_in_its_own_shape(tmp_path):
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        run = {"language": "bash", "code": "echo"}
        v1 = await client.post("/api/v1/execute", json=run)
        assert v1.status_code == 401 and is_execbox(v1.json(), "unauthorized"), v1.text
        original = await client.post("/", json={"lang": "bash", "code": "echo"})
        assert original.status_code == 401 and is_original(original.json()), original.text
        piston = await client.post("/api/v2/execute", json={"language": "bash", "files": []})
        assert piston.status_code == 401 and is_piston(piston.json()), piston.text
        judge0 = await client.post("/submissions", json={"source_code": "", "language_id": 46})
        assert judge0.status_code == 401 and is_judge0(judge0.json()), judge0.text
        for path in ("/api/v1/languages", "/api/v2/runtimes", "/languages", "/statuses",
                     "/about", "/config_info", "/api/v1/submissions?ids=a"):  # fmt: skip
            answer = await client.get(path)
            assert answer.status_code == 401, (path, answer.text)
            assert (await client.get(path, headers=KEY)).status_code == 200, path
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            assert (await client.get(path)).status_code == 200, path
        # The key is checked before the body is read: a bad body without a key is a 401.
        for path in ("/api/v1/execute", "/", "/api/v2/execute", "/submissions"):
            bad = await client.post(path, content=b"[NaN]", headers=JSON)
            assert bad.status_code == 401, (path, bad.text)

    serve(tmp_path, scenario)


def test_bodies_too_large_or_unreadable_in_each_dialect_shape(tmp_path):
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        big = b'{"code": "' + b"#" * 70_000 + b'"}'
        answers = {
            path: await client.post(path, content=big, headers=KEY)
            for path in ("/api/v1/execute", "/", "/api/v2/execute", "/submissions")
        }
        assert all(a.status_code == 413 for a in answers.values()), answers
        assert is_execbox(answers["/api/v1/execute"].json(), "body_too_large")
        assert is_original(answers["/"].json())
        assert is_piston(answers["/api/v2/execute"].json())
        assert is_judge0(answers["/submissions"].json())
        assert "larger than 65536 bytes" in answers["/submissions"].json()["error"]

        json_type = {**KEY, "content-type": "application/json"}
        broken = {"content": b'{"language": ', "headers": json_type}
        v1 = await client.post("/api/v1/execute", **broken)
        assert v1.status_code == 422 and is_execbox(v1.json(), "invalid_json"), v1.text
        original = await client.post("/", **broken)
        assert original.status_code == 422 and is_original(original.json()), original.text
        piston = await client.post("/api/v2/execute", **broken)
        assert piston.status_code == 400 and is_piston(piston.json()), piston.text
        judge0 = await client.post("/submissions", **broken)
        assert judge0.status_code == 400 and is_judge0(judge0.json()), judge0.text

        schema = await client.post("/", json={"lang": 1}, headers=KEY)
        assert schema.status_code == 422 and is_original(schema.json()), schema.text
        assert "code: this field is required" in schema.json()["message"]
        wrong_method = await client.get("/api/v2/execute", headers=KEY)
        assert wrong_method.status_code == 405 and is_piston(wrong_method.json())
        unknown = await client.get("/submissions/nope", headers=KEY)
        assert unknown.status_code == 404 and is_judge0(unknown.json()), unknown.text

    serve(tmp_path, scenario, max_request_bytes=64 * 1024)


def test_busy_and_draining_in_each_dialect_shape(tmp_path):
    """With one slot and no queue, a second run is 429 with Retry-After; draining, 503."""

    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        slow = {"source_code": "sleep 3", "language_id": 46}
        first = await client.post("/submissions", json=slow, headers=KEY)
        assert first.status_code == 201, first.text
        deadline = time.monotonic() + 20
        while app.state.scheduler.stats().running < 1:
            assert time.monotonic() < deadline, "the slow submission never started"
            await asyncio.sleep(0.05)

        again = await client.post("/submissions", json=slow, headers=KEY)
        assert again.status_code == 429 and is_judge0(again.json()), again.text
        echo = {"language": "bash", "code": "echo"}
        stored = await client.post("/api/v1/submissions", json=echo, headers=KEY)
        assert stored.status_code == 429 and is_execbox(stored.json(), "too_many_submissions")

        async def sync_runs() -> dict[str, httpx.Response]:
            bodies = {
                "v1": ("/api/v1/execute", echo),
                "original": ("/", {"lang": "bash", "code": "echo"}),
                "piston": ("/api/v2/execute", {"language": "bash", "files": [{"content": "echo"}]}),
            }
            return {
                name: await client.post(path, json=body, headers=KEY)
                for name, (path, body) in bodies.items()
            }

        busy = await sync_runs()
        for answer in busy.values():
            assert answer.status_code == 429 and answer.headers["retry-after"].isdigit(), busy
        assert is_execbox(busy["v1"].json(), "queue_full")
        assert is_original(busy["original"].json()) and is_piston(busy["piston"].json())

        app.state.scheduler.stop_admitting()
        draining = await sync_runs()
        assert all(a.status_code == 503 and "retry-after" in a.headers for a in draining.values())
        assert is_execbox(draining["v1"].json(), "shutting_down")
        assert is_original(draining["original"].json()) and is_piston(draining["piston"].json())

    serve(tmp_path, scenario, max_concurrency=1, queue_size=0, max_pending_submissions=1)


# --- pure logic: kinds to statuses, requests to dialects -------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidRequest("bad"), 400, "invalid_request"),
        (UnknownLanguage("cobol", ["c"]), 400, "unknown_language"),
        (LanguageUnavailable("c", "no gcc"), 503, "language_unavailable"),
        (TooManySubmissions("full"), 429, "too_many_submissions"),
        (CallerQueueFull("full", 3), 429, "caller_queue_full"),
        (QueueTimeout("slow", 2), 503, "queue_timeout"),
        (ShuttingDown("bye", 5), 503, "shutting_down"),
        (Unauthorized("key"), 401, "unauthorized"),
    ],
)
def test_each_kind_of_error_has_one_status(error, status, code):
    problem = problem_of(error)
    assert problem is not None
    assert (problem.status, problem.code, problem.message) == (status, code, str(error))
    refused = isinstance(error, CallerQueueFull | QueueTimeout | ShuttingDown)
    assert ("Retry-After" in problem.headers) == refused


def test_an_unexpected_error_is_no_kind():
    assert problem_of(RuntimeError("bug")) is None


@pytest.mark.parametrize(
    ("method", "path", "dialect"),
    [
        ("POST", "/api/v1/execute", "execbox"),
        ("GET", "/api/v1/submissions/abc", "execbox"),
        ("POST", "/", "original"),
        ("POST", "/api/v2/execute", "piston"),
        ("GET", "/api/v2/execute", "piston"),
        ("GET", "/submissions/abc", "judge0"),
        ("GET", "/languages/71", "judge0"),
        ("GET", "/nope", "execbox"),
    ],
)
def test_a_request_belongs_to_the_dialect_of_its_route(method, path, dialect):
    create_app(Settings())  # the dialects' routers are those an app serves
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    assert dialect_of(scope).name == dialect
