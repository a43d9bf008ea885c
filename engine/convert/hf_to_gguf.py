"""HF safetensors -> GGUF with gguf-py's writer, one tensor in memory at a time.

The GGUF layout is fixed before any weight is read: pass 1 works out every output tensor's
name, type and byte size from the safetensors headers alone and writes the header, metadata and
tensor table; pass 2 streams the tensors (read, convert, quantize, write, drop). Peak memory is
one tensor plus its converted copy, whatever the model's size.

The per-tensor arithmetic follows llama.cpp's `convert_hf_to_gguf.py` step for step (upcast to
f32 unless f16, the rotary q/k permutation for the llama architecture, Gemma's `norm + 1`,
1-D and norm tensors kept in f32, Q8_0 falling back to F16 for rows not a multiple of 32), so
the tensor data is byte-identical to llama.cpp's own converter for the same output type.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.convert.common import ConvertError, TensorProgress
from engine.convert.hf_source import HFModel, open_hf_model
from engine.jobs import JobContext

OUTTYPES: tuple[str, ...] = ("f32", "f16", "bf16", "q8_0")

# HF architecture -> GGUF architecture
ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Gemma3ForCausalLM": "gemma3",
}

_LAYER_MAP_COMMON = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_LAYER_MAP: dict[str, dict[str, str]] = {
    "llama": {**_LAYER_MAP_COMMON, "post_attention_layernorm": "ffn_norm"},
    "qwen2": {**_LAYER_MAP_COMMON, "post_attention_layernorm": "ffn_norm"},
    "gemma3": {
        **_LAYER_MAP_COMMON,
        "post_attention_layernorm": "post_attention_norm",
        "pre_feedforward_layernorm": "ffn_norm",
        "post_feedforward_layernorm": "post_ffw_norm",
        "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm",
    },
}
_GLOBAL_MAP = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
_SKIP_SUFFIXES = (".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias")


def gguf_arch(model: HFModel) -> str:
    arch = ARCHITECTURES.get(model.architecture)
    if arch is None:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ConvertError(
            f"{model.path / 'config.json'}: architecture {model.architecture or '(none)'} is not supported for GGUF export (supported: {known})"
        )
    return arch


def gguf_name(hf_name: str, arch: str) -> str | None:
    """GGUF tensor name for an HF tensor name; None for tensors GGUF does not keep."""
    if hf_name.endswith(_SKIP_SUFFIXES):
        return None
    base, _, suffix = hf_name.rpartition(".")
    if base in _GLOBAL_MAP:
        return f"{_GLOBAL_MAP[base]}.{suffix}"
    parts = base.split(".")
    if len(parts) >= 4 and parts[0] == "model" and parts[1] == "layers" and parts[2].isdecimal():
        rest = ".".join(parts[3:])
        mapped = _LAYER_MAP[arch].get(rest)
        if mapped:
            return f"blk.{int(parts[2])}.{mapped}.{suffix}"
    raise ConvertError(f"tensor {hf_name!r} has no GGUF name for architecture {arch}; is this a {arch} checkpoint?")


def _rope_theta(config: dict[str, Any], layer_kind: str = "full_attention", default: float = 10000.0) -> float:
    params = config.get("rope_parameters")
    if isinstance(params, dict):
        if layer_kind in params and isinstance(params[layer_kind], dict):
            params = params[layer_kind]
        if "rope_theta" in params:
            return float(params["rope_theta"])
    return float(config.get("rope_theta", default))


def _rope_scaling(config: dict[str, Any]) -> dict[str, Any] | None:
    scaling = config.get("rope_scaling")
    params = config.get("rope_parameters")
    if not scaling and isinstance(params, dict):
        inner = params.get("full_attention", params)
        if isinstance(inner, dict) and inner.get("rope_type", "default") != "default":
            scaling = inner
    if scaling and scaling.get("rope_type", scaling.get("type", "default")) != "default":
        return scaling
    return None


@dataclass(frozen=True)
class PlannedTensor:
    hf_name: str
    name: str
    shape: tuple[int, ...]
    qtype: Any  # gguf.GGMLQuantizationType
    nbytes: int


def _file_type(outtype: str) -> Any:
    import gguf

    return {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[outtype]


def _tensor_qtype(name: str, shape: tuple[int, ...], outtype: str) -> Any:
    import gguf

    T = gguf.GGMLQuantizationType
    if len(shape) <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight"):
        return T.F32
    qtype = {"f32": T.F32, "f16": T.F16, "bf16": T.BF16, "q8_0": T.Q8_0}[outtype]
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    if shape[-1] % block != 0:
        return T.F16  # what llama.cpp does when a row cannot be quantized
    return qtype


def plan(model: HFModel, outtype: str) -> tuple[str, list[PlannedTensor]]:
    """Every output tensor with its type and size, from headers only (no weights read)."""
    import gguf

    if outtype not in OUTTYPES:
        raise ConvertError(f"output type {outtype!r} is not one of {', '.join(OUTTYPES)} (quantize further with `llmdeck convert quantize`)")
    arch = gguf_arch(model)
    planned: list[PlannedTensor] = []
    for hf_name, ref in model.tensors.items():
        name = gguf_name(hf_name, arch)
        if name is None:
            continue
        qtype = _tensor_qtype(name, ref.shape, outtype)
        nbytes = 1
        for d in gguf.quant_shape_to_byte_shape(ref.shape, qtype):
            nbytes *= d
        planned.append(PlannedTensor(hf_name, name, ref.shape, qtype, nbytes))
    names = {p.name for p in planned}
    if "token_embd.weight" not in names:
        raise ConvertError(f"{model.path}: no model.embed_tokens.weight tensor; the checkpoint is incomplete")
    return arch, planned


def _hparams(config: dict[str, Any]) -> dict[str, Any]:
    try:
        n_head = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        return {
            "n_layer": int(config["num_hidden_layers"]),
            "hidden": hidden,
            "ffn": int(config["intermediate_size"]),
            "n_head": n_head,
            "n_kv": int(config.get("num_key_value_heads") or n_head),
            "head_dim": int(config.get("head_dim") or hidden // n_head),
            "ctx": int(config.get("max_position_embeddings", 4096)),
            "eps": float(config.get("rms_norm_eps", 1e-6)),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ConvertError(f"config.json lacks or has a bad {exc} entry") from None


def _write_metadata(writer: Any, arch: str, model: HFModel, outtype: str, n_vocab: int, name: str) -> None:
    import gguf

    cfg = model.config
    hp = _hparams(cfg)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_block_count(hp["n_layer"])
    writer.add_context_length(hp["ctx"])
    writer.add_embedding_length(hp["hidden"])
    writer.add_feed_forward_length(hp["ffn"])
    writer.add_head_count(hp["n_head"])
    writer.add_head_count_kv(hp["n_kv"])
    writer.add_rope_freq_base(_rope_theta(cfg, default=1_000_000.0 if arch == "gemma3" else 10000.0))
    writer.add_layer_norm_rms_eps(hp["eps"])
    writer.add_file_type(_file_type(outtype))
    if arch == "llama":
        writer.add_vocab_size(n_vocab)
        writer.add_rope_dimension_count(hp["head_dim"])
    if arch == "gemma3" or hp["head_dim"] != hp["hidden"] // hp["n_head"]:
        writer.add_key_length(hp["head_dim"])
        writer.add_value_length(hp["head_dim"])
    if arch == "gemma3":
        if cfg.get("attn_logit_softcapping") is not None:
            raise ConvertError("config.json sets attn_logit_softcapping, which Gemma 3 GGUF does not support")
        if cfg.get("final_logit_softcapping"):
            writer.add_final_logit_softcapping(float(cfg["final_logit_softcapping"]))
        if cfg.get("sliding_window"):
            writer.add_sliding_window(int(cfg["sliding_window"]))
    scaling = _rope_scaling(cfg)
    if scaling:
        kind = scaling.get("rope_type", scaling.get("type"))
        if kind == "linear":
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(float(scaling["factor"]))
        else:
            raise ConvertError(f"config.json uses rope scaling {kind!r}, which llmdeck's GGUF export does not support yet")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _permute(weights: Any, n_head: int, n_head_kv: int | None) -> Any:
    """HF's rotate-half q/k layout back to Meta's interleaved one, which llama.cpp's llama
    architecture expects (the inverse of what transformers' Meta converter does)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def convert_tensor(data: Any, hf_name: str, arch: str, hp: dict[str, Any], qtype: Any) -> Any:
    """One tensor, exactly as llama.cpp's converter computes it; returns the bytes to write."""
    import gguf
    import numpy as np
    import torch

    if data.dtype not in (torch.float16, torch.float32):
        data = data.to(torch.float32)
    if arch == "llama":
        if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = _permute(data, hp["n_head"], hp["n_head"])
        elif hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = _permute(data, hp["n_head"], hp["n_kv"])
    if arch == "gemma3" and hf_name.endswith("norm.weight"):
        data = data + 1.0
    array = data.numpy()
    if qtype == gguf.GGMLQuantizationType.F32:
        return array.astype(np.float32, copy=False)
    return gguf.quants.quantize(array, qtype)


def convert(
    model_dir: Path,
    output: Path,
    ctx: JobContext,
    *,
    outtype: str = "f16",
    force: bool = False,
    name: str = "",
) -> dict[str, Any]:
    """Write `output` (a .gguf file path, already staged by the caller) from `model_dir`."""
    import gguf

    model = open_hf_model(model_dir)
    arch, planned = plan(model, outtype)
    from engine.convert.vocab import choose_vocab

    n_vocab = int(model.tensors["model.embed_tokens.weight"].shape[0]) if "model.embed_tokens.weight" in model.tensors else int(model.config.get("vocab_size", 0))
    gguf_name = name or model.path.name

    def write_probe(candidate: Any, path: Path) -> None:
        probe = gguf.GGUFWriter(path=str(path), arch=arch)
        try:
            _write_metadata(probe, arch, model, outtype, len(candidate.tokens), gguf_name)
            candidate.add_to_writer(probe, model.path)
            probe.write_header_to_file()
            probe.write_kv_data_to_file()
            probe.write_ti_data_to_file()
        finally:
            probe.close()

    ctx.progress(0, 1, "check tokenizer", unit="step", force=True)
    choice = choose_vocab(model.path, n_vocab, write_probe, force=force)
    vocab = choice.vocab
    ctx.log(choice.report)
    ctx.raise_if_cancelled()
    hp = _hparams(model.config)
    writer = gguf.GGUFWriter(path=None, arch=arch)
    try:
        _write_metadata(writer, arch, model, outtype, len(vocab.tokens), gguf_name)
        vocab.add_to_writer(writer, model.path)
        import numpy as np

        for p in planned:
            writer.add_tensor_info(p.name, p.shape, np.dtype(np.float32), p.nbytes, raw_dtype=p.qtype)
        writer.write_header_to_file(path=Path(output))
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        tracker = TensorProgress(ctx, "write gguf", len(planned), sum(p.nbytes for p in planned))
        by_name = {p.hf_name: p for p in planned}
        for ref, tensor in model.iter_tensors([p.hf_name for p in planned]):
            p = by_name[ref.name]
            data = convert_tensor(tensor, ref.name, arch, hp, p.qtype)
            del tensor
            if data.nbytes != p.nbytes:
                raise ConvertError(f"{ref.file}: tensor {ref.name} converted to {data.nbytes} bytes, expected {p.nbytes}")
            writer.write_tensor_data(data)
            del data
            tracker.advance(p.nbytes)
    finally:
        writer.close()
    return {
        "architecture": arch,
        "outtype": outtype,
        "tensors": len(planned),
        "bytes": Path(output).stat().st_size,
        "tokenizer": vocab.model,
        "tokenizer_source": choice.source,
        "tokenizer_check": choice.match,
        "vocab": len(vocab.tokens),
    }
