"""Prometheus metrics of the service, in a registry of the app's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from execbox.engine.compile_cache import CompileCache
from execbox.scheduler import Scheduler

# (queue, state) -> jobs, or None when unknown (the database does not answer).
QueueCounts = Callable[[], dict[tuple[str, str], int] | None]
TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge("execbox_queue_depth", "Requests waiting for a slot", registry=r)
        self.running = Gauge("execbox_running", "Executions running now", registry=r)
        self.memory_reserved = Gauge(
            "execbox_memory_reserved_bytes", "Memory limits of running executions", registry=r
        )
        self.memory_budget = Gauge(
            "execbox_memory_budget_bytes", "Memory the running executions may reserve", registry=r
        )
        self.executions = Counter(
            "execbox_executions", "Finished executions", ["language", "status"], registry=r
        )
        self.rejections = Counter(
            "execbox_rejections", "Requests refused by admission", ["reason"], registry=r
        )
        self.cancellations = Counter(
            "execbox_cancellations", "Clients that left before their result", ["stage"], registry=r
        )
        self.queue_wait = Histogram(
            "execbox_queue_wait_seconds", "Time waited for a slot", buckets=TIME_BUCKETS, registry=r
        )
        self.execution_time = Histogram(
            "execbox_execution_seconds",
            "Time from slot to result",
            ["language"],
            buckets=TIME_BUCKETS,
            registry=r,
        )

        self.cache_entries = Gauge(
            "execbox_compile_cache_entries", "Compile outcomes kept", registry=r
        )
        self.cache_bytes = Gauge("execbox_compile_cache_bytes", "Bytes kept", registry=r)
        self.cache_hits = Gauge(
            "execbox_compile_cache_hits", "Compiles answered from the cache", registry=r
        )
        self.cache_misses = Gauge("execbox_compile_cache_misses", "Compiles that ran", registry=r)

    def bind(self, scheduler: Scheduler, cache: CompileCache) -> None:
        self.cache_entries.set_function(lambda: len(cache))
        self.cache_bytes.set_function(lambda: cache.bytes)
        self.cache_hits.set_function(lambda: cache.hits)
        self.cache_misses.set_function(lambda: cache.misses)
        self.queue_depth.set_function(lambda: scheduler.stats().queued)
        self.running.set_function(lambda: scheduler.stats().running)
        self.memory_reserved.set_function(lambda: scheduler.stats().memory_reserved)
        self.memory_budget.set_function(lambda: scheduler.stats().memory_budget)

    def watch_cluster_queue(self, counts: QueueCounts, submissions: str, callbacks: str) -> None:
        """Show cluster mode's shared queue (``submissions`` and ``callbacks`` name its
        procrastinate queues); nothing while ``counts`` knows nothing."""
        self.registry.register(_ClusterQueue(counts, submissions, callbacks))


class _ClusterQueue(Collector):
    def __init__(self, counts: QueueCounts, submissions: str, callbacks: str) -> None:
        self._counts = counts
        self._queues = {"execbox_cluster_queue_depth": submissions}
        self._queues["execbox_cluster_callbacks_pending"] = callbacks

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self._counts()
        if counts is None:
            return
        depth = GaugeMetricFamily(
            "execbox_cluster_queue_depth",
            "Submissions in the cluster's shared queue (every node's), by state",
            labels=["state"],
        )
        callbacks = GaugeMetricFamily(
            "execbox_cluster_callbacks_pending",
            "Callbacks waiting or being sent by some node, by state",
            labels=["state"],
        )
        for family in (depth, callbacks):
            queue = self._queues[family.name]
            for (name, state), jobs in sorted(counts.items()):
                if name == queue:
                    family.add_metric([state], jobs)
            yield family
