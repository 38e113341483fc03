"""Docker backend benchmark: a hello-world in python and bash, side by side in one run, through

  - the native backend (bwrap, warm pool),
  - the Docker backend with its warm pool,
  - the Docker backend without it (a container created per request),
  - a plain `docker run --rm` of the same image (what the original service did per request),

and the median latency of each with ratios. Writes docs/docker-benchmark.md.

    .venv/bin/python scripts/docker_bench.py [--requests 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench import start_server

ROOT = Path(__file__).resolve().parent.parent
IMAGE = os.environ.get("EXECBOX_DOCKER_IMAGE", "execbox-runtime:latest")
HELLO = {
    "python": ("print('hello')", ["python3", "-c", "print('hello')"]),
    "bash": ("echo hello", ["bash", "-c", "echo hello"]),
}
PAUSE_S = 0.3  # between requests, as a playground sees them; lets the pool refill
SETUPS = {
    "native": {"EXECBOX_BACKEND": "native"},
    "docker, warm pool": {"EXECBOX_BACKEND": "docker", "EXECBOX_WARM_POOL": "2"},
    "docker, no pool": {"EXECBOX_BACKEND": "docker", "EXECBOX_WARM_POOL": "0"},
}


def through_service(env: dict[str, str], requests: int) -> dict[str, float]:
    process, url = start_server(env)
    medians = {}
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            for language, (code, _) in HELLO.items():
                times = []
                for i in range(requests + 2):
                    started = time.perf_counter()
                    body = client.post("/api/v1/execute", json={"language": language, "code": code})
                    elapsed = (time.perf_counter() - started) * 1000
                    assert body.json()["run"]["stdout"] == "hello\n", body.text
                    if i >= 2:  # the first two fill the pool for this profile
                        times.append(elapsed)
                    time.sleep(PAUSE_S)
                medians[language] = statistics.median(times)
    finally:
        process.terminate()
        process.wait(60)
    return medians


def docker_run(requests: int) -> dict[str, float]:
    medians = {}
    for language, (_, argv) in HELLO.items():
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            out = subprocess.run(
                ["docker", "run", "--rm", "--network", "none", IMAGE, *argv],
                capture_output=True,
                check=True,
            ).stdout
            times.append((time.perf_counter() - started) * 1000)
            assert out == b"hello\n"
        medians[language] = statistics.median(times)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    results = {name: through_service(env, args.requests) for name, env in SETUPS.items()}
    results["docker run --rm"] = docker_run(args.requests)
    base = results["native"]
    lines = [
        "# Docker backend benchmark",
        "",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}; image "
        f"`{IMAGE}`; {args.requests} sequential requests per cell ({PAUSE_S}s apart), median "
        "latency in ms (HTTP round trip; `docker run` timed around the CLI), ratio to native.",
        "",
        "| setup | python hello | bash hello |",
        "|---|---|---|",
    ]
    for name, medians in results.items():
        cells = [f"{medians[lang]:.1f} ({medians[lang] / base[lang]:.1f}x)" for lang in HELLO]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (ROOT / "docs" / "docker-benchmark.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
