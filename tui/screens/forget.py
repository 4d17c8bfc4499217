"""Forget and prune: edit a retention policy, preview which snapshots it keeps (with the
rule that keeps each) and what prune would free, then confirm. The preview changes nothing;
confirming forgets exactly the snapshots the preview showed as "remove", then prunes."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from snapfs.forget import forget_ids
from snapfs.prune import PruneReport, prune
from snapfs.retention import Decision, Duration, Policy, plan_forget
from tui.messages import SnapshotsChanged, WorkFailed
from tui.screens.confirm import ConfirmScreen
from tui.session import Session
from tui.units import describe, size, when

COUNTS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
Plan = dict[tuple[object, ...], list[Decision]]


def parse_policy(values: dict[str, str]) -> tuple[Policy, tuple[str, ...]]:
    """The policy and grouping typed into the form; ValueError names the bad field."""
    counts: dict[str, int] = {}
    for name in COUNTS:
        text = values.get(name, "").strip() or "0"
        try:
            counts[name] = int(text)
        except ValueError:
            raise ValueError(f"keep {name}: {text!r} is not a whole number") from None
    within = (
        Duration.parse(values["within"].strip()) if values.get("within", "").strip() else Duration()
    )
    tags = tuple(frozenset([t.strip()]) for t in values.get("tags", "").split(",") if t.strip())
    groups = tuple(g.strip() for g in values.get("group", "").split(",") if g.strip())
    if bad := [g for g in groups if g not in ("host", "paths", "tags")]:
        raise ValueError(f"group by: {', '.join(bad)} (use host, paths, tags)")
    policy = Policy(
        last=counts["last"], hourly=counts["hourly"], daily=counts["daily"],
        weekly=counts["weekly"], monthly=counts["monthly"], yearly=counts["yearly"],
        within=within, tags=tags,
    )  # fmt: skip
    return policy, groups


@dataclass(frozen=True)
class Preview:
    plan: Plan
    remove: frozenset[str]
    report: PruneReport


def freed_line(r: PruneReport) -> str:
    return (
        f"prune would condemn {r.condemned_packs} packs ({size(r.condemned_bytes)}) and "
        f"repack {r.repacked_packs} packs ({size(r.repacked_bytes)})"
    )


def prune_line(r: PruneReport) -> str:
    line = (
        f"prune condemned {r.condemned_packs} packs ({size(r.condemned_bytes)}) and repacked "
        f"{r.repacked_packs} ({size(r.repacked_bytes)}): the next prune deletes them"
    )
    if r.deleted_packs:
        line += f"; deleted {r.deleted_packs} packs ({size(r.deleted_bytes)}) from earlier runs"
    if r.waiting_plans:
        line += f"; {r.waiting_plans} earlier plans wait for running backups"
    return line


class ForgetScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="forget.back"),
        Binding("ctrl+s", "preview", "Preview", id="forget.preview"),
        Binding("ctrl+f", "apply", "Forget+prune", id="forget.apply"),
    ]

    class Previewed(Message):
        def __init__(self, preview: Preview) -> None:
            super().__init__()
            self.preview = preview

    class Applied(Message):
        def __init__(self, forgotten: int, report: PruneReport) -> None:
            super().__init__()
            self.forgotten = forgotten
            self.report = report

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.sub_title = "forget and prune"
        self.preview: Preview | None = None
        self.report: PruneReport | None = None  # of the last prune run from here
        self.busy = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="form"):
            with Grid(id="policy"):
                for name in COUNTS:
                    yield Label(f"keep {name}")
                    yield Input(placeholder="0", type="integer", id=f"keep-{name}", compact=True)
                yield Label("keep within")
                yield Input(placeholder="e.g. 30d, 1y6m", id="keep-within", compact=True)
                yield Label("keep tags")
                yield Input(placeholder="release, audit", id="keep-tags", compact=True)
                yield Label("group by")
                yield Input(value="host,paths", id="group-by", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Preview", variant="primary", id="show-preview")
                yield Button("Forget and prune", variant="error", id="apply", disabled=True)
                yield Button("Prune only", id="prune")
            yield Static(
                "Set a policy, then Preview (nothing changes until you confirm).", id="summary"
            )
            yield DataTable[str | Text](id="decisions", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#decisions", DataTable)
        table.add_columns("Group", "ID", "Time", "Tags", "Decision", "Kept by")

    def _values(self) -> dict[str, str]:
        values = {name: self.query_one(f"#keep-{name}", Input).value for name in COUNTS}
        values["within"] = self.query_one("#keep-within", Input).value
        values["tags"] = self.query_one("#keep-tags", Input).value
        values["group"] = self.query_one("#group-by", Input).value
        return values

    def on_input_changed(self, _event: Input.Changed) -> None:
        # A preview shows one policy: once the form changes, it no longer says what happens.
        self.preview = None
        self.query_one("#apply", Button).disabled = True

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_preview()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"show-preview": self.action_preview, "apply": self.action_apply,
                   "prune": self.action_prune}  # fmt: skip
        actions[str(event.button.id)]()

    # -- preview ----------------------------------------------------------------------
    def action_preview(self) -> None:
        try:
            policy, groups = parse_policy(self._values())
        except ValueError as e:
            self.notify(str(e), severity="error")
            return
        if policy.empty():
            self.notify("the policy keeps everything: set at least one rule", severity="warning")
            return
        if self._start("computing the preview…"):
            self._preview(policy, groups)

    @work(thread=True, exclusive=True, group="forget", exit_on_error=False)
    def _preview(self, policy: Policy, groups: tuple[str, ...]) -> None:
        repo = self.session.repository
        try:
            plan = plan_forget(repo.snapshots(), policy, groups)
            remove = frozenset(d.snapshot.id for ds in plan.values() for d in ds if not d.keep)
            report = prune(repo, dry_run=True, assume_forgotten=remove)
        except Exception as e:
            self.post_message(WorkFailed("preview", e))
            return
        self.post_message(self.Previewed(Preview(plan, remove, report)))

    def on_forget_screen_previewed(self, event: Previewed) -> None:
        self.busy = False
        self.preview = event.preview
        table = self.query_one("#decisions", DataTable)
        table.clear()
        for key, decisions in event.preview.plan.items():
            group = " ".join(str(v) if not isinstance(v, tuple) else ",".join(map(str, v))
                             for v in key) or "all"  # fmt: skip
            for d in decisions:
                verdict = (
                    Text("keep", style="green") if d.keep else Text("remove", style="bold red")
                )
                table.add_row(group, d.snapshot.short_id, when(d.snapshot),
                              ",".join(d.snapshot.tags), verdict, ", ".join(d.reasons))  # fmt: skip
        removed = len(event.preview.remove)
        kept = sum(len(ds) for ds in event.preview.plan.values()) - removed
        self.query_one("#summary", Static).update(
            f"keep {kept}, remove {removed} · {freed_line(event.preview.report)}"
        )
        self.query_one("#apply", Button).disabled = removed == 0

    # -- forget and prune -------------------------------------------------------------
    def action_apply(self) -> None:
        preview = self.preview
        if preview is None or not preview.remove or self.busy:
            self.notify("preview a policy that removes something first", severity="warning")
            return
        question = (f"Forget {len(preview.remove)} snapshots and prune?\n"
                    f"{freed_line(preview.report)}.")  # fmt: skip
        self.app.push_screen(ConfirmScreen(question), self._confirmed)

    def _confirmed(self, yes: bool | None) -> None:
        if yes and self.preview is not None and self._start("forgetting and pruning…"):
            self._apply(sorted(self.preview.remove))

    @work(thread=True, exclusive=True, group="forget", exit_on_error=False)
    def _apply(self, ids: list[str]) -> None:
        repo = self.session.repository
        try:
            gone = forget_ids(repo, ids)
            report = prune(repo)
        except Exception as e:
            self.post_message(WorkFailed("forget and prune", e))
            return
        self.post_message(self.Applied(len(gone), report))

    def action_prune(self) -> None:
        if self._start("pruning…"):
            self._prune()

    @work(thread=True, exclusive=True, group="forget", exit_on_error=False)
    def _prune(self) -> None:
        try:
            report = prune(self.session.repository)
        except Exception as e:
            self.post_message(WorkFailed("prune", e))
            return
        self.post_message(self.Applied(0, report))

    def on_forget_screen_applied(self, event: Applied) -> None:
        self.busy = False
        self.preview = None
        self.report = event.report
        self.query_one("#apply", Button).disabled = True
        self.query_one("#decisions", DataTable).clear()
        line = (f"forgot {event.forgotten} snapshots; " if event.forgotten else "") + prune_line(
            event.report
        )
        self.query_one("#summary", Static).update(line)
        self.notify(line, title="done")
        self.app.post_message(SnapshotsChanged())

    def on_work_failed(self, event: WorkFailed) -> None:
        self.busy = False
        self.query_one("#summary", Static).update(f"cannot {event.action}: {describe(event.error)}")
        self.notify(describe(event.error), title=f"cannot {event.action}", severity="error")

    def _start(self, status: str) -> bool:
        if self.busy:
            self.notify("still working on the last request", severity="warning")
            return False
        self.busy = True
        self.query_one("#summary", Static).update(status)
        return True
