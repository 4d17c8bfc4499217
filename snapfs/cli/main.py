"""The ``snapfs`` command: global options, the verbs, and the one error -> exit-code table.

Exit codes: 0 ok, 1 error, 2 usage error (a bad config file too), 3 snapshot saved but some
files could not be read (restore, ls, diff: some entries were refused, damaged, or could not
be restored or read; copy: some snapshots were damaged and not copied),
10 no repository (or no S3 bucket), 11 repository locked, 12 wrong password, 130 interrupted.
S3 credentials refused or an endpoint unreachable after retries: 1; so is a missing bucket
of a backup's S3 source (no repository is missing).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click

from snapfs import allocator
from snapfs.errors import (
    BucketNotFound,
    ConfigError,
    RepositoryLocked,
    RepositoryNotFound,
    SnapfsError,
    WrongPassword,
)
from snapfs.kdf import derive_ahead
from snapfs.version import __version__

if TYPE_CHECKING:  # loaded when used: the repository starts unlocking before they load
    from snapfs.repository import Repository
    from snapfs.store.base import Backend

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_NO_REPO, EXIT_LOCKED, EXIT_WRONG_PASSWORD = 10, 11, 12
_CODES: list[tuple[type[SnapfsError], int]] = [
    (RepositoryNotFound, EXIT_NO_REPO),
    (RepositoryLocked, EXIT_LOCKED),
    (WrongPassword, EXIT_WRONG_PASSWORD),
    (ConfigError, EXIT_USAGE),  # the config file is the jobs' command line
]


def new_password(password: str) -> str:
    """A password about to protect a repository: not an empty one (nor would restic)."""
    if not password:
        raise SnapfsError("an empty password is not a password: choose another")
    return password


def read_password_file(path: str) -> str:
    """The first line of ``path``, without its line ending."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except OSError as e:
        raise SnapfsError(f"cannot read password file {path}: {e.strerror}") from e


@dataclass
class Context:
    repo_location: str | None
    password_file: str | None
    quiet: bool
    s3_endpoint: str | None = None
    no_cache: bool = False
    password_env: str = "SNAPFS_PASSWORD"
    config_file: str | None = None  # --config: the jobs' file (snapfs.jobs.config finds one)
    what: str = "repository"  # how prompts and errors name it
    _password: str | None = None

    def location(self) -> str:
        if not self.repo_location:
            raise click.UsageError("no repository given: use -r REPO or set SNAPFS_REPOSITORY")
        return self.repo_location

    def source(self, location: str | None, password_file: str | None) -> Context:
        """The repository ``copy`` reads from: its own location and password, the same
        S3 endpoint and cache setting."""
        if not location:
            raise click.UsageError(
                "no source repository given: use --from-repo REPO or set SNAPFS_FROM_REPOSITORY"
            )
        return Context(
            location, password_file, self.quiet, self.s3_endpoint, self.no_cache,
            password_env="SNAPFS_FROM_PASSWORD", what="source repository",
        )  # fmt: skip

    def replica(self, location: str, password_file: str | None) -> Context:
        """The replica that ``repair packs --from`` and ``restore --from-replica`` read:
        its password as ``copy`` takes its source's."""
        return Context(
            location, password_file, self.quiet, self.s3_endpoint, self.no_cache,
            password_env="SNAPFS_FROM_PASSWORD", what="replica",
        )  # fmt: skip

    def password(self, *, confirm: bool = False) -> str:
        """The password, asked for once however often it is needed."""
        if self._password is None:
            self._password = self._read_password(confirm)
        return self._password

    def known_password(self) -> str | None:
        """The password from --password-file or SNAPFS_PASSWORD, without asking (the TUI
        asks on its own screen when there is none)."""
        if self.password_file:
            return read_password_file(self.password_file)
        return os.environ.get(self.password_env)

    def _read_password(self, confirm: bool) -> str:
        known = self.known_password()
        if known is not None:
            return known
        if not sys.stdin.isatty():
            env = self.password_env
            raise SnapfsError(f"no password for the {self.what}: set {env} or {env}_FILE")
        return str(
            click.prompt(f"{self.what} password", hide_input=True, confirmation_prompt=confirm)
        )

    def backend(self, *, create: bool = False) -> Backend:
        """The repository's store; ``create`` (init only) creates a missing S3 bucket."""
        from snapfs.store.url import open_backend

        return open_backend(
            self.location(), s3_endpoint=self.s3_endpoint, create=create, cache=not self.no_cache
        )

    def unlock_early(self) -> None:
        """Start the password KDF on a thread while the verb's modules load: it releases the
        GIL, so it overlaps them. Not when it would prompt."""
        try:
            password = self.known_password()
        except SnapfsError:
            return  # an unreadable password file: the verb says so when it opens
        if self.repo_location and password is not None:
            self._password = password  # read once: the unlock takes it from here
            derive_ahead(self.backend, password.encode())

    def open(self) -> Repository:
        from snapfs.repository import Repository

        backend = self.backend()
        try:
            repo = Repository.open(backend, self.password())
            _OPENED.append((self.what, repo))
            return repo
        except BucketNotFound:
            raise  # its message already names the bucket and the endpoint
        except RepositoryNotFound:
            raise RepositoryNotFound(f"no {self.what} at {self.location()}") from None
        except WrongPassword as e:
            if self.what == "repository":
                raise
            raise WrongPassword(f"{self.what}: {e}") from None


