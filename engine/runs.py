"""Detached runs: long jobs that live on disk and in their own process.

A run is a folder `<data>/runs/<id>/`:

    run.json      kind, name, spec, status, pid, timestamps, exit reason (rewritten atomically)
    events.jsonl  every event the job emitted, append-only; the source of truth for curves
    log.txt       human log: the job's Log lines, its stdout/stderr, the traceback of a failure
    out/          the job's outputs (jobs may also write elsewhere, atomically)

The worker (`python -m engine.worker RUN_DIR`) is started in its own session, so closing the
TUI, losing SSH (SIGHUP) or killing the parent leaves it running. Anyone (the TUI, the CLI, a
second TUI) can list, follow and cancel runs by reading these files; there is no daemon.
A worker that vanished without writing a final status (kill -9, OOM killer, reboot) is detected
by its pid no longer being the process that started the run and is marked `lost`.

A run whose job was handed to a batch scheduler (a SLURM job: `scheduler` in run.json, set by the
job through `JobContext.scheduled`) is different: its training lives in the scheduler, not in
the worker. While the worker lives it follows the job; once the worker is gone, liveness asks the
scheduler (engine.cluster.scheduler) and the run keeps its status (`pending` while queued) until
the scheduler says how the job ended. Cancel goes to the scheduler too (scancel).

Temporary outputs (`.NAME.tmp-XXXX`, see engine.atomic) are listed in run.json before they are
created. Whoever sees a run end without removing them (found `lost`, force-cancelled, deleted,
or any later listing of an ended run that still lists some) removes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import paths
from engine.atomic import is_temp_name, remove_path, write_json
from engine.events import JobEvent, Progress, checked_fields, event_from_dict, is_terminal, read_event_chunk

ACTIVE = ("starting", "pending", "running")  # pending: queued in a scheduler (status_detail says why)
# `damaged`: run.json cannot be read (truncated, hand-edited); the run is still listed, with the
# reason, so that it can be looked at and deleted.
FINAL = ("succeeded", "failed", "cancelled", "lost", "damaged")
STATUSES = ("created",) + ACTIVE + FINAL
_START_GRACE_S = 30.0


class RunError(Exception):
    """A run operation the user asked for cannot be done; the text says why."""


@dataclass
class RunInfo:
    id: str
    kind: str
    dir: Path
    name: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    status: str = "created"
    pid: int | None = None
    pid_started: float | None = None
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    exit_reason: str = ""
    cancel_requested: float | None = None
    segments: list[float] = field(default_factory=list)
    """Seconds each earlier launch ran, for a run that was relaunched (a resumed training run):
    its elapsed time is all of them plus the current one, not only the last stretch."""
    status_detail: str = ""  # one line about the current status (a queued job's reason)
    scheduler: dict[str, Any] | None = None  # {"type": "slurm", "job_id": ...}: see engine.cluster.scheduler
    temps: list[str] = field(default_factory=list)
    """Temporary outputs the job has announced and not yet renamed into place or removed
    (engine.atomic's ledger): what a worker that died without cleaning up left behind."""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def label(self) -> str:
        return self.name or self.id

    def elapsed(self, now: float | None = None) -> float:
        """Seconds of work: every earlier launch (`segments`) and the current one."""
        begin = self.started or self.created
        end = self.ended or (now if now is not None else time.time())
        current = max(0.0, end - begin) if self.active or self.ended else 0.0
        return sum(self.segments) + current

    def relaunch_changes(self) -> dict[str, Any]:
        """The run.json changes that ready an ended run to be launched again: its status and
        process fields reset (a scheduled job records its new scheduler when it submits again),
        the stretch it ran kept in `segments`."""
        ran = self.elapsed() - sum(self.segments) if self.ended else 0.0
        return {"status": "created", "pid": None, "pid_started": None, "started": time.time(), "ended": None,
                "exit_reason": "", "cancel_requested": None, "status_detail": "", "scheduler": None,
                "segments": [*self.segments, round(ran, 3)]}

    @property
    def events_path(self) -> Path:
        return self.dir / "events.jsonl"

    @property
    def log_path(self) -> Path:
        return self.dir / "log.txt"

    @property
    def out_dir(self) -> Path:
        return self.dir / "out"

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "dir"}
        return data

    @classmethod
    def from_json(cls, run_dir: Path, data: Any) -> RunInfo:
        """Raises ValueError when `data` is not an object or a field has the wrong type. Unknown keys
        are dropped: run.json files of older versions still load (their `entry`, the job's
        "module:function", is gone: a run's kind alone names its job, in engine.kinds)."""
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "dir"}
        values = checked_fields(cls, data)
        for key in ("id", "kind"):
            if not values.get(key):
                raise ValueError(f"field {key!r} is missing")
        return cls(dir=run_dir, **values)

    @classmethod
    def damaged(cls, run_dir: Path, reason: str) -> RunInfo:
        """Stands in for a run whose run.json cannot be read: listed, shown, deletable."""
        try:
            created = (run_dir / "run.json").stat().st_mtime
        except OSError:
            created = 0.0
        return cls(id=run_dir.name, kind="?", dir=run_dir, status="damaged", created=created, exit_reason=reason)


