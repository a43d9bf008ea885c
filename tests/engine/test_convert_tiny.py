"""Tiny models built on the spot for the conversion tests (no download), and checks of them.

`make_spm_tokenizer` trains a SentencePiece BPE model (Llama's tokenizer.model format) on a few
KB of text; `make_bpe_tokenizer` trains a byte-level BPE tokenizer.json; `make_llama` saves a
random LlamaForCausalLM (optionally with grouped-query attention) with either tokenizer.
Weights use a large init range so next-token logits are peaked and top-1 comparisons are stable.
"""

from __future__ import annotations

import json
from pathlib import Path

TEXT = (
    "The quick brown fox jumps over the lazy dog. A model converts weights from one format to another. "
    "Llamas live in the mountains of South America and eat grass. Tokens are pieces of words. "
    "Numbers like 12, 345 and 6789 appear in text too! Is this a question? Yes, it is. "
    "def hello(name):\n    return f'hello {name}'\n"
    "GPUs are fast at matrix multiplication; CPUs are slower but everywhere. "
)


def corpus(lines: int = 200) -> list[str]:
    words = TEXT.split()
    out = []
    for i in range(lines):
        start = (i * 7) % len(words)
        out.append(" ".join(words[start:] + words[:start])[: 80 + (i % 50)])
    return out


def make_spm_tokenizer(folder: Path, vocab_size: int = 320) -> Path:
    """Train a Llama-style SentencePiece BPE model (unk=0, bos=1, eos=2, byte fallback), with
    Llama's and Gemma's normalizer: none (identity, whitespace kept as it is), which is what
    llama.cpp's tokenizer implements."""
    import io

    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        character_coverage=1.0,
        add_dummy_prefix=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        minloglevel=2,
    )
    path = folder / "tokenizer.model"
    path.write_bytes(model.getvalue())
    return path


def make_bpe_tokenizer(folder: Path, vocab_size: int = 400):
    """Train a byte-level BPE tokenizer and save it as an HF fast tokenizer in `folder`."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "</s>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 0)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(folder)
    return fast


def spm_hf_tokenizer(folder: Path):
    """An HF tokenizer for the tokenizer.model in `folder`, saved next to it."""
    from transformers import LlamaTokenizer

    # from_pretrained, not LlamaTokenizer(vocab_file=...): the latter silently builds 3 tokens
    tok = LlamaTokenizer.from_pretrained(str(folder), add_bos_token=True, add_eos_token=False)
    tok.save_pretrained(folder)
    return tok


def make_llama(
    folder: Path,
    *,
    tokenizer: str = "bpe",
    n_kv_heads: int = 4,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    tie: bool = False,
):
    """A random LlamaForCausalLM saved in `folder` with its tokenizer; returns the model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer == "spm":
        make_spm_tokenizer(folder)
        tok = spm_hf_tokenizer(folder)
    else:
        tok = make_bpe_tokenizer(folder)
    vocab = len(tok)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=tie,
        initializer_range=0.15,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # non-trivial norms so a wrong norm mapping shows in the logits
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(folder, safe_serialization=True)
    return model


def test_tiny_llama_builds(tmp_path: Path) -> None:
    model = make_llama(tmp_path / "m", tokenizer="bpe", n_kv_heads=2)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["num_key_value_heads"] == 2
    assert (tmp_path / "m" / "tokenizer.json").exists()
    assert model.config.vocab_size > 256


def test_spm_tokenizer_has_full_vocab(tmp_path: Path) -> None:
    """The protobuf trap: without protobuf transformers silently builds a 3-token tokenizer."""
    make_spm_tokenizer(tmp_path)
    tok = spm_hf_tokenizer(tmp_path)
    assert len(tok) == 320
    assert len(tok("The quick brown fox").input_ids) > 3
