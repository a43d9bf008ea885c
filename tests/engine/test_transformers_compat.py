"""transformers releases from pyproject.toml's floor (5.17) up: checkpointing keywords, BOS of GGUF tokenizers."""

from __future__ import annotations

from transformers import TrainingArguments

from engine.runs import RunStore
from engine.train import launch
from engine.transformers_compat import checkpointing_arguments, gguf_add_bos, match_gguf_bos
from tests.engine.evaluate_helpers import tiny_gguf
from tests.engine.test_train_runs import ended, losses, tiny_spec
from tests.helpers.waiting import wait_for


def test_installed_transformers_takes_the_keywords(tmp_path) -> None:
    fields = TrainingArguments.__dataclass_fields__
    on = checkpointing_arguments(True, fields)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], **on)
    name = next(iter(on))
    assert getattr(args, name) is True and getattr(args, f"{name}_kwargs") == {"use_reentrant": False}
    off_keywords = checkpointing_arguments(False, fields)
    off = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], **off_keywords)
    assert getattr(off, name) is False


def test_releases_before_the_rename_get_the_gradient_names() -> None:
    old = {"output_dir", "gradient_checkpointing", "gradient_checkpointing_kwargs"}
    assert checkpointing_arguments(True, old) == {"gradient_checkpointing": True,
                                                  "gradient_checkpointing_kwargs": {"use_reentrant": False}}
    new = old | {"activation_checkpointing", "activation_checkpointing_kwargs"}
    assert checkpointing_arguments(False, new) == {"activation_checkpointing": False,
                                                   "activation_checkpointing_kwargs": None}


def test_a_run_with_gradient_checkpointing_trains() -> None:
    store = RunStore()
    info = launch.start(tiny_spec(gradient_checkpointing=True, max_steps=4), store)
    wait_for(lambda: ended(store, info.id))
    assert store.get(info.id).status == "succeeded", store.log_tail(info.id, 30)
    assert sorted(losses(store, info.id)) == [1, 2, 3, 4]


def test_gguf_tokenizer_adds_bos_as_the_gguf_says() -> None:
    """transformers 5.17 builds the tokenizer of a GGUF without BOS although the GGUF asks for it."""
    from transformers import AutoTokenizer

    gguf = tiny_gguf()
    assert gguf_add_bos(gguf) is True
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.add_bos_token = False  # what 5.17 gives
    assert tokenizer("Hello")["input_ids"][0] != tokenizer.bos_token_id
    match_gguf_bos(tokenizer, gguf_add_bos(gguf))
    assert tokenizer("Hello")["input_ids"][0] == tokenizer.bos_token_id
    match_gguf_bos(tokenizer, False)
    assert tokenizer("Hello")["input_ids"][0] != tokenizer.bos_token_id
