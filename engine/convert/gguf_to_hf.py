"""GGUF -> HF: dequantize every tensor with gguf-py and write an HF model folder.

What for: a model that exists only as a GGUF (the bundled Gemma 3 270M) can then be fine-tuned
with transformers/peft. transformers can load a GGUF itself, but needs the whole model in memory
and refuses to `save_pretrained` the result; here tensors stream one at a time into safetensors
shards. Undone on the way: llama.cpp's q/k rotary permutation (llama) and Gemma's `norm + 1`.

The tokenizer is rebuilt twice: an HF fast tokenizer through transformers' own GGUF tokenizer
converter, and, for SentencePiece vocabularies, a `tokenizer.model` with exactly the GGUF's
pieces, scores and types, so converting back to GGUF reproduces the vocabulary byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.convert.common import ConvertError, TensorProgress
from engine.convert.gguf_source import architecture, field, open_gguf, read_gguf_header
from engine.convert.hf_to_gguf import _GLOBAL_MAP, _LAYER_MAP
from engine.convert.shards import DEFAULT_SHARD_BYTES, ShardWriter
from engine.gguf_header import GGUFHeader
from engine.jobs import JobContext

SUPPORTED: dict[str, str] = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "gemma3": "Gemma3ForCausalLM"}
DTYPES = ("f32", "f16", "bf16")


def hf_name(gguf_name: str, arch: str) -> str | None:
    base, _, suffix = gguf_name.rpartition(".")
    for hf, gg in _GLOBAL_MAP.items():
        if base == gg:
            return f"{hf}.{suffix}"
    parts = base.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdecimal():
        for hf, gg in _LAYER_MAP[arch].items():
            if parts[2] == gg:
                return f"model.layers.{int(parts[1])}.{hf}.{suffix}"
    return None


def _unpermute(weights: Any, n_head: int) -> Any:
    """Inverse of llama.cpp's q/k permutation (interleaved rotary -> HF rotate-half)."""
    shape = weights.shape
    return weights.reshape(n_head, shape[0] // n_head // 2, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def read_hparams(head: GGUFHeader) -> dict[str, Any]:
    """The model's shape from the GGUF header (engine.gguf_header: no vocabulary is built)."""
    arch = architecture(head)
    name = head.path.name
    if arch not in SUPPORTED:
        raise ConvertError(
            f"{name}: GGUF architecture {arch or '(none)'} is not supported for HF export "
            f"(supported: {', '.join(SUPPORTED)})"
        )

    def get(key: str, default: Any = None, required: bool = True) -> Any:
        value = field(head, f"{arch}.{key}", default)
        if value is None and required:
            raise ConvertError(f"{name}: metadata {arch}.{key} is missing")
        return value

    n_head = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    tensors = {t.name: t for t in head.tensors}
    if "token_embd.weight" not in tensors:
        raise ConvertError(f"{name} has no token_embd.weight tensor")
    n_vocab = int(tensors["token_embd.weight"].shape[1])
    head_dim = int(get("attention.key_length", 0, False) or get("rope.dimension_count", 0, False) or hidden // n_head)
    return {
        "arch": arch,
        "n_layer": int(get("block_count")),
        "hidden": hidden,
        "ffn": int(get("feed_forward_length")),
        "n_head": n_head,
        "n_kv": int(get("attention.head_count_kv", n_head, False)),
        "head_dim": head_dim,
        "ctx": int(get("context_length", 4096, False)),
        "eps": float(get("attention.layer_norm_rms_epsilon", 1e-6, False)),
        "rope_theta": float(get("rope.freq_base", 1_000_000.0 if arch == "gemma3" else 10000.0, False)),
        "sliding_window": get("attention.sliding_window", None, False),
        "final_softcap": get("final_logit_softcapping", None, False),
        "n_vocab": n_vocab,
        "tied": "output.weight" not in tensors,
        "bos": field(head, "tokenizer.ggml.bos_token_id"),
        "eos": field(head, "tokenizer.ggml.eos_token_id"),
        "pad": field(head, "tokenizer.ggml.padding_token_id"),
    }


def build_config(hp: dict[str, Any], dtype: str) -> Any:
    torch_dtype = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[dtype]
    common = {
        "vocab_size": hp["n_vocab"],
        "hidden_size": hp["hidden"],
        "intermediate_size": hp["ffn"],
        "num_hidden_layers": hp["n_layer"],
        "num_attention_heads": hp["n_head"],
        "num_key_value_heads": hp["n_kv"],
        "head_dim": hp["head_dim"],
        "max_position_embeddings": hp["ctx"],
        "rms_norm_eps": hp["eps"],
        "tie_word_embeddings": hp["tied"],
        "bos_token_id": hp["bos"],
        "eos_token_id": hp["eos"],
        "pad_token_id": hp["pad"],
    }
    if hp["arch"] == "llama":
        from transformers import LlamaConfig

        config = LlamaConfig(**common, rope_theta=hp["rope_theta"])
    elif hp["arch"] == "qwen2":
        from transformers import Qwen2Config

        config = Qwen2Config(**common, rope_theta=hp["rope_theta"])
    else:
        from transformers import Gemma3TextConfig

        # llama.cpp fixes the sliding layers' rope base at 10000 and the pattern at 5 local : 1 global
        config = Gemma3TextConfig(
            **common,
            sliding_window=int(hp["sliding_window"] or 512),
            query_pre_attn_scalar=hp["head_dim"],
            final_logit_softcapping=hp["final_softcap"],
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "default", "rope_theta": hp["rope_theta"]},
            },
        )
    config.architectures = [SUPPORTED[hp["arch"]]]
    config.dtype = torch_dtype
    return config


