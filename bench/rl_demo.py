"""The GRPO demo's figures: mean reward early vs late, and greedy answers before / after.

    llmdeck train --demo --method grpo            # prints the run id
    python bench/grpo_demo.py RUN [--window 4] [--prompt "Q: ...\\nA:" ...]

RUN is a run id (under llmdeck's runs folder) or a run folder. The rewards come from the run's
events.jsonl (TRL's `reward`, the mean over each step's sampled completions); the greedy answers
are the base model's (the adapter switched off) and the trained adapter's, on the demo's plain
"Q: ...\\nA:" text, 16 new tokens, shown up to the first line break, as the `firstline` reward
reads them. The default prompts: two from the training data and two not in it. Then the same
greedy answers to every prompt of the demo's data, scored by the `firstline` reward, before and
after, for the capitals and for the sums apart (a step's reward mixes whichever prompts it drew).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = (
    "Q: What is the capital of France?\nA:",
    "Q: What is 3 plus 4?\nA:",
    "Q: What is the capital of Portugal?\nA:",  # not in demo_prompts.jsonl
    "Q: What is 2 plus 5?\nA:",  # not in demo_prompts.jsonl
)


def run_folder(name: str) -> Path:
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    from engine import paths

    return paths.runs_dir() / name


def rewards(folder: Path) -> list[tuple[int, float]]:
    """(step, mean reward) of every logged step."""
    out = []
    for line in (folder / "events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        values = event.get("values") or {}
        if event.get("type") == "metric" and "reward" in values:
            out.append((int(event["step"]), float(values["reward"])))
    return out


def greedy(folder: Path, prompts: list[str]) -> list[tuple[str, str, str]]:
    """(prompt, base model's first line, trained model's first line), in batches of 16 (left-padded)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = json.loads((folder / "run.json").read_text(encoding="utf-8"))["spec"]
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(folder / "out" / "adapter")).eval()

    tokenizer.padding_side = "left"

    def first_lines(batch: list[str]) -> list[str]:
        ids = tokenizer(batch, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=16, do_sample=False)
        texts = tokenizer.batch_decode(out[:, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        return [text.strip().split("\n", 1)[0].strip() for text in texts]

    rows = []
    for i in range(0, len(prompts), 16):
        batch = prompts[i:i + 16]
        with model.disable_adapter():
            before = first_lines(batch)
        rows += zip(batch, before, first_lines(batch), strict=True)
    return rows


def scored(folder: Path) -> None:
    """Greedy `firstline` reward over the demo's prompts, before and after, capitals and sums apart."""
    from engine.train.demo import DEMO_PROMPTS
    from engine.train.rewards import parse

    data = [json.loads(line) for line in DEMO_PROMPTS.read_text(encoding="utf-8").splitlines()]
    answers = greedy(folder, [r["prompt"] for r in data])
    reward = parse("firstline:answer")
    assert reward is not None
    for label, numeric in (("capitals", False), ("sums", True)):
        picked = [(r, a) for r, a in zip(data, answers, strict=True) if r["answer"].isdigit() == numeric]
        wanted = [r["answer"] for r, _ in picked]
        before = reward(completions=[" " + a[1] for _, a in picked], answer=wanted)
        after = reward(completions=[" " + a[2] for _, a in picked], answer=wanted)
        print(f"greedy firstline reward, {len(picked)} {label} of the data: "
              f"{statistics.mean(before):.3f} before, {statistics.mean(after):.3f} after", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--window", type=int, default=4, help="steps averaged at the start and at the end")
    parser.add_argument("--prompt", action="append", help="a prompt to answer greedily (repeatable)")
    args = parser.parse_args()
    folder = run_folder(args.run)
    steps = rewards(folder)
    if not steps:
        sys.exit(f"{folder}: no reward in events.jsonl (not a GRPO run, or it logged no step)")
    print("reward per step: " + " ".join(f"{r:.2f}" for _, r in steps))
    w = min(args.window, len(steps))
    first = statistics.mean(r for _, r in steps[:w])
    last = statistics.mean(r for _, r in steps[-w:])
    print(f"mean reward, steps {steps[0][0]}-{steps[w - 1][0]}: {first:.3f}; "
          f"steps {steps[-w][0]}-{steps[-1][0]}: {last:.3f}")
    print("\n| prompt | base model | after the GRPO demo |\n|---|---|---|")
    for prompt, before, after in greedy(folder, args.prompt or list(PROMPTS)):
        print(f"| {prompt.replace(chr(10), ' ')} | {before!r} | {after!r} |", flush=True)
    print()
    scored(folder)


if __name__ == "__main__":
    main()
