"""One run of a job: before hook -> backup -> forget by ``keep`` -> prune when due -> copy to
each replica -> check when due -> drill when due -> after hook.

The first step that fails ends the run as a failure, naming that step and its one-line
error; the steps after it do not run, except the after hook, which runs once the run holds
its lock, whatever happened (it is where a before hook's work is undone: a file system
snapshot released, a dump removed), and learns the outcome from SNAPFS_JOB_STATUS and
SNAPFS_JOB_STEP. An after hook that fails turns a successful run into a failed one.

A backup whose snapshot is saved with unreadable files (the CLI's exit 3) passes; its
detail counts them. The steps call the operations exactly as the CLI's verbs do.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from snapfs.errors import RepositoryNotFound, SnapfsError, WrongPassword
from snapfs.jobs.config import Config, JobConfig, RepositoryConfig, parse_subset
from snapfs.jobs.history import History
from snapfs.jobs.records import RunRecord, StepResult
from snapfs.sources.base import S3_BACKUP_WORKERS
from snapfs.sources.stream import CommandFailed

if TYPE_CHECKING:
    from snapfs.repository import Repository
    from snapfs.snapshot import Snapshot, SnapshotFilter
    from snapfs.sources.base import Source

StepHandler = Callable[[StepResult], None]
STOPPED = "not run: snapfs is stopping"


class JobRunning(SnapfsError):
    """The job's lock is held: it runs already, in this process or another."""


class JobNotFound(SnapfsError):
    pass


class StepFailed(SnapfsError):
    pass


