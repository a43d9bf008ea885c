"""Quantize a GGUF with llama.cpp's own quantizer (`llama_model_quantize` via llama-cpp-python).

The quantizer is one long C call that cannot be interrupted, so it runs in a child process
(`python -m engine.convert.quantize ARGS_JSON`): cancelling kills the child at once, and
llama.cpp's per-tensor log lines (`[  12/ 291] blk.1.attn_q.weight ...`) on the child's stderr
become per-tensor progress. An importance matrix (GGUF or legacy .dat, as written by
llama-imatrix) is loaded here and handed to llama.cpp through the binding's
`llama_model_imatrix_data` array, exactly as the `llama-quantize` tool does.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

from engine.child_process import die_with_parent
from engine.convert.common import ConvertError, TensorProgress
from engine.formatting import format_bytes
from engine.gguf_header import GGUFHeader
from engine.jobs import JobCancelled, JobContext

# name -> llama_ftype (values of llama.h's enum llama_ftype)
QUANT_TYPES: dict[str, int] = {
    "Q4_0": 2,
    "Q4_1": 3,
    "Q8_0": 7,
    "Q5_0": 8,
    "Q5_1": 9,
    "Q2_K": 10,
    "Q3_K_S": 11,
    "Q3_K_M": 12,
    "Q3_K_L": 13,
    "Q4_K_S": 14,
    "Q4_K_M": 15,
    "Q5_K_S": 16,
    "Q5_K_M": 17,
    "Q6_K": 18,
    "F16": 1,
    "BF16": 32,
}
COMMON_TYPES: tuple[str, ...] = ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "Q4_0")
# bits per weight, roughly: only a fallback when llama.cpp's dry run cannot tell (see planned_size)
BITS: dict[str, float] = {"Q4_0": 4.5, "Q4_1": 5.0, "Q8_0": 8.5, "Q5_0": 5.5, "Q5_1": 6.0, "Q2_K": 2.6, "Q3_K_S": 3.5,
                          "Q3_K_M": 3.9,
                          "Q3_K_L": 4.3, "Q4_K_S": 4.6, "Q4_K_M": 4.9, "Q5_K_S": 5.5, "Q5_K_M": 5.7, "Q6_K": 6.6,
                          "F16": 16.0, "BF16": 16.0}

_LINE = re.compile(r"^\[\s*(\d+)\s*/\s*(\d+)\]\s+(\S+)")


def normalize_type(name: str) -> str:
    key = name.strip().upper().replace("-", "_")
    if key not in QUANT_TYPES:
        raise ConvertError(f"unknown quantization type {name!r}; use one of {', '.join(QUANT_TYPES)}")
    return key


# -- importance matrix --------------------------------------------------------------------------
def load_imatrix(path: Path) -> dict[str, list[float] | Any]:
    """Per-tensor importance vectors, normalised the way llama-quantize does."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ConvertError(f"imatrix file {path} does not exist")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == b"GGUF":
        from engine.convert.gguf_source import open_gguf

        reader = open_gguf(path)
        tensors = {t.name: np.asarray(t.data, dtype=np.float32) for t in reader.tensors}
        out: dict[str, Any] = {}
        for name, sums in tensors.items():
            if not name.endswith(".in_sum2"):
                continue
            base = name[: -len(".in_sum2")]
            counts = tensors.get(base + ".counts")
            if counts is None:
                raise ConvertError(f"{path}: {base} has sums but no counts; is this an imatrix file?")
            counts = counts.reshape(-1)
            sums = sums.reshape(len(counts), -1)
            values = np.where(counts[:, None] > 0, sums / np.maximum(counts[:, None], 1e-30), 1.0)
            out[base] = values.reshape(-1).astype(np.float32)
        if not out:
            raise ConvertError(f"{path} holds no importance-matrix entries")
        return out
    return _load_legacy_imatrix(path)


def _load_legacy_imatrix(path: Path) -> dict[str, Any]:
    import struct

    import numpy as np

    data = path.read_bytes()
    try:
        (n,) = struct.unpack_from("<i", data, 0)
        pos = 4
        out: dict[str, Any] = {}
        for _ in range(n):
            (length,) = struct.unpack_from("<i", data, pos)
            pos += 4
            name = data[pos : pos + length].decode("utf-8")
            pos += length
            ncall, nval = struct.unpack_from("<ii", data, pos)
            pos += 8
            values = np.frombuffer(data, dtype=np.float32, count=nval, offset=pos).copy()
            pos += 4 * nval
            out[name] = values / ncall if ncall > 0 else values
    except (struct.error, ValueError, UnicodeDecodeError):
        raise ConvertError(f"{path} is neither a GGUF nor a legacy .dat imatrix file") from None
    if not out or n <= 0:
        raise ConvertError(f"{path} holds no importance-matrix entries")
    return out


