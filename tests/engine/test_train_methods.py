"""DPO, ORPO, KTO and GRPO for real: TRL's trainers on a tiny random Llama, as detached runs.

Each task is built so the method must move a measurable quantity the right way:
- DPO, KTO: the chosen (good) answers name a marker word ("Paris"), the rejected (bad) ones do
  not; after training, the policy's log-ratio against the reference (the base: LoRA's adapter
  disabled) is higher for a marker answer than for a non-marker one, on a prompt never trained on.
- ORPO (no reference): the policy's own log-probability margin of the marker answer grows.
- GRPO: a one-token task with an exact-answer reward ("7"): the random model samples it rarely,
  64 samples a step find it, and the mean reward must rise from about 0 to about 1 in 24 steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.events import Failed, Finished, Metric, Samples, is_terminal
from engine.runs import RunStore
from engine.train import launch
from engine.train.spec import SpecError, TrainSpec
from tests.helpers.tiny_model import cached_tiny_llama
from tests.helpers.waiting import wait_for

SUBJECTS = ["France", "the river", "the tower", "the city", "the museum", "the bridge", "the capital", "the park",
            "the school", "the market", "the station", "the garden"]
HELD_OUT = "Which place is the best?"
MARKER_ANSWER, PLAIN_ANSWER = "The answer is Paris.", "The answer is London."


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def pairs(tmp_path: Path) -> Path:
    rows = [{"prompt": f"Tell me about {s}.", "chosen": MARKER_ANSWER, "rejected": PLAIN_ANSWER} for s in SUBJECTS]
    return write_jsonl(tmp_path / "pairs.jsonl", rows)


def unpaired(tmp_path: Path) -> Path:
    rows = []
    for s in SUBJECTS:
        rows.append({"prompt": f"Tell me about {s}.", "completion": MARKER_ANSWER, "label": True})
        rows.append({"prompt": f"Tell me about {s}.", "completion": PLAIN_ANSWER, "label": False})
    return write_jsonl(tmp_path / "kto.jsonl", rows)


def prompts(tmp_path: Path) -> Path:
    rows = [{"prompt": f"Give me a number for {s}.", "answer": "7"} for s in SUBJECTS]
    return write_jsonl(tmp_path / "prompts.jsonl", rows)


def rl_spec(data: Path, method: str, **changes) -> TrainSpec:
    base = dict(model=str(cached_tiny_llama()), dataset=str(data), method=method, adapter="lora", max_steps=12,
                batch_size=4, max_seq_len=48, learning_rate=1e-2, warmup=0, lora_r=8, lora_alpha=16,
                lora_dropout=0.0, seed=3)
    base.update(changes)
    return TrainSpec(**base)


def ended(store: RunStore, run_id: str) -> bool:
    """The run's final status is written and so is its last event (the worker writes the status
    first, so a reader can see one without the other for a moment)."""
    if store.get(run_id).active:
        return False
    return store.get(run_id).status == "lost" or any(is_terminal(e) for e in store.read_events(run_id)[0])


def run_to_end(spec: TrainSpec, timeout: float = 240) -> tuple[RunStore, str]:
    store = RunStore()
    info = launch.start(spec, store)
    wait_for(lambda: ended(store, info.id), timeout=timeout, what=f"{spec.method} run to end")
    assert store.get(info.id).status == "succeeded", "\n".join(store.log_tail(info.id, 40))
    return store, info.id


def metric_curve(store: RunStore, run_id: str, key: str) -> dict[int, float]:
    events, _ = store.read_events(run_id)
    out: dict[int, float] = {}
    for event in events:
        if isinstance(event, Metric) and key in event.values:
            out[event.step] = event.values[key]
    return out


def answer_logprob(model, tokenizer, prompt: str, answer: str) -> float:
    """log p(answer | prompt) through the chat template (sum over the answer's tokens)."""
    import torch

    user = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], tokenize=False
    )
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([tokenizer(full, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
    return float(logp[len(head_ids) - 1:].sum())


def log_ratios(adapter: Path) -> dict[str, float]:
    """log pi(answer)/pi_ref(answer) on the held-out prompt, the reference being the base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(str(cached_tiny_llama()))
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    out = {}
    for name, answer in (("marker", MARKER_ANSWER), ("plain", PLAIN_ANSWER)):
        policy = answer_logprob(model, tokenizer, HELD_OUT, answer)
        with model.disable_adapter():
            ref = answer_logprob(model, tokenizer, HELD_OUT, answer)
        out[name] = policy - ref
    return out


def output_of(store: RunStore, run_id: str) -> Path:
    events, _ = store.read_events(run_id)
    return Path(next(e for e in events if isinstance(e, Finished)).summary["output"])


def rising(curve: dict[int, float], k: int = 3) -> tuple[float, float]:
    values = [curve[s] for s in sorted(curve)]
    return sum(values[:k]) / k, sum(values[-k:]) / k


def test_dpo_raises_the_log_ratio_of_the_marker_answer(tmp_path):
    store, run_id = run_to_end(rl_spec(pairs(tmp_path), "dpo"))
    margins = metric_curve(store, run_id, "rewards/margins")
    assert sorted(margins) == list(range(1, 13))
    first, last = rising(margins)
    assert last > first + 0.2, margins
    assert metric_curve(store, run_id, "rewards/accuracies")[12] == 1.0
    ratios = log_ratios(output_of(store, run_id))
    assert ratios["marker"] > 0 > ratios["plain"], ratios  # a prompt it never saw
    events, _ = store.read_events(run_id)
    summary = next(e for e in events if isinstance(e, Finished)).summary
    first_margin, last_margin = summary["metrics"]["rewards/margins"]
    assert summary["method"] == "dpo" and last_margin > first_margin
    log = "\n".join(store.log_tail(run_id, 200))
    assert "Tokenizing" not in log and "{'loss'" not in log  # no library progress bars or log dicts


def test_kto_learns_from_unpaired_labels(tmp_path):
    store, run_id = run_to_end(rl_spec(unpaired(tmp_path), "kto", batch_size=8))
    margins = metric_curve(store, run_id, "rewards/margins")
    first, last = rising(margins)
    assert last > first + 0.2, margins
    assert metric_curve(store, run_id, "kl")  # KTO's reference KL estimate is a curve too
    ratios = log_ratios(output_of(store, run_id))
    assert ratios["marker"] > ratios["plain"] + 0.5, ratios


def test_orpo_needs_no_reference_and_prefers_the_chosen_answers(tmp_path):
    store, run_id = run_to_end(rl_spec(pairs(tmp_path), "orpo"))
    margins = metric_curve(store, run_id, "rewards/margins")
    first, last = rising(margins)
    assert last > first, margins
    losses = metric_curve(store, run_id, "loss")
    assert rising(losses)[1] < rising(losses)[0]
    assert "log_odds_ratio" in [k for e in store.read_events(run_id)[0] if isinstance(e, Metric) for k in e.values]


def test_grpo_mean_reward_rises_on_a_one_token_task(tmp_path):
    """Every prompt's answer is "7", one token long. The random model says it about once in 200
    samples; 64 samples a step find it now and then, and the group advantage does the rest. A full
    fine-tune: LoRA cannot sharpen this model's near-uniform output (its head is not adapted)."""
    spec = rl_spec(prompts(tmp_path), "grpo", adapter="full", rewards=["exact:answer"], max_steps=24, batch_size=64,
                   num_generations=32, max_completion_len=1, learning_rate=3e-2, scheduler="constant", seed=5)
    store, run_id = run_to_end(spec, timeout=420)
    reward = metric_curve(store, run_id, "reward")
    assert sorted(reward) == list(range(1, 25))
    values = [reward[s] for s in sorted(reward)]
    early, late = sum(values[:4]) / 4, sum(values[-4:]) / 4
    assert early < 0.1 and late > 0.8, values
    assert metric_curve(store, run_id, "rewards/exact_answer/mean")[24] == reward[24]
    assert metric_curve(store, run_id, "completions/mean_length")[24] == 1.0
    samples = [e for e in store.read_events(run_id)[0] if isinstance(e, Samples)]
    assert samples and samples[-1].step == 24
    latest = samples[-1].rows
    assert len(latest) == 16 and {"prompt", "completion", "rewards", "advantage"} <= set(latest[0])
    assert "Give me a number" in latest[0]["prompt"] and set(latest[0]["rewards"]) == {"exact_answer"}
    assert sum(row["completion"].strip() == "7" for row in latest) >= 12
    # the greedy answer to a prompt it never saw is the rewarded one now
    assert greedy_answer(output_of(store, run_id), "Give me a number for the sea.") == "7"


def greedy_answer(model_dir: Path, prompt: str) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    user = [{"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=1, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:]).strip()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "orpo", "kto"])
def test_preference_runs_resume_exactly_after_sigkill(tmp_path, method):
    """Killed right after the step-6 checkpoint, resumed: steps 7-12 log the same losses and
    margins as an uninterrupted run with the same seed."""
    store = RunStore()
    data, changes = (unpaired(tmp_path), {"batch_size": 8}) if method == "kto" else (pairs(tmp_path), {})
    spec = rl_spec(data, method, save_steps=6, **changes)
    reference = launch.start(spec, store)
    killed = launch.start(TrainSpec(**{**spec.to_dict(), "debug": {"kill_at_step": 6}}), store)
    wait_for(lambda: ended(store, killed.id), timeout=240)
    assert store.get(killed.id).status == "lost"
    assert max(metric_curve(store, killed.id, "loss")) == 6
    launch.resume(killed.id, store)
    wait_for(lambda: ended(store, reference.id) and ended(store, killed.id), timeout=300)
    assert store.get(killed.id).status == "succeeded", "\n".join(store.log_tail(killed.id, 40))
    for key in ("loss", "rewards/margins"):
        ref, got = metric_curve(store, reference.id, key), metric_curve(store, killed.id, key)
        assert sorted(got) == list(range(1, 13))
        for step in range(7, 13):
            assert abs(ref[step] - got[step]) < 1e-4, (key, step, ref[step], got[step])


@pytest.mark.slow
def test_grpo_resumes_exactly_after_sigkill(tmp_path):
    """The sampled completions come from the restored RNG state: the rewards after the resume
    are the uninterrupted run's."""
    store = RunStore()
    spec = rl_spec(prompts(tmp_path), "grpo", rewards=[r"regex:^\s?\d"], max_steps=10, batch_size=8,
                   num_generations=4, max_completion_len=2, save_steps=5, learning_rate=3e-2)
    reference = launch.start(spec, store)
    killed = launch.start(TrainSpec(**{**spec.to_dict(), "debug": {"kill_at_step": 5}}), store)
    wait_for(lambda: ended(store, killed.id), timeout=240)
    assert store.get(killed.id).status == "lost"
    launch.resume(killed.id, store)
    wait_for(lambda: ended(store, reference.id) and ended(store, killed.id), timeout=300)
    assert store.get(killed.id).status == "succeeded", "\n".join(store.log_tail(killed.id, 40))
    for key in ("reward", "completions/mean_length"):
        ref, got = metric_curve(store, reference.id, key), metric_curve(store, killed.id, key)
        assert [got[s] for s in range(6, 11)] == pytest.approx([ref[s] for s in range(6, 11)], abs=1e-5), key


# (data, spec changes, the method's own curve, steps in one epoch): 2 rows a step on each of 2
# processes, so 4 rows a step. DPO, ORPO: 12 pairs, 3 steps. KTO: 24 labelled rows, 6 steps.
# GRPO: each of 12 prompts is sampled 4 times (one group), 48 completions, 12 steps.
TWO_PROCESS_RUNS = {
    "dpo": (pairs, {}, "rewards/margins", 3),
    "orpo": (pairs, {}, "rewards/margins", 3),
    "kto": (unpaired, {}, "rewards/margins", 6),
    "grpo": (prompts, {"rewards": [r"regex:^\s?\d"], "num_generations": 4, "max_completion_len": 2}, "reward", 12),
}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(TWO_PROCESS_RUNS))
def test_each_method_under_a_two_process_launch(tmp_path, method):
    """Two CPU processes with gloo: the run succeeds, logs the method's curve at every step, splits
    the data between the processes (an epoch takes half the steps one process would) and seals its
    checkpoints."""
    data, changes, curve, steps_per_epoch = TWO_PROCESS_RUNS[method]
    store = RunStore()
    spec = rl_spec(data(tmp_path), method, max_steps=4, batch_size=2, devices="cpu:2", save_steps=2, **changes)
    info = launch.start(spec, store)
    wait_for(lambda: ended(store, info.id), timeout=300)
    assert store.get(info.id).status == "succeeded", "\n".join(store.log_tail(info.id, 40))
    events, _ = store.read_events(info.id)
    summary = next(e for e in events if isinstance(e, Finished)).summary
    assert summary["processes"] == 2 and summary["method"] == method
    by_step = metric_curve(store, info.id, curve)
    assert sorted(by_step) == [1, 2, 3, 4]
    assert abs(metric_curve(store, info.id, "epoch")[3] - 3 / steps_per_epoch) < 1e-6
    assert [c.step for c in launch.checkpoints_of(store.get(info.id)) if c.complete] == [2, 4]


# The adapter each method's FSDP run trains: DPO fully fine-tuned makes TRL shard its reference
# model too (`prepare_fsdp`); KTO's LoRA reference is the sharded model with its adapter switched
# off; ORPO has none; GRPO's LoRA generates with the sharded model,
# rewarded for any letter a-m (about half the random completions: a group's advantages are not all 0).
FSDP_ADAPTER = {"dpo": "full", "kto": "lora", "orpo": "lora", "grpo": "lora"}
FSDP_CHANGES = {"grpo": {"rewards": ["regex:[a-m]"]}}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(FSDP_ADAPTER))
def test_fsdp_on_two_cpu_processes_shards_each_method_and_keeps_its_loss(tmp_path, capsys, method):
    """`--distributed fsdp` on CPU processes really shards TRL's trainers (accelerate alone would
    run them as DDP: engine/train/cpu_fsdp.py), without changing the maths: the loss of every step
    equals the same run under DDP (same global batch), checkpoints are sealed and the final model or
    adapter, gathered from both ranks' shards, loads."""
    data, changes, _, _ = TWO_PROCESS_RUNS[method]
    adapter = FSDP_ADAPTER[method]
    same = dict(max_steps=3, batch_size=2, devices="cpu:2", save_steps=2, adapter=adapter,
                **{**changes, **FSDP_CHANGES.get(method, {})})
    if adapter == "full":
        same["learning_rate"] = 1e-4
    rows = data(tmp_path)
    store = RunStore()
    fsdp = launch.start(rl_spec(rows, method, distributed="fsdp", **same), store)
    ddp = launch.start(rl_spec(rows, method, distributed="ddp", **same), store)
    wait_for(lambda: ended(store, fsdp.id) and ended(store, ddp.id), timeout=400, what=f"{method} FSDP and DDP runs")
    log = "\n".join(store.log_tail(fsdp.id, 200))
    assert store.get(fsdp.id).status == "succeeded", log
    assert store.get(ddp.id).status == "succeeded", "\n".join(store.log_tail(ddp.id, 40))
    assert "FSDP2: the weights were sharded" in log
    assert "FSDP2" not in "\n".join(store.log_tail(ddp.id, 200))
    sharded, replicated = metric_curve(store, fsdp.id, "loss"), metric_curve(store, ddp.id, "loss")
    assert sorted(sharded) == sorted(replicated) == [1, 2, 3]
    with capsys.disabled():
        print(f"{method} ({adapter}) loss per step, FSDP {sharded} vs DDP {replicated}")
    assert [sharded[s] for s in (1, 2, 3)] == pytest.approx([replicated[s] for s in (1, 2, 3)], abs=1e-4)
    checkpoint = store.get(fsdp.id).out_dir / "checkpoints" / "checkpoint-2"
    assert "pytorch_model_fsdp.bin" in {p.name for p in checkpoint.iterdir()}
    assert [c.step for c in launch.checkpoints_of(store.get(fsdp.id)) if c.complete] == [2, 3]
    # GRPO's loss is about 0 at every step (one update per generation: minus the mean of advantages
    # normalized per group), so the trained weights are compared too: both runs' final outputs load and
    # agree, and training moved them
    sharded_weights, replicated_weights = trained_weights(output_of(store, fsdp.id), adapter), \
        trained_weights(output_of(store, ddp.id), adapter)
    start = trained_weights(None, adapter)
    assert sorted(sharded_weights) == sorted(replicated_weights) == sorted(start)
    gap = max(float((sharded_weights[k] - replicated_weights[k]).abs().max()) for k in start)
    moved = max(float((sharded_weights[k] - start[k]).abs().max()) for k in start)
    with capsys.disabled():
        print(f"  weights: FSDP vs DDP largest difference {gap:.2e}; moved by up to {moved:.2e} in training")
    learning_rate = same.get("learning_rate", rl_spec(rows, method).learning_rate)
    assert moved > learning_rate / 2 and gap < moved / 100  # Adam's first step alone moves weights by about lr


def trained_weights(final: Path | None, adapter: str) -> dict:
    """The weights a run trains, loaded from its final folder with transformers/peft (the base's
    own for `final=None`): every tensor of a full fine-tune; LoRA's B matrices (zeros at the start)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(final if adapter == "full" and final else cached_tiny_llama()))
    if adapter == "full":
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    if final is None:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
        return {k: torch.zeros_like(v) for k, v in model.state_dict().items() if "lora_B" in k}
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, str(final))
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_B" in k}


def test_failures_are_one_clear_line(tmp_path):
    store = RunStore()
    sft_data = write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "a", "completion": "b"}] * 3)
    broken = tmp_path / "broken_rewards.py"
    broken.write_text("def score(completions, **kw):\n    return [1 / 0 for _ in completions]\n"
                      "def words(completions, **kw):\n    return 'good'\n")
    # data that does not fit the method is refused before any run exists (launch.data_check)
    for spec, needle in ((rl_spec(sft_data, "dpo"), "dpo trains on preference pairs"),
                         (rl_spec(prompts(tmp_path), "kto"), "kto trains on")):
        with pytest.raises(SpecError) as refused:
            launch.start(spec, store)
        assert needle in str(refused.value) and "\n" not in str(refused.value)
    assert store.list() == []
    # a broken reward function is found by the run, which fails with one line
    cases = [
        (rl_spec(prompts(tmp_path), "grpo", rewards=[f"{broken}:words"], max_steps=2, batch_size=4,
                 num_generations=4, max_completion_len=1), "reward broken_rewards.py:words must return a list"),
        (rl_spec(prompts(tmp_path), "grpo", rewards=[f"{broken}:score"], max_steps=2, batch_size=4,
                 num_generations=4, max_completion_len=1), "reward broken_rewards.py:score raised ZeroDivisionError"),
    ]
    infos = [(launch.start(spec, store), needle) for spec, needle in cases]
    for info, needle in infos:
        wait_for(lambda info=info: ended(store, info.id), timeout=240)
        events, _ = store.read_events(info.id)
        failed = [e for e in events if isinstance(e, Failed)]
        assert failed and needle in failed[0].message, (needle, failed, store.log_tail(info.id, 20))
        assert "\n" not in failed[0].message and "Traceback" not in failed[0].message


def test_a_detached_orpo_run_outlives_the_command_that_started_it(tmp_path):
    """`llmdeck train --method orpo --detach` returns at once; the run trains on in its own
    process to the end, which `runs follow` replays."""
    from tests.engine.test_cli import llmdeck

    out = llmdeck("train", "--model", str(cached_tiny_llama()), "--data", str(pairs(tmp_path)), "--method", "orpo",
                  "--max-steps", "3", "--batch-size", "4", "--max-seq-len", "48", "--name", "orpo-detached",
                  "--detach")
    assert out.returncode == 0, out.stdout + out.stderr
    store = RunStore()
    run = next(r for r in store.list() if r.name == "orpo-detached")
    assert run.id in out.stdout
    wait_for(lambda: ended(store, run.id), timeout=240, what="detached orpo run to end")
    assert store.get(run.id).status == "succeeded", "\n".join(store.log_tail(run.id, 40))
    assert sorted(metric_curve(store, run.id, "rewards/margins")) == [1, 2, 3]
    follow = llmdeck("runs", "follow", run.id)
    assert follow.returncode == 0 and f"run {run.id}: succeeded" in follow.stdout, follow.stdout + follow.stderr


def test_grpo_scores_with_a_local_reward_model(tmp_path):
    """--reward-model FOLDER: TRL loads the folder as a sequence classifier and its score is a
    reward curve of its own, next to no built-in reward at all."""
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    base = cached_tiny_llama()
    config = AutoConfig.from_pretrained(str(base), num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    scorer = tmp_path / "scorer"
    LlamaForSequenceClassification(config).save_pretrained(str(scorer))
    tokenizer.save_pretrained(str(scorer))
    spec = rl_spec(prompts(tmp_path), "grpo", reward_model=str(scorer), max_steps=2, batch_size=4, num_generations=4,
                   max_completion_len=2)
    store, run_id = run_to_end(spec)
    keys = {k for e in store.read_events(run_id)[0] if isinstance(e, Metric) for k in e.values}
    assert "rewards/scorer/mean" in keys and sorted(metric_curve(store, run_id, "reward")) == [1, 2], sorted(keys)


def test_the_tokenizer_given_to_trl_keeps_no_python_copy_of_its_vocab(tmp_path):
    """TRL tokenizes with `Dataset.map`, whose cache fingerprint pickles the tokenizer's state. A
    transformers 5 Gemma tokenizer keeps the vocab and merges it was built from as Python objects
    (262k entries for the bundled Gemma: 11-16 s of hashing before the first DPO step on 2 loaded
    cores, 3 s without them).
    The trainer drops them; the tokenizer encodes, decodes and saves as before."""
    from datasets.utils._dill import dumps
    from transformers.models.gemma.tokenization_gemma import GemmaTokenizer

    from engine.train import methods

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["▁"]
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", *letters])}
    merges = []
    for a in letters:
        for b in letters:
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    tokenizer = GemmaTokenizer(vocab=dict(vocab), merges=list(merges))
    text = "the river is on the map"
    ids = tokenizer(text)["input_ids"]
    before = len(dumps(tokenizer))
    methods._forget_build_tables(tokenizer)
    assert len(dumps(tokenizer)) < before - len(dumps(merges))  # what datasets hashes lost the tables
    assert tokenizer(text)["input_ids"] == ids and tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.get_vocab() == vocab
    tokenizer.save_pretrained(str(tmp_path))
    reloaded = GemmaTokenizer.from_pretrained(str(tmp_path))
    assert reloaded(text)["input_ids"] == ids and reloaded.get_vocab() == vocab
