"""What the cluster tests (and scripts/cluster_bench.py) share: a PostgreSQL server of their
own (Debian's PostgreSQL 15, run as an unprivileged user), fresh databases in it, and
`execbox worker` processes. The session's server is the ``postgres`` fixture of the plugin
``postgres_fixture``."""

from __future__ import annotations

import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from conftest import Server, free_port, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "execbox-pg"  # not nobody: uid 65534 is a sandbox uid the other tests watch


def _as_pg_user(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", PG_USER, "--", *argv], capture_output=True, text=True, check=True
    )


@contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server of its own on 127.0.0.1, stopped and removed on exit; its URL."""
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
        )
    home = Path(tempfile.mkdtemp(prefix="execbox-pg-"))
    shutil.chown(home, PG_USER)
    data, port = home / "data", free_port()
    _as_pg_user(str(PG_BIN / "initdb"), "-D", str(data), "-U", "execbox", "--auth=trust")
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c max_connections=200"
    # Its log goes to a file: the server must not hold our pipes open.
    log = str(home / "postgres.log")
    _as_pg_user(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", log, "-o", options, "-w", "start")
    try:
        yield f"postgresql://execbox@127.0.0.1:{port}/postgres"
    finally:
        _as_pg_user(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(home, ignore_errors=True)


def fresh_database(base_url: str, name: str) -> str:
    """An empty database ``name`` on the server (dropped first if it exists); its URL."""
    with psycopg.connect(base_url, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {name}")
    return base_url.rsplit("/", 1)[0] + "/" + name


class Worker(Server):
    """`execbox worker`: no HTTP, ready once its log says so."""

    def start(self) -> Server:
        self.spawn()

        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.log.read_text()[-3000:]}")
            return "worker ready" in self.log.read_text(errors="replace")

        wait_for(ready, 120, "the worker's start")
        return self
