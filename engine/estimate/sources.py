"""Build a ModelSpec from what the user names: a preset, an HF folder, a GGUF file, or dims.

Only metadata is read: config.json, the JSON headers of .safetensors files (8-byte length +
JSON, per the safetensors format spec) and the GGUF key/value table and tensor table
(engine.gguf_header, which checks every size against the file; tensor data is never touched).
So a 140 GB model is sized in milliseconds, and a missing or partial download (a file shorter
than its own header says) is reported before anything is loaded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from engine.estimate.presets import find_preset, preset_names
from engine.estimate.spec import ModelSpec


class EstimateError(ValueError):
    """A user-facing problem with the estimator's input (printed as one line)."""


_SAFETENSORS_DTYPES = {"F32": "fp32", "F16": "fp16", "BF16": "bf16", "F8_E4M3": "fp8", "F8_E5M2": "fp8",
                       "I8": "int8", "U8": "int8"}
_UNTIED_BY_DEFAULT = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "phi3"}


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of one .safetensors file (tensor name -> dtype, shape, data_offsets);
    a file shorter than its header says (an interrupted download) is refused, named."""
    from engine.model_files import ModelFileError
    from engine.model_files import read_safetensors_header as read_checked

    try:
        header = read_checked(path)
    except ModelFileError as exc:
        raise EstimateError(str(exc)) from None
    header.pop("__metadata__", None)
    header.pop("__data_start__", None)
    return header


def safetensors_totals(folder: Path) -> tuple[int, int, str | None] | None:
    """(parameters, bytes, dominant dtype) over the folder's safetensors shards, or None."""
    from engine.model_files import ModelFileError, safetensors_files

    try:
        files = safetensors_files(folder)
    except ModelFileError as exc:
        raise EstimateError(str(exc)) from None
    if not files:
        return None
    params = size = 0
    by_dtype: dict[str, int] = {}
    for f in files:
        for _name, info in read_safetensors_header(f).items():
            n = math.prod(info.get("shape", [])) if info.get("shape") else 1
            start, end = info.get("data_offsets", (0, 0))
            params += n
            size += end - start
            dt = _SAFETENSORS_DTYPES.get(info.get("dtype", ""), info.get("dtype", "").lower())
            by_dtype[dt] = by_dtype.get(dt, 0) + (end - start)
    dominant = max(by_dtype, key=by_dtype.get) if by_dtype else None
    return params, size, dominant


