"""The GRPO demo's design: the bundled base model cannot answer in a chat turn, so the demo feeds it
plain "Q: ...\\nA:" text with no template and scores the first line, where its sampled answers differ."""

from __future__ import annotations

import json

from engine.train import demo
from engine.train.rewards import reward_functions


def test_the_grpo_demo_trains_on_plain_question_answer_text_without_a_chat_template(tmp_path):
    spec = demo.demo_spec(model_dir=str(tmp_path), method="grpo")
    assert spec.chat_template == "none" and spec.rewards == ["firstline:answer"]
    assert spec.problems(check_paths=False) == []
    assert spec.batch_size % spec.num_generations == 0
    rows = [json.loads(line) for line in demo.DEMO_PROMPTS.read_text(encoding="utf-8").splitlines()]
    assert rows and all(r["prompt"].startswith("Q: ") and r["prompt"].endswith("?\nA:") for r in rows)
    [reward] = reward_functions(spec.rewards)
    # A bare answer, a sentence holding it, and a wrong or echoing reply score apart: GRPO has a signal.
    completions = [f" {rows[0]['answer']}\nQ: next", f" It is {rows[0]['answer']}.", " " + rows[0]["prompt"]]
    assert reward(prompts=[rows[0]["prompt"]] * 3, completions=completions, completion_ids=[[0]] * 3,
                  answer=[rows[0]["answer"]] * 3) == [1.0, 0.5, 0.0]


def test_the_demo_job_keeps_the_grpo_demo_without_a_template_and_the_others_on_the_models_own(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMDECK_HOME", str(tmp_path))
    monkeypatch.setattr(demo, "ensure_hf_model", lambda ctx: tmp_path / "model")
    seen = []
    from engine.train import job

    monkeypatch.setattr(job, "run", lambda spec_dict, ctx: seen.append(spec_dict) or {})
    demo.run(demo.demo_spec(method="grpo").to_dict(), ctx=None)
    demo.run(demo.demo_spec(method="dpo").to_dict(), ctx=None)
    assert seen[0]["chat_template"] == "none"  # plain "Q: ...\nA:" text, whatever the tokenizer holds
    assert seen[1]["chat_template"] == ""  # the model's own (gguf-to-hf writes Gemma's into the folder)
    assert seen[0]["model"] == seen[1]["model"] == str(tmp_path / "model")


def test_none_is_a_template_choice_only_for_the_preference_and_rl_methods(tmp_path):
    from engine.train.spec import TrainSpec, is_template_name

    assert is_template_name("none") and is_template_name("gemma") and not is_template_name("my.jinja")
    sft = TrainSpec(model=str(tmp_path), dataset="d.jsonl", method="sft", chat_template="none")
    assert any("chat_template: none" in p for p in sft.problems(check_paths=False))
    grpo = TrainSpec(model=str(tmp_path), dataset="d.jsonl", method="grpo", chat_template="none",
                     rewards=["firstline:answer"])
    assert not any("chat_template" in p for p in grpo.problems(check_paths=False))
