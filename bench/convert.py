"""Conversion speed and memory: our HF -> GGUF against llama.cpp's own convert_hf_to_gguf.py.

Both converters run on the same HF model, same output type, in fresh processes, alternating,
`--runs` times each; for each run the child's peak RSS (from wait4's rusage) and wall time are
recorded. Then the two GGUFs are compared tensor by tensor (name, type, shape, bytes).
Targets: no slower, lower or equal peak RSS, byte-identical tensor data.

llama.cpp's converter is not installed by llama-cpp-python's wheel; it is in the sdist under
vendor/llama.cpp. Point `--llama-cpp` at an unpacked vendor/llama.cpp folder, or `--sdist` at
llama_cpp_python-X.tar.gz (`pip download llama-cpp-python --no-deps --no-binary :all:`).

Meta -> HF is timed on a generated 2-shard checkpoint; transformers 5 no longer ships its
`convert_llama_weights_to_hf.py`, so that comparison is reported as absent when it is.

    python bench/convert.py [--model HF_DIR] [--outtype f16] [--runs 2] [--llama-cpp DIR | --sdist FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OURS = """
import sys
from pathlib import Path
from engine.convert.hf_to_gguf import convert
from engine.jobs import JobContext
convert(Path(sys.argv[1]), Path(sys.argv[2]), JobContext(lambda e: None), outtype=sys.argv[3])
"""


# Linux starts a forked child's ru_maxrss at its parent's high-water mark, so a child forked
# from this (model-building, torch-importing) process would report at least our own peak.
# A small launcher process forks the measured command instead and reports its rusage.
LAUNCHER = """
import os, subprocess, sys, time
t = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = p.stderr.read()
_, status, usage = os.wait4(p.pid, 0)
sys.stderr.buffer.write(err[-3000:])
print(time.perf_counter() - t, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status))
"""


def measure(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process."""
    proc = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, *cmd], env=env, cwd=cwd, capture_output=True, text=True
    )
    try:
        wall, rss, code = proc.stdout.split()
    except ValueError:
        raise SystemExit(f"launcher failed: {proc.stderr[-2000:]}") from None
    if int(code) != 0:
        raise SystemExit(f"command failed ({code}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return float(wall), int(rss)


def llama_cpp_dir(args: argparse.Namespace, work: Path) -> Path:
    if args.llama_cpp:
        path = Path(args.llama_cpp)
        if not (path / "convert_hf_to_gguf.py").is_file():
            raise SystemExit(f"{path} has no convert_hf_to_gguf.py")
        return path
    if args.sdist:
        with tarfile.open(args.sdist) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name and (
                m.name.endswith("convert_hf_to_gguf.py")
                or "/vendor/llama.cpp/gguf-py/" in m.name
                or "/vendor/llama.cpp/conversion/" in m.name
            )]
            tar.extractall(work, members=members, filter="data")
        found = next(work.rglob("convert_hf_to_gguf.py"))
        return found.parent
    raise SystemExit("give --llama-cpp DIR (vendor/llama.cpp) or --sdist llama_cpp_python-X.tar.gz")


def make_model(folder: Path) -> Path:
    from tests.engine.test_convert_tiny import make_llama

    make_llama(folder, tokenizer="spm", n_kv_heads=4, hidden=512, layers=8)
    return folder


def compare_tensors(a: Path, b: Path) -> tuple[int, list[str]]:
    import gguf

    ra, rb = gguf.GGUFReader(a), gguf.GGUFReader(b)
    ta = {t.name: t for t in ra.tensors}
    tb = {t.name: t for t in rb.tensors}
    diffs = sorted(set(ta) ^ set(tb))
    same = 0
    for name in sorted(set(ta) & set(tb)):
        x, y = ta[name], tb[name]
        if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape) or bytes(x.data) != bytes(y.data):
            diffs.append(f"{name} ({x.tensor_type.name} vs {y.tensor_type.name})")
        else:
            same += 1
    return same, diffs


def fmt(values: list[float], scale: float = 1.0, unit: str = "") -> str:
    return f"{statistics.median(values) / scale:.2f}{unit}"


