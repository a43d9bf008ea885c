"""Chat speed: llama-cpp-python in a bare loop vs the full Chat screen path, and key latency.

1. Same prompt, same settings (bundled Gemma 3 270M GGUF unless --model, greedy, fixed max
   tokens), alternating runs of
     (a) `Llama.create_completion(stream=True)` consumed in a bare Python loop, and
     (b) the Chat screen in a headless LLMDeckApp: Enter in the input -> ChatBackend.stream in a
         thread worker -> batches drawn into a MarkdownStream in the transcript, paced for a
         model on this CPU (ui.stream_cpu_percent, --cpu-percent; never closer than
         ui.stream_interval_ms, --flush-ms). Each run prints how far apart the draws were.
   Both use the same loaded model. (a) TTFT is call -> first chunk; (b) TTFT is Enter handled ->
   first text in the transcript widget. tokens/s is (tokens - 1) / (last - first token time),
   for (b) the times the text reached the transcript. Target: (b) >= 98% of (a) tokens/s, TTFT
   overhead < 30 ms (medians).
2. Key-press latency while streaming from a synthetic 1000 tokens/s backend: time from a key
   press until the input widget holds the character. Target: p95 < 50 ms.

3. With --hf-model DIR (on a GPU): transformers plain `generate` vs static KV cache + compiled
   decoding on the same model. Target: >= 5x.

    python bench/chat.py [--runs 5] [--max-tokens 128] [--threads 2] [--keys 100] [--model X.gguf]
                         [--cpu-percent 4] [--flush-ms 50] [--hf-model DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."


def bare_run(backend, max_tokens: int) -> dict:
    """(a): the same rendered prompt tokens straight into llama-cpp-python."""
    tokens = backend.prompt_tokens([{"role": "user", "content": PROMPT}])
    backend.llm.reset()
    start = time.perf_counter()
    first = last = None
    n = 0
    for chunk in backend.llm.create_completion(tokens, max_tokens=max_tokens, temperature=0.0, top_k=40,
                                               top_p=0.95, min_p=0.05, repeat_penalty=1.0,
                                               stop=list(backend.template.stop_strings), stream=True):
        now = time.perf_counter()
        if chunk["choices"][0]["text"]:
            n += 1
            first = first or now
            last = now
    return {"ttft": first - start, "tps": (n - 1) / (last - first) if n > 1 else 0.0, "tokens": n}


class Finished(list):
    """The app's `AnswerView.Finished` messages (a `run_test(message_hook=...)`)."""

    def __call__(self, message) -> None:
        from tui.widgets.answer_view import AnswerView

        if isinstance(message, AnswerView.Finished) and all(m is not message for m in self):
            self.append(message)


async def screen_run(pilot, screen, finished: Finished, max_tokens: int) -> dict:
    """(b): Enter in the Chat screen, until the answer is done."""
    await screen.action_new_session()
    screen.chat_input.text = PROMPT
    before = len(finished)
    await pilot.press("enter")
    while len(finished) == before:
        await asyncio.sleep(0.05)  # coarse: this loop runs on the UI thread, and the figures come from the answer
    t, stats = finished[-1].timings, finished[-1].stats
    n = stats["generated_tokens"]
    span = (t.last_shown or 0) - (t.first_shown or 0)
    return {"ttft": t.first_shown - t.sent, "tps": (n - 1) / span if n > 1 and span > 0 else 0.0, "tokens": n,
            "draw_ms": span / max(1, t.draws - 1) * 1000,
            "backend_ttft": stats["ttft_s"], "backend_tps": stats["tokens_per_s"]}


async def speed(args) -> None:
    from engine.chat.default_model import default_model_path
    from engine.chat.llama_cpp_backend import LlamaCppBackend
    from engine.chat.params import SamplingParams
    from tui.app import LLMDeckApp

    model = args.model or str(default_model_path())
    backend = LlamaCppBackend(model, n_ctx=2048, n_threads=args.threads)
    params = SamplingParams(temperature=0.0, max_new_tokens=args.max_tokens).to_dict()
    app = LLMDeckApp(start_mode="chat", options={"chat_backend": backend, "chat_params": params})
    rows_a, rows_b = [], []
    finished = Finished()
    async with app.run_test(size=(100, 30), message_hook=finished) as pilot:
        screen = app.screen
        await asyncio.to_thread(bare_run, backend, 8)  # warm-up: page in the weights
        await screen_run(pilot, screen, finished, args.max_tokens)
        for i in range(args.runs):
            a = await asyncio.to_thread(bare_run, backend, args.max_tokens)
            b = await screen_run(pilot, screen, finished, args.max_tokens)
            rows_a.append(a)
            rows_b.append(b)
            print(f"run {i + 1}: bare {a['tps']:.1f} tok/s TTFT {a['ttft'] * 1000:.0f} ms ({a['tokens']} tok) | "
                  f"screen {b['tps']:.1f} tok/s TTFT {b['ttft'] * 1000:.0f} ms ({b['tokens']} tok, "
                  f"a draw every {b['draw_ms']:.0f} ms; "
                  f"in the worker: {b['backend_tps']:.1f} tok/s, TTFT {b['backend_ttft'] * 1000:.0f} ms)", flush=True)
    backend.close()
    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    ratio = statistics.median(b["tps"] / a["tps"] for a, b in zip(rows_a, rows_b, strict=False))
    print(f"\nmodel {Path(model).name}, {args.threads} threads, {args.max_tokens} max tokens, "
          f"{args.runs} alternating runs")
    print(f"(a) bare llama-cpp loop : {med(rows_a, 'tps'):6.1f} tok/s  TTFT {med(rows_a, 'ttft') * 1000:6.1f} ms")
    print(f"(b) Chat screen (full)  : {med(rows_b, 'tps'):6.1f} tok/s  TTFT {med(rows_b, 'ttft') * 1000:6.1f} ms")
    print(f"median ratio (b)/(a) tokens/s: {ratio:.3f}  (target >= 0.98)")
    print(f"median TTFT overhead: {(med(rows_b, 'ttft') - med(rows_a, 'ttft')) * 1000:+.1f} ms  (target < 30 ms)")



