"""Load benchmark: a burst of requests at high concurrency against a running execbox server.

    python scripts/load_bench.py [--url http://127.0.0.1:8081] [--requests 400] [--concurrency 64]

Mixes quick programs (bash and python hello-world) with slow ones (python sleeping 0.5 s) and
prints throughput, p50/p99 latency per outcome, and the counts of results and refusals. Every
request is bounded in time; the loop stops by itself. Targets only the URL given (loopback by
default).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter

import httpx

PROGRAMS = [
    ("bash-hello", {"language": "bash", "code": "echo hello"}),
    ("python-hello", {"language": "python", "code": "print('hello')"}),
    ("python-slow", {"language": "python", "code": "import time; time.sleep(0.5); print('slow')"}),
]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8081")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    semaphore = asyncio.Semaphore(args.concurrency)
    outcomes: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {}
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.url, timeout=args.timeout, limits=limits) as client:

        async def one(i: int) -> None:
            name, body = PROGRAMS[i % len(PROGRAMS)]
            async with semaphore:
                started = time.perf_counter()
                try:
                    response = await client.post("/api/v1/execute", json=body)
                    if response.status_code == 200:
                        outcome = f"200 {response.json()['status']}"
                    else:
                        outcome = f"{response.status_code} {response.json().get('error')}"
                except httpx.HTTPError as err:
                    outcome = f"transport error {type(err).__name__}"
                elapsed = time.perf_counter() - started
            outcomes[outcome] += 1
            latencies.setdefault(outcome, []).append(elapsed)
            if outcome.startswith("200"):
                latencies.setdefault(f"200 {name}", []).append(elapsed)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(args.requests)))
        wall = time.perf_counter() - started

    answered = sum(n for o, n in outcomes.items() if not o.startswith("transport"))
    print(f"{args.requests} requests at concurrency {args.concurrency} in {wall:.2f} s")
    print(
        f"throughput: {args.requests / wall:.1f} requests/s answered, "
        f"{sum(n for o, n in outcomes.items() if o.startswith('200')) / wall:.1f} runs/s"
    )
    print(f"answered: {answered}/{args.requests}")
    print(f"{'outcome':<28}{'count':>7}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for outcome in sorted(latencies):
        values = latencies[outcome]
        count = outcomes.get(outcome, len(values))
        print(
            f"{outcome:<28}{count:>7}{percentile(values, 0.5) * 1000:>10.1f}"
            f"{percentile(values, 0.99) * 1000:>10.1f}{statistics.mean(values) * 1000:>10.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
