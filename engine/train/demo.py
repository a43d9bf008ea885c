"""`llmdeck train --demo`: LoRA on the bundled Gemma 3 270M, on CPU, in a few minutes.

The bundled model is a Q4_K_M GGUF (for chat through llama.cpp). Training needs an HF model,
so the run first converts it with `engine.convert.gguf_to_hf` (dequantized to fp32, cached under
`cache_dir()/models/gemma-3-270m-hf`, done once, atomically). The GGUF carries no chat template;
like any run, the demo then renders its chat data with the built-in one for the architecture
(Gemma's `<start_of_turn>` turns), the template chat uses too. The dataset (`demo_data.jsonl`, 48 short instruction /
answer pairs) ships in this package. Twenty steps are enough to see the loss fall and the answers change.

`--demo --method dpo` (or orpo, kto) trains on `demo_pairs.jsonl`: the same 48 questions, the
chosen answer being the right one and the rejected one the base model's own habit of repeating the
question; DPO's demo adds an SFT loss on the chosen answers (`sft_weight` 1) and takes 10 steps.
`--demo --method grpo` samples answers to `demo_prompts.jsonl` (capitals and small sums, each with
its `answer`) and rewards the exact answer and a short reply; on the base model it never earns a
reward (see the README), so it shows the mechanics only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import paths
from engine.jobs import JobContext, JobError
from engine.train.spec import TrainSpec

DEMO_DATA = Path(__file__).with_name("demo_data.jsonl")
DEMO_PAIRS = Path(__file__).with_name("demo_pairs.jsonl")
DEMO_PROMPTS = Path(__file__).with_name("demo_prompts.jsonl")
HF_FOLDER = "gemma-3-270m-hf"


def hf_model_dir() -> Path:
    return paths.cache_dir() / "models" / HF_FOLDER


def ensure_hf_model(ctx: Any) -> Path:
    """The bundled GGUF as an HF folder, converted once into the cache."""
    final = hf_model_dir()
    if (final / "config.json").exists() and any(final.glob("*.safetensors")):
        return final
    try:
        from engine.chat.default_model import NoDefaultModel, default_model_path
    except ImportError:  # pragma: no cover - the chat area ships with llmdeck
        raise JobError("the demo needs the bundled model: pip install llmdeck[demo]") from None
    try:
        gguf = default_model_path()
    except NoDefaultModel as exc:
        raise JobError(str(exc)) from None
    from engine.convert.common import commit, staged
    from engine.convert.gguf_to_hf import convert

    ctx.log(f"converting {gguf.name} to an HF model (once; cached in {final})")
    with staged(final, directory=True) as tmp:
        convert(gguf, tmp, ctx, dtype="f32")
        commit(tmp, final)
    return final


# What each method's demo changes from the SFT demo's options.
METHOD_DEMOS: dict[str, dict[str, Any]] = {
    # Plain DPO drives the chosen answers' log-probabilities down too (only the margin is trained):
    # on this base model 10 steps left greedy answers as repeated non-English words. The SFT term on
    # the chosen answers (TRL's RPO) keeps them likely; 10 steps show the change.
    "dpo": {"dataset": str(DEMO_PAIRS), "learning_rate": 5e-4, "beta": 0.1, "sft_weight": 1.0, "max_steps": 10},
    "orpo": {"dataset": str(DEMO_PAIRS), "learning_rate": 1e-3},
    "kto": {"dataset": str(DEMO_PAIRS), "learning_rate": 5e-4, "batch_size": 8},
    "grpo": {"dataset": str(DEMO_PROMPTS), "learning_rate": 5e-4, "batch_size": 8, "num_generations": 4,
             "max_completion_len": 8, "rewards": ["exact:answer", "length:1:4"], "max_seq_len": 64},
}


def demo_spec(model_dir: str = "", **overrides: Any) -> TrainSpec:
    """The demo's training options: LoRA r=8 on every linear layer, 20 steps, short rows; with
    `method` among METHOD_DEMOS, that method's data and settings on top."""
    base: dict[str, Any] = {
        "model": model_dir or str(hf_model_dir()),
        "dataset": str(DEMO_DATA),
        "method": "sft",
        "adapter": "lora",
        "max_steps": 20,
        "batch_size": 4,
        "max_seq_len": 64,
        "learning_rate": 1e-3,
        "scheduler": "cosine",
        "warmup": 2,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "save_steps": 10,
        "seed": 0,
        "cpu": True,
    }
    method = TrainSpec(method=overrides.get("method", "sft")).method  # lora/qlora/full: sft
    base.update(METHOD_DEMOS.get(method, {}))
    base.update(overrides)
    spec = TrainSpec.from_dict(base)
    if not spec.name:
        spec.name = f"demo-gemma3-270m-{spec.adapter if spec.method == 'sft' else spec.method}"
    return spec


def run(spec_dict: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The demo job (kind "train.demo"): convert the bundled model if needed, then train."""
    from engine.train import job

    model = ensure_hf_model(ctx)
    spec_dict = dict(spec_dict)
    spec_dict["model"] = str(model)
    return job.run(spec_dict, ctx)
