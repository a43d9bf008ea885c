"""Walk every mode of the TUI at 80x24 in a real tmux, pressing every key its footer shows.

    PYTHONPATH=$PWD python bench/tmux_walk.py [--size 80x24] [--keep]

The app runs in a detached tmux session (a real terminal, real key sequences from
`tmux send-keys`), in a fresh LLMDECK_HOME. For each mode (1..9) the script presses the mode's
number, then each key the footer offers (not q), and after each key it checks:

- no traceback on the pane, and the app still running;
- the focused widget is visible: displayed, with a non-empty region on the screen (a focused
  field that cannot be seen eats keys, e.g. an invisible filter);
- no form control (Input, Button, Select, Checkbox, TextArea) is cut off: one partly or wholly
  off the screen must sit in a container that can scroll to it.

The last two need the app's own view of its widgets: the app in tmux is `LLMDeckApp` with a
timer that writes that view to a JSON file (`--app` below), which the driver reads; what the
user sees is the pane, captured and kept on a finding. Esc closes what a key opened before the
next key. Exit status 1 with one line per finding, 0 when the walk found nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FORM_CONTROLS = ("Input", "Button", "Select", "Checkbox", "TextArea", "RadioSet", "Switch")

TMUX_KEYS = {"escape": "Escape", "enter": "Enter", "tab": "Tab", "space": "Space", "slash": "/",
             "question_mark": "?", "delete": "DC", "backspace": "BSpace", "left_square_bracket": "[",
             "right_square_bracket": "]", "up": "Up", "down": "Down", "left": "Left", "right": "Right",
             "home": "Home", "end": "End", "pageup": "PPage", "pagedown": "NPage", "plus": "+", "minus": "-"}


def tmux_key(key: str) -> str:
    """Textual's key name -> tmux send-keys' name ('ctrl+r' -> 'C-r', 'f2' -> 'F2')."""
    mods, _, base = key.rpartition("+")
    base = TMUX_KEYS.get(base, base.upper() if base.startswith("f") and base[1:].isdigit() else base)
    prefix = "".join({"ctrl": "C-", "alt": "M-", "shift": "S-"}[m] for m in mods.split("+") if m)
    return prefix + base


# -- inside tmux: the app, writing what it shows ----------------------------------------------
def run_app(state_file: str) -> None:
    from textual.widget import Widget
    from textual.widgets import Input, TextArea

    from tui.app import LLMDeckApp

    def shown(widget: Widget) -> bool:
        node: Any = widget
        while node is not None and isinstance(node, Widget):
            if not node.display or not node.visible:
                return False
            node = node.parent
        return True

    def scrolls_to(widget: Widget) -> bool:
        node = widget.parent
        while isinstance(node, Widget):
            if node.max_scroll_y > 0 or node.max_scroll_x > 0:
                return True
            node = node.parent
        return False

    class WalkedApp(LLMDeckApp):
        def on_mount(self) -> None:  # Textual calls LLMDeckApp.on_mount too (handlers run up the MRO)
            self.set_interval(0.1, self._write_state)

        def _write_state(self) -> None:
            screen = self.screen
            area = screen.region
            focused = self.focused
            focus: dict[str, Any] = {}
            if focused is not None:
                region = focused.region
                focus = {"widget": f"{type(focused).__name__}#{focused.id}", "shown": shown(focused),
                         "text": isinstance(focused, (Input, TextArea)),
                         "on_screen": bool(region.area) and area.overlaps(region)}
            cut = []
            for widget in screen.query("*"):
                if type(widget).__name__ not in FORM_CONTROLS and not any(
                        c.__name__ in FORM_CONTROLS for c in type(widget).__mro__):
                    continue
                if not shown(widget):
                    continue
                try:
                    geometry = screen.find_widget(widget)
                except Exception:  # noqa: BLE001 (not in the compositor's map: not laid out)
                    continue
                region = geometry.region
                if region.area and not area.contains_region(region) and not scrolls_to(widget):
                    cut.append(f"{type(widget).__name__}#{widget.id} at {tuple(region)}")
            footer = [[key, active.binding.description] for key, active in screen.active_bindings.items()
                      if active.binding.show and active.enabled and active.binding.description]
            state = {"mode": getattr(self, "current_mode", ""), "screen": type(screen).__name__,
                     "modal": screen.is_modal, "focus": focus, "cut": cut, "footer": footer, "time": time.time()}
            tmp = state_file + ".tmp"
            Path(tmp).write_text(json.dumps(state))
            os.replace(tmp, state_file)

    WalkedApp(start_mode="monitor").run()


# -- outside: the driver ----------------------------------------------------------------------
class Walk:
    def __init__(self, size: str, keep: bool) -> None:
        self.session = f"llmdeck-walk-{os.getpid()}"
        self.home = Path(tempfile.mkdtemp(prefix="llmdeck-walk-"))
        self.state_file = str(self.home / "state.json")
        self.size = size.split("x")
        self.keep = keep
        self.findings: list[str] = []

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout

    def start(self) -> None:
        env = f"LLMDECK_HOME={self.home} PYTHONPATH={os.environ.get('PYTHONPATH', '')} TERM=xterm-256color"
        command = f"env {env} {sys.executable} {Path(__file__).resolve()} --app {self.state_file}"
        self.tmux("new-session", "-d", "-s", self.session, "-x", self.size[0], "-y", self.size[1], command)
        self.tmux("set-option", "-t", self.session, "remain-on-exit", "on")
        self.wait_state(lambda s: True, 60, "the app's first frame")

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(Path(self.state_file).read_text())
        except (OSError, ValueError):
            return {}

    def wait_state(self, ok: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state and time.time() - state["time"] < 1 and ok(state):
                return state
            if self.dead():
                break
            time.sleep(0.1)
        raise RuntimeError(f"{what} not reached in {timeout:g} s\n{self.pane()}")

    def pane(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def dead(self) -> bool:
        return self.tmux("display-message", "-p", "-t", self.session, "#{pane_dead}").strip() == "1"

    def press(self, key: str) -> None:
        self.tmux("send-keys", "-t", self.session, tmux_key(key))
        time.sleep(0.6)  # a real user's pace; the state file is rewritten every 0.1 s

    def settled(self, timeout: float = 8.0) -> dict[str, Any]:
        """The app's view once it is fresh and fine, or the last one seen after `timeout` (a
        screen being built, or a busy machine, may show a passing state: only one that stays
        is a finding)."""
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.state()
            focus = state.get("focus") or {}
            fresh = bool(state) and time.time() - state["time"] < 0.5
            if fresh and not state.get("cut") and (not focus or (focus["shown"] and focus["on_screen"])):
                return state
            time.sleep(0.2)
        return state

    def check(self, where: str) -> dict[str, Any]:
        pane = self.pane()
        if "Traceback" in pane or self.dead():
            self.findings.append(f"{where}: traceback or the app ended\n{pane}")
            raise RuntimeError(self.findings[-1])
        state = self.settled()
        pane = self.pane()
        focus = state.get("focus") or {}
        if focus and not (focus["shown"] and focus["on_screen"]):
            self.findings.append(f"{where}: focused {focus['widget']} is not visible\n{pane}")
        for cut in state.get("cut", []):
            self.findings.append(f"{where}: {cut} is cut off (off the screen, nothing scrolls to it)\n{pane}")
        return state

    def back_to(self, mode: str, number: int) -> None:
        """Close what the last key opened, and leave a text field it chose, with Esc."""
        for _ in range(3):
            state = self.state()
            if (state.get("mode") == mode and not state.get("modal") and state.get("screen", "").endswith("Screen")
                    and not (state.get("focus") or {}).get("text")):
                break
            self.press("escape")
        state = self.state()
        if state.get("mode") != mode or state.get("modal"):
            self.press("escape")
            self.press(str(number))

    def walk(self) -> None:
        from tui.modes import MODES

        for number, mode in enumerate(MODES, start=1):
            if (self.state().get("focus") or {}).get("text"):
                self.press("escape")  # a field the last key chose: Esc leaves it, as a user would
            self.press(str(number))
            try:
                state = self.wait_state(lambda s, m=mode.key: s["mode"] == m, 20, f"mode {mode.key} by key {number}")
            except RuntimeError as exc:
                self.findings.append(f"{mode.key}: key {number} did not switch to it (a field took it?)\n{exc}")
                self.press("escape")
                self.press(str(number))
                state = self.wait_state(lambda s, m=mode.key: s["mode"] == m, 20, f"mode {mode.key}")
            state = self.check(f"{mode.key}")
            keys = [key for key, _ in state.get("footer", []) if key not in ("q",) and not key.isdigit()]
            print(f"{number} {mode.key}: footer {' '.join(keys)}", flush=True)
            for key in keys:
                self.press(key)
                self.check(f"{mode.key} after {key}")
                self.back_to(mode.key, number)
                self.check(f"{mode.key} after {key} and Esc")

    def stop(self) -> None:
        if not self.dead():
            self.press("ctrl+q")
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)
        if not self.keep:
            shutil.rmtree(self.home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="80x24")
    parser.add_argument("--keep", action="store_true", help="keep the walk's LLMDECK_HOME")
    parser.add_argument("--app", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.app:
        run_app(args.app)
        return 0
    if shutil.which("tmux") is None:
        print("tmux is not installed (apt-get install tmux)", file=sys.stderr)
        return 2
    walk = Walk(args.size, args.keep)
    try:
        walk.start()
        walk.walk()
    except RuntimeError as exc:
        if not walk.findings:
            walk.findings.append(str(exc))
    finally:
        walk.stop()
    for finding in walk.findings:
        print("FOUND " + finding, flush=True)
    print(f"{len(walk.findings)} finding(s) in 9 modes at {args.size}")
    return 1 if walk.findings else 0


if __name__ == "__main__":
    sys.exit(main())
