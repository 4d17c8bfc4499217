"""The runner's edges: the job lock names its holder, and passwords come from their file or
their command's first line, with one-line errors that never show the command's output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapfs.errors import SnapfsError
from snapfs.jobs.config import RepositoryConfig
from snapfs.jobs.runner import JobRunning, job_lock, read_password


def test_the_lock_is_held_once_and_names_its_holder(tmp_path: Path) -> None:
    with job_lock(tmp_path, "lake/x"):
        assert (tmp_path / "locks" / "lake%2Fx.lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(JobRunning) as e, job_lock(tmp_path, "lake/x"):  # a second open file
            pass
        assert str(e.value) == f"job lake/x is already running (pid {os.getpid()})"
        with job_lock(tmp_path, "other"):  # another job is not held up
            pass
    with job_lock(tmp_path, "lake/x"):  # released on leaving
        pass


def _repo(**kw: object) -> RepositoryConfig:
    return RepositoryConfig("main", "/r", **kw)  # type: ignore[arg-type]


def test_passwords_from_a_file_or_a_command(tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("secret\nsecond line\n")
    assert read_password(_repo(password_file=str(tmp_path / "pass"))) == "secret"
    cmd = ("sh", "-c", "printf 'from command\\nmore'")
    assert read_password(_repo(password_command=cmd)) == "from command"
    here = ("sh", "-c", "cat pass")  # run in the directory given: the config file's
    assert read_password(_repo(password_command=here), tmp_path) == "secret"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"password_file": "/nonexistent/pass"},
         "repository main: cannot read password file /nonexistent/pass: No such file or directory"),
        ({"password_command": ("sh", "-c", "echo secret-ish >&2; exit 4")},
         "repository main: password-command exited with status 4"),
        ({"password_command": ("/nonexistent/pw",)},
         "repository main: password-command /nonexistent/pw: No such file or directory"),
    ],
)  # fmt: skip
def test_a_password_that_cannot_be_had_is_one_line(kw: dict[str, object], message: str) -> None:
    with pytest.raises(SnapfsError) as e:
        read_password(_repo(**kw))
    assert str(e.value) == message