pass_ctx = click.make_pass_decorator(Context)
_OPENED: list[tuple[str, Repository]] = []  # what this command opened: its problems said last


def _damaged_snapshots() -> None:
    """One line for each damaged snapshot file a command met (and passed over)."""
    from snapfs.cli.render import printable

    for what, repo in _OPENED:
        where = "" if what == "repository" else f"{what}: "
        for problem in dict.fromkeys(repo.snapshot_problems):
            click.echo(printable(f"warning: {where}{problem}: left out"), err=True)


F = TypeVar("F", bound=Callable[..., object])


def source_options(command: F) -> F:
    """``--from-repo`` and ``--from-password-file``: the other repository of ``copy`` and
    of ``init --copy-chunker-params``."""
    command = click.option(
        "--from-password-file",
        envvar="SNAPFS_FROM_PASSWORD_FILE",
        metavar="FILE",
        help="Its password, from FILE. Env: SNAPFS_FROM_PASSWORD_FILE (or SNAPFS_FROM_PASSWORD).",
    )(command)
    return click.option(
        "--from-repo",
        envvar="SNAPFS_FROM_REPOSITORY",
        metavar="REPO",
        help="The other repository: copy's source, or whose chunking init copies. "
        "Env: SNAPFS_FROM_REPOSITORY.",
    )(command)


replica_password_option = click.option(
    "--from-password-file",
    envvar="SNAPFS_FROM_PASSWORD_FILE",
    metavar="FILE",
    help="The replica's password, from FILE. Env: SNAPFS_FROM_PASSWORD_FILE "
    "(or SNAPFS_FROM_PASSWORD).",
)
"""The password of the replica that ``repair packs --from`` and ``restore --from-replica``
read (Context.replica)."""

exclude_option = click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="GLOB",
    help="Leave out paths matching GLOB (repeatable); no '/' matches base names.",
)
"""backup's and rewrite's --exclude (snapfs.walk.PathFilter's rules)."""


def snapshot_filter_options(command: F) -> F:
    """``--host``, ``--tag`` and ``--path``, as restic has them, handed to ``command`` as one
    ``snapshot_filter`` (snapfs.snapshot.SnapshotFilter): the snapshots it works on, and
    what ``latest`` means. An id names its snapshot whatever the filter."""

    @functools.wraps(command)
    def with_filter(*args: object, hosts: tuple[str, ...], filter_tags: tuple[str, ...],
                    filter_paths: tuple[str, ...], **kwargs: object) -> object:  # fmt: skip
        from snapfs.snapshot import SnapshotFilter  # loaded when a verb runs, not at start-up

        return command(
            *args, snapshot_filter=SnapshotFilter.parse(hosts, filter_tags, filter_paths), **kwargs
        )

    for flags, name, metavar, text in reversed(_FILTERS):
        with_filter = click.option(*flags, name, multiple=True, metavar=metavar, help=text)(
            with_filter
        )
    return with_filter  # type: ignore[return-value]