async def key_latency(args) -> None:
    from textual import events

    from engine.chat.base import BackendInfo, ChatBackend, Delta
    from tui.app import LLMDeckApp

    class Fast(ChatBackend):
        NAME = "synthetic"

        @property
        def info(self):
            return BackendInfo("synthetic", "1000 tok/s", "none", 100000)

        def _stream(self, messages, params, cancel, clock):
            start = time.perf_counter()
            for i in range(args.stream_tokens):
                wait = start + i / args.rate - time.perf_counter()
                if wait > 0 and cancel.wait(wait):
                    return
                clock.token(1)
                # prose with a paragraph break every ~80 tokens and a code block now and then
                if i % 400 == 200:
                    yield Delta("\n\n```python\nprint('hello')\n```\n\n")
                else:
                    yield Delta("word " if i % 80 else "word.\n\n")

    app = LLMDeckApp(start_mode="chat", options={"chat_backend": Fast()})
    lat = []
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        screen.chat_input.text = "go"
        await pilot.press("enter")
        while not screen.generating:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.3)
        for i in range(args.keys):
            if not screen.generating:
                break
            key = "abcdefghij"[i % 10]
            want = len(screen.chat_input.text) + 1
            event = events.Key(key, key)
            event.set_sender(app)
            t0 = time.perf_counter()
            app._driver.send_message(event)  # what the terminal driver does for a key press
            while len(screen.chat_input.text) < want:
                await asyncio.sleep(0.0002)
            lat.append(time.perf_counter() - t0)
            await asyncio.sleep(0.03)
        shown = len(screen.turns()[-1].content.split()) if screen.turns() else 0
        blocks = len(screen.turns()[-1].body.children) if screen.turns() else 0
        await pilot.press("escape")
        while screen.generating:
            await asyncio.sleep(0.01)
    lat.sort()
    p95 = lat[int(0.95 * (len(lat) - 1))]
    print(f"\nkey-press -> input updated while streaming at {args.rate:.0f} tok/s ({len(lat)} keys, "
          f"{shown} words / {blocks} Markdown blocks shown by then):")
    print(f"median {statistics.median(lat) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms  "
          "(target p95 < 50 ms)")


def hf_static_cache(args) -> None:
    """GPU stretch: plain `generate` vs static KV cache + compiled decode, same HF model."""
    from engine.chat.params import SamplingParams
    from engine.chat.transformers_backend import TransformersBackend

    params = SamplingParams(temperature=0.0, max_new_tokens=args.max_tokens)
    msgs = [{"role": "user", "content": PROMPT}]
    rows = {}
    for static in (False, True):
        backend = TransformersBackend(args.hf_model, static_cache=static)
        backend.generate(msgs, params.with_(max_new_tokens=16))  # warm-up (and compile)
        speeds = []
        for _ in range(args.runs):
            backend.generate(msgs, params)
            speeds.append(backend.last_stats.tokens_per_s or 0.0)
        rows[static] = statistics.median(speeds)
        print(f"transformers {'static cache + compile' if static else 'plain generate'}: {rows[static]:.1f} tok/s "
              f"on {backend.device} ({backend.dtype})", flush=True)
        backend.close()
    print(f"speed-up: {rows[True] / rows[False]:.2f}x  (target >= 5x on a GPU)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="")
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--stream-tokens", type=int, default=8000)
    parser.add_argument("--flush-ms", type=float, default=None, help="set ui.stream_interval_ms (default 50)")
    parser.add_argument("--cpu-percent", type=float, default=None, help="set ui.stream_cpu_percent (default 3)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-keys", action="store_true")
    parser.add_argument("--hf-model", default="", help="also compare plain generate vs static cache on this HF folder")
    args = parser.parse_args()
    os.environ.setdefault("LLMDECK_HOME", tempfile.mkdtemp(prefix="llmdeck-bench-"))
    if args.flush_ms or args.cpu_percent:
        from engine import settings

        chosen = settings.Settings()
        chosen.ui.stream_interval_ms = args.flush_ms or chosen.ui.stream_interval_ms
        chosen.ui.stream_cpu_percent = args.cpu_percent or chosen.ui.stream_cpu_percent
        settings.save(chosen)  # the headless app reads it from LLMDECK_HOME like any user's
    if not args.skip_speed:
        asyncio.run(speed(args))
    if not args.skip_keys:
        asyncio.run(key_latency(args))
    if args.hf_model:
        hf_static_cache(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