# -- child process ------------------------------------------------------------------------------
def _child(args: dict[str, Any]) -> int:
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(args["ftype"])
    params.nthread = int(args.get("nthread") or 0)
    params.allow_requantize = bool(args.get("allow_requantize", False))
    params.dry_run = bool(args.get("dry_run", False))
    keep = []
    if args.get("imatrix"):
        import numpy as np

        entries = load_imatrix(Path(args["imatrix"]))
        array = (llama_cpp.llama_model_imatrix_data * (len(entries) + 1))()
        for i, (name, values) in enumerate(entries.items()):
            values = np.ascontiguousarray(values, dtype=np.float32)
            name_b = name.encode("utf-8")
            keep.extend([values, name_b])
            array[i].name = name_b
            array[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            array[i].size = values.size
        array[len(entries)].name = None
        keep.append(array)
        params.imatrix = ctypes.cast(array, type(params.imatrix))
        print(f"imatrix: {len(entries)} entries from {args['imatrix']}", file=sys.stderr, flush=True)
    rc = llama_cpp.llama_model_quantize(str(args["input"]).encode(), str(args["output"]).encode(), ctypes.byref(params))
    return int(rc)


def quantize(
    source: Path,
    output: Path,
    qtype: str,
    ctx: JobContext,
    *,
    nthread: int = 0,
    imatrix: Path | None = None,
    allow_requantize: bool = False,
    n_tensors: int = 0,
    total_bytes: int = 0,
) -> dict[str, Any]:
    """Quantize `source` into `output` (a staged path). Cancel kills the quantizer at once."""
    qtype = normalize_type(qtype)
    args = {
        "input": str(source),
        "output": str(output),
        "ftype": QUANT_TYPES[qtype],
        "nthread": nthread,
        "imatrix": str(imatrix) if imatrix else "",
        "allow_requantize": allow_requantize,
    }
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.convert.quantize", json.dumps(args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(Path(output).parent),
        preexec_fn=die_with_parent(),  # noqa: PLW1509 - lock-free, see engine/child_process.py
    )
    tail: deque[str] = deque(maxlen=30)
    tracker = TensorProgress(ctx, f"quantize {qtype}", n_tensors or 1, total_bytes or 1)
    per_tensor = (total_bytes // n_tensors) if n_tensors else 0
    state = {"done": 0}

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            tail.append(line)
            match = _LINE.match(line)
            if match:
                done, total = int(match.group(1)), int(match.group(2))
                if tracker.total_tensors != total:
                    tracker.total_tensors = total
                state["done"] = done
            elif "imatrix" in line or "error" in line.lower() or "failed" in line.lower():
                ctx.log(line)

    reader = threading.Thread(target=pump, daemon=True, name="quantize-log")
    reader.start()
    try:
        while proc.poll() is None:
            if ctx.cancelled:
                proc.kill()
                proc.wait()
                raise JobCancelled()
            # the line for tensor i is printed when it starts: i-1 are finished
            finished = max(0, state["done"] - 1)
            while tracker.done_tensors < finished:
                tracker.advance(per_tensor)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=2)
    if proc.returncode != 0:
        _raise_if_disk_full(Path(output), tail)
        reason = next((line for line in reversed(tail) if "failed" in line or "error" in line.lower()), "")
        if "requantizing" in reason:
            raise ConvertError(f"{source} is already quantized; "
                               "pass --allow-requantize to quantize it again (quality suffers)")
        raise ConvertError(f"llama.cpp could not quantize {source}: {reason or 'exit status ' + str(proc.returncode)}")
    while tracker.done_tensors < tracker.total_tensors:
        tracker.advance(per_tensor)
    return {"quant_type": qtype, "bytes": Path(output).stat().st_size, "imatrix": str(imatrix) if imatrix else ""}


# `[  12/ 236] blk.1.attn_q.weight - [ 640, 1024, 1, 1], type = f16, size = 1.250 MiB -> 0.352 MiB (q4_K)`
_DRY_LINE = re.compile(
    r"^\[\s*\d+\s*/\s*\d+\]\s+(\S+)\s+-\s+\[[^\]]*\],\s+type\s*=\s*(\S+),\s+size\s*=.*?(?:->.*\((\S+)\))?\s*$"
)