def spec_from_hf_dir(folder: str | Path) -> ModelSpec:
    """Shape from config.json (its text_config for multimodal wrappers) + exact safetensors totals."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise EstimateError(f"{folder} has no config.json: give a Hugging Face model folder, a .gguf file or a preset")
    try:
        cfg = json.loads(cfg_path.read_text())
    except ValueError as exc:
        raise EstimateError(f"{cfg_path}: not valid JSON ({exc})") from exc
    top_type = cfg.get("model_type", "")
    text = cfg.get("text_config") or cfg
    model_type = text.get("model_type", top_type) or "llama"
    try:
        hidden = int(text["hidden_size"])
        n_heads = int(text["num_attention_heads"])
        spec_kw: dict[str, Any] = dict(
            n_layers=int(text["num_hidden_layers"]),
            hidden=hidden,
            intermediate=int(text.get("intermediate_size") or 4 * hidden),
            n_heads=n_heads,
            n_kv_heads=int(text.get("num_key_value_heads") or n_heads),
            vocab=int(text.get("vocab_size") or cfg.get("vocab_size")),
        )
    except (KeyError, TypeError) as exc:
        raise EstimateError(f"{cfg_path}: missing field {exc} (is this a decoder-only language model?)") from exc
    tie = text.get("tie_word_embeddings", cfg.get("tie_word_embeddings"))
    if tie is None:
        tie = model_type not in _UNTIED_BY_DEFAULT
    window = text.get("sliding_window")
    global_every = 0
    layer_types = text.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        if "sliding_attention" not in layer_types:
            window = None
        elif "full_attention" in layer_types:
            global_every = layer_types.index("full_attention") + 1
    elif model_type.startswith("gemma3") and window:
        global_every = int(text.get("sliding_window_pattern") or 6)
    if model_type in ("mistral",) and not layer_types:
        window = None  # transformers' default cache keeps every token for Mistral
    totals = safetensors_totals(folder)
    dtype = text.get("torch_dtype") or text.get("dtype") or cfg.get("torch_dtype") or cfg.get("dtype")
    return ModelSpec(
        name=folder.name,
        head_dim=int(text.get("head_dim") or 0),
        tie_embeddings=bool(tie),
        max_context=int(text.get("max_position_embeddings") or 4096),
        arch=model_type,
        attention_bias=bool(text.get("attention_bias", False)),
        sliding_window=int(window) if window else None,
        global_every=global_every,
        source="hf",
        path=str(folder),
        exact_params=totals[0] if totals else None,
        file_bytes=totals[1] if totals else None,
        file_dtype=(totals[2] if totals else None)
        or ({"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(str(dtype))),
        **spec_kw,
    )


def spec_from_gguf(path: str | Path) -> ModelSpec:
    """Shape from GGUF metadata; exact parameter count and bytes from the tensor table."""
    path = Path(path)
    try:
        import gguf
    except ImportError as exc:  # pragma: no cover - gguf is a dependency
        raise EstimateError("reading GGUF files needs the `gguf` package (pip install gguf)") from exc
    from engine.gguf_header import GGUFHeaderError, read_header

    try:
        head = read_header(path)  # bounded walk: also refuses a truncated file or lying sizes
    except GGUFHeaderError as exc:
        raise EstimateError(str(exc)) from None
    arch = str(head.kv.get("general.architecture", "llama"))

    def key(k: str, default: Any = None) -> Any:
        value = head.kv.get(f"{arch}.{k}", default)
        if isinstance(value, list):  # per-layer arrays (e.g. head_count_kv): the largest
            value = max(value) if value else default
        return value

    hidden, n_heads, n_layers = key("embedding_length"), key("attention.head_count"), key("block_count")
    if not (hidden and n_heads and n_layers):
        raise EstimateError(f"{path}: GGUF metadata lacks {arch}.embedding_length/block_count/attention.head_count")
    params = size = 0
    by_type: dict[str, int] = {}
    names = set()
    emb_shape = None
    for tensor in head.tensors:
        name, dims, ttype = tensor.name, tensor.shape, tensor.ggml_type
        try:
            qtype = gguf.GGMLQuantizationType(ttype)
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError) as exc:
            raise EstimateError(f"{path}: tensor {name} has an unknown type {ttype}") from exc
        n = math.prod(dims)
        nbytes = n * type_size // block
        params += n
        size += nbytes
        by_type[qtype.name] = by_type.get(qtype.name, 0) + nbytes
        names.add(name)
        if name == "token_embd.weight":
            emb_shape = dims
    vocab = head.array_len.get("tokenizer.ggml.tokens") or (emb_shape[-1] if emb_shape else 0)
    file_type = head.kv.get("general.file_type")
    try:
        ftype = (gguf.LlamaFileType(int(file_type)).name.replace("MOSTLY_", "").replace("ALL_", "")
                 if file_type is not None else None)
    except ValueError:
        ftype = None
    window = key("attention.sliding_window")
    return ModelSpec(
        name=path.stem,
        n_layers=int(n_layers),
        hidden=int(hidden),
        intermediate=int(key("feed_forward_length") or 4 * hidden),
        n_heads=int(n_heads),
        n_kv_heads=int(key("attention.head_count_kv") or n_heads),
        head_dim=int(key("attention.key_length") or 0),
        vocab=int(vocab),
        tie_embeddings="output.weight" not in names,
        max_context=int(key("context_length") or 4096),
        arch=arch,
        sliding_window=int(window) if window else None,
        global_every=6 if (window and arch.startswith("gemma3")) else 0,
        source="gguf",
        path=str(path),
        exact_params=params,
        file_bytes=size,
        file_dtype=ftype,
        tensor_types=by_type,
    )


_DIM_KEYS = {
    "layers": "n_layers", "l": "n_layers", "hidden": "hidden", "h": "hidden",
    "intermediate": "intermediate", "ffn": "intermediate", "i": "intermediate",
    "heads": "n_heads", "kv_heads": "n_kv_heads", "kv": "n_kv_heads", "vocab": "vocab", "v": "vocab",
    "head_dim": "head_dim", "context": "max_context", "ctx": "max_context", "tied": "tie_embeddings",
    "params": "exact_params",
}


def spec_from_dims(text: str) -> ModelSpec:
    """'dims:layers=32,hidden=4096,intermediate=11008,heads=32,kv_heads=8,vocab=32000[,head_dim=128,tied=1]'."""
    body = text.split(":", 1)[1] if ":" in text else text
    kw: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, _, value = part.partition("=")
        name = _DIM_KEYS.get(key.strip().lower())
        if name is None or not value:
            raise EstimateError(f"bad dimension {part!r}; use {', '.join(sorted(set(_DIM_KEYS)))}")
        try:
            kw[name] = bool(int(value)) if name == "tie_embeddings" else int(float(value))
        except ValueError as exc:
            raise EstimateError(f"dimension {key} must be a number, got {value!r}") from exc
    missing = [k for k in ("n_layers", "hidden", "n_heads", "vocab") if k not in kw]
    if missing:
        raise EstimateError(f"explicit dims need layers, hidden, heads and vocab (missing {', '.join(missing)})")
    kw.setdefault("intermediate", 4 * kw["hidden"])
    kw.setdefault("n_kv_heads", kw["n_heads"])
    try:
        return ModelSpec(name="custom", source="dims", **kw)
    except ValueError as exc:
        raise EstimateError(str(exc)) from exc


def resolve_model(model: str) -> ModelSpec:
    """A preset name, an HF model folder, a .gguf file or 'dims:...' -> ModelSpec (clear error otherwise)."""
    if model.strip().lower().startswith("dims:"):
        return spec_from_dims(model)
    path = Path(model).expanduser()
    if path.is_dir():
        return spec_from_hf_dir(path)
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return spec_from_gguf(path)
        if path.name == "config.json":
            return spec_from_hf_dir(path.parent)
        with open(path, "rb") as fh:
            if fh.read(4) == b"GGUF":
                return spec_from_gguf(path)
        raise EstimateError(f"{path}: not a GGUF file or model folder")
    preset = find_preset(model)
    if preset is not None:
        return preset
    if "/" in model or model.lower().endswith((".gguf", ".json")) or model.startswith((".", "~")):
        raise EstimateError(f"{model}: no such file or folder")
    raise EstimateError(
        f"{model!r} is not a folder, a .gguf file or a preset; presets: {', '.join(preset_names())}"
    )