_FILTERS = [
    (("-H", "--host"), "hosts", "HOST", "Only snapshots of HOST (repeatable: any of them)."),
    (("--tag",), "filter_tags", "T[,T2]",
     "Only snapshots with all tags of T[,T2] (repeatable: any of the groups; '' for none)."),
    (("--path",), "filter_paths", "PATH",
     "Only snapshots whose paths include PATH (repeatable: all of them)."),
]  # fmt: skip


# verb -> (module under snapfs.cli, attribute, the line `snapfs --help` gives it)
_COMMANDS = {
    "backup": ("backup", "command", "Back up paths (local or s3://) into a new snapshot."),
    "check": ("check", "command", "Check the repository's structure; --read-data reads it all."),
    "completion": ("completion", "command", "Print the completion script for bash, zsh or fish."),
    "copy": ("copy", "command", "Copy snapshots from another repository into this one."),
    "daemon": ("daemon", "command", "Run the config file's jobs on their schedules."),
    "diff": ("diff", "command", "Show what changed between two snapshots."),
    "dump": ("dump", "command", "Write one file of a snapshot to stdout."),
    "find": ("find", "command", "Find the snapshots and paths whose name matches a pattern."),
    "forget": ("forget", "command", "Remove snapshots by policy or by id (undelete: back)."),
    "init": ("init", "command", "Create a new encrypted repository."),
    "jobs": ("jobs", "group", "List, run and show the history of the config file's jobs."),
    "key": ("key", "command", "List, add, change and remove the repository's passwords."),
    "ls": ("ls", "command", "List the files of a snapshot."),
    "mount": ("mount", "command", "Mount the repository, or one snapshot, read-only."),
    "prune": ("prune", "command", "Free the space of forgotten snapshots."),
    "repair": ("repair", "command", "Rebuild the index, or snapshots, from what damage left."),
    "restore": ("restore", "command", "Restore a snapshot, or part, to a directory or bucket."),
    "rewrite": ("rewrite", "command", "Write snapshots anew without the paths --exclude matches."),
    "snapshots": ("snapshots", "command", "List snapshots, oldest first."),
    "stats": ("stats", "command", "How much the repository stores, and how much that represents."),
    "tables": ("tables", "command", "List the Delta and Iceberg tables a snapshot pinned."),
    "tag": ("tag", "command", "Add, remove or set the tags of snapshots."),
    "tui": ("tui", "command", "Browse, back up, restore, diff and mount in a terminal UI."),
    "umount": ("mount", "umount_command", "Unmount a snapfs mount."),
    "undelete": ("prune", "undelete_command", "Bring back a forgotten snapshot."),
    "unlock": ("unlock", "command", "Remove stale locks."),
}  # fmt: skip


_OPENS_NO_REPOSITORY = {"completion", "daemon", "init", "jobs", "tui", "umount"}
COMPLETE_VAR = "_SNAPFS_COMPLETE"  # click's shell completion asks through it
_HELP = {"-h", "--help"}


