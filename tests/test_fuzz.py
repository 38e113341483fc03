"""Property-based fuzzing of every route (issue 13): whatever a client sends, the answer is
never a 5xx. The routes in the OpenAPI schema are fuzzed from it (schemathesis); the routes
that read their body by hand (Piston, Judge0, the v1 batch) and the Piston WebSocket get
random JSON values and bytes (hypothesis). Bounded: a few dozen examples per route."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from conftest import Server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

EXAMPLES_PER_OPERATION = 60
RAW_EXAMPLES = 100


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[Server]:
    # Short runs: a generated program that happens to be valid must not hold the test up.
    env = {"EXECBOX_WARM_POOL": "0", "EXECBOX_RUN_WALL_TIME_MS": "1000"}
    srv = Server(env).start()
    yield srv
    srv.stop()


def _openapi_operations() -> list:
    """The operations of the schema the server serves at /openapi.json (built here, from the
    same app, so that tests can be collected before a server runs)."""
    from execbox.api import create_app
    from execbox.config import Settings

    spec = create_app(Settings()).openapi()
    return [result.ok() for result in schemathesis.openapi.from_dict(spec).get_all_operations()]


@pytest.mark.parametrize("operation", _openapi_operations(), ids=lambda o: o.label)
def test_openapi_routes_never_answer_5xx(fuzz_server, operation):
    cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
        GenerationMode.NEGATIVE
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:
        response = case.call(base_url=fuzz_server.url, timeout=60)
        assert response.status_code < 500, (case.as_curl_command(), response.text)

    check()


# --- routes that read their body by hand -------------------------------------------------------

FIELD_NAMES = [
    # Piston
    "language", "version", "files", "name", "content", "encoding", "stdin", "args",
    "run_timeout", "compile_timeout", "run_memory_limit", "compile_memory_limit",
    "run_cpu_time", "compile_cpu_time", "type", "stream", "data", "signal",
    # Judge0
    "source_code", "language_id", "compiler_options", "command_line_arguments",
    "expected_output", "cpu_time_limit", "wall_time_limit", "memory_limit", "stack_limit",
    "max_file_size", "number_of_runs", "additional_files", "callback_url",
    "redirect_stderr_to_stdout", "enable_network", "submissions",
    # execbox
    "code", "limits", "test_cases", "output_encoding",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()  # NaN and Infinity too: json.dumps writes them
    | st.text(st.characters(exclude_categories=()), max_size=30)  # lone surrogates too
    | st.sampled_from(["python", "bash", "c", "*", "utf8", "base64", "hex", "stdin", "init"])
    | st.sampled_from([46, 50, 71, -1, 0, 1e300, "\x00", "a\x00b", "../x", "/etc/passwd"])
    | st.sampled_from(["\ud800", "a\udfffb", "1" * 5000, "9" * 40])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=24,
)
NESTED = st.integers(1, 50_000).map(lambda n: ("[" * n + "]" * n).encode())
BODIES = JSON_VALUES.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200) | NESTED
RAW_ROUTES = [
    "/api/v2/execute",
    "/submissions",
    "/submissions/batch",
    "/api/v1/submissions/batch",
    "/authenticate",
    "/authorize",
    "/",
]


@pytest.mark.parametrize("path", RAW_ROUTES)
def test_raw_body_routes_never_answer_5xx(fuzz_server, path):
    with httpx.Client(base_url=fuzz_server.url, timeout=60) as client:

        @given(body=BODIES)
        @settings(max_examples=RAW_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def check(body: bytes) -> None:
            response = client.post(path, content=body)
            assert response.status_code < 500, (body, response.status_code, response.text)

        check()


def test_websocket_messages_never_end_in_an_internal_error(fuzz_server):
    """Any two messages, text or binary: the socket is closed with one of Piston's codes."""
    from websockets.sync.client import connect

    url = fuzz_server.url.replace("http://", "ws://") + "/api/v2/connect"

    messages = (
        JSON_VALUES.map(json.dumps)
        | st.binary(max_size=50)
        | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    )

    @given(first=messages, second=messages)
    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    def check(first: str | bytes, second: str | bytes) -> None:
        with connect(url, open_timeout=10, close_timeout=5) as socket:
            socket.send(first)
            try:
                socket.send(second)
                while True:
                    socket.recv(timeout=15)
            except Exception:
                pass
        # Piston's codes (4999: a generated init that ran); never 1006/1011 (the server broke).
        assert socket.close_code in (4000, 4001, 4002, 4003, 4004, 4005, 4999), (
            first,
            second,
            socket.close_code,
        )

    check()
