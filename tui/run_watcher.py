"""The app's one reader of the run store: every screen that shows runs gets them from here.

Runs are plain folders that any process may change (a worker, the CLI, a second llmdeck), so
they are polled. Polling once per screen would multiply the disk reads and keep hidden modes
busy (Textual keeps every MODES screen mounted), so the app owns one `RunWatcher` (nvitop's
single snapshot thread is the model) and screens subscribe:

- `watch_runs(node)`: the node gets `RunWatcher.RunsChanged` (every run, newest first, with
  its newest Progress) whenever the list changed, and every tick while a run is active (its
  elapsed time moves);
- `follow(node, run_id)`: the node gets `RunWatcher.EventsRead` with the run's whole event
  history, then every new event as it lands (from the byte offset where the last read ended),
  and with `log=True` also `RunWatcher.LogRead` (the tail of log.txt) when the log grew.

Nothing is read or delivered for a node whose screen is not shown; when it is shown again it
gets the newest list at once and the events it missed. When no subscriber is shown (say, on
Monitor) a tick costs nothing at all. Each tick plans on the UI thread, reads in one thread
worker (`LLMDeckApp.read_run_store`), and delivers on the UI thread, so disk I/O never blocks
typing. A read is cheap when nothing changed: the runs folder and each run.json are stat'ed,
and only a changed run.json is parsed again (`RunScanner`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from textual.app import App
from textual.dom import DOMNode, NoScreen
from textual.message import Message
from textual.timer import Timer

from engine.events import JobEvent, Progress
from engine.runs import RunError, RunInfo, RunStore

TICK_S = 0.5
"""Seconds between reads while a subscriber is shown (a live loss curve moves twice a second)."""
RESCAN_EVERY = 20
"""Ticks between full listings of the runs folder even when its own stat did not change."""
LOG_TAIL_LINES = 500


@dataclass(frozen=True)
class RunsSnapshot:
    """Every run on disk at one moment. Shared by all subscribers: never mutate it."""

    runs: tuple[RunInfo, ...] = ()
    """Newest first."""
    progress: Mapping[str, Progress | None] = field(default_factory=dict)
    """Run id -> its newest Progress event (None when it has none)."""
    error: str = ""
    """Why the runs folder could not be read; `runs` is empty then."""

    def get(self, run_id: str | None) -> RunInfo | None:
        return next((run for run in self.runs if run.id == run_id), None) if run_id else None

    @property
    def any_active(self) -> bool:
        return any(run.active for run in self.runs)


# -- the disk side: no Textual below this line until RunWatcher ---------------------------------
@dataclass(frozen=True)
class FollowRead:
    """One follow's part of a tick: read `run_id`'s events from `offset` (and its log)."""

    key: tuple[int, str]
    run_id: str
    offset: int
    log_size: int | None
    """None: the log is not wanted; else the log.txt size the subscriber last got."""


@dataclass
class ReadResult:
    snapshot: RunsSnapshot | None
    """None when nothing about the runs changed since the last read."""
    events: dict[tuple[int, str], tuple[int, int, list[JobEvent]]] = field(default_factory=dict)
    """Follow key -> (from offset, new offset, events)."""
    logs: dict[tuple[int, str], tuple[int, list[str]]] = field(default_factory=dict)
    """Follow key -> (log.txt size, its last lines)."""


class RunScanner:
    """Lists a RunStore incrementally. Used from one thread at a time (the watcher's worker).

    Per tick it stats the runs folder and each run.json; a run.json is parsed again only when
    its (inode, mtime, size) changed (writes replace it atomically, so the inode changes too),
    or while the run is active (`RunStore.get` then also notices a worker that vanished).
    A run's newest Progress is re-read only when its events.jsonl changed size.
    """

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._root_stamp: tuple[int, int] | None = None
        self._names: list[str] = []
        self._ticks = 0
        self._infos: dict[str, tuple[tuple[int, int, int], RunInfo | None]] = {}
        self._progress: dict[str, tuple[int, Progress | None]] = {}
        self._last: tuple | None = None

    def read(self, follows: list[FollowRead], want_runs: bool) -> ReadResult:
        snapshot = self._scan() if want_runs else None
        result = ReadResult(snapshot)
        done: dict[tuple[str, int], tuple[int, list[JobEvent]]] = {}
        for follow in follows:
            where = (follow.run_id, follow.offset)
            if where not in done:
                done[where] = self._events(follow.run_id, follow.offset)
            end, events = done[where]
            if end != follow.offset:
                result.events[follow.key] = (follow.offset, end, events)
            if follow.log_size is not None:
                size = _size(self.store.root / follow.run_id / "log.txt")
                if size != follow.log_size:
                    result.logs[follow.key] = (size, self.store.log_tail(follow.run_id, LOG_TAIL_LINES))
        return result

    def _events(self, run_id: str, offset: int) -> tuple[int, list[JobEvent]]:
        if _size(self.store.root / run_id / "events.jsonl") <= offset:
            return offset, []
        events, end = self.store.read_events(run_id, offset)
        return end, events

    def _scan(self) -> RunsSnapshot | None:
        """The runs, or None when nothing changed and no run is active."""
        root = self.store.root
        try:
            stat = os.stat(root)
        except FileNotFoundError:
            return self._publish(RunsSnapshot())
        except OSError as exc:
            return self._publish(RunsSnapshot(error=str(exc)))
        stamp = (stat.st_mtime_ns, stat.st_nlink)
        self._ticks += 1
        if stamp != self._root_stamp or self._ticks % RESCAN_EVERY == 0:
            try:
                with os.scandir(root) as entries:
                    self._names = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
            except OSError as exc:
                return self._publish(RunsSnapshot(error=str(exc)))
            self._root_stamp = stamp
        runs: list[RunInfo] = []
        progress: dict[str, Progress | None] = {}
        for name in self._names:
            info = self._info(root / name)
            if info is None:
                continue
            runs.append(info)
            progress[info.id] = self._newest_progress(info)
        for gone in set(self._infos) - set(self._names):
            self._infos.pop(gone, None)
            self._progress.pop(gone, None)
        runs.sort(key=lambda r: r.created, reverse=True)
        return self._publish(RunsSnapshot(tuple(runs), MappingProxyType(progress)))

    def _info(self, run_dir: Path) -> RunInfo | None:
        try:
            stat = os.stat(run_dir / "run.json")
        except OSError:
            self._infos.pop(run_dir.name, None)
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._infos.get(run_dir.name)
        if cached is not None and cached[0] == stamp and not (cached[1] is not None and cached[1].active):
            return cached[1]
        try:
            info: RunInfo | None = self.store.get(run_dir.name)
        except (RunError, OSError):
            info = None  # unreadable: skipped like `RunStore.list` does, re-read when it changes
        if info is not None and info.active:
            # get() may just have marked it lost (a rewrite): stamp what is on disk now.
            stamp = _stamp(run_dir / "run.json") or stamp
        self._infos[run_dir.name] = (stamp, info)
        return info

    def _newest_progress(self, info: RunInfo) -> Progress | None:
        size = _size(info.events_path)
        cached = self._progress.get(info.id)
        if cached is not None and cached[0] == size:
            return cached[1]
        found = self.store.last_progress(info.id)
        self._progress[info.id] = (size, found)
        return found

    def _publish(self, snapshot: RunsSnapshot) -> RunsSnapshot | None:
        """`snapshot`, or None when it says the same as the last one and no run is active."""
        signature = (snapshot.error, tuple((r.id, r.status, r.ended, r.name, r.exit_reason) for r in snapshot.runs),
                     tuple(snapshot.progress.items()))
        if signature == self._last and not snapshot.any_active:
            return None
        self._last = signature
        return snapshot


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


# -- the UI side --------------------------------------------------------------------------------
@dataclass
class _Follow:
    node: DOMNode
    run_id: str
    offset: int = 0
    log_size: int | None = None


class RunWatcher:
    """Owned by the app: created in its `__init__`, started in its `on_mount`."""

    class RunsChanged(Message, bubble=False):
        """The run list changed (or a run is active and time passed). Latest wins in a queue."""

        def __init__(self, snapshot: RunsSnapshot) -> None:
            super().__init__()
            self.snapshot = snapshot

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunWatcher.RunsChanged)

    class EventsRead(Message, bubble=False):
        """New events of a followed run, in order; never replaced (each batch follows the last).
        `first`: the batch starts at the run's first event (a follow that began or began again),
        so whatever the subscriber built from earlier batches of this run is to be dropped."""

        def __init__(self, run_id: str, events: list[JobEvent], first: bool) -> None:
            super().__init__()
            self.run_id = run_id
            self.events = events
            self.first = first

    class LogRead(Message, bubble=False):
        """The last lines of a followed run's log.txt, after it grew. Latest wins in a queue."""

        def __init__(self, run_id: str, lines: list[str]) -> None:
            super().__init__()
            self.run_id = run_id
            self.lines = lines

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunWatcher.LogRead) and message.run_id == self.run_id

    class Read(Message):
        """A tick's reads, from the worker to the app, which hands them to `deliver`."""

        def __init__(self, result: ReadResult) -> None:
            super().__init__()
            self.result = result

    def __init__(self, app: App, store: RunStore, start_read: Callable[[list[FollowRead], bool], object],
                 interval: float = TICK_S) -> None:
        """`start_read(follows, want_runs)` starts the thread worker that calls `scanner.read`
        and posts the result to the app as `RunWatcher.Read`."""
        self.app = app
        self.scanner = RunScanner(store)
        self.interval = interval
        self.snapshot: RunsSnapshot | None = None
        """The newest run list read (None before the first read)."""
        self._start_read = start_read
        self._version = 0
        self._runs_seen: dict[DOMNode, int] = {}
        """Nodes watching the list -> the version of the snapshot they were last sent."""
        self._follows: dict[tuple[int, str], _Follow] = {}
        self._reading = False
        self._again = False
        self._timer: Timer | None = None

    def start(self) -> None:
        self._timer = self.app.set_interval(self.interval, self.tick, name="run-watcher")

    # -- subscribing (UI thread) ---------------------------------------------------------------
    def watch_runs(self, node: DOMNode) -> None:
        """Send `node` the run list while its screen is shown; at once if one was read already."""
        self._runs_seen.setdefault(node, -1)
        self.poke()

    def follow(self, node: DOMNode, run_id: str, *, log: bool = False) -> None:
        """Send `node` the whole history of `run_id`, then its new events (and its log, if
        `log`). Following a run again starts over from its first event."""
        self._follows[(id(node), run_id)] = _Follow(node, run_id, log_size=-1 if log else None)
        self.poke()

    def unfollow(self, node: DOMNode, run_id: str | None = None) -> None:
        """Stop following `run_id` (or every run) for `node`."""
        for key in [k for k, f in self._follows.items() if f.node is node and run_id in (None, f.run_id)]:
            del self._follows[key]

    def forget(self, node: DOMNode) -> None:
        """Drop every subscription of `node` (from its on_unmount)."""
        self._runs_seen.pop(node, None)
        self.unfollow(node)

    def following(self, node: DOMNode) -> set[str]:
        return {f.run_id for f in self._follows.values() if f.node is node}

    def poke(self) -> None:
        """Tick now rather than at the next interval (a run was started or stopped, a screen
        is shown again, a node subscribed), and go on ticking."""
        if self._timer is not None:
            self._timer.resume()
        self.app.call_later(self.tick)

    # -- ticking (UI thread) -------------------------------------------------------------------
    def tick(self) -> None:
        self._prune()
        watching = [node for node in self._runs_seen if _shown(node)]
        plan = [FollowRead(key, f.run_id, f.offset, f.log_size) for key, f in self._follows.items() if _shown(f.node)]
        self._send_runs(watching)  # a screen shown again gets the newest list at once
        if not watching and not plan:
            # Nobody is looking: read nothing, and stop ticking until a poke (a mode screen shown
            # again pokes, and so does every subscription). Two wake-ups a second for nothing were
            # a tenth of the idle Monitor's CPU (bench/idle.py).
            if self._timer is not None:
                self._timer.pause()
            return
        if self._reading:
            self._again = True  # a slow read is under way: read once more when it is done
            return
        self._reading = True
        self._start_read(plan, bool(watching))

    def deliver(self, result: ReadResult) -> None:
        """Hand a read's results to the subscribers (the app calls this on `RunWatcher.Read`)."""
        self._reading = False
        if result.snapshot is not None:
            self.snapshot = result.snapshot
            self._version += 1
        self._send_runs([node for node in self._runs_seen if _shown(node)])
        for key, (start, end, events) in result.events.items():
            follow = self._follows.get(key)
            if follow is None or follow.offset != start:
                continue  # unfollowed, or followed again from the start, while it was being read
            follow.offset = end
            follow.node.post_message(self.EventsRead(follow.run_id, events, first=start == 0))
        for key, (size, lines) in result.logs.items():
            follow = self._follows.get(key)
            if follow is not None and follow.log_size is not None:
                follow.log_size = size
                follow.node.post_message(self.LogRead(follow.run_id, lines))
        if self._again:
            self._again = False
            self.poke()

    def read_failed(self) -> None:
        """The read worker raised (the app reports why); read again at the next tick."""
        self._reading = False

    def _send_runs(self, nodes: list[DOMNode]) -> None:
        if self.snapshot is None:
            return
        for node in nodes:
            if self._runs_seen.get(node, self._version) < self._version:
                self._runs_seen[node] = self._version
                node.post_message(self.RunsChanged(self.snapshot))

    def _prune(self) -> None:
        """Forget nodes that were removed without calling `forget`."""
        for node in [n for n in self._runs_seen if not n.is_running]:
            del self._runs_seen[node]
        for key in [k for k, f in self._follows.items() if not f.node.is_running]:
            del self._follows[key]


def _shown(node: DOMNode) -> bool:
    """Whether `node` is on a screen the user sees (the top one, or one under a modal)."""
    try:
        return node.is_attached and node.screen.is_current
    except NoScreen:
        return False