def run_job(
    config: Config,
    name: str,
    *,
    on_step: StepHandler | None = None,
    now: Callable[[], float] = time.time,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunRecord:
    """Run job ``name`` once, now, and add the run to the history. JobRunning, before
    anything runs, when the job's lock is held; otherwise the run's failures are in the
    record, not raised. ``should_stop`` is asked before each step (a step is never cut
    short): once true, the run fails at the step it did not start, STOPPED its error, and
    only the after hook still runs."""
    job = config.jobs.get(name)
    if job is None:
        known = ", ".join(sorted(config.jobs)) or "none"
        raise JobNotFound(f"no job {name!r} in {config.path} (jobs: {known})")
    history = History(config.daemon.state_dir)
    with job_lock(config.daemon.state_dir, name), ExitStack() as repositories:
        run = _Run(config, job, history, on_step or (lambda _s: None), now, repositories)
        run.should_stop = should_stop
        record = run.run()
        history.add(record)
        run.summarise(record)
    return record


@contextmanager
def job_lock(state_dir: Path, name: str) -> Iterator[None]:
    """The job's lock: an flock on state_dir/locks/<job>.lock, held for the run. The kernel
    drops it with the process, so a killed run leaves no stale lock. The file names the
    holder's pid, for the message another run gets."""
    locks = Path(state_dir) / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{urllib.parse.quote(name, safe='')}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise JobRunning(f"job {name} is already running (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def read_password(repo: RepositoryConfig, cwd: Path | None = None) -> str:
    """The repository's password: the first line of password-file, or of password-command's
    output (the command run in ``cwd``: the config file's directory). Never put in an
    argument or the environment of anything, never logged."""
    if repo.password_file is not None:
        try:
            with open(repo.password_file, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except OSError as e:
            raise SnapfsError(
                f"repository {repo.name}: cannot read password file {repo.password_file}: "
                f"{e.strerror}"
            ) from None
    assert repo.password_command is not None
    try:
        done = subprocess.run(list(repo.password_command), stdin=subprocess.DEVNULL,
                              capture_output=True, cwd=cwd, check=False)  # fmt: skip
    except OSError as e:
        raise SnapfsError(
            f"repository {repo.name}: password-command {repo.password_command[0]}: {e.strerror}"
        ) from None
    if done.returncode != 0:  # its stderr is not shown: it may echo what it was asked
        raise SnapfsError(
            f"repository {repo.name}: password-command exited with status {done.returncode}"
        )
    return done.stdout.decode("utf-8", "replace").partition("\n")[0].rstrip("\r")


def open_repository(repo: RepositoryConfig, cwd: Path | None = None) -> Repository:
    from snapfs.repository import Repository
    from snapfs.store.url import open_backend

    password = read_password(repo, cwd)
    backend = open_backend(repo.url, s3_endpoint=repo.s3_endpoint)
    try:
        return Repository.open(backend, password)
    except RepositoryNotFound:
        raise RepositoryNotFound(f"no repository at {repo.url} (repository {repo.name})") from None
    except WrongPassword as e:  # which of the job's repositories refused it
        raise WrongPassword(f"repository {repo.name}: {e}") from None


def job_filter(job: JobConfig) -> SnapshotFilter:
    """The job's own snapshots: this host's, of its paths, with all its tags."""
    from snapfs.snapshot import SnapshotFilter

    tags = (",".join(job.tags),) if job.tags else ()
    return SnapshotFilter.parse((os.uname().nodename,), tags, job.snapshot_paths)


def job_source(job: JobConfig, cwd: Path) -> Source | None:
    """What the job backs up when not local paths: its command's output (run in ``cwd``, as
    the hooks are), or S3 prefixes."""
    if job.command:
        from snapfs.sources.stream import command_source

        return command_source(list(job.command), job.filename, str(cwd))
    if job.paths[0].startswith("s3://"):
        from snapfs.sources.s3 import S3Source  # boto3 loads only here

        return S3Source(list(job.paths), endpoint_url=job.source_endpoint,
                        profile=job.source_profile, callers=S3_BACKUP_WORKERS)  # fmt: skip
    return None


class _Run:
    def __init__(self, config: Config, job: JobConfig, history: History,
                 on_step: StepHandler, now: Callable[[], float],
                 repositories: ExitStack) -> None:  # fmt: skip
        self.config, self.job, self.history = config, job, history
        self.stack = repositories  # the repositories opened, closed once the run is summarised
        self.cwd = config.path.parent  # where hooks and password commands run
        self.on_step, self.now = on_step, now
        self.steps: list[StepResult] = []
        self.snapshot: Snapshot | None = None
        self.repo: Repository | None = None
        self.should_stop: Callable[[], bool] = lambda: False

    def run(self) -> RunRecord:
        started = self.now()
        failed: StepResult | None = None
        for step, action in self._plan():
            if self.should_stop():
                failed = StepResult(step, False, self.now(), self.now(), error=STOPPED)
                self.steps.append(failed)
                break
            result = self._step(step, action, self.stack)
            if not result.ok:
                failed = result
                break
        after = self._after(failed)
        if failed is None and after is not None and not after.ok:
            failed = after
        snap = self.snapshot
        return RunRecord(
            job=self.job.name,
            status="failure" if failed else "success",
            started=started,
            finished=self.now(),
            snapshot=snap.id if snap else None,
            bytes_added=snap.summary.stored_bytes_added if snap else 0,
            step=failed.step if failed else None,
            error=failed.error if failed else None,
            steps=tuple(self.steps),
        )

    def _plan(self) -> Iterator[tuple[str, Callable[[ExitStack], str | None]]]:
        job = self.job
        if job.before:
            yield "before", lambda _s: self._hook(job.before, {})
        yield "backup", self._backup
        if job.keep:
            yield "forget", lambda _s: self._forget()
        if self._due("prune", job.prune_every):
            yield "prune", lambda _s: self._prune()
        for replica in job.copy_to:
            yield "copy", lambda s, r=replica: self._copy(s, r)  # type: ignore[misc]
        if self._due("check", job.check_every):
            yield "check", lambda _s: self._check()
        if self._due("drill", job.drill_every):
            yield "drill", lambda _s: self._drill()

    def _due(self, step: str, every: float | None) -> bool:
        if every is None:
            return False
        last = self.history.last_step(self.job.name, step)
        return last is None or self.now() - last >= every

    def _step(
        self, step: str, action: Callable[[ExitStack], str | None], stack: ExitStack
    ) -> StepResult:
        started = self.now()
        try:
            detail = action(stack)
            result = StepResult(step, True, started, self.now(), detail=detail)
        except SnapfsError as e:
            result = StepResult(step, False, started, self.now(), error=_one_line(e))
        except OSError as e:
            where = f"{os.fsdecode(e.filename)}: " if e.filename else ""
            result = StepResult(step, False, started, self.now(),
                                error=f"{where}{e.strerror or e}")  # fmt: skip
        except Exception as e:  # a bug: still a failed step, recorded, with the after hook run
            result = StepResult(step, False, started, self.now(),
                                error=f"internal error: {type(e).__name__}: {e}")  # fmt: skip
        self.steps.append(result)
        self.on_step(result)
        return result

    def _after(self, failed: StepResult | None) -> StepResult | None:
        if not self.job.after:
            return None
        env = {"SNAPFS_JOB": self.job.name, "SNAPFS_JOB_STATUS": "failure" if failed else "success",
               "SNAPFS_JOB_STEP": failed.step if failed else ""}  # fmt: skip
        return self._step("after", lambda _s: self._hook(self.job.after, env), ExitStack())

    def _hook(self, argv: tuple[str, ...], env: dict[str, str]) -> str | None:
        shown = " ".join(argv)
        try:
            done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env={**os.environ, **env}, cwd=self.cwd,
                                  check=False)  # fmt: skip
        except OSError as e:
            raise StepFailed(f"{shown}: {e.strerror}") from None
        if done.returncode != 0:
            last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            said = f": {last[0]}" if last else ""
            status = (
                f"signal {-done.returncode}" if done.returncode < 0 else f"status {done.returncode}"
            )
            raise StepFailed(f"{shown} exited with {status}{said}")
        return None

    def _open(self, stack: ExitStack) -> Repository:
        if self.repo is None:
            repo_config = self.config.repositories[self.job.repository]
            self.repo = stack.enter_context(open_repository(repo_config, self.cwd))
        return self.repo

    def _backup(self, stack: ExitStack) -> str:
        from snapfs.backup import backup

        repo = self._open(stack)
        job = self.job
        source = job_source(job, self.cwd)
        workers = S3_BACKUP_WORKERS if job.paths and source is not None else None
        try:
            snap = backup(repo, list(job.paths), tags=list(job.tags), excludes=list(job.exclude),
                          source=source, workers=workers)  # fmt: skip
        except CommandFailed as e:  # the history's one line: with why, as a hook's says it
            tail = getattr(e, "details", None)
            raise StepFailed(f"{e}: {tail[-1]}" if tail else str(e)) from e
        finally:
            if source is not None:
                source.close()
        self.snapshot = snap
        s = snap.summary
        warned = f"; {s.warnings} files could not be read" if s.warnings else ""
        return (
            f"snapshot {snap.short_id}: {s.files} files, {s.stored_bytes_added} bytes added{warned}"
        )

    def _forget(self, repo: Repository | None = None) -> str:
        from snapfs.forget import forget
        from snapfs.retention import Policy

        assert self.repo is not None
        policy = Policy(**self.job.keep)  # type: ignore[arg-type]  # counts only: config.py
        plan = forget(repo or self.repo, policy, snapshot_filter=job_filter(self.job))
        removed = sum(not d.keep for ds in plan.values() for d in ds)
        return f"{removed} snapshots removed"

    def _prune(self) -> str:
        from snapfs.prune import prune

        assert self.repo is not None
        report = prune(self.repo)
        return f"condemned {report.condemned_packs} packs; deleted {report.deleted_packs}"

    def _copy(self, stack: ExitStack, name: str) -> str:
        from snapfs.copy import copy_snapshots
        from snapfs.snapshot import filter_snapshots

        assert self.repo is not None
        scope = job_filter(self.job)
        dest = stack.enter_context(open_repository(self.config.repositories[name], self.cwd))
        result = copy_snapshots(self.repo, dest, lambda snaps: filter_snapshots(snaps, scope))
        if result.not_copied:
            n = result.not_copied[0]
            raise StepFailed(f"to {name}: snapshot {n.original.short_id} is not copied: {n.error}")
        new = sum(not c.existed for c in result.copied)
        kept = f"; {self._forget(dest)}" if self.job.keep else ""  # the replica keeps as much
        return f"to {name}: {new} snapshots copied{kept}"

    def _check(self) -> str:
        from snapfs.check import check

        assert self.repo is not None
        subset = parse_subset(self.job.check_subset) if self.job.check_subset else None
        report = check(self.repo, subset=subset)
        if not report.ok:
            more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
            raise StepFailed(f"{report.errors[0]}{more}")
        return f"{report.packs_read} of {report.packs} packs read"

    def _drill(self) -> str:
        from snapfs.jobs.drill import drill

        assert self.repo is not None and self.snapshot is not None
        report = drill(self.repo, self.snapshot, self.job.drill_files)
        return f"{report.files} files restored and checked"

    def summarise(self, record: RunRecord) -> None:
        """The run, summarised in the job's repository for other machines. Best effort: the
        run is over and in the history; a repository that cannot be reached now was already
        the run's failure."""
        from snapfs.jobs.summary import write_summary

        if self.repo is None:
            return
        try:
            last = self.history.last_success(self.job.name)
            write_summary(self.repo, os.uname().nodename, record, last)
        except (SnapfsError, OSError):
            pass


def _one_line(error: SnapfsError) -> str:
    return " ".join(str(error).split("\n")[0].split()) or type(error).__name__