def planned_types(source: Path, qtype: str, *, allow_requantize: bool = False, timeout: float = 60.0) -> dict[str, str]:
    """tensor name -> the ggml type llama.cpp's quantizer will give it, from the quantizer's own
    dry run (`llama_model_quantize_params.dry_run`: it makes every per-tensor choice, including
    the higher-precision token embedding and output of the K-quant mixes, and writes nothing).
    Run in a child process like the real quantizer, whose log lines on stderr name each choice."""
    qtype = normalize_type(qtype)
    args = {"input": str(source), "output": "", "ftype": QUANT_TYPES[qtype], "nthread": 1, "dry_run": True,
            "allow_requantize": allow_requantize}
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "engine.convert.quantize", json.dumps(args)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", env=env, timeout=timeout,
            preexec_fn=die_with_parent(),  # noqa: PLW1509 - lock-free, see engine/child_process.py
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConvertError(f"llama.cpp's quantizer dry run on {source} did not finish ({exc})") from None
    types: dict[str, str] = {}
    for line in (done.stdout + done.stderr).splitlines():
        match = _DRY_LINE.match(line.strip())
        if match:
            name, current, target = match.groups()
            types[name] = (target or current).upper()
    if done.returncode != 0 or not types:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise ConvertError(f"llama.cpp's quantizer dry run on {source} failed: {tail[0]}")
    return types


def planned_size(head: GGUFHeader, types: dict[str, str]) -> int:
    """The quantized file's size in bytes: the source's header and metadata (the quantizer copies
    them) plus every tensor at its planned type, each padded to the file's alignment. Read from
    the bounded header walk (engine.gguf_header), so no tensor data is opened."""
    import gguf

    alignment = head.alignment or 32
    total = int(head.data_start)
    for tensor in head.tensors:
        name = types.get(tensor.name)
        qtype = gguf.GGMLQuantizationType[name] if name else gguf.GGMLQuantizationType(tensor.ggml_type)
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        nbytes = math.prod(tensor.shape) // block * type_size
        total += _padded(nbytes, alignment)
    return total


def _padded(nbytes: int, alignment: int) -> int:
    return -(-nbytes // alignment) * alignment


def estimated_size(head: GGUFHeader, qtype: str) -> int:
    """The quantized file's size from the header alone, before llama.cpp's dry run says exactly:
    every tensor of two or more dimensions at the type's average bits per weight (`BITS`, the
    mix's kept-precision tensors included on average), the others (norms, biases) as they are."""
    bits = BITS[normalize_type(qtype)]
    alignment = head.alignment or 32
    total = int(head.data_start)
    for tensor in head.tensors:
        numel = math.prod(tensor.shape)
        total += _padded(int(numel * bits / 8) if len(tensor.shape) >= 2 else tensor.n_bytes, alignment)
    return total


def size_bound(head: GGUFHeader) -> int:
    """An upper bound on the quantized file's size, whatever the type: every tensor at the wider
    of its own type and F16. llama.cpp's quantizer copies a tensor it does not quantize as it is,
    and the widest type it gives one it does quantize is F16 (its fallback for rows no block
    type fits; the K-quant mixes keep embeddings and outputs at Q6_K or Q8_0 at most), so no
    choice of its can write more (64 KiB more for the keys it adds to the header). What a start
    checks the disk against before the dry run is in."""
    alignment = head.alignment or 32
    total = int(head.data_start) + 64 * 1024
    for tensor in head.tensors:
        total += _padded(max(tensor.n_bytes, math.prod(tensor.shape) * 2), alignment)
    return total


# Free space under this much after a failed quantize means the disk filled up: llama.cpp itself
# reports only a C++ stream error ("basic_ios::clear: iostream error").
_NEARLY_FULL = 64 * 1024**2


def _raise_if_disk_full(output: Path, tail: deque[str]) -> None:
    """Say so, naming the folder, when a failed quantize ran out of disk space."""
    try:
        free = shutil.disk_usage(output.parent).free
    except OSError:
        return
    said = any("no space left" in line.lower() for line in tail)
    if said or free < _NEARLY_FULL:
        raise ConvertError(
            f"the disk holding {output.parent} is full ({format_bytes(free)} free): "
            "free some space or choose an output on another disk"
        )


if __name__ == "__main__":
    try:
        sys.exit(_child(json.loads(sys.argv[1])))
    except ConvertError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(3)
