"""Prometheus metrics: HTTP requests, jobs and the database pool."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "kai_http_requests",
    "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "kai_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
JOBS = Counter(
    "kai_jobs",
    "Job attempts finished, by kind and outcome (succeeded, retried, failed, cancelled).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "kai_job_duration_seconds",
    "Time a job attempt ran, by kind.",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)


class PoolStats:
    """A snapshot of a connection pool, as the collector reports it."""

    def __init__(self, size: int, checked_out: int, overflow: int, idle: int) -> None:
        self.size, self.checked_out, self.overflow, self.idle = size, checked_out, overflow, idle


def _no_pool() -> PoolStats | None:
    return None


class DatabasePoolCollector(Collector):
    """Reads the pool's counters at scrape time, so nothing is tracked on the hot path."""

    def __init__(self) -> None:
        self.read_stats: Callable[[], PoolStats | None] = _no_pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.read_stats()
        if stats is None:
            return
        for name, help_text, value in (
            ("kai_db_pool_size", "Connections the pool keeps open.", stats.size),
            ("kai_db_pool_checked_out", "Connections in use.", stats.checked_out),
            ("kai_db_pool_overflow", "Connections open beyond the pool size.", stats.overflow),
            ("kai_db_pool_idle", "Open connections waiting in the pool.", stats.idle),
        ):
            yield GaugeMetricFamily(name, help_text, value=value)


DB_POOL = DatabasePoolCollector()
REGISTRY.register(DB_POOL)
