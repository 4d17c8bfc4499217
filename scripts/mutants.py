"""Mutation testing of the modules whose bugs lose data, with cosmic-ray, within a budget.

Each module is mutated in a copy of the work tree (``.mutants/tree``, made afresh at every
run, so a mutant left behind by an interrupted run never reaches the real sources, and edits
made while it runs never reach its tests), and
each mutant runs the few tests that guard that module; a mutant they do not kill survives.
Sessions are kept in ``.mutants/<module>-<digest>.sqlite``, so a later run goes on where the
budget stopped the last one (``--fresh`` starts a module again); the digest covers the mutated
module's source and what is run against it, so a session made from another version of the
module (whose mutants sit at other lines) is never resumed: it is removed, and the module
starts afresh. Survivors, with their diffs, are
printed and written to ``.mutants/<module>.survivors.txt``. Run through ``scripts/mutants``,
which installs cosmic-ray. docs/TESTING.md lists the survivors judged harmless, and why.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutants"
TREE = WORK / "tree"


@dataclass(frozen=True)
class Target:
    module: str
    tests: str  # pytest arguments
    # Block headers ("class Writer", "def _write_blob"): only their lines are mutated.
    lines: tuple[str, ...] = ()


LOCAL_PRUNE = (
    "tests/integration/test_prune.py tests/integration/test_prune_sweep.py "
    "tests/integration/test_prune_inflight.py tests/unit/test_undelete.py "
    "-k 'local or in_flight or undelete'"
)
PRUNE_CORE = ("def sweep", "def _sweep_pack", "def _only_here", "def _classify", "def _repack",
              "def mark", "def undelete")  # fmt: skip
TARGETS = {
    "retention": Target(
        "snapfs/retention.py",
        "tests/unit/test_retention.py "
        "tests/integration/test_options.py::test_forget_group_by_applies_the_policy_per_group",
    ),
    "locks": Target(
        "snapfs/locks.py",
        "tests/unit/test_locks.py tests/integration/test_prune.py "
        "-k 'test_locks or (local and (unlock or another_host or exclude_each or retry_lock))'",
    ),
    "prune": Target("snapfs/prune.py", LOCAL_PRUNE),
    # The parts of prune that decide what is deleted: the rest only counts and reports.
    "prune-core": Target(
        "snapfs/prune.py",
        LOCAL_PRUNE,
        lines=PRUNE_CORE,
    ),
    "plans": Target(
        "snapfs/plans.py",
        "tests/integration/test_prune.py tests/integration/test_prune_sweep.py "
        "tests/integration/test_hostile_repo.py tests/unit/test_undelete.py "
        "tests/unit/test_trees_in_condemned.py -k 'undelete or condemned or "
        "(local and (prune_marks or sweeps_nothing or indexed_again or readers_opened)) or "
        "test_prune_marks_2_to_the_48'",
    ),
    # Not ``-k 'local or dedup'``: "dedup" names test_dedup.py itself, so that also chose its
    # S3 variants (a SeaweedFS per mutant), and one of them failing unmutated under load
    # ended the run at the writer's baseline with no mutant run.
    "writer": Target(
        "snapfs/repository.py",
        "tests/unit/test_writer_bounds.py tests/integration/test_crash.py "
        "tests/integration/test_dedup.py -k 'not s3'",
        lines=("class Writer",),
    ),
    "restore": Target(
        "snapfs/restore.py",
        "tests/integration/test_roundtrip.py tests/integration/test_restore_safety.py "
        "tests/integration/test_cli_errors.py -k 'not s3'",
    ),
    "copy": Target(
        "snapfs/copy.py",
        "tests/integration/test_copy.py tests/integration/test_hostile_repo.py "
        "-k 'not s3 and copy'",
    ),
}

# One replacement per binary operator, not twelve: the others are the same test of whether
# that arithmetic matters, at twelve times the cost.
KEPT_BINARY = ("Add_Sub", "Sub_Add", "Mul_Add", "Div_Mul", "FloorDiv_Mul", "Mod_Add",
               "Pow_Mul", "BitOr_BitAnd", "BitAnd_BitOr", "BitXor_BitOr", "LShift_RShift",
               "RShift_LShift")  # fmt: skip
EXCLUDED = [rf"core/ReplaceBinaryOperator_(?!(?:{'|'.join(KEPT_BINARY)})$).*"]


def copy_tree() -> None:
    """The work tree without .git, .venv and caches, where cosmic-ray may write freely."""
    if TREE.exists():
        shutil.rmtree(TREE)
    TREE.mkdir(parents=True)
    skip = {".git", ".venv", ".mutants", "__pycache__", ".mypy_cache", ".ruff_cache",
            ".pytest_cache", "bench-results", "demo-work"}  # fmt: skip

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if set(Path(info.name).parts) & skip else info

    archive = WORK / "tree.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(ROOT, arcname=".", filter=keep)
    with tarfile.open(archive) as tar:
        tar.extractall(TREE, filter="tar")
    archive.unlink()


def line_range(module: str, header: str) -> str:
    """The lines of the block (at any depth) whose first line starts with ``header``, such
    as ``def _write_blob``: up to the next line indented no deeper than that first line."""
    lines = (TREE / module).read_text().splitlines()
    found = (i for i, line in enumerate(lines) if re.match(rf"\s*{re.escape(header)}\b", line))
    start = next(found, None)
    if start is None:
        sys.exit(f"mutants: no block '{header}' in {module}")
    depth = len(lines[start]) - len(lines[start].lstrip())
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) <= depth
                and not lines[i].lstrip().startswith(")")), len(lines))  # fmt: skip
    return f"{start + 1}-{end}"


def digest(target: Target) -> str:
    """Names the session: the module's source, its tests and its line ranges, and the
    operator filter. Any change makes earlier mutants meaningless (they name lines and
    positions of the old source)."""
    h = hashlib.sha256((TREE / target.module).read_bytes())
    ranges = [line_range(target.module, header) for header in target.lines]
    h.update(repr((target.tests, ranges, EXCLUDED)).encode())
    return h.hexdigest()[:12]


def config(name: str, target: Target, timeout: float) -> Path:
    path = WORK / f"{name}.toml"
    lines_filter = ""
    if target.lines:
        ranges = [line_range(target.module, header) for header in target.lines]
        lines_filter = (
            f'[cosmic-ray.filters.line-filter.lines]\n"{target.module}" = {ranges!r}\n'
        ).replace("'", '"')
    path.write_text(
        f"""[cosmic-ray]
