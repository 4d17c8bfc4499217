"""The jobs' metrics: the exact exposition text, in the textfile (written whole, atomically)
and from a real HTTP /metrics on loopback; a private registry carries nothing else."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from snapfs.jobs.metrics import JobFigures, JobMetrics, RepositoryFigures
from snapfs.jobs.records import RunRecord

OK = RunRecord("lake", "success", 1_700_000_000.0, 1_700_000_042.5, "ab" * 32, 4096)
FAILED = RunRecord("lake", "failure", 1_700_003_600.0, 1_700_003_601.0, step="copy",
                   error="copy to offsite: no repository")  # fmt: skip

EXPECTED = """\
# HELP snapfs_job_last_success_timestamp_seconds When the job's last successful run finished (Unix time).
# TYPE snapfs_job_last_success_timestamp_seconds gauge
snapfs_job_last_success_timestamp_seconds{job="lake",repository="main"} 1.7000000425e+09
# HELP snapfs_job_last_run_timestamp_seconds When the job's last run finished (Unix time).
# TYPE snapfs_job_last_run_timestamp_seconds gauge
snapfs_job_last_run_timestamp_seconds{job="lake",repository="main"} 1.700003601e+09
# HELP snapfs_job_last_run_success 1 if the job's last run succeeded, else 0.
# TYPE snapfs_job_last_run_success gauge
snapfs_job_last_run_success{job="lake",repository="main"} 0.0
# HELP snapfs_job_duration_seconds How long the job's last run took.
# TYPE snapfs_job_duration_seconds gauge
snapfs_job_duration_seconds{job="lake",repository="main"} 1.0
# HELP snapfs_job_bytes_added Bytes the job's last run stored anew.
# TYPE snapfs_job_bytes_added gauge
snapfs_job_bytes_added{job="lake",repository="main"} 0.0
# HELP snapfs_repository_snapshots Snapshots in the repository.
# TYPE snapfs_repository_snapshots gauge
snapfs_repository_snapshots{repository="main"} 7.0
snapfs_repository_snapshots{repository="offsite"} 6.0
# HELP snapfs_repository_stored_bytes Bytes of packs the repository stores.
# TYPE snapfs_repository_stored_bytes gauge
snapfs_repository_stored_bytes{repository="main"} 1.048576e+06
snapfs_repository_stored_bytes{repository="offsite"} 999.0
"""  # noqa: E501


def _metrics() -> JobMetrics:
    m = JobMetrics()
    m.set_job("lake", JobFigures("main", FAILED, OK))
    m.set_job("new", JobFigures("main", None, None))  # never ran: no series yet
    m.set_repository("offsite", RepositoryFigures(6, 999))
    m.set_repository("main", RepositoryFigures(7, 1 << 20))
    return m


def test_textfile_is_exact_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "node_exporter" / "snapfs.prom"
    m = _metrics()
    m.write(path)
    assert path.read_text() == EXPECTED
    inode = path.stat().st_ino
    m.set_job("lake", JobFigures("main", OK, OK))
    m.write(path)
    text = path.read_text()
    assert 'snapfs_job_last_run_success{job="lake",repository="main"} 1.0\n' in text
    assert 'snapfs_job_bytes_added{job="lake",repository="main"} 4096.0\n' in text
    assert 'snapfs_job_duration_seconds{job="lake",repository="main"} 42.5\n' in text
    assert path.stat().st_ino != inode  # renamed over, never rewritten in place
    assert os.listdir(path.parent) == ["snapfs.prom"]


def test_http_metrics_on_loopback() -> None:
    m = _metrics()
    server = m.serve("127.0.0.1:0")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.read().decode() == EXPECTED
    finally:
        server.shutdown()
        server.server_close()
