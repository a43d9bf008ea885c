"""Reading a Hugging Face model directory lazily: config, tensor index, one tensor at a time.

The safetensors headers are parsed by hand (8-byte length + JSON) so that listing a model's
tensors, their shapes and dtypes, and checking that no file is truncated costs a few KB of reads,
not the model's size. Tensor data is read through `safe_open` one tensor at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.convert.common import ConvertError, read_json

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
               "F8_E4M3": 1, "F8_E5M2": 1}


@dataclass(frozen=True)
class TensorRef:
    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    offset: int = 0  # absolute byte offset of the data in `file`
    length: int = 0

    @property
    def nbytes(self) -> int:
        n = DTYPE_BYTES.get(self.dtype, 4)
        for d in self.shape:
            n *= d
        return n


@dataclass
class HFModel:
    """An HF model folder: its config and where each tensor lives."""

    path: Path
    config: dict[str, Any]
    tensors: dict[str, TensorRef] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        archs = self.config.get("architectures") or []
        return str(archs[0]) if archs else ""

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def iter_tensors(self, names: list[str] | None = None) -> Iterator[tuple[TensorRef, Any]]:
        """Yield (ref, torch tensor) one at a time, opening each file once, in file order.

        Tensors are read with plain `readinto` into their own buffer, not through a memory map:
        a mapped file keeps every page it touched in the process's resident set until it is
        closed, so converting a 5 GB shard would show 5 GB of RSS. Read this way, only the
        tensor being converted is in memory.
        """
        wanted = names if names is not None else list(self.tensors)
        by_file: dict[Path, list[str]] = {}
        for name in wanted:
            by_file.setdefault(self.tensors[name].file, []).append(name)
        for file, file_names in by_file.items():
            with open(file, "rb") as handle:
                for name in file_names:
                    ref = self.tensors[name]
                    yield ref, _read_tensor(handle, ref)

    def get(self, name: str) -> Any:
        ref = self.tensors[name]
        with open(ref.file, "rb") as handle:
            return _read_tensor(handle, ref)


_TORCH_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}


def _read_tensor(handle: Any, ref: TensorRef) -> Any:
    import torch

    dtype = getattr(torch, _TORCH_DTYPES.get(ref.dtype, ""), None)
    if dtype is None:
        raise ConvertError(f"{ref.file}: tensor {ref.name} has dtype {ref.dtype}, which llmdeck cannot read")
    buffer = bytearray(ref.length)
    handle.seek(ref.offset)
    if ref.length and handle.readinto(buffer) != ref.length:
        raise ConvertError(f"{ref.file} is truncated (tensor {ref.name})")
    if not ref.length:
        return torch.zeros(ref.shape, dtype=dtype)
    return torch.frombuffer(buffer, dtype=dtype).reshape(ref.shape)


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """Parse and sanity-check one .safetensors header (engine.model_files); a truncated or
    foreign file gets a one-line reason naming it."""
    from engine.model_files import ModelFileError
    from engine.model_files import read_safetensors_header as read_checked

    try:
        return read_checked(path)
    except ModelFileError as exc:
        raise ConvertError(str(exc)) from None


def open_hf_model(path: Path) -> HFModel:
    """Index an HF model folder (config + safetensors, single or sharded) without reading data."""
    path = Path(path)
    if not path.exists():
        raise ConvertError(f"{path} does not exist")
    if not path.is_dir():
        raise ConvertError(f"{path} is a file; an HF model is a folder with config.json and *.safetensors")
    config = read_json(path / "config.json")
    if "text_config" in config and "num_hidden_layers" not in config:
        config = {**config, **config["text_config"], "architectures": config.get("architectures")}
    index_file = path / "model.safetensors.index.json"
    files: list[Path]
    if index_file.exists():
        index = read_json(index_file)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ConvertError(f"{index_file} has no weight_map")
        files = sorted({path / str(f) for f in weight_map.values()})
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise ConvertError(f"{index_file} lists {', '.join(missing[:3])} but they are missing from {path}")
    else:
        files = sorted(path.glob("*.safetensors"))
        if not files:
            if list(path.glob("*.bin")) or list(path.glob("*.pth")):
                raise ConvertError(
                    f"{path} holds only PyTorch .bin/.pth weights; llmdeck reads safetensors "
                    "(for Meta consolidated.*.pth use `llmdeck convert meta-to-hf`)"
                )
            raise ConvertError(f"{path} has no *.safetensors weights")
    model = HFModel(path=path, config=config)
    for file in files:
        header = read_safetensors_header(file)
        for name, info in header.items():
            if name in ("__metadata__", "__data_start__"):
                continue
            begin, stop = (int(x) for x in info["data_offsets"])
            model.tensors[name] = TensorRef(
                name=name,
                file=file,
                dtype=str(info.get("dtype")),
                shape=tuple(int(d) for d in info.get("shape", ())),
                offset=header["__data_start__"] + begin,
                length=stop - begin,
            )
    if not model.tensors:
        raise ConvertError(f"{path}: its safetensors files hold no tensors")
    return model
