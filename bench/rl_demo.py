"""The DPO and GRPO demos' figures: the method's curve early vs late, and greedy answers before / after.

    llmdeck train --demo --method dpo             # or grpo; prints the run id
    python bench/rl_demo.py RUN [--window 4] [--prompt TEXT ...]

RUN is a run id (under llmdeck's runs folder) or a run folder; the run's method decides what is
shown. The greedy answers are the base model's (the adapter switched off) and the trained
adapter's, on the same prompts, in one process.

GRPO (plain "Q: ...\\nA:" text, no chat template): the mean reward per step (TRL's `reward`)
early vs late; greedy answers of 16 new tokens up to the first line break, as the `firstline`
reward reads them; then every prompt of the demo's data scored by that reward, before and after,
capitals and sums apart (a step's reward mixes whichever prompts it drew).

DPO, ORPO, KTO (chat turns through the model's template): loss, `rewards/margins` and
`rewards/accuracies` at the first and last step and the training time; greedy replies of up to 24
new tokens, ending at the end of the turn (`<end_of_turn>` for Gemma); then, over the demo's 48
questions, how many greedy replies open with the chosen answer, how many open by repeating the
question (the base model's habit, the rejected answers), and how many end their turn.
The default prompts: two from the training data and two not in it.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GRPO_PROMPTS = (
    "Q: What is the capital of France?\nA:",
    "Q: What is 3 plus 4?\nA:",
    "Q: What is the capital of Portugal?\nA:",  # not in demo_prompts.jsonl
    "Q: What is 2 plus 5?\nA:",  # not in demo_prompts.jsonl
)
CHAT_PROMPTS = (
    "What is the capital of Italy?",
    "How many legs does a spider have?",
    "What is the capital of Portugal?",  # not in demo_pairs.jsonl
    "How many wheels does a bicycle have?",  # not in demo_pairs.jsonl
)
PREFERENCE_CURVES = ("loss", "rewards/margins", "rewards/accuracies")


def run_folder(name: str) -> Path:
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    from engine import paths

    return paths.runs_dir() / name


def events(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()]


def curve(folder: Path, key: str) -> list[tuple[int, float]]:
    """(step, value) of every logged step that has `key`."""
    return [(int(e["step"]), float(e["values"][key])) for e in events(folder)
            if e.get("type") == "metric" and key in (e.get("values") or {})]


@functools.cache
def load(folder: Path) -> tuple[Any, Any]:
    """The base model with the run's adapter, and the tokenizer saved with it (the template it trained with)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notes, not figures
    spec = json.loads((folder / "run.json").read_text(encoding="utf-8"))["spec"]
    tokenizer = AutoTokenizer.from_pretrained(str(folder / "out" / "adapter"))
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    return PeftModel.from_pretrained(model, str(folder / "out" / "adapter")).eval(), tokenizer


def greedy(folder: Path, prompts: list[str], max_new_tokens: int, chat: bool) -> list[tuple[str, str, str, bool, bool]]:
    """(prompt, base model's reply, trained model's reply, base ended its turn, trained ended its
    turn), in batches of 16 (left-padded). `chat`: each prompt is a user turn through the model's
    chat template; else the text as written."""
    import torch

    model, tokenizer = load(folder)
    stops = set(model.generation_config.eos_token_id or []) if isinstance(model.generation_config.eos_token_id, list) \
        else {model.generation_config.eos_token_id, tokenizer.eos_token_id}

    def render(prompt: str) -> str:
        if not chat:
            return prompt
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)

    def replies(batch: list[str]) -> list[tuple[str, bool]]:
        ids = tokenizer([render(p) for p in batch], return_tensors="pt", padding=True, add_special_tokens=not chat)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, ids["input_ids"].shape[1]:]
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        return [(text.strip(), any(int(t) in stops for t in row)) for text, row in zip(texts, new, strict=True)]

    rows = []
    for i in range(0, len(prompts), 16):
        batch = prompts[i:i + 16]
        with model.disable_adapter():
            before = replies(batch)
        after = replies(batch)
        rows += [(p, b[0], a[0], b[1], a[1]) for p, b, a in zip(batch, before, after, strict=True)]
    return rows


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].strip()


# -- GRPO -----------------------------------------------------------------------------------------
def grpo_report(folder: Path, window: int, prompts: list[str] | None) -> None:
    steps = curve(folder, "reward")
    if not steps:
        sys.exit(f"{folder}: no reward in events.jsonl (a GRPO run that logged no step?)")
    print("reward per step: " + " ".join(f"{r:.2f}" for _, r in steps))
    w = min(window, len(steps))
    first = statistics.mean(r for _, r in steps[:w])
    last = statistics.mean(r for _, r in steps[-w:])
    print(f"mean reward, steps {steps[0][0]}-{steps[w - 1][0]}: {first:.3f}; "
          f"steps {steps[-w][0]}-{steps[-1][0]}: {last:.3f}")
    print("\n| prompt | base model | after the GRPO demo |\n|---|---|---|")
    for prompt, before, after, _, _ in greedy(folder, prompts or list(GRPO_PROMPTS), 16, chat=False):
        print(f"| {prompt.replace(chr(10), ' ')} | {first_line(before)!r} | {first_line(after)!r} |", flush=True)
    print()
    grpo_scored(folder)


