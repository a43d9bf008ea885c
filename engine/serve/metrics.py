"""Server counters and their Prometheus text form (`GET /metrics`), without prometheus_client.

Everything here is updated from the event loop thread, or under a lock from generation threads,
and read by `/metrics` and the per-request log that the detached run writes to its events.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass
class RequestRecord:
    """One finished request, as the request log and the Serve mode show it."""

    endpoint: str
    status: int
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    ttft_s: float | None = None
    finish_reason: str = ""
    error: str = ""
    at: float = field(default_factory=time.time)
    method: str = "POST"

    @property
    def tokens_per_s(self) -> float | None:
        if self.completion_tokens and self.latency_s > 0:
            return self.completion_tokens / self.latency_s
        return None

    def line(self) -> str:
        """'POST /v1/chat/completions 200 stream 12+64 tok 0.81 s TTFT 0.05 s stop'."""
        parts = [f"{self.method} {self.endpoint} {self.status}"]
        if self.stream:
            parts.append("stream")
        parts.append(f"{self.prompt_tokens}+{self.completion_tokens} tok")
        parts.append(f"{self.latency_s:.2f} s")
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s:.2f} s")
        if self.finish_reason:
            parts.append(self.finish_reason)
        if self.error:
            parts.append(f"({self.error})")
        return " ".join(parts)


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name: str, help_text: str) -> list[str]:
        out = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        out += [f'{name}_bucket{{le="{b:g}"}} {c}' for b, c in zip(self.buckets, self.counts, strict=True)]
        out += [f'{name}_bucket{{le="+Inf"}} {self.total}', f"{name}_sum {self.sum:.6f}", f"{name}_count {self.total}"]
        return out


class ServerMetrics:
    def __init__(self, model: str) -> None:
        self.model = model
        self.started = time.time()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.ttft = _Histogram(LATENCY_BUCKETS)
        self._lock = threading.Lock()

    def record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests[(rec.endpoint, rec.status)] += 1
            self.prompt_tokens += rec.prompt_tokens
            self.completion_tokens += rec.completion_tokens
            if rec.status == 200:
                self.latency.observe(rec.latency_s)
                if rec.ttft_s is not None:
                    self.ttft.observe(rec.ttft_s)

    def prometheus(self, active: int, waiting: int) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            lines = ["# HELP llmdeck_requests_total Requests answered, by endpoint and HTTP status.",
                     "# TYPE llmdeck_requests_total counter"]
            lines += [f'llmdeck_requests_total{{endpoint="{ep}",status="{st}"}} {n}'
                      for (ep, st), n in sorted(self.requests.items())]
            lines += ["# HELP llmdeck_tokens_total Tokens processed, by kind.", "# TYPE llmdeck_tokens_total counter",
                      f'llmdeck_tokens_total{{kind="prompt"}} {self.prompt_tokens}',
                      f'llmdeck_tokens_total{{kind="completion"}} {self.completion_tokens}']
            lines += self.latency.lines("llmdeck_request_latency_seconds",
                                        "Time from request to last token (successful requests).")
            lines += self.ttft.lines("llmdeck_time_to_first_token_seconds",
                                     "Time from request to first token (successful requests).")
        lines += ["# HELP llmdeck_active_requests Requests generating now.", "# TYPE llmdeck_active_requests gauge",
                  f"llmdeck_active_requests {active}",
                  "# HELP llmdeck_queue_depth Requests waiting for a free slot.", "# TYPE llmdeck_queue_depth gauge",
                  f"llmdeck_queue_depth {waiting}",
                  "# HELP llmdeck_uptime_seconds Seconds since the server started.",
                  "# TYPE llmdeck_uptime_seconds gauge",
                  f"llmdeck_uptime_seconds {time.time() - self.started:.1f}"]
        return "\n".join(lines) + "\n"
