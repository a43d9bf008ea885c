"""Reading Meta's original Llama checkpoints: params.json + consolidated.NN.pth shards.

Shards are opened with `torch.load(weights_only=True, mmap=True)`: only tensor metadata is read
up front, data pages are read when a layer is merged, so checking shapes costs nothing and
converting holds about one layer in memory. How each weight was split across model-parallel
shards (Meta's fairscale layers) decides how it is put back together:

    tok_embeddings          ParallelEmbedding     split on dim 1
    wq, wk, wv, w1, w3      ColumnParallelLinear  split on dim 0 (wq/wk/wv: whole heads per shard)
    wo, w2                  RowParallelLinear     split on dim 1
    output                  ColumnParallelLinear  split on dim 0
    *norm                   replicated            take shard 0
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.convert.common import ConvertError, read_json

REQUIRED_PARAMS = ("dim", "n_layers", "n_heads", "norm_eps")
CAT_DIM = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "wo": 1, "w2": 1, "tok_embeddings": 1, "output": 0}
_SHARD = re.compile(r"consolidated\.(\d+)\.pth$")


@dataclass
class MetaCheckpoint:
    path: Path
    params: dict[str, Any]
    shard_files: list[Path]
    shards: list[dict[str, Any]] = field(default_factory=list)  # mmap'd state dicts

    @property
    def n_shards(self) -> int:
        return len(self.shard_files)

    @property
    def dim(self) -> int:
        return int(self.params["dim"])

    @property
    def n_heads(self) -> int:
        return int(self.params["n_heads"])

    @property
    def n_kv_heads(self) -> int:
        return int(self.params.get("n_kv_heads") or self.n_heads)

    @property
    def n_layers(self) -> int:
        return int(self.params["n_layers"])

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def rope_theta(self) -> float:
        return float(self.params.get("rope_theta") or 10000.0)

    @property
    def vocab_size(self) -> int:
        return int(self.shards[0]["tok_embeddings.weight"].shape[0])

    @property
    def intermediate_size(self) -> int:
        return sum(int(s["layers.0.feed_forward.w1.weight"].shape[0]) for s in self.shards)

    def remap(self) -> None:
        """Drop and re-open the memory maps. Pages a map has touched stay in the resident set
        until it is unmapped, so re-opening after each layer keeps RSS near one layer instead of
        growing to the whole checkpoint (re-opening reads only the small pickle index)."""
        self.shards = [load_shard(f) for f in self.shard_files]

    def shard_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.shard_files)

    def merged(self, key: str) -> Any:
        """One weight with the model-parallel pieces put back together (no rotary permutation)."""
        import torch

        parts = [s[key] for s in self.shards]
        if len(parts) == 1 or parts[0].dim() == 1:
            return parts[0]
        kind = key.split(".")[-2]
        return torch.cat(parts, dim=CAT_DIM[kind])


def find_tokenizer(path: Path, explicit: Path | None = None) -> Path | None:
    """Meta's downloads keep tokenizer.model next to the shards or one folder up."""
    if explicit is not None:
        return explicit if explicit.is_file() else None
    for candidate in (path / "tokenizer.model", path.parent / "tokenizer.model"):
        if candidate.is_file():
            return candidate
    return None


def open_meta(path: Path, *, load: bool = True) -> MetaCheckpoint:
    """Check the layout (params.json keys, shard numbering) and mmap the shards."""
    path = Path(path)
    if not path.is_dir():
        raise ConvertError(
            f"{path} is not a folder; a Meta checkpoint is a folder with params.json and consolidated.*.pth"
        )
    params = read_json(path / "params.json")
    missing = [k for k in REQUIRED_PARAMS if k not in params]
    if missing:
        raise ConvertError(f"{path / 'params.json'} lacks {', '.join(missing)}; is this a Llama checkpoint?")
    for key in ("dim", "n_layers", "n_heads"):
        if not isinstance(params[key], int) or params[key] <= 0:
            raise ConvertError(f"{path / 'params.json'}: {key} must be a positive integer, not {params[key]!r}")
    files = sorted(
        path.glob("consolidated.*.pth"),
        key=lambda p: int(_SHARD.search(p.name).group(1)) if _SHARD.search(p.name) else -1,
    )
    if not files:
        raise ConvertError(f"{path} has no consolidated.*.pth shards")
    numbers = [int(m.group(1)) for f in files if (m := _SHARD.search(f.name))]
    if numbers != list(range(len(files))):
        raise ConvertError(
            f"{path}: shards are numbered {numbers}, expected 00..{len(files) - 1:02d}; a shard is missing"
        )
    ckpt = MetaCheckpoint(path=path, params=params, shard_files=files)
    n_kv = ckpt.n_kv_heads
    if ckpt.dim % ckpt.n_heads or ckpt.n_heads % ckpt.n_shards or n_kv % ckpt.n_shards or ckpt.n_heads % n_kv:
        raise ConvertError(
            f"{path / 'params.json'}: dim {ckpt.dim}, {ckpt.n_heads} heads, {n_kv} KV heads"
            f" do not split over {ckpt.n_shards} shards"
        )
    if load:
        ckpt.shards = [load_shard(f) for f in files]
        check_shards(ckpt)
    return ckpt


def load_shard(path: Path) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - zip/pickle errors of a truncated or foreign file
        text = str(exc).splitlines()[0][:140] if str(exc) else type(exc).__name__
        raise ConvertError(f"{path} is truncated or not a PyTorch checkpoint ({text})") from None
    if not isinstance(state, dict) or "tok_embeddings.weight" not in state:
        raise ConvertError(f"{path} does not hold Llama weights (no tok_embeddings.weight)")
    return state


def expected_keys(n_layers: int) -> list[str]:
    keys = ["tok_embeddings.weight", "norm.weight", "output.weight"]
    for i in range(n_layers):
        for name in ("attention.wq", "attention.wk", "attention.wv", "attention.wo",
                     "feed_forward.w1", "feed_forward.w2", "feed_forward.w3", "attention_norm", "ffn_norm"):
            keys.append(f"layers.{i}.{name}.weight")
    return keys


def check_shards(ckpt: MetaCheckpoint) -> None:
    """Every shard has every weight, with the same shape, and the shapes add up to params.json."""
    first = ckpt.shards[0]
    names = ckpt.shard_files
    for key in expected_keys(ckpt.n_layers):
        for i, shard in enumerate(ckpt.shards):
            if key not in shard:
                raise ConvertError(f"{names[i]} lacks {key}; params.json says {ckpt.n_layers} layers")
            if tuple(shard[key].shape) != tuple(first[key].shape):
                raise ConvertError(
                    f"{names[i]}: {key} has shape {list(shard[key].shape)} but {names[0].name}"
                    f" has {list(first[key].shape)}; the shards disagree"
                )
    n = ckpt.n_shards
    hd = ckpt.head_dim
    checks = {
        "layers.0.attention.wq.weight": (ckpt.dim // n, ckpt.dim),
        "layers.0.attention.wk.weight": (ckpt.n_kv_heads * hd // n, ckpt.dim),
        "layers.0.attention.wo.weight": (ckpt.dim, ckpt.dim // n),
        "norm.weight": (ckpt.dim,),
    }
    for key, shape in checks.items():
        if tuple(first[key].shape) != shape:
            raise ConvertError(
                f"{names[0]}: {key} has shape {list(first[key].shape)}, but params.json (dim {ckpt.dim}, "
                f"{ckpt.n_heads} heads, {ckpt.n_kv_heads} KV heads, {n} shards) implies {list(shape)}"
            )
