"""``snapfs key``: the passwords that open a repository, as restic's ``key`` commands."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from snapfs.cli.main import Context, new_password, pass_ctx, read_password_file
from snapfs.cli.render import cell, emit_json, stdout


@click.group("key")
def command() -> None:
    """List, add and remove the passwords that open the repository.

    Each password has a key file wrapping the repository's one master key, so a password
    changes without re-encrypting anything. New keys use Argon2id; `passwd` also moves a
    repository made with scrypt keys over to it.

    \b
    Examples:
      snapfs key list
      snapfs key add --new-password-file ~/.snapfs-pass-ops
      snapfs key passwd
      snapfs key remove 1a2b3c4d
    """


_new_password_file = click.option(
    "--new-password-file",
    metavar="FILE",
    help="Read the new password from FILE; else it is asked for twice.",
)


def _new_password(path: str | None) -> str:
    if path:
        return new_password(read_password_file(path))
    if not sys.stdin.isatty():
        raise click.UsageError("no new password: use --new-password-file FILE")
    prompt = click.prompt("new password", hide_input=True, confirmation_prompt=True)
    return new_password(str(prompt))


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of keys.")
@pass_ctx
def list_keys(ctx: Context, as_json: bool) -> None:
    """List the keys, oldest first; * marks the one this password opens."""
    with ctx.open() as repo:
        keys, current = repo.keys(), repo.key_id
    if as_json:
        emit_json([
            {"id": i, "short_id": i[:8], "current": i == current, "kdf": k.kdf,
             "created": k.created, "host": k.host, "user": k.user}
            for i, k in keys
        ])  # fmt: skip
        return
    table = Table(box=None, header_style="bold")
    for col in (" ", "ID", "KDF", "Created", "Host", "User"):
        table.add_column(col)
    for i, k in keys:
        mark = "*" if i == current else ""
        created = k.created[:19].replace("T", " ")
        table.add_row(mark, i[:8], *map(cell, (k.kdf, created, k.host, k.user)))
    stdout().print(table)


@command.command("add")
@_new_password_file
@pass_ctx
def add(ctx: Context, new_password_file: str | None) -> None:
    """Let another password open the repository too."""
    with ctx.open() as repo:
        added = repo.add_key(_new_password(new_password_file))
    click.echo(f"added key {added[:8]}")


@command.command("passwd")
@_new_password_file
@pass_ctx
def passwd(ctx: Context, new_password_file: str | None) -> None:
    """Change the password: add a key for the new one, then remove the one in use."""
    with ctx.open() as repo:
        new = _new_password(new_password_file)
        old = repo.key_id
        with repo.lock("key"):
            added = repo.change_password(new)
    click.echo(f"changed the password: added key {added[:8]}, removed key {old[:8]}")


@command.command("remove")
@click.argument("key_id", metavar="ID")
@pass_ctx
def remove(ctx: Context, key_id: str) -> None:
    """Remove the key ID (a unique prefix will do), but never the one in use."""
    with ctx.open() as repo, repo.lock("key"):
        found = repo.find_key(key_id)
        repo.remove_key(found)
    click.echo(f"removed key {found[:8]}")