def write_spm_model(reader: Any, path: Path) -> bool:
    """Write a SentencePiece `tokenizer.model` holding the GGUF's own pieces, scores and types.
    Returns False when the GGUF vocabulary is not SentencePiece-style."""
    if field(reader, "tokenizer.ggml.model") != "llama":
        return False
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    tokens = field(reader, "tokenizer.ggml.tokens") or []
    scores = field(reader, "tokenizer.ggml.scores") or [0.0] * len(tokens)
    types = field(reader, "tokenizer.ggml.token_type") or [1] * len(tokens)
    proto = model_pb2.ModelProto()
    proto.trainer_spec.model_type = model_pb2.TrainerSpec.BPE
    proto.trainer_spec.vocab_size = len(tokens)
    proto.trainer_spec.byte_fallback = any(int(t) == 6 for t in types)
    for key, attr in (("unknown", "unk_id"), ("bos", "bos_id"), ("eos", "eos_id"), ("padding", "pad_id")):
        value = field(reader, f"tokenizer.ggml.{key}_token_id")
        setattr(proto.trainer_spec, attr, int(value) if value is not None else -1)
    add_prefix = field(reader, "tokenizer.ggml.add_space_prefix")
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = True if add_prefix is None else bool(add_prefix)
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    for text, score, kind in zip(tokens, scores, types, strict=False):
        piece = proto.pieces.add()
        piece.piece = text
        piece.score = float(score)
        piece.type = int(kind) if 1 <= int(kind) <= 6 else 1
    path.write_bytes(proto.SerializeToString())
    return True


