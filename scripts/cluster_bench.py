"""Cluster mode's benchmark (run by hand; not part of the test suite).

Starts a PostgreSQL server of its own as the cluster tests do (Debian's PostgreSQL 15 as the
unprivileged user `execbox-pg`), then:

1. throughput: for 1, 2 and 4 `execbox worker` processes (each with its default slots, one
   per core) plus one API-only node (`execbox serve --no-worker`), posts N bash hellos as
   stored submissions through the API node and times them until the last one is done;
2. dispatch latency: the same synchronous execution (`/api/v1/execute`, bash hello), one at a
   time, on an API-only node (stored, queued, run by a worker, awaited) and on a node with its
   own sandboxes (`execbox serve` in cluster mode: run where it is asked), median and p90.

Needs root (the workers' sandboxes) and the cluster extra. Everything it starts it stops;
every loop is bounded in count and time.

    .venv/bin/python scripts/cluster_bench.py --n 200 --runs 30
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cluster_support import PG_BIN, Worker, fresh_database, postgres_server
from conftest import Server

BATCH = 50
DONE_TIMEOUT_S = 600.0


def _env(url: str) -> dict[str, str]:
    # Generous queue bounds: the benchmark measures the queue, not its admission.
    return {"EXECBOX_DATABASE_URL": url, "EXECBOX_QUEUE_TIMEOUT_S": "300"}


def _stop(nodes: list[Server]) -> None:
    for node in nodes:
        node.stop(signal.SIGTERM, timeout=30)


def _post_hellos(api: Server, n: int) -> None:
    with httpx.Client(base_url=api.url, timeout=120) as client:
        for start in range(0, n, BATCH):
            bodies = [
                {"language": "bash", "code": f"echo hello {i}"}
                for i in range(start, min(n, start + BATCH))
            ]
            response = client.post("/api/v1/submissions/batch", json={"submissions": bodies})
            response.raise_for_status()


def _wait_all_done(url: str, n: int) -> None:
    deadline = time.monotonic() + DONE_TIMEOUT_S
    with psycopg.connect(url, autocommit=True) as db:
        while time.monotonic() < deadline:
            (done,) = db.execute(
                "SELECT count(*) FROM execbox_submissions WHERE state = 'done'"
            ).fetchone()
            if done >= n:
                return
            time.sleep(0.05)
    raise TimeoutError(f"not all {n} submissions were done within {DONE_TIMEOUT_S:g} s")


def throughput(base_url: str, workers: int, n: int) -> float:
    """Submissions per second with ``workers`` worker processes, post to last result."""
    url = fresh_database(base_url, f"bench_{workers}")
    env = _env(url)
    nodes: list[Server] = [Worker(env=env, command=("worker",)).start() for _ in range(workers)]
    try:
        nodes.append(Server(env=env, command=("serve", "--no-worker")).start())
        _post_hellos(nodes[-1], min(n, 20))  # warm every worker's pool and the API node
        _wait_all_done(url, min(n, 20))
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("DELETE FROM execbox_submissions")
        started = time.monotonic()
        _post_hellos(nodes[-1], n)
        _wait_all_done(url, n)
        return n / (time.monotonic() - started)
    finally:
        _stop(nodes)


def _latencies(node: Server, runs: int) -> list[float]:
    times = []
    with httpx.Client(base_url=node.url, timeout=120) as client:
        for i in range(runs + 3):
            started = time.perf_counter()
            response = client.post(
                "/api/v1/execute", json={"language": "bash", "code": f"echo hello {i}"}
            )
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            assert response.json()["run"]["stdout"] == f"hello {i}\n", response.text
            if i >= 3:  # the first few warm the pools
                times.append(elapsed * 1000)
    return times


def dispatch_latency(base_url: str, runs: int) -> dict[str, list[float]]:
    """Synchronous run times (ms): on an API-only node, and on a node with sandboxes."""
    url = fresh_database(base_url, "bench_latency")
    env = _env(url)
    nodes: list[Server] = [Worker(env=env, command=("worker",)).start()]
    try:
        nodes.append(Server(env=env, command=("serve", "--no-worker")).start())
        nodes.append(Server(env=env).start())  # `execbox serve`: the API and sandboxes
        return {
            "API-only node (dispatched to a worker)": _latencies(nodes[1], runs),
            "node with sandboxes (runs it itself)": _latencies(nodes[2], runs),
        }
    finally:
        _stop(nodes)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="submissions per worker count")
    parser.add_argument("--runs", type=int, default=30, help="synchronous runs per node")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the workers' sandboxes need it")
    if not (PG_BIN / "initdb").exists():
        sys.exit(f"no PostgreSQL 15 at {PG_BIN} (apt-get install postgresql-15)")
    load = os.getloadavg()
    print(f"host: {platform.node()}, {os.cpu_count()} cores, load {load[0]:.1f} {load[1]:.1f}")
    with postgres_server() as base_url:
        print(f"\nthroughput, {args.n} bash hellos as stored submissions via one API-only node")
        print("| workers | submissions/s |\n|---|---|")
        for count in (int(c) for c in args.workers.split(",")):
            print(f"| {count} | {throughput(base_url, count, args.n):.1f} |", flush=True)
        print(f"\nsynchronous bash hello, {args.runs} runs one at a time (ms)")
        print("| where | median | p90 |\n|---|---|---|")
        for where, times in dispatch_latency(base_url, args.runs).items():
            median, p90 = statistics.median(times), _percentile(times, 0.9)
            print(f"| {where} | {median:.1f} | {p90:.1f} |", flush=True)
    load = os.getloadavg()
    print(f"\nload after: {load[0]:.1f} {load[1]:.1f}")


if __name__ == "__main__":
    main()