def _pid_identity(pid: int) -> float | None:
    """Start time of process `pid`, or None if it is gone or a zombie."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


def worker_alive(info: RunInfo) -> bool:
    """True when the run's recorded pid is still the process that started it (not a reuse)."""
    if not info.pid:
        return False
    started = _pid_identity(info.pid)
    if started is None:
        return False
    return info.pid_started is None or abs(started - info.pid_started) <= 1.0


class RunStore:
    """All runs under one folder. Cheap to create; holds no open files."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else paths.runs_dir()
        self._bad_lines: dict[str, int] = {}
        self._bad_lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------------
    def _read(self, run_dir: Path) -> RunInfo:
        try:
            data = json.loads((run_dir / "run.json").read_bytes())
        except FileNotFoundError:
            raise RunError(f"no run {run_dir.name!r} in {self.root}") from None
        except (OSError, ValueError, RecursionError) as exc:
            raise RunError(f"{run_dir / 'run.json'} is unreadable ({exc})") from None
        try:
            return RunInfo.from_json(run_dir, data)
        except ValueError as exc:
            raise RunError(f"{run_dir / 'run.json'} is unreadable ({exc})") from None

    def _read_or_damaged(self, run_dir: Path) -> RunInfo | None:
        """The run in `run_dir`; a `damaged` stand-in when its run.json cannot be read; None for
        a folder that holds no run at all."""
        try:
            return self._read(run_dir)
        except RunError as exc:
            if not (run_dir / "run.json").exists():
                return None
            return RunInfo.damaged(run_dir, str(exc))

    def get(self, run_id: str) -> RunInfo:
        """Look a run up by id (or a unique prefix of it, or its name), marking it lost if its
        worker is gone."""
        run_dir = self.root / run_id
        if "/" in run_id or run_id.startswith(".") or not (run_dir / "run.json").exists():
            matches = [d for d in self._run_dirs() if d.name.startswith(run_id)]
            if not matches:
                matches = [d for d in self._run_dirs() if (i := self._read_quiet(d)) and i.name == run_id]
            if len(matches) != 1:
                what = "no run" if not matches else f"{len(matches)} runs"
                raise RunError(f"{what} matching {run_id!r} in {self.root}; see `llmdeck runs list`")
            run_dir = matches[0]
        info = self._read_or_damaged(run_dir)
        if info is None:
            raise RunError(f"no run {run_id!r} in {self.root}")
        return self._check_alive(info)

    def _read_quiet(self, run_dir: Path) -> RunInfo | None:
        try:
            return self._read(run_dir)
        except RunError:
            return None

    def _run_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")]

    def list(self) -> list[RunInfo]:
        """Every run, newest first; one whose run.json cannot be read is listed as `damaged`."""
        runs = [self._check_alive(info) for d in self._run_dirs() if (info := self._read_or_damaged(d))]
        runs.sort(key=lambda r: r.created, reverse=True)
        return runs

    def _check_alive(self, info: RunInfo) -> RunInfo:
        if info.status not in ACTIVE:
            return self._sweep_temps(info) if info.temps and info.status in FINAL else info
        if worker_alive(info):
            return info
        if info.scheduler:
            return self._ask_scheduler(info)
        if info.status == "starting" and time.time() - info.created < _START_GRACE_S and info.pid is None:
            return info
        # The worker may have finished between our read and the liveness check: re-read first.
        fresh = self._read(info.dir)
        if fresh.status not in ACTIVE:
            return fresh
        lost = self.update(
            info.id,
            status="lost",
            ended=time.time(),
            exit_reason="the worker process ended without recording a result (killed, out of memory, or a reboot)",
        )
        return self._sweep_temps(lost)

    def _sweep_temps(self, info: RunInfo) -> RunInfo:
        """Remove the temporary outputs an ended run left (only names made by engine.atomic)."""
        if info.status not in FINAL or not info.temps:
            return info
        for raw in info.temps:
            if is_temp_name(Path(raw)):
                remove_path(Path(raw))
        try:
            return self.update(info.id, temps=[])
        except (RunError, OSError):
            return info

    def housekeeping(self) -> int:
        """Start-up clean-up: every ended run that still lists temporary outputs loses them.
        Cheap (reads run.json files only). Returns how many runs were cleaned."""
        cleaned = 0
        for run_dir in self._run_dirs():
            info = self._read_quiet(run_dir)
            if info is not None and info.temps and self._check_alive(info).temps != info.temps:
                cleaned += 1
        return cleaned

    def add_temp(self, run_id: str, path: Path) -> None:
        with self._locked(self.root / run_id):
            info = self._read(self.root / run_id)
            if str(path) not in info.temps:
                info.temps.append(str(path))
                write_json(info.dir / "run.json", info.to_json(), record=False)

    def discard_temp(self, run_id: str, path: Path) -> None:
        with self._locked(self.root / run_id):
            info = self._read(self.root / run_id)
            if str(path) in info.temps:
                info.temps.remove(str(path))
                write_json(info.dir / "run.json", info.to_json(), record=False)

    def _ask_scheduler(self, info: RunInfo) -> RunInfo:
        """The worker of a scheduled run is gone: its status is the scheduler's to tell."""
        from engine.cluster import scheduler

        try:
            status, detail = scheduler.observe(info.scheduler or {})
        except scheduler.SchedulerUnavailable as exc:
            info.status_detail = f"cannot ask the scheduler: {exc}"
            return info  # not lost: the job may be fine; say why the status is not fresh
        fresh = self._read(info.dir)
        if fresh.status not in ACTIVE:
            return fresh
        if status in ACTIVE:
            if (status, detail) == (fresh.status, fresh.status_detail):
                return fresh
            return self.update(info.id, status=status, status_detail=detail)
        ended = self.update(info.id, status=status, status_detail="", ended=time.time(), exit_reason=detail)
        return self._sweep_temps(ended)

    # -- writing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, run_dir: Path) -> Iterator[None]:
        with open(run_dir / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update(self, run_id: str, **changes: Any) -> RunInfo:
        """Read-modify-write run.json under a lock; the file is replaced atomically."""
        run_dir = self.root / run_id
        with self._locked(run_dir):
            info = self._read(run_dir)
            for key, value in changes.items():
                if key not in RunInfo.__dataclass_fields__ or key == "dir":
                    raise KeyError(key)
                setattr(info, key, value)
            write_json(run_dir / "run.json", info.to_json(), record=False)
        return info

    def create(self, kind: str, spec: dict[str, Any], *, name: str = "") -> RunInfo:
        paths.ensure_writable(self.root)
        # The id is short to type (4 hex digits after the second), so two runs created in the same
        # second can draw the same one (even odds by about 300 a second): mkdir claims an id
        # atomically, and a taken one is drawn again.
        while True:
            run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{kind.replace('.', '-')}-{secrets.token_hex(2)}"
            run_dir = self.root / run_id
            try:
                run_dir.mkdir()
                break
            except FileExistsError:
                continue
        (run_dir / "out").mkdir()
        (run_dir / "events.jsonl").touch()
        (run_dir / "log.txt").touch()
        info = RunInfo(id=run_id, kind=kind, dir=run_dir, name=name, spec=spec, created=time.time())
        write_json(run_dir / "run.json", info.to_json(), record=False)
        return info

    def start(self, kind: str, spec: dict[str, Any], *, name: str = "") -> RunInfo:
        """Create a run of `kind` (a kind of engine.kinds) and spawn its detached worker, which
        runs the kind's job; returns at once."""
        from engine.kinds import require_known

        require_known(kind)  # fail now, in the caller; the worker is the one that imports the job
        info = self.create(kind, spec, name=name)
        return self.launch(info)

    def launch(self, info: RunInfo) -> RunInfo:
        log = open(info.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "engine.worker", str(info.dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session: survives SIGHUP, the TUI and the terminal
                cwd=str(info.dir),
                env={**os.environ, "PYTHONPATH": paths.engine_root() + os.pathsep + os.environ.get("PYTHONPATH", "")},
                close_fds=True,
            )
        finally:
            log.close()
        # Reap the child when it exits so it never lingers as a zombie in a long-lived TUI.
        threading.Thread(target=proc.wait, daemon=True, name=f"reap-{proc.pid}").start()
        identity = _pid_identity(proc.pid)
        with self._locked(info.dir):
            current = self._read(info.dir)
            if current.status == "created":
                current.status = "starting"
            if current.pid is None:
                current.pid = proc.pid
                current.pid_started = identity
            write_json(info.dir / "run.json", current.to_json(), record=False)
        return current

    def cancel(self, run_id: str, *, force: bool = False) -> RunInfo:
        """Ask a run to stop (SIGTERM: the job stops cooperatively and ends `cancelled`).
        `force` kills the worker's whole process group at once (SIGKILL). A scheduled run whose
        worker is gone, or a forced one, is cancelled in its scheduler (scancel)."""
        info = self.get(run_id)
        if not info.active:
            raise RunError(f"run {info.id} is {info.status}; only a running run can be cancelled")
        alive = worker_alive(info)
        if info.scheduler and (force or not alive):
            self._cancel_scheduled(info)
            if not alive:
                return self.update(info.id, cancel_requested=time.time())
        if not alive:
            return self._check_alive(info)
        info = self.update(info.id, cancel_requested=time.time())
        try:
            if force:
                os.killpg(info.pid, signal.SIGKILL)  # type: ignore[arg-type]
            else:
                os.kill(info.pid, signal.SIGTERM)  # type: ignore[arg-type]
        except ProcessLookupError:
            pass
        except PermissionError:
            raise RunError(f"not allowed to signal pid {info.pid} of run {info.id} (owned by another user)") from None
        if force:
            # Temporary outputs go only once the worker is really gone: a dying process could
            # otherwise still create files in a folder being removed.
            deadline = time.monotonic() + 5.0
            while worker_alive(info) and time.monotonic() < deadline:
                time.sleep(0.02)
            ended = self.update(info.id, status="cancelled", ended=time.time(), exit_reason="killed by request")
            return self._sweep_temps(ended)
        return info

    def _cancel_scheduled(self, info: RunInfo) -> None:
        from engine.cluster import scheduler

        try:
            scheduler.cancel(info.scheduler or {})
        except scheduler.SchedulerUnavailable as exc:
            raise RunError(f"cannot cancel run {info.id} in its scheduler: {exc}") from None

    def delete(self, run_id: str) -> None:
        """Remove a run that is not active (a `damaged` one too), with anything it left."""
        info = self.get(run_id)
        if info.active:
            raise RunError(f"run {info.id} is {info.status}; cancel it before deleting it")
        self._sweep_temps(info)
        shutil.rmtree(info.dir)

    # -- events ------------------------------------------------------------------------------
    def read_events(self, run_id: str, offset: int = 0) -> tuple[list[JobEvent], int]:
        """Events appended to the run's events.jsonl since byte `offset` (see `events.read_event_chunk`);
        bad lines are skipped and counted (`bad_event_lines`)."""
        events, bad, offset = read_event_chunk(self.root / run_id / "events.jsonl", offset)
        if bad:
            with self._bad_lock:
                self._bad_lines[run_id] = self._bad_lines.get(run_id, 0) + bad
        return events, offset

    def bad_event_lines(self, run_id: str) -> int:
        """How many lines of the run's events.jsonl this store skipped so far (torn, foreign or
        wrong-shaped lines: one bad line must never stop a view of the run)."""
        with self._bad_lock:
            return self._bad_lines.get(run_id, 0)

    def follow(
        self, run_id: str, offset: int = 0, *, poll: float = 0.2, stop: threading.Event | None = None
    ) -> Iterator[JobEvent]:
        """Yield every event from `offset` on, then live ones, until the run ends."""
        info = self.get(run_id)
        while True:
            events, offset = self.read_events(info.id, offset)
            yield from events
            if any(is_terminal(e) for e in events):
                return
            info = self.get(info.id)
            if not info.active:
                # The worker records its status just before writing its last event: give that
                # line a moment to land. A lost worker never writes one.
                deadline = time.monotonic() + (2.0 if info.status != "lost" else 0.0)
                while True:
                    events, offset = self.read_events(info.id, offset)
                    yield from events
                    if any(is_terminal(e) for e in events) or time.monotonic() >= deadline:
                        return
                    time.sleep(0.05)
            if stop is not None and stop.wait(poll):
                return
            if stop is None:
                time.sleep(poll)

    def last_progress(self, run_id: str, tail_bytes: int = 65536) -> Progress | None:
        """The newest Progress event, read from the end of events.jsonl (cheap for big files)."""
        path = self.root / run_id / "events.jsonl"
        try:
            size = path.stat().st_size
            with open(path, "rb") as handle:
                handle.seek(max(0, size - tail_bytes))
                lines = handle.read().splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            if b'"progress"' not in line:
                continue
            with contextlib.suppress(ValueError, TypeError, RecursionError):
                event = event_from_dict(json.loads(line))
                if isinstance(event, Progress):
                    return event
        return None

    def log_tail(self, run_id: str, lines: int = 200, tail_bytes: int = 262144) -> list[str]:
        path = self.root / run_id / "log.txt"
        try:
            size = path.stat().st_size
            with open(path, "rb") as handle:
                handle.seek(max(0, size - tail_bytes))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]


class RunTemps:
    """The temp ledger (engine.atomic.TempLedger) of a worker: temporary outputs are listed in
    the run's run.json before they exist and removed from it once renamed or cleaned up."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def add(self, path: Path) -> None:
        self.store.add_temp(self.run_id, Path(path).absolute())

    def discard(self, path: Path) -> None:
        self.store.discard_temp(self.run_id, Path(path).absolute())


def _engine_root() -> str:
    """The folder holding the `engine` package, so the worker imports this same code."""
    return str(Path(__file__).resolve().parent.parent)