def write_tokenizer(reader: Any, gguf_path: Path, folder: Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    spm = write_spm_model(reader, folder / "tokenizer.model")
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for unsupported vocabularies
        raise ConvertError(f"{gguf_path.name}: transformers cannot rebuild its tokenizer ({type(exc).__name__}: {str(exc)[:120]})") from None
    # The GGUF's own chat template, else the built-in one chat would pick for this architecture
    # (the bundled Gemma has none): written into the folder, so data preparation, training and
    # chat on the HF model all render turns the way chat on the GGUF does.
    from engine.chat.templates import describe, resolve_template

    vocab = tok.get_vocab()
    template = resolve_template(
        model_template=field(reader, "tokenizer.chat_template") or None,
        architecture=architecture(reader),
        bos_token=tok.bos_token or "",
        eos_token=tok.eos_token or "",
        has_token=lambda t: t in vocab,
    )
    tok.chat_template = template.text
    add_bos = field(reader, "tokenizer.ggml.add_bos_token")
    from engine.transformers_compat import match_gguf_bos

    match_gguf_bos(tok, None if add_bos is None else bool(add_bos))
    tok.save_pretrained(str(folder))
    if spm and not (folder / "tokenizer.model").exists():
        write_spm_model(reader, folder / "tokenizer.model")
    return {
        "tokenizer": type(tok).__name__,
        "vocab": len(tok),
        "sentencepiece_model": spm,
        "add_bos": add_bos,
        "chat_template": template.name if template.source != "model" else "the GGUF's own",
        "chat_template_why": describe(template),
    }


_CHUNK_ELEMENTS = 8 * 1024 * 1024


def _dequantize(tensor: Any, ctx: JobContext, gguf_path: Path) -> Any:
    """One tensor as float32 in HF (rows, cols) order; big tensors in row chunks, checking for
    a cancel between chunks so a 262k-row embedding does not hold a cancel for seconds."""
    import gguf
    import numpy as np

    shape = tuple(int(d) for d in reversed(tensor.shape))
    data = tensor.data
    try:
        if tensor.n_elements <= _CHUNK_ELEMENTS or data.ndim < 2:
            return np.asarray(gguf.quants.dequantize(data, tensor.tensor_type), dtype=np.float32).reshape(shape)
        flat = data.reshape(-1, data.shape[-1])
        row_elements = max(1, int(tensor.n_elements) // flat.shape[0])
        step = max(1, _CHUNK_ELEMENTS // row_elements)
        out = np.empty((flat.shape[0], row_elements), dtype=np.float32)
        for start in range(0, flat.shape[0], step):
            ctx.raise_if_cancelled()
            part = gguf.quants.dequantize(flat[start : start + step], tensor.tensor_type)
            out[start : start + step] = np.asarray(part, dtype=np.float32).reshape(-1, row_elements)
        return out.reshape(shape)
    except NotImplementedError:
        raise ConvertError(f"{gguf_path.name}: tensor {tensor.name} has type {tensor.tensor_type.name}, which gguf-py cannot dequantize") from None


def convert(
    gguf_path: Path,
    folder: Path,
    ctx: JobContext,
    *,
    dtype: str = "f32",
    shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> dict[str, Any]:
    """Write an HF model folder into `folder` (staged by the caller) from `gguf_path`."""
    import numpy as np

    if dtype not in DTYPES:
        raise ConvertError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    # The plan and the progress come from the header (a fraction of a second), so the run shows
    # how much is to do at once; gguf-py's reader, which the tensor data and the vocabulary
    # need, takes 10-15 s more to build its views of a 262k-token vocabulary.
    head = read_gguf_header(gguf_path)
    hp = read_hparams(head)
    arch = hp["arch"]
    names = []
    for info in head.tensors:
        name = hf_name(info.name, arch)
        if name is None:
            if info.name == "rope_freqs.weight":
                continue
            raise ConvertError(f"{gguf_path.name}: tensor {info.name} has no HF name for {arch}")
        names.append((info, name))
    out_bytes = sum(int(np.prod(info.shape)) * {"f32": 4, "f16": 2, "bf16": 2}[dtype] for info, _ in names)
    tracker = TensorProgress(ctx, "dequantize", len(names), out_bytes)
    import torch

    torch_dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    reader = open_gguf(gguf_path)
    by_name = {t.name: t for t in reader.tensors}
    plan = [(by_name[info.name], name) for info, name in names]
    shards = ShardWriter(folder, shard_bytes)
    for tensor, name in plan:
        array = _dequantize(tensor, ctx, gguf_path)
        if arch == "llama" and name.endswith(("q_proj.weight", "q_proj.bias")):
            array = _unpermute(array, hp["n_head"])
        elif arch == "llama" and name.endswith(("k_proj.weight", "k_proj.bias")):
            array = _unpermute(array, hp["n_kv"])
        if arch == "gemma3" and name.endswith("norm.weight"):
            array = array - 1.0
        array = np.ascontiguousarray(array)
        if not array.flags.writeable:  # an f32 tensor is a view of the read-only memory map
            array = array.copy()
        value = torch.from_numpy(array).to(torch_dtype)
        nbytes = value.numel() * value.element_size()
        shards.add(name, value)
        del array, value
        tracker.advance(nbytes)
    files = shards.finish()
    config = build_config(hp, dtype)
    config.save_pretrained(str(folder))
    from transformers import GenerationConfig

    GenerationConfig(bos_token_id=hp["bos"], eos_token_id=hp["eos"], pad_token_id=hp["pad"]).save_pretrained(str(folder))
    ctx.log("rebuilding the tokenizer")
    tok_info = write_tokenizer(reader, Path(gguf_path), folder)
    ctx.log(f"chat template written to the HF folder: {tok_info['chat_template_why']}")
    if arch == "gemma3":
        _stop_at_end_of_turn(folder)
    (folder / "llmdeck-source.json").write_text(
        json.dumps({"converted_from": str(gguf_path), "gguf_file_type": str(field(reader, "general.file_type"))}, indent=2) + "\n",
        encoding="utf-8",
    )
    return {"architecture": SUPPORTED[arch], "dtype": dtype, "tensors": len(plan), "shards": len(files), "bytes": shards.total_bytes, **tok_info}


def _stop_at_end_of_turn(folder: Path) -> None:
    """Gemma ends a turn with <end_of_turn>, not <eos>: make generation stop there too (as the
    official HF Gemma 3 generation_config does), or a chat with the tuned model runs on."""
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(str(folder))
    end = tok.convert_tokens_to_ids("<end_of_turn>")
    if not isinstance(end, int) or end == tok.unk_token_id:
        return
    config = GenerationConfig.from_pretrained(str(folder))
    eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    if end in eos:
        return
    config.eos_token_id = [e for e in eos if e is not None] + [end]
    config.save_pretrained(str(folder))