def grpo_scored(folder: Path) -> None:
    """Greedy `firstline` reward over the demo's prompts, before and after, capitals and sums apart."""
    from engine.train.demo import DEMO_PROMPTS
    from engine.train.rewards import parse

    data = [json.loads(line) for line in DEMO_PROMPTS.read_text(encoding="utf-8").splitlines()]
    answers = greedy(folder, [r["prompt"] for r in data], 16, chat=False)
    reward = parse("firstline:answer")
    assert reward is not None
    for label, numeric in (("capitals", False), ("sums", True)):
        picked = [(r, a) for r, a in zip(data, answers, strict=True) if r["answer"].isdigit() == numeric]
        wanted = [r["answer"] for r, _ in picked]
        before = reward(completions=[" " + first_line(a[1]) for _, a in picked], answer=wanted)
        after = reward(completions=[" " + first_line(a[2]) for _, a in picked], answer=wanted)
        print(f"greedy firstline reward, {len(picked)} {label} of the data: "
              f"{statistics.mean(before):.3f} before, {statistics.mean(after):.3f} after", flush=True)


# -- DPO, ORPO, KTO -------------------------------------------------------------------------------
def preference_report(folder: Path, method: str, prompts: list[str] | None) -> None:
    for key in PREFERENCE_CURVES:
        values = curve(folder, key)
        if values:
            print(f"{key}: {values[0][1]:.3f} at step {values[0][0]} -> {values[-1][1]:.3f} at step {values[-1][0]}")
    summary = next((e["summary"] for e in events(folder) if e.get("type") == "finished"), {})
    if summary:
        print(f"training: {summary.get('steps')} steps in {summary.get('train_runtime_s')} s")
    print(f"\n| prompt | base model | after the {method.upper()} demo |\n|---|---|---|")
    for prompt, before, after, _, _ in greedy(folder, prompts or list(CHAT_PROMPTS), 24, chat=True):
        print(f"| {prompt} | {shown(before)} | {shown(after)} |", flush=True)
    print()
    preference_scored(folder)


def shown(reply: str) -> str:
    return repr(reply.replace("\n", " / "))


def preference_scored(folder: Path) -> None:
    """Over the demo's questions: greedy replies that open with the chosen answer, that open with
    the question (the rejected answers' habit), and that end their turn, before and after."""
    from engine.train.demo import DEMO_PAIRS

    chosen: dict[str, str] = {}
    for line in DEMO_PAIRS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        chosen.setdefault(row["prompt"], row["chosen"])
    rows = greedy(folder, list(chosen), 24, chat=True)
    tests: dict[str, Callable[[str, str], bool]] = {
        "open with the chosen answer": lambda prompt, reply: _same(first_line(reply), chosen[prompt]),
        "open by repeating the question": lambda prompt, reply: reply.lower().startswith(prompt.lower()),
    }
    for label, test in tests.items():
        before = sum(test(p, b) for p, b, *_ in rows)
        after = sum(test(p, a) for p, _, a, *_ in rows)
        print(f"greedy replies that {label}: {before}/{len(rows)} before, {after}/{len(rows)} after", flush=True)
    ended_before = sum(r[3] for r in rows)
    ended_after = sum(r[4] for r in rows)
    print(f"greedy replies that end their turn within 24 tokens: {ended_before}/{len(rows)} before, "
          f"{ended_after}/{len(rows)} after", flush=True)


def _same(a: str, b: str) -> bool:
    return a.strip().rstrip(".").lower() == b.strip().rstrip(".").lower()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--window", type=int, default=4, help="GRPO: steps averaged at the start and at the end")
    parser.add_argument("--prompt", action="append", help="a prompt to answer greedily (repeatable)")
    args = parser.parse_args()
    folder = run_folder(args.run)
    method = json.loads((folder / "run.json").read_text(encoding="utf-8"))["spec"].get("method", "sft")
    if method == "grpo":
        grpo_report(folder, args.window, args.prompt)
    elif method in ("dpo", "orpo", "kto"):
        preference_report(folder, method, args.prompt)
    else:
        sys.exit(f"{folder}: a {method} run; this script reports the dpo, orpo, kto and grpo demos")


if __name__ == "__main__":
    main()
