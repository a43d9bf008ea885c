"""The GRPO demo's figures: mean reward early vs late, and greedy answers before / after.

    llmdeck train --demo --method grpo            # prints the run id
    python bench/grpo_demo.py RUN [--window 4] [--prompt "Q: ...\\nA:" ...]

RUN is a run id (under llmdeck's runs folder) or a run folder. The rewards come from the run's
events.jsonl (TRL's `reward`, the mean over each step's sampled completions); the greedy answers
are the base model's (the adapter switched off) and the trained adapter's, on the demo's plain
"Q: ...\\nA:" text, 16 new tokens, shown up to the first line break, as the `firstline` reward
reads them. The default prompts: two from the training data and two not in it.
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
    """(prompt, base model's first line, trained model's first line)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = json.loads((folder / "run.json").read_text(encoding="utf-8"))["spec"]
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(folder / "out" / "adapter")).eval()

    def first_line(prompt: str) -> str:
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=16, do_sample=False)
        text = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        return text.strip().split("\n", 1)[0].strip()

    rows = []
    for prompt in prompts:
        with model.disable_adapter():
            before = first_line(prompt)
        rows.append((prompt, before, first_line(prompt)))
    return rows


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


if __name__ == "__main__":
    main()
