"""``snapfs completion SHELL`` prints click's script, which completes in a real bash, and
``snapfs --help`` lists every command on one line of its own."""

from __future__ import annotations

import os
import subprocess
import sys

from snapfs.cli.main import _COMMANDS
from tests.conftest import SNAPFS


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SNAPFS_")}
    return subprocess.run([*SNAPFS, *args], capture_output=True, text=True, timeout=60,
                          env={**clean, "COLUMNS": "80", **(env or {})})  # fmt: skip


def test_help_lists_every_command_on_one_line() -> None:
    out = _run("--help").stdout
    listed = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    width = max(map(len, _COMMANDS)) + 2
    assert listed == [f"  {verb:<{width}}{where[2]}" for verb, where in sorted(_COMMANDS.items())]


def test_bash_completes_commands_options_and_choices() -> None:
    script = _run("completion", "bash").stdout
    assert (
        script.startswith("_snapfs_completion() {") and "_SNAPFS_COMPLETE=bash_complete" in script
    )
    bin_dir = os.path.dirname(sys.executable)  # the venv's bin: its ``snapfs`` script
    words = {
        "snapfs re": ["repair", "restore", "rewrite"],
        "snapfs rewrite --exc": ["--exclude", "--exclude-file"],
        "snapfs completion ": ["bash", "zsh", "fish"],
        "snapfs t": ["tables", "tag", "tui"],
    }
    for line, expected in words.items():
        last = '""' if line.endswith(" ") else ""  # an empty word being completed
        probe = (
            'eval "$SCRIPT"; '
            f"COMP_WORDS=({line}{last}); "
            "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _snapfs_completion snapfs; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPFS_")}
        env.update(SCRIPT=script, PATH=f"{bin_dir}:{env['PATH']}")
        r = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60,
                           env=env)  # fmt: skip
        assert r.stdout.splitlines() == expected, (line, r.stderr)


def test_zsh_and_fish_scripts_ask_snapfs() -> None:
    assert _run("completion", "zsh").stdout.startswith("#compdef snapfs\n")
    assert "_SNAPFS_COMPLETE=fish_complete" in _run("completion", "fish").stdout
    # what those scripts ask, answered as for bash
    r = _run(env={"_SNAPFS_COMPLETE": "zsh_complete", "COMP_WORDS": "snapfs fi", "COMP_CWORD": "1"})
    assert r.stdout.splitlines() == ["plain", "find", "Find the snapshots and paths whose name "
                                     "matches a pattern."]  # fmt: skip
    r = _run("completion", "sh")
    assert (r.returncode, r.stderr.splitlines()[-1]) == (
        2, "Error: Invalid value for 'SHELL': 'sh' is not one of 'bash', 'zsh', 'fish'.",
    )  # fmt: skip
