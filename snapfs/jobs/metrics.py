"""The jobs' figures for Prometheus: per job its last run and last success, per repository its
snapshots and stored bytes. Held in a private registry (never the process-wide default, so
nothing else leaks in), written as a node_exporter textfile and/or served on HTTP /metrics.

Thread-safe: the daemon updates from its run thread while the HTTP server's thread scrapes;
each scrape or write sees one consistent set of figures.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from snapfs.jobs.records import RunRecord

_JOB = ("job", "repository")


@dataclass(frozen=True)
class JobFigures:
    repository: str
    last_run: RunRecord | None
    last_success: RunRecord | None


@dataclass(frozen=True)
class RepositoryFigures:
    snapshots: int
    stored_bytes: int


class JobMetrics(Collector):
    """The figures as they were last set; a job that never ran reports only what it knows
    (no last-run series until it has run)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobFigures] = {}
        self._repositories: dict[str, RepositoryFigures] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def set_job(self, job: str, figures: JobFigures) -> None:
        with self._lock:
            self._jobs[job] = figures

    def set_repository(self, name: str, figures: RepositoryFigures) -> None:
        with self._lock:
            self._repositories[name] = figures

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            jobs, repos = dict(self._jobs), dict(self._repositories)
        yield from _job_families(sorted(jobs.items()))
        yield from _repository_families(sorted(repos.items()))

    def write(self, path: Path) -> None:
        """The textfile at ``path``, atomically (a temporary file renamed over it), so
        node_exporter never reads half of it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry)

    def serve(self, listen: str) -> WSGIServer:
        """/metrics on ``listen`` ("HOST:PORT"; HOST empty: every address; PORT 0: any free
        one, see ``server_port``), on a daemon thread of prometheus_client's. OSError when
        the port is taken. ``shutdown()`` on the answer stops it."""
        host, _, port = listen.rpartition(":")
        server, _thread = start_http_server(
            int(port), addr=host or "0.0.0.0", registry=self.registry
        )
        return server


def _job_families(jobs: Iterable[tuple[str, JobFigures]]) -> Iterator[Metric]:
    success_at = GaugeMetricFamily(
        "snapfs_job_last_success_timestamp_seconds",
        "When the job's last successful run finished (Unix time).", labels=_JOB)  # fmt: skip
    run_at = GaugeMetricFamily(
        "snapfs_job_last_run_timestamp_seconds",
        "When the job's last run finished (Unix time).", labels=_JOB)  # fmt: skip
    run_ok = GaugeMetricFamily(
        "snapfs_job_last_run_success", "1 if the job's last run succeeded, else 0.", labels=_JOB
    )
    duration = GaugeMetricFamily(
        "snapfs_job_duration_seconds", "How long the job's last run took.", labels=_JOB
    )
    added = GaugeMetricFamily(
        "snapfs_job_bytes_added", "Bytes the job's last run stored anew.", labels=_JOB
    )
    for job, f in jobs:
        labels = [job, f.repository]
        if f.last_success is not None:
            success_at.add_metric(labels, f.last_success.finished)
        if f.last_run is not None:
            run_at.add_metric(labels, f.last_run.finished)
            run_ok.add_metric(labels, 1.0 if f.last_run.status == "success" else 0.0)
            duration.add_metric(labels, f.last_run.duration)
            added.add_metric(labels, float(f.last_run.bytes_added))
    return iter((success_at, run_at, run_ok, duration, added))


def _repository_families(repos: Iterable[tuple[str, RepositoryFigures]]) -> Iterator[Metric]:
    snapshots = GaugeMetricFamily(
        "snapfs_repository_snapshots", "Snapshots in the repository.", labels=("repository",)
    )
    stored = GaugeMetricFamily(
        "snapfs_repository_stored_bytes", "Bytes of packs the repository stores.",
        labels=("repository",),
    )  # fmt: skip
    for name, f in repos:
        snapshots.add_metric([name], float(f.snapshots))
        stored.add_metric([name], float(f.stored_bytes))
    return iter((snapshots, stored))
