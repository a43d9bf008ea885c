"""The shared tiny-model helper builds what other tests rely on: a real chat template, special
tokens, and a Llama whose vocab matches the tokenizer."""

from __future__ import annotations

import pytest

from tests.helpers.requirements import require_module
from tests.helpers.tiny_model import build_tiny_tokenizer, cached_tiny_llama


@pytest.mark.parametrize("style, eot", [("chatml", "<|im_end|>"), ("llama3", "<|eot_id|>")])
def test_tokenizer_reloads_with_template_and_special_tokens(tmp_path, style, eot):
    from transformers import AutoTokenizer

    build_tiny_tokenizer(tmp_path, style=style)
    tok = AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    assert tok.chat_template and tok.eos_token == eot and tok.pad_token
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("assistant\n") or text.endswith("assistant<|end_header_id|>\n\n")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.convert_tokens_to_ids(eot) in ids  # special tokens stay single tokens
    assert tok.decode(tok("any text at all, even ünïcödé",
                          add_special_tokens=False)["input_ids"]) == "any text at all, even ünïcödé"


def test_tiny_llama_matches_its_tokenizer():
    torch = require_module("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = cached_tiny_llama("chatml")
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tok)
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape[-1] == len(tok)