module-path = "{target.module}"
timeout = {timeout:.0f}
excluded-modules = []
test-command = "python -m pytest -x -q -p no:cacheprovider {target.tests.replace('"', "'")}"

[cosmic-ray.distributor]
name = "local"

[cosmic-ray.filters.operators-filter]
exclude-operators = {EXCLUDED!r}
{lines_filter}"""
    )
    return path


def run(*cmd: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """``cmd`` in the copy; at ``timeout`` its whole process group (the tests and the snapfs
    processes they started) is killed and TimeoutExpired raised."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # a mutant's source, never a stale .pyc
    proc = subprocess.Popen(cmd, cwd=TREE, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:  # the budget spent, ctrl-c, or SIGTERM: none of it runs on
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def baseline(target: Target) -> float | None:
    """Seconds the module's tests take unmutated; None (said on stderr) when they fail, for
    then no result would mean much."""
    began = time.monotonic()
    done = run("sh", "-c", f"python -m pytest -x -q -p no:cacheprovider {target.tests}")
    if done.returncode != 0:
        print(f"mutants: the tests of {target.module} fail unmutated, so it is left out:\n"
              f"{done.stdout[-2000:]}", file=sys.stderr, flush=True)  # fmt: skip
        return None
    return time.monotonic() - began


def session(name: str, target: Target, cfg: Path, fresh: bool) -> Path:
    """The module's session for its current source; sessions of other versions are removed."""
    db = WORK / f"{name}-{digest(target)}.sqlite"
    ours = re.compile(rf"{re.escape(name)}(-[0-9a-f]{{12}})?\.sqlite")
    for old in WORK.glob("*.sqlite"):
        if old != db and ours.fullmatch(old.name):
            print(f"mutants: {old.name} was made from another version of {target.module}: "
                  "starting afresh", flush=True)  # fmt: skip
            old.unlink()
    if fresh or not db.exists():
        db.unlink(missing_ok=True)
        for cmd in (("cosmic-ray", "init", str(cfg), str(db)),
                    ("cr-filter-operators", str(db), str(cfg))):  # fmt: skip
            done = run(*cmd)
            if done.returncode != 0:
                sys.exit(f"mutants: {' '.join(cmd)} failed: {done.stderr[-2000:]}")
        if target.lines:
            run("cr-filter-lines", "--config", str(cfg), str(db))
    return db


def report(name: str, db: Path) -> tuple[dict[str, int], list[str]]:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    counts = {"killed": 0, "timeout": 0, "survived": 0, "skipped": 0, "incompetent": 0,
              "pending": 0}  # fmt: skip
    survivors = []
    with use_db(str(db), WorkDB.Mode.open) as wdb:
        counts["pending"] = sum(1 for _ in wdb.pending_work_items)
        for item, result in wdb.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                counts["skipped"] += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                counts["survived"] += 1
                where = f"{item.mutations[0].module_path}:{item.mutations[0].start_pos[0]}"
                op = item.mutations[0].operator_name
                survivors.append(f"{where} {op}\n{result.diff or ''}")
            elif result.test_outcome == TestOutcome.INCOMPETENT:
                counts["incompetent"] += 1
            elif result.output == "timeout":  # cosmic-ray's word for a killed slow run
                counts["timeout"] += 1
            else:
                counts["killed"] += 1
    (WORK / f"{name}.survivors.txt").write_text("\n".join(survivors))
    return counts, survivors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help=f"some of: {', '.join(TARGETS)} (default: all)")  # fmt: skip
    parser.add_argument("--budget", type=float, default=30.0, help="minutes in all (30)")
    parser.add_argument("--fresh", action="store_true", help="start the sessions again")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so run() stops its children
    names = args.modules or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown module {unknown[0]}: choose from {', '.join(TARGETS)}")
    WORK.mkdir(exist_ok=True)
    deadline = time.monotonic() + args.budget * 60
    copy_tree()  # once: edits made while it runs never reach the tests
    failed: list[str] = []
    for n, name in enumerate(names):
        target = TARGETS[name]
        took = baseline(target)
        if took is None:  # the modules after it still run
            failed.append(name)
            continue
        cfg = config(name, target, timeout=max(20.0, 4 * took))
        db = session(name, target, cfg, args.fresh)
        share = (deadline - time.monotonic()) / (len(names) - n)
        print(f"== {name}: {target.module}, tests {took:.1f} s unmutated, {share / 60:.1f} min",
              flush=True)  # fmt: skip
        if share > 0:
            pristine = (TREE / target.module).read_bytes()
            try:
                run("cosmic-ray", "exec", str(cfg), str(db), timeout=share)
            except subprocess.TimeoutExpired:
                pass  # the budget is spent: the session goes on at the next run
            finally:  # a mutant killed mid-run is left in place: never test the next on it
                (TREE / target.module).write_bytes(pristine)
        counts, survivors = report(name, db)
        print("   " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        for s in survivors:
            print("   survived: " + s.replace("\n", "\n   "))
    shutil.rmtree(TREE, ignore_errors=True)
    if failed:
        sys.exit(f"mutants: not run, their tests fail unmutated: {', '.join(failed)}")


if __name__ == "__main__":
    main()
