"""Live figures of one serve run, folded from its events (what the Serve mode shows).

The server run writes a Metric per answered request (`request=1`, tokens, latency, TTFT), a
Metric whenever the number of active/waiting requests changes (`gauge=1`), and a Log line per
request. Any process can rebuild the figures by reading events.jsonl incrementally.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from engine.events import JobEvent, Log, Metric, Progress

WINDOW_S = 10.0
LOG_LINES = 200


@dataclass(frozen=True)
class ServeSnapshot:
    requests_per_s: float
    tokens_per_s: float
    active: int
    waiting: int
    requests: int
    errors: int
    completion_tokens: int
    phase: str
    log: tuple[str, ...]


class ServeStats:
    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self.offset = 0
        self.recent: deque[tuple[float, float]] = deque()  # (at, completion tokens) of finished requests
        self.active = 0
        self.waiting = 0
        self.requests = 0
        self.errors = 0
        self.completion_tokens = 0
        self.phase = ""
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.last_at = 0.0

    def feed(self, events: list[JobEvent]) -> None:
        for event in events:
            self.last_at = max(self.last_at, event.at)
            if isinstance(event, Metric):
                values = event.values
                if values.get("gauge"):
                    self.active = int(values.get("active", 0))
                    self.waiting = int(values.get("waiting", 0))
                elif values.get("request"):
                    self.requests += 1
                    tokens = float(values.get("completion_tokens", 0))
                    self.completion_tokens += int(tokens)
                    if values.get("status", 200) >= 400:
                        self.errors += 1
                    self.recent.append((event.at, tokens))
            elif isinstance(event, Progress) and event.phase:
                self.phase = event.phase
            elif isinstance(event, Log):
                self.log.append(event.text)

    def snapshot(self, now: float) -> ServeSnapshot:
        while self.recent and self.recent[0][0] < now - self.window_s:
            self.recent.popleft()
        n = len(self.recent)
        tokens = sum(t for _, t in self.recent)
        return ServeSnapshot(n / self.window_s, tokens / self.window_s, self.active, self.waiting, self.requests,
                             self.errors, self.completion_tokens, self.phase, tuple(self.log))