def bench_meta(work: Path) -> None:
    import importlib.util

    from tests.engine.test_convert_meta import export_meta
    from tests.engine.test_convert_tiny import make_llama

    model = make_llama(work / "meta-src", tokenizer="spm", n_kv_heads=2, hidden=512, layers=8)
    export_meta(model, work / "meta", 2)
    (work / "meta-src" / "tokenizer.model").rename(work / "tokenizer.model")
    code = (
        "import sys; from pathlib import Path; from engine.convert.meta_to_hf import convert; "
        "from engine.jobs import JobContext; convert(Path(sys.argv[1]), Path(sys.argv[2]), JobContext(lambda e: None))"
    )
    out = work / "meta-hf"
    out.mkdir()
    wall, rss = measure(
        [sys.executable, "-c", code, str(work / "meta"), str(out)], env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    print(f"meta-to-hf (8 layers, dim 512, 2 shards): ours {wall:.2f}s, peak RSS {rss / 2**20:.0f} MB")
    if importlib.util.find_spec("transformers.models.llama.convert_llama_weights_to_hf") is None:
        print("  transformers' convert_llama_weights_to_hf.py: not present in this transformers; no comparison")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="HF model folder (default: a generated 8-layer Llama, ~30M parameters)")
    parser.add_argument("--outtype", default="f16", choices=("f32", "f16", "bf16", "q8_0"))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--llama-cpp", help="vendor/llama.cpp folder holding convert_hf_to_gguf.py")
    parser.add_argument("--sdist", help="llama_cpp_python-X.tar.gz to take vendor/llama.cpp from")
    parser.add_argument("--skip-meta", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="llmdeck-bench-convert-") as tmp:
        work = Path(tmp)
        lcpp = llama_cpp_dir(args, work / "lcpp")
        model = Path(args.model) if args.model else make_model(work / "model")
        size = sum(f.stat().st_size for f in model.glob("*.safetensors"))
        print(f"model {model} ({size / 2**20:.0f} MB of safetensors), outtype {args.outtype}, {args.runs} run(s) each")
        env_ours = {**os.environ, "PYTHONPATH": str(ROOT)}
        env_lcpp = {**os.environ, "PYTHONPATH": str(lcpp / "gguf-py"), "NO_LOCAL_GGUF": ""}
        ours_t, ours_m, ref_t, ref_m = [], [], [], []
        out_ours, out_ref = work / "ours.gguf", work / "ref.gguf"
        for _ in range(args.runs):
            w, m = measure([sys.executable, "-c", OURS, str(model), str(out_ours), args.outtype], env=env_ours)
            ours_t.append(w)
            ours_m.append(m)
            w, m = measure(
                [sys.executable, str(lcpp / "convert_hf_to_gguf.py"), str(model),
                 "--outtype", args.outtype, "--outfile", str(out_ref)],
                env=env_lcpp,
                cwd=str(lcpp),
            )
            ref_t.append(w)
            ref_m.append(m)
        same, diffs = compare_tensors(out_ours, out_ref)
        print(f"{'':24}{'llmdeck':>12}{'llama.cpp':>12}{'ratio':>8}")
        time_ratio = statistics.median(ours_t) / statistics.median(ref_t)
        rss_ratio = statistics.median(ours_m) / statistics.median(ref_m)
        print(f"{'wall time (median)':24}{fmt(ours_t, 1, 's'):>12}{fmt(ref_t, 1, 's'):>12}{time_ratio:>8.2f}")
        print(f"{'peak RSS (median)':24}{fmt(ours_m, 2**20, ' MB'):>12}{fmt(ref_m, 2**20, ' MB'):>12}{rss_ratio:>8.2f}")
        print(f"{'output size':24}{out_ours.stat().st_size / 2**20:>10.1f}MB{out_ref.stat().st_size / 2**20:>10.1f}MB")
        verdict = "byte-identical" if not diffs else f"{len(diffs)} differ: {', '.join(diffs[:5])}"
        print(f"tensor data: {same} tensors identical; {verdict}")
        if not args.skip_meta:
            bench_meta(work)


if __name__ == "__main__":
    main()
