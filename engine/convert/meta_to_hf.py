"""Meta original Llama (1, 2, Code Llama) -> HF LlamaForCausalLM folder, one layer at a time.

transformers' own `convert_llama_weights_to_hf.py` loads every shard fully and builds the whole
state dict (about 140 GB of RAM for a 70B). Here shards are memory-mapped, each layer is merged
across shards, permuted, cast and handed to the shard writer, so memory stays near one output
shard plus one layer.

Verification runs Meta's own forward pass (`meta_reference_logits`: interleaved complex rotary
embeddings on the unpermuted, merged weights, read layer by layer from the shards) against
transformers on the output, which checks the q/k permutation independently of this converter.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from engine.convert.common import ConvertError, TensorProgress
from engine.convert.meta_checkpoint import MetaCheckpoint, find_tokenizer, open_meta
from engine.convert.shards import DEFAULT_SHARD_BYTES, ShardWriter
from engine.jobs import JobContext

DTYPES = {"auto": None, "f32": "float32", "fp32": "float32", "f16": "float16", "fp16": "float16", "bf16": "bfloat16"}
_LAYER_NAMES = {
    "attention.wq": "self_attn.q_proj",
    "attention.wk": "self_attn.k_proj",
    "attention.wv": "self_attn.v_proj",
    "attention.wo": "self_attn.o_proj",
    "feed_forward.w1": "mlp.gate_proj",
    "feed_forward.w2": "mlp.down_proj",
    "feed_forward.w3": "mlp.up_proj",
    "attention_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}


def permute(w: Any, n_heads: int, dim1: int, dim2: int) -> Any:
    """Meta's interleaved rotary layout -> HF's rotate-half layout (what transformers does)."""
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def context_length(ckpt: MetaCheckpoint, llama_version: int, override: int = 0) -> int:
    if override:
        return int(override)
    if ckpt.rope_theta >= 1_000_000:
        return 16384  # Code Llama
    if ckpt.params.get("max_seq_len"):
        return int(ckpt.params["max_seq_len"])
    return 2048 if llama_version == 1 else 4096


def layer_tensors(ckpt: MetaCheckpoint, i: int) -> list[tuple[str, Any]]:
    """Layer `i` in HF names, merged across shards and permuted for HF's rotary layout."""
    dim, hd = ckpt.dim, ckpt.head_dim
    n_heads, n_kv = ckpt.n_heads, ckpt.n_kv_heads
    kv_dim = hd * n_kv
    out = []
    for meta, hf in _LAYER_NAMES.items():
        key = f"layers.{i}.{meta}.weight"
        w = ckpt.merged(key)
        if meta == "attention.wq":
            w = permute(w, n_heads, dim, dim)
        elif meta == "attention.wk":
            w = permute(w, n_kv, kv_dim, dim)
        out.append((f"model.layers.{i}.{hf}.weight", w))
    return out


def write_tokenizer(tokenizer_model: Path, folder: Path) -> dict[str, Any]:
    from transformers import LlamaTokenizer

    shutil.copy2(tokenizer_model, folder / "tokenizer.model")
    try:
        # from_pretrained on the folder: LlamaTokenizer(vocab_file=...) silently builds a 3-token vocab
        tok = LlamaTokenizer.from_pretrained(str(folder), add_bos_token=True, add_eos_token=False, legacy=True)
    except Exception as exc:  # noqa: BLE001
        raise ConvertError(
            f"{tokenizer_model} is not a usable SentencePiece model ({type(exc).__name__}: {str(exc)[:120]})"
        ) from None
    from sentencepiece import SentencePieceProcessor

    expected = SentencePieceProcessor(model_file=str(tokenizer_model)).vocab_size()
    if len(tok) < expected:
        raise ConvertError(
            f"transformers built a {len(tok)}-token tokenizer from {tokenizer_model} ({expected} pieces);"
            " install protobuf (`pip install protobuf`)"
        )
    tok.save_pretrained(str(folder))
    return {"tokenizer_vocab": len(tok)}


