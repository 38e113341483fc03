"""The ``postgres`` fixture: one PostgreSQL server for the whole session. A pytest plugin
(``pytest_plugins = ["postgres_fixture"]`` in the cluster tests), so that every module that
asks for it shares the one server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_support import PG_BIN, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """The session's PostgreSQL server; its URL."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("Debian's PostgreSQL 15 is not installed (make setup installs it)")
    with postgres_server() as url:
        yield url
