"""Build a ModelSpec from what the user names: a preset, an HF folder, a GGUF file, or dims.

Only metadata is read: config.json, the JSON headers of .safetensors files (8-byte length +
JSON, per the safetensors format spec) and the GGUF key/value table and tensor table (gguf-py's
GGUFReader memory-maps the file; tensor data is never touched). So a 140 GB model is sized in
milliseconds and a missing/partial download is reported before anything is loaded.
"""

from __future__ import annotations

import json
import math
import struct
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
    """The JSON header of one .safetensors file (tensor name -> dtype, shape, data_offsets)."""
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise EstimateError(f"{path} is not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", raw)
        if n <= 0 or n > 100_000_000:
            raise EstimateError(f"{path} is not a safetensors file (header length {n})")
        blob = fh.read(n)
    try:
        header = json.loads(blob)
    except ValueError as exc:
        raise EstimateError(f"{path}: unreadable safetensors header ({exc})") from exc
    header.pop("__metadata__", None)
    return header


def safetensors_totals(folder: Path) -> tuple[int, int, str | None] | None:
    """(parameters, bytes, dominant dtype) over the folder's safetensors shards, or None."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        files = sorted({folder / name for name in weight_map.values()})
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise EstimateError(f"{folder}: shard(s) listed in the index are missing: {', '.join(missing[:3])}")
    params = size = 0
    by_dtype: dict[str, int] = {}
    for f in files:
        for name, info in read_safetensors_header(f).items():
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
        file_dtype=(totals[2] if totals else None) or ({"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(str(dtype))),
        **spec_kw,
    )


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class _GGUFHeader:
    """GGUF key/values and tensor table, parsed without materialising the big arrays.

    gguf-py's GGUFReader builds a numpy view for every element of every array (262,144 token
    strings for Gemma 3): tens of seconds on a busy 2-core machine. The estimator needs scalars,
    array lengths and the tensor table only, so this walks the format (GGUF spec, v2/v3: magic,
    version, u64 tensor count, u64 kv count, kvs, tensor infos) and skips array bodies. gguf-py
    still supplies the type tables (GGML_QUANT_SIZES, LlamaFileType); a test checks both agree.
    """

    def __init__(self, path: Path) -> None:
        import mmap

        self.kv: dict[str, Any] = {}
        self.array_len: dict[str, int] = {}
        self.tensors: list[tuple[str, tuple[int, ...], int]] = []  # name, shape, ggml type
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            self._buf = buf
            self._pos = 0
            if bytes(buf[:4]) != b"GGUF":
                raise EstimateError(f"{path}: not a GGUF file (bad magic)")
            self._pos = 4
            version = self._u32()
            if version < 2:
                raise EstimateError(f"{path}: GGUF version {version} is too old")
            n_tensors, n_kv = self._u64(), self._u64()
            for _ in range(n_kv):
                key = self._str()
                vtype = self._u32()
                if vtype == 9:
                    itype, count = self._u32(), self._u64()
                    self.array_len[key] = count
                    small = count <= 64 and itype in _GGUF_SCALARS
                    items = [self._value(itype) for _ in range(count)] if small else self._skip_array(itype, count)
                    if small:
                        self.kv[key] = items
                else:
                    self.kv[key] = self._value(vtype)
            for _ in range(n_tensors):
                name = self._str()
                dims = tuple(self._u64() for _ in range(self._u32()))
                ttype = self._u32()
                self._u64()  # offset
                self.tensors.append((name, dims, ttype))
            self._buf = None

    def _unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self._pos + size > len(self._buf):
            raise EstimateError("GGUF file is truncated")
        (value,) = struct.unpack_from(fmt, self._buf, self._pos)
        self._pos += size
        return value

    def _u32(self) -> int:
        return self._unpack("<I")

    def _u64(self) -> int:
        return self._unpack("<Q")

    def _str(self) -> str:
        n = self._u64()
        if self._pos + n > len(self._buf):
            raise EstimateError("GGUF file is truncated")
        raw = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n
        return raw.decode("utf-8", errors="replace")

    def _value(self, vtype: int) -> Any:
        if vtype == 8:
            return self._str()
        fmt = _GGUF_SCALARS.get(vtype)
        if fmt is None:
            raise EstimateError(f"GGUF value type {vtype} not understood")
        return self._unpack(fmt)

    def _skip_array(self, itype: int, count: int) -> None:
        if itype == 8:
            for _ in range(count):
                self._pos += 8 + struct.unpack_from("<Q", self._buf, self._pos)[0]
        elif itype in _GGUF_SCALARS:
            self._pos += struct.calcsize(_GGUF_SCALARS[itype]) * count
        else:
            for _ in range(count):
                self._value(itype)
        if self._pos > len(self._buf):
            raise EstimateError("GGUF file is truncated")


def gguf_metadata(path: str | Path) -> dict[str, Any]:
    """A GGUF's scalar key/values (and arrays of at most 64 scalars), without reading its tensors."""
    return _GGUFHeader(Path(path)).kv


def spec_from_gguf(path: str | Path) -> ModelSpec:
    """Shape from GGUF metadata; exact parameter count and bytes from the tensor table."""
    path = Path(path)
    try:
        import gguf
    except ImportError as exc:  # pragma: no cover - gguf is a dependency
        raise EstimateError("reading GGUF files needs the `gguf` package (pip install gguf)") from exc
    try:
        head = _GGUFHeader(path)
    except (OSError, ValueError, struct.error) as exc:
        if isinstance(exc, EstimateError):
            raise EstimateError(f"{path}: not a readable GGUF file ({exc})") from exc
        raise EstimateError(f"{path}: not a readable GGUF file ({exc})") from exc
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
    for name, dims, ttype in head.tensors:
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
        ftype = gguf.LlamaFileType(int(file_type)).name.replace("MOSTLY_", "").replace("ALL_", "") if file_type is not None else None
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
