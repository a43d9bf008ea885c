"""Tiny tokenizers and models for tests, built on the spot (no hub, well under 5 s).

`build_tiny_tokenizer(dir)` trains a byte-level BPE tokenizer with the `tokenizers` library on a
few local sentences, wraps it as a transformers `PreTrainedTokenizerFast` with special tokens and
a real Jinja chat template (ChatML, as Qwen uses, or Llama-3 style), and saves it to `dir`.
`build_tiny_llama(dir)` writes a random `LlamaForCausalLM` (hidden 64, 2 layers) whose vocab
matches that tokenizer, plus the tokenizer, so `from_pretrained(dir)` loads both.

Byte-level BPE can encode any text, so tests may feed it arbitrary strings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

# Special tokens per template style: (bos, eos / end of turn, pad, extra specials)
_STYLES: dict[str, dict[str, Any]] = {
    "chatml": {
        "template": CHATML_TEMPLATE,
        "bos": None,
        "eos": "<|im_end|>",
        "pad": "<|endoftext|>",
        "specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    },
    "llama3": {
        "template": LLAMA3_TEMPLATE,
        "bos": "<|begin_of_text|>",
        "eos": "<|eot_id|>",
        "pad": "<|finetune_right_pad|>",
        "specials": [
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|finetune_right_pad|>",
        ],
    },
}

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model predicts the next token from the tokens before it.",
    "Fine-tuning adapts a pretrained model to a task with a small dataset.",
    "What is the capital of France? The capital of France is Paris.",
    "Explain gradient descent in one sentence. It follows the slope downhill.",
    "user assistant system tool instruction input output prompt completion text",
    "Hello! How can I help you today? Thanks, that was helpful.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 2048 4096.",
    "Translate to German: good morning. Guten Morgen.",
    "def add(a, b):\n    return a + b\n",
]


def build_tiny_tokenizer(path: str | Path, *, style: str = "chatml", vocab_size: int = 400):
    """Train a byte-level BPE tokenizer, give it `style`'s chat template, save it to `path`.

    Returns the `PreTrainedTokenizerFast` (already saved; `AutoTokenizer.from_pretrained(path)`
    loads the same thing).
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    conf = _STYLES[style]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(conf["specials"]),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 3, trainer=trainer)
    if conf["bos"]:
        # Like real Llama 3: plain `tokenizer(text)` prepends BOS; chat templates write it as text.
        bos_id = tok.token_to_id(conf["bos"])
        tok.post_processor = processors.TemplateProcessing(
            single=f"{conf['bos']} $A", pair=f"{conf['bos']} $A $B", special_tokens=[(conf["bos"], bos_id)]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=conf["bos"],
        eos_token=conf["eos"],
        pad_token=conf["pad"],
        unk_token=None,
        chat_template=conf["template"],
        model_max_length=4096,
    )
    fast.save_pretrained(str(path))
    return fast


def build_tiny_llama(path: str | Path, *, style: str = "chatml", seed: int = 0, tokenizer=None) -> Path:
    """Write a random tiny LlamaForCausalLM (hidden 64, 2 layers) and its tokenizer to `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if tokenizer is None:
        tokenizer = build_tiny_tokenizer(path, style=style)
    else:
        tokenizer.save_pretrained(str(path))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(path))
    return path


_CACHE: dict[tuple[str, str], Path] = {}


def cached_tiny_tokenizer(style: str = "chatml") -> Path:
    """A tokenizer folder built once per test process and style (removed at exit)."""
    return _cached("tokenizer", style, lambda d: build_tiny_tokenizer(d, style=style))


def cached_tiny_llama(style: str = "chatml") -> Path:
    """A tiny random Llama folder built once per test process and style (removed at exit)."""
    return _cached("llama", style, lambda d: build_tiny_llama(d, style=style))


def _cached(kind: str, style: str, build) -> Path:
    import atexit
    import shutil
    import tempfile

    key = (kind, style)
    if key not in _CACHE:
        folder = Path(tempfile.mkdtemp(prefix=f"llmdeck-tiny-{kind}-{style}-"))
        atexit.register(shutil.rmtree, folder, True)
        build(folder)
        _CACHE[key] = folder
    return _CACHE[key]
