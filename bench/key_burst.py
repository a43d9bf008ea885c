"""Lost keystrokes (issue 17, item 11): a fast burst of typed characters, then ctrl+s, in a real
tmux at 80x24 on a loaded box; does the value ctrl+s reads hold every character sent?

    PYTHONPATH=$PWD python bench/key_burst.py [--mode convert|chat] [--tries 50] [--burn 2] [--size 80x24]

The app runs in a detached tmux session, started on Convert with the focus in the output field.
Each try is ONE `tmux send-keys` call: a 40-character path, then C-s, so the terminal gets them
back to back, as a fast typist or a paste followed by the key does. Inside the app,
`ConvertScreen.action_start` (what ctrl+s runs) is wrapped to record the output field's value
at that moment (`spec()`, the same read the start uses) instead of starting, then empty the
field, so a character processed after ctrl+s would show up at the head of the next try's value.
`--input GGUF` fills the input field (quantize), so every burst is also pre-flighted in a thread
worker while the next one is typed. `--burn N` runs N busy loops (`while 1: pass`) for the
experiment's duration only. `--mode chat` does the same in Chat's message field with Enter
(`on_chat_input_submitted` records the field's text and the message's copy, and sends nothing;
the bundled model loads meanwhile, as it does for a user). Prints each mismatch and a count;
exit status 1 when one is found.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LENGTH = 40


def run_app(record: str, mode: str, source: str, unfocused: bool) -> None:
    """Inside tmux: the app on Convert (output field focused, ctrl+s recorded) or on Chat (the
    message field focused, Enter recorded, nothing sent)."""
    from textual.widgets import Input

    from tui.app import LLMDeckApp
    from tui.screens.chat import ChatScreen
    from tui.screens.convert import ConvertScreen
    from tui.widgets.chat_input import ChatInput

    def write(read: str, **more: str) -> None:
        with open(record, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"read": read, "time": time.time(), **more}) + "\n")

    def recorded_start(self: ConvertScreen) -> None:
        write(self.spec()["output"])  # the read a start makes; nothing starts
        self.query_one("#conv-output", Input).value = ""

    async def recorded_send(self: ChatScreen, event: ChatInput.Submitted) -> None:
        event.stop()
        write(self.chat_input.text, message=event.text)  # what a send reads, and the message's copy
        self.chat_input.clear()
        if unfocused:
            self.set_focus(None)  # the next burst starts as a user's first letter does: nothing focused

    ConvertScreen.action_start = recorded_start  # type: ignore[method-assign]
    ChatScreen.on_chat_input_submitted = recorded_send  # type: ignore[method-assign]
    screen_type, field = (ConvertScreen, "#conv-output") if mode == "convert" else (ChatScreen, "#chat-input")

    class BurstApp(LLMDeckApp):
        def on_mount(self) -> None:  # Textual calls LLMDeckApp.on_mount too
            self.set_timer(1.0, self._focus_field)

        def _focus_field(self) -> None:
            if not isinstance(self.screen, screen_type):
                self.set_timer(0.5, self._focus_field)
                return
            if not unfocused:
                self.screen.query_one(field).focus()
            Path(record + ".ready").write_text("ready")

    # With an input, every burst is pre-flighted in a thread worker as the user types.
    BurstApp(start_mode=mode, options={"action": "quantize", "input": source} if source else {}).run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=50)
    parser.add_argument("--burn", type=int, default=2, help="busy loops to run meanwhile")
    parser.add_argument("--size", default="80x24")
    parser.add_argument("--mode", choices=("convert", "chat"), default="convert",
                        help="convert: a path, then C-s; chat: a message, then Enter")
    parser.add_argument("--input", default="", help="convert: a GGUF to quantize (each burst is then pre-flighted)")
    parser.add_argument("--unfocused", action="store_true",
                        help="chat: every burst starts with no field focused (a letter starts a message)")
    parser.add_argument("--app", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.app:
        run_app(args.app, args.mode, args.input, args.unfocused)
        return 0
    if shutil.which("tmux") is None:
        print("tmux is not installed (apt-get install tmux)", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="llmdeck-burst-"))
    record = home / "record.jsonl"
    session = f"llmdeck-burst-{os.getpid()}"
    width, height = args.size.split("x")
    burners = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(args.burn)]
    env = f"LLMDECK_HOME={home} PYTHONPATH={os.environ.get('PYTHONPATH', '')} TERM=xterm-256color"
    sent: list[str] = []
    lost: list[str] = []
    unsent: list[int] = []
    try:
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", width, "-y", height,
                        f"env {env} {sys.executable} {Path(__file__).resolve()} --mode {args.mode} --app {record}"
                        + (f" --input {args.input}" if args.input else "")
                        + (" --unfocused" if args.unfocused else "")],
                       check=True)
        deadline = time.monotonic() + 120
        while not Path(str(record) + ".ready").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the app did not reach Convert in 120 s")
            time.sleep(0.2)
        time.sleep(1.0)
        started = time.monotonic()
        for n in range(args.tries):
            if args.mode == "convert":
                text = (f"/tmp/k{n:04d}/abcdefghijklmnopqrstuvwxyz0123456789")[: LENGTH - 5] + ".gguf"
            else:
                text = f"The capital of Italy is Rome, try {n:04d} ok"[:LENGTH]
            sent.append(text)
            subprocess.run(["tmux", "send-keys", "-t", session, text, "C-s" if args.mode == "convert" else "Enter"],
                           check=True)
            deadline = time.monotonic() + 10
            while _count(record) < n + 1:
                if time.monotonic() > deadline:  # the key did not submit: a user presses it again
                    unsent.append(n)
                    subprocess.run(["tmux", "send-keys", "-t", session, "C-s" if args.mode == "convert" else "Enter"],
                                   check=True)
                    deadline = time.monotonic() + 30
                    if n in unsent[:-1]:
                        raise RuntimeError(f"try {n}: the submit key was not handled, twice")
                time.sleep(0.02)
            time.sleep(0.3)  # a character handled after ctrl+s lands in the emptied field now
        time.sleep(1.0)
        rows = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
        reads = [row["read"] for row in rows]
        for n, (want, row) in enumerate(zip(sent, rows, strict=False)):
            for what in ("read", "message"):
                if what in row and row[what] != want:
                    lost.append(f"try {n}: sent {want!r} ({len(want)}), {what} {row[what]!r} ({len(row[what])})")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        lost += [f"try {n}: the first submit key did not submit" for n in unsent]
        print("\n".join(lost))
        print(f"{len(lost)} mismatches in {len(sent)} tries ({args.mode}); {len(reads)} submits handled; "
              f"{time.monotonic() - started:.0f} s; {args.burn} busy loops; load {load}; {args.size}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        for proc in burners:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)
    return 1 if lost else 0


def _count(record: Path) -> int:
    try:
        return sum(1 for line in record.read_text().splitlines() if line.strip())
    except OSError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
