"""A GGUF's shape without its weights, and a twin with random weights made from that shape.

Why: the GPU machine cannot reach a package registry and takes at most 64 MiB of files per call,
so the bundled Gemma 3 270M (about 240 MB of Q4_K_M weights) cannot travel there. Its metadata
(architecture, hyper-parameters and the whole tokenizer) and its tensor table fit in about 3 MB.
`export` writes them here; `twin` writes, there, an F16 GGUF with the same metadata, tensor names
and shapes and random weights; llama.cpp's own quantizer then makes a Q4_K_M of it whose tensor
types follow the same rules as the original's. Speed figures of llama.cpp depend on shapes and
types, not on the values, so the twin benchmarks like the bundled model (its text is noise).

    python bench/gguf_twin.py export MODEL.gguf SHAPE.json.gz   # here (needs gguf)
    python bench/gguf_twin.py twin SHAPE.json.gz OUT-f16.gguf    # there (needs gguf, numpy)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path
from typing import Any

# Written by the GGUF writer itself (or by the quantizer), so not copied from the shape.
SKIPPED_KEYS = ("GGUF.", "general.architecture", "general.file_type", "general.quantization_version")
FORMAT = "llmdeck-gguf-shape/1"


def export_shape(model: Path, out: Path) -> dict[str, Any]:
    """Metadata and tensor table of `model` as gzipped JSON at `out` (written atomically)."""
    import gguf

    reader = gguf.GGUFReader(str(model))
    fields = []
    for name, field in reader.fields.items():
        if name.startswith(SKIPPED_KEYS) and name != "general.architecture":
            continue
        types = [t.name for t in field.types]
        value = field.contents()
        if hasattr(value, "tolist"):
            value = value.tolist()
        fields.append({"name": name, "types": types, "value": value})
    tensors = [{"name": t.name, "shape": [int(x) for x in t.shape], "type": t.tensor_type.name} for t in reader.tensors]
    data = {"format": FORMAT, "source": model.name, "fields": fields, "tensors": tensors}
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    with gzip.open(tmp, "wt", encoding="utf-8") as handle:
        json.dump(data, handle, separators=(",", ":"))
    os.replace(tmp, out)
    return data


def load_shape(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a GGUF shape file ({FORMAT})")
    return data


def write_twin(shape_file: Path, out: Path, seed: int = 0) -> dict[str, Any]:
    """An F16 GGUF with the shape's metadata and tensors, random N(0, 0.02) matrices and unit
    norms (1-D tensors stay F32, as llama.cpp keeps them). Written to a hidden name, then renamed."""
    import gguf
    import numpy as np

    data = load_shape(shape_file)
    fields = {f["name"]: f for f in data["fields"]}
    arch = fields["general.architecture"]["value"]
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch)
    try:
        for name, field in fields.items():
            if name.startswith(SKIPPED_KEYS):
                continue
            kinds = [gguf.GGUFValueType[t] for t in field["types"]]
            sub = kinds[1] if kinds[0] == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(name, field["value"], kinds[0], sub_type=sub)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        rng = np.random.default_rng(seed)
        params = 0
        for tensor in data["tensors"]:
            shape = tuple(reversed(tensor["shape"]))  # GGUF lists ne (fastest first); numpy wants rows first
            if len(shape) == 1:
                array = np.ones(shape, dtype=np.float32)
            else:
                array = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)
            params += array.size
            writer.add_tensor(tensor["name"], array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(tmp, out)
    return {"architecture": arch, "tensors": len(data["tensors"]), "params": params, "bytes": out.stat().st_size,
            "source": data.get("source", "")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="write MODEL.gguf's metadata and tensor table to SHAPE.json.gz")
    e.add_argument("model", type=Path)
    e.add_argument("out", type=Path)
    t = sub.add_parser("twin", help="write an F16 GGUF with random weights from SHAPE.json.gz")
    t.add_argument("shape", type=Path)
    t.add_argument("out", type=Path)
    t.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            data = export_shape(args.model, args.out)
            print(f"{args.out}: {len(data['fields'])} metadata keys, {len(data['tensors'])} tensors, "
                  f"{args.out.stat().st_size / 2**20:.1f} MiB")
        else:
            info = write_twin(args.shape, args.out, args.seed)
            print(f"{args.out}: {info['params'] / 1e6:.0f}M parameters, {info['bytes'] / 2**20:.0f} MiB")
    except (OSError, ValueError, KeyError) as exc:
        print(f"gguf_twin: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
