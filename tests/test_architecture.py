"""The layer contracts hold, and importing the library loads none of the faces' toolkits."""

from __future__ import annotations

import shutil
import subprocess
import sys


def test_import_linter_contracts_hold() -> None:
    lint = shutil.which("lint-imports")
    assert lint is not None
    result = subprocess.run([lint], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_library_import_loads_no_ui_toolkit() -> None:
    code = (
        "import sys, snapfs, snapfs.repository, snapfs.backup, snapfs.restore, snapfs.check\n"
        "bad = [m for m in ('rich', 'click', 'textual', 'pyfuse3', 'trio') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_exports_resolve() -> None:
    import snapfs

    for name in snapfs.__all__:
        assert hasattr(snapfs, name), name
    assert {"open_repository", "backup", "restore", "check", "Repository"} <= set(snapfs.__all__)


def test_importing_snapfs_loads_nothing_until_a_name_is_used() -> None:
    code = (
        "import sys, snapfs\n"
        "print(sorted(m for m in sys.modules if m.startswith(('snapfs.', 'cryptography'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['snapfs.version']"


def test_operations_stay_functions_once_their_modules_load() -> None:
    import importlib

    import snapfs

    for name in ("backup", "check", "restore", "stats"):
        module = importlib.import_module(f"snapfs.{name}")
        assert getattr(snapfs, name) is getattr(module, name)


def test_boto3_loads_only_for_s3_repositories() -> None:
    code = (
        "import sys, snapfs, snapfs.cli.main\n"
        "snapfs.open_backend('/tmp/snapfs-no-repo-here')\n"
        "print('boto3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
