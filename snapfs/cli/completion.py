from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from snapfs.cli.main import COMPLETE_VAR

_SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", metavar="SHELL", type=click.Choice(_SHELLS))
@click.pass_context
def command(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (click's, which asks snapfs itself for
    commands, options and arguments as you type).

    \b
    Install:
      bash: snapfs completion bash > ~/.local/share/bash-completion/completions/snapfs
      zsh:  snapfs completion zsh > "${fpath[1]}/_snapfs"
      fish: snapfs completion fish > ~/.config/fish/completions/snapfs.fish
    """
    root = ctx.find_root()
    completion = get_completion_class(shell)
    assert completion is not None  # every SHELL click.Choice allows has a class
    click.echo(completion(root.command, {}, "snapfs", COMPLETE_VAR).source(), nl=False)