class _LazyGroup(click.Group):
    """Imports a verb's module only when that verb runs (or help lists it): a nightly
    ``snapfs backup`` starts without loading what mount, prune or the TUI need. The
    repository starts opening before that import."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        verb = args[0] if args else None
        opens = verb in _COMMANDS and verb not in _OPENS_NO_REPOSITORY
        if opens and not _HELP & set(args) and COMPLETE_VAR not in os.environ:
            _context(ctx).unlock_early()
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = _COMMANDS.get(cmd_name)
        if where is None:
            return None
        module = importlib.import_module(f"snapfs.cli.{where[0]}")
        command: click.Command = getattr(module, where[1])
        command.short_help = where[2]  # one whole line in the list, never cut short
        return command


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  export SNAPFS_REPOSITORY=/backups/lake SNAPFS_PASSWORD_FILE=~/.snapfs-pass
  snapfs init
  snapfs backup /data/lake --tag nightly
  snapfs snapshots
  snapfs restore latest --target /tmp/restore --include '*/sales/*'
  snapfs restore latest --host db1 --target /tmp/db1
""",
)
@click.option(
    "-r",
    "--repo",
    "repo",
    envvar="SNAPFS_REPOSITORY",
    metavar="REPO",
    help="Repository: a path (or s3://bucket/prefix). Env: SNAPFS_REPOSITORY.",
)
@click.option(
    "--password-file",
    envvar="SNAPFS_PASSWORD_FILE",
    metavar="FILE",
    help="Read the password from FILE. Env: SNAPFS_PASSWORD_FILE (or SNAPFS_PASSWORD).",
)
@click.option(
    "--s3-endpoint",
    metavar="URL",
    help="S3 server for s3:// repositories (SeaweedFS, MinIO, ...). Env: AWS_ENDPOINT_URL.",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help="S3: fetch index and snapshot files from the store, not from their local copies "
    "(~/.cache/snapfs; env SNAPFS_CACHE_DIR). The index cache stays in use; "
    "SNAPFS_CACHE_DIR=off turns both off.",
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="The jobs' config file (else $SNAPFS_CONFIG, ~/.config/snapfs/snapfs.toml, "
    "/etc/snapfs/snapfs.toml).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.version_option(__version__, prog_name="snapfs")
@click.pass_context
def cli(
    ctx: click.Context,
    repo: str | None,
    password_file: str | None,
    s3_endpoint: str | None,
    no_cache: bool,
    config_file: str | None,
    quiet: bool,
) -> None:
    """snapfs: deduplicated, encrypted snapshots of data lakes, mountable read-only."""
    _context(ctx)  # made already if the verb opens a repository


def _context(ctx: click.Context) -> Context:
    """The command's Context, made from the global options when first needed."""
    if ctx.obj is None:
        p = ctx.params
        ctx.obj = Context(
            p["repo"], p["password_file"], p["quiet"], p["s3_endpoint"], p["no_cache"],
            config_file=p["config_file"],
        )  # fmt: skip
    obj: Context = ctx.obj
    return obj


def exit_code(error: SnapfsError) -> int:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return EXIT_ERROR


def main() -> NoReturn:
    allocator.tune()  # before any thread: a backup's resident memory stays flat
    try:
        try:
            rc = cli.main(prog_name="snapfs", standalone_mode=False)
        finally:
            _damaged_snapshots()
    except click.ClickException as e:
        e.show()
        _exit(e.exit_code)
    except click.Abort:
        click.echo("snapfs: aborted", err=True)
        _exit(130)
    except KeyboardInterrupt:
        click.echo("snapfs: interrupted", err=True)
        _exit(130)
    except SnapfsError as e:
        _fail(f"snapfs: {e}", exit_code(e), e.details)
    except OSError as e:
        where = f" {os.fsdecode(e.filename)}:" if e.filename else ""
        _fail(f"snapfs:{where} {e.strerror or e}", EXIT_ERROR)
    except Exception as e:  # the last line of defence: one line, never a traceback
        if os.environ.get("SNAPFS_DEBUG"):
            raise
        _fail(f"snapfs: internal error: {type(e).__name__}: {e}", EXIT_ERROR)
    _exit(rc if isinstance(rc, int) else EXIT_OK)


def _fail(line: str, code: int, details: tuple[str, ...] = ()) -> NoReturn:
    """``line`` on stderr, then ``details`` a line each, escaped (a message may quote names
    from the repository, which must not drive the terminal), then exit ``code``. cli.render
    loads here, not at start-up: init, mount, dump and --help need nothing else of it."""
    from snapfs.cli.render import printable

    for text in (line, *details):
        click.echo(printable(text), err=True)
    _exit(code)


def _exit(code: int) -> NoReturn:
    """Leave without the interpreter's teardown, which finalizes every loaded module: 20-30 ms
    of a 0.35 s unchanged re-backup. Only once nothing is left to finish: output flushed and
    no other non-daemon thread alive (else the usual exit, which waits for them)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nobody reads what is left
            pass
    me = threading.current_thread()
    if any(t is not me and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    os._exit(code)
