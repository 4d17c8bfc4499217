"""The snapfs TUI: an App holding the open repository, with the snapshots screen at its
base and one screen per operation pushed on top. Every blocking call runs in a thread
worker; failures become notifications, never a crash."""

from __future__ import annotations

from collections.abc import Sequence

from textual import work
from textual.app import App
from textual.binding import Binding

import snapfs
from snapfs import Snapshot, WrongPassword
from tui.commands import ActionsProvider
from tui.messages import RepositoryFailed, RepositoryOpened, SnapshotsChanged
from tui.mounts import SNAPFS_COMMAND, Mounts
from tui.screens.browser import BrowserScreen
from tui.screens.create import CreateScreen
from tui.screens.diff import DiffScreen
from tui.screens.forget import ForgetScreen
from tui.screens.help import HelpScreen
from tui.screens.jobs import JobsScreen
from tui.screens.mount import MountScreen
from tui.screens.password import PasswordScreen
from tui.screens.restore import RestoreScreen
from tui.screens.snapshots import SnapshotsScreen
from tui.screens.tables import TablesScreen
from tui.session import Session
from tui.units import describe


class SnapfsApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "snapfs"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
        Binding("f1", "help", "Help", id="help"),
    ]

    def __init__(
        self,
        location: str,
        password: str | None = None,
        *,
        s3_endpoint: str | None = None,
        snapfs_command: Sequence[str] = SNAPFS_COMMAND,
        config_file: str | None = None,
    ) -> None:
        """``password`` None: ask for it. ``snapfs_command`` runs mounts and jobs (tests
        replace it). ``config_file``: the jobs' file (--config; None: where snapfs finds one)."""
        super().__init__()
        self.location = location
        self.config_file = config_file
        self.s3_endpoint = s3_endpoint
        self.password = password
        self.snapfs_command = tuple(snapfs_command)
        self.session: Session | None = None
        self.home = SnapshotsScreen()

    # -- opening ----------------------------------------------------------------------
    def on_mount(self) -> None:
        self.push_screen(self.home)
        if self.password is None:
            self.ask_password()
        else:
            self.open_repository(self.password)

    def ask_password(self, error: str | None = None) -> None:
        self.push_screen(PasswordScreen(self.location, error), self._password_given)

    def _password_given(self, password: str | None) -> None:
        if password is None:
            self.exit()
        else:
            self.home.set_status("unlocking…")
            self.open_repository(password)

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def open_repository(self, password: str) -> None:
        """The KDF takes a moment by design: on a thread, so the screen stays live."""
        try:
            repo = snapfs.open_repository(self.location, password, s3_endpoint=self.s3_endpoint)
        except WrongPassword:
            self.call_from_thread(self.ask_password, "wrong password: try again")
            return
        except Exception as e:  # no repository, unreadable store, bad URL: say so and stay
            self.post_message(RepositoryFailed(describe(e)))
            return
        self.post_message(RepositoryOpened(repo, password))

    def on_repository_opened(self, event: RepositoryOpened) -> None:
        mounts = Mounts(self.location, event.password, self.snapfs_command, self.s3_endpoint)
        self.session = Session(self.location, event.repository, mounts)
        self.home.open(self.session)

    def on_repository_failed(self, event: RepositoryFailed) -> None:
        self.home.failed(f"{self.location}: {event.reason}")
        self.notify(event.reason, title="cannot open the repository", severity="error",
                    timeout=30)  # fmt: skip

    def on_snapshots_changed(self, _event: SnapshotsChanged) -> None:
        self.home.action_reload()

    # -- actions (bindings, the palette) ----------------------------------------------
    def _require_session(self) -> Session | None:
        if self.session is None:
            self.notify("the repository is not open", severity="warning")
        return self.session

    def _highlighted(self) -> tuple[Session, Snapshot] | None:
        session = self._require_session()
        if session is None:
            return None
        snap = self.home.table.current()
        if snap is None:
            self.notify("no snapshot highlighted", severity="warning")
            return None
        return session, snap

    def action_browse(self) -> None:
        if chosen := self._highlighted():
            self.push_screen(BrowserScreen(*chosen))

    def action_create(self) -> None:
        if session := self._require_session():
            self.push_screen(CreateScreen(session))

    def action_restore(self) -> None:
        if chosen := self._highlighted():
            self.push_screen(RestoreScreen(*chosen, []))

    def action_forget(self) -> None:
        if session := self._require_session():
            self.push_screen(ForgetScreen(session))

    def action_mount(self) -> None:
        if chosen := self._highlighted():
            self.push_screen(MountScreen(*chosen))

    def action_tables(self) -> None:
        if chosen := self._highlighted():
            self.push_screen(TablesScreen(*chosen))

    def action_jobs(self) -> None:
        """Open even before the repository is: the jobs come from the config file."""
        if not isinstance(self.screen, JobsScreen):
            self.push_screen(JobsScreen(self.session, self.config_file, self.snapfs_command))

    def action_reload(self) -> None:
        self.home.action_reload()

    def action_diff(self) -> None:
        """The two marked snapshots, or the highlighted one against its parent."""
        if (session := self._require_session()) is None:
            return
        table = self.home.table
        marked = table.marked_snapshots()
        if len(marked) == 2:
            self.push_screen(DiffScreen(session, *marked))
            return
        current = table.current()
        parent = next((s for s in table.snapshots if current and s.id == current.parent), None)
        if len(marked) > 2 or current is None or parent is None:
            self.notify("mark two snapshots with space, then press d", severity="warning")
            return
        self.push_screen(DiffScreen(session, parent, current))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        if self.session is not None:
            self._close_session(self.session)
        self.exit()

    def _close_session(self, session: Session) -> None:
        """Unmount what was mounted from here and close the repository; quitting proceeds
        whatever fails (the errors are printed after the screen is restored)."""
        self.session = None
        for error in session.mounts.unmount_all():
            self.log.error(error)
        session.repository.close()