def convert(
    path: Path,
    folder: Path,
    ctx: JobContext,
    *,
    dtype: str = "auto",
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    llama_version: int = 2,
    context: int = 0,
    tokenizer: Path | None = None,
) -> dict[str, Any]:
    """Write an HF Llama folder into `folder` (staged by the caller) from Meta checkpoint `path`."""
    import torch
    from transformers import GenerationConfig, LlamaConfig

    if dtype not in DTYPES:
        raise ConvertError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    ckpt = open_meta(path)
    tok_path = find_tokenizer(Path(path), Path(tokenizer) if tokenizer else None)
    if tok_path is None:
        raise ConvertError(f"no tokenizer.model in {path} or its parent; pass --tokenizer PATH")
    source_dtype = ckpt.shards[0]["tok_embeddings.weight"].dtype
    torch_dtype = getattr(torch, DTYPES[dtype]) if DTYPES[dtype] else source_dtype
    n_tensors = 3 + 9 * ckpt.n_layers
    item = torch.tensor([], dtype=torch_dtype).element_size()
    params = sum(t.numel() for t in ckpt.shards[0].values()) * ckpt.n_shards  # replicated norms overcount a little
    tracker = TensorProgress(ctx, "merge layers", n_tensors, params * item)
    shards = ShardWriter(folder, shard_bytes)

    def add(name: str, tensor: Any) -> None:
        value = tensor.to(torch_dtype).contiguous()
        if value.data_ptr() == tensor.data_ptr():
            value = value.clone()  # never keep an mmap'd view alive in the writer's buffer
        shards.add(name, value)
        tracker.advance(value.numel() * value.element_size())

    add("model.embed_tokens.weight", ckpt.merged("tok_embeddings.weight"))
    for i in range(ckpt.n_layers):
        for name, tensor in layer_tensors(ckpt, i):
            add(name, tensor)
        ckpt.remap()
    add("model.norm.weight", ckpt.merged("norm.weight"))
    add("lm_head.weight", ckpt.merged("output.weight"))
    files = shards.finish()
    config = LlamaConfig(
        vocab_size=ckpt.vocab_size,
        hidden_size=ckpt.dim,
        intermediate_size=ckpt.intermediate_size,
        num_hidden_layers=ckpt.n_layers,
        num_attention_heads=ckpt.n_heads,
        num_key_value_heads=ckpt.n_kv_heads,
        rms_norm_eps=float(ckpt.params["norm_eps"]),
        rope_theta=ckpt.rope_theta,
        max_position_embeddings=context_length(ckpt, llama_version, context),
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    config.architectures = ["LlamaForCausalLM"]
    config.dtype = str(torch_dtype).removeprefix("torch.")
    config.save_pretrained(str(folder))
    GenerationConfig(bos_token_id=1, eos_token_id=2).save_pretrained(str(folder))
    info = write_tokenizer(tok_path, folder)
    return {
        "architecture": "LlamaForCausalLM",
        "layers": ckpt.n_layers,
        "shards_in": ckpt.n_shards,
        "shards_out": len(files),
        "dtype": config.dtype,
        "vocab": ckpt.vocab_size,
        "gqa": ckpt.n_kv_heads != ckpt.n_heads,
        "context_length": config.max_position_embeddings,
        **info,
    }


def meta_reference_logits(path: Path, ids: list[list[int]]) -> list[Any]:
    """Meta's Llama forward pass (model.py semantics) straight from the shards, float32.

    Layer-major over all prompts, so only one layer's merged weights are in memory at a time.
    """
    import torch

    ckpt = open_meta(path)
    hd, n_heads, n_kv = ckpt.head_dim, ckpt.n_heads, ckpt.n_kv_heads
    eps = float(ckpt.params["norm_eps"])

    def norm(x: Any, w: Any) -> Any:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w.float()

    seq_max = max(len(s) for s in ids)
    freqs = 1.0 / (ckpt.rope_theta ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
    cis = torch.polar(torch.ones(seq_max, hd // 2), torch.outer(torch.arange(seq_max).float(), freqs))

    def rope(x: Any) -> Any:
        t = x.shape[0]
        xc = torch.view_as_complex(x.float().reshape(t, x.shape[1], -1, 2))
        return torch.view_as_real(xc * cis[:t, None, :]).flatten(2)

    with torch.no_grad():
        emb = ckpt.merged("tok_embeddings.weight").float()
        hs = [emb[torch.tensor(s)] for s in ids]
        del emb
        for i in range(ckpt.n_layers):
            w = {k: ckpt.merged(f"layers.{i}.{k}.weight").float() for k in _LAYER_NAMES}
            for j, h in enumerate(hs):
                t = h.shape[0]
                x = norm(h, w["attention_norm"])
                q = rope((x @ w["attention.wq"].T).view(t, n_heads, hd))
                k = rope((x @ w["attention.wk"].T).view(t, n_kv, hd))
                v = (x @ w["attention.wv"].T).view(t, n_kv, hd)
                k = k.repeat_interleave(n_heads // n_kv, dim=1)
                v = v.repeat_interleave(n_heads // n_kv, dim=1)
                scores = torch.einsum("qhd,khd->hqk", q, k) / hd**0.5
                scores = scores + torch.full((t, t), float("-inf")).triu(1)
                att = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v).reshape(t, -1)
                h = h + att @ w["attention.wo"].T
                x = norm(h, w["ffn_norm"])
                gated = torch.nn.functional.silu(x @ w["feed_forward.w1"].T) * (x @ w["feed_forward.w3"].T)
                h = h + gated @ w["feed_forward.w2"].T
                hs[j] = h
            del w
            ckpt.remap()
        final = ckpt.merged("norm.weight")
        out = ckpt.merged("output.weight").float()
        return [(norm(h, final) @ out.T).numpy() for h in hs]
