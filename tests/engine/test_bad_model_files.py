"""Crafted and damaged model files are refused at once, naming the file (issue 14, items 11-12).

The crafted GGUFs are written with gguf-py's GGUFWriter and then patched: a metadata array or a
string that claims more bytes than the file holds, a tensor that ends past the end of the file.
Every command that reads GGUF input is run as a real `llmdeck` process, with a timeout: before
the header check, `convert gguf-to-hf` and `convert quantize` looped without end on such a file.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

from engine.gguf_header import GGUFHeaderError, read_header
from engine.model_files import ModelFileError, check_model_files
from tests.engine.evaluate_helpers import PROSE, tiny_gguf, tiny_hf
from tests.engine.test_cli import llmdeck
from tests.helpers.requirements import require_module, unavailable

gguf = require_module("gguf")


def small_gguf(path: Path) -> Path:
    """A valid GGUF with a long token array, a string and two tensors."""
    import numpy as np

    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(1000)])
    writer.add_array("test.numbers", list(range(100)))
    writer.add_key_value("test.flags", [1, 0, 1], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT8)
    writer.add_string("general.name", "crafted")
    writer.add_tensor("a.weight", np.ones((16, 32), dtype=np.float32))
    writer.add_tensor("b.weight", np.ones((64,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def patch_after_key(path: Path, key: str, skip: int, value: int, out: Path) -> Path:
    """Write a copy of `path` whose u64 `skip` bytes after the key `key` is `value`."""
    data = bytearray(path.read_bytes())
    at = data.index(key.encode()) + len(key) + skip
    data[at : at + 8] = struct.pack("<Q", value)
    out.write_bytes(bytes(data))
    return out


@pytest.fixture
def crafted(tmp_path: Path) -> dict[str, Path]:
    good = small_gguf(tmp_path / "good.gguf")
    return {
        "good": good,
        # value type u32 (9 = array), item type u32, then the u64 count. A u8 array claiming 2^63
        # items is the one gguf-py's reader walks for ever (past the end, each item is 0 bytes).
        "array": patch_after_key(good, "test.flags", 8, 2**63, tmp_path / "array.gguf"),
        "tokens": patch_after_key(good, "tokenizer.ggml.tokens", 8, 2**63, tmp_path / "tokens.gguf"),
        "numbers": patch_after_key(good, "test.numbers", 8, 2**62, tmp_path / "numbers.gguf"),
        # value type u32 (8 = string), then the u64 length
        "string": patch_after_key(good, "general.name", 4, 2**62, tmp_path / "string.gguf"),
    }


def test_counts_and_lengths_past_the_end_are_refused_at_once(crafted: dict[str, Path]) -> None:
    head = read_header(crafted["good"])
    assert head.array_len["tokenizer.ggml.tokens"] == 1000 and head.kv["general.name"] == "crafted"
    assert [t.name for t in head.tensors] == ["a.weight", "b.weight"]
    for name, needle in (("array", "test.flags"), ("tokens", "tokenizer.ggml.tokens"), ("numbers", "test.numbers"),
                         ("string", "general.name")):
        started = time.perf_counter()
        with pytest.raises(GGUFHeaderError, match="is corrupted") as caught:
            read_header(crafted[name])
        assert time.perf_counter() - started < 1.0
        assert str(caught.value).startswith(str(crafted[name])) and needle in str(caught.value)


@pytest.mark.parametrize(
    "command",
    [
        ("convert", "gguf-to-hf", "{f}", "--output", "{tmp}/hf-out"),
        ("convert", "quantize", "{f}", "--output", "{tmp}/q.gguf"),
        ("convert", "quantize", "{f}", "--check"),
        ("estimate", "{f}"),
        ("data", "inspect", "{data}", "--model", "{f}"),
        ("eval", "ppl", "{f}", "{prose}"),
        ("generate", "{f}", "--prompt", "hi"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
@pytest.mark.parametrize("kind", ["array", "string"])
def test_every_gguf_reader_refuses_a_crafted_header(
    crafted: dict[str, Path], tmp_path: Path, command: tuple, kind: str
) -> None:
    data = tmp_path / "d.jsonl"
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    data.write_text(json.dumps({"messages": turns}) + "\n")
    args = [a.format(f=crafted[kind], tmp=tmp_path, data=data, prose=PROSE) for a in command]
    out = llmdeck(*args)  # a loop without end fails here on the timeout
    assert out.returncode != 0, out.stdout
    text = out.stdout + out.stderr
    assert str(crafted[kind]) in text and "is corrupted" in text, text
    assert "Traceback" not in text


def test_gguf_cut_at_half_is_refused_from_the_header(tmp_path: Path) -> None:
    source = tiny_gguf()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(GGUFHeaderError, match=r"is truncated: tensor \S+ ends at byte \d+ but the file has only"):
        read_header(cut)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "hello"}) + "\n")
    for args in (("data", "inspect", str(data), "--model", str(cut)), ("estimate", str(cut))):
        out = llmdeck(*args)
        assert out.returncode != 0 and f"{cut} is truncated" in out.stderr, out.stderr + out.stdout


def truncated_hf(tmp_path: Path) -> Path:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_hf(), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder


def test_truncated_safetensors_is_named_by_every_reader(tmp_path: Path) -> None:
    folder = truncated_hf(tmp_path)
    weights = folder / "model.safetensors"
    with pytest.raises(ModelFileError, match="is truncated"):
        check_model_files(folder)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    for args in (
        ("estimate", str(folder)),
        ("generate", str(folder), "--prompt", "hi"),
        ("eval", "ppl", str(folder), str(PROSE)),
        ("train", "--model", str(folder), "--data", str(data), "--detach"),
    ):
        out = llmdeck(*args)
        assert out.returncode != 0, f"{args}: exit 0\n{out.stdout}"
        assert f"{weights} is truncated" in out.stdout + out.stderr, out.stdout + out.stderr


def test_data_inspect_names_the_file_it_cannot_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "hello"}) + "\n")
    folder = tmp_path / "tok"
    shutil.copytree(tiny_hf(), folder)
    damaged = folder / "tokenizer.json"
    damaged.write_bytes(damaged.read_bytes()[:100])  # an interrupted copy
    monkeypatch.chdir(folder)
    for model in (".", str(folder)):
        out = llmdeck("data", "inspect", str(data), "--model", model)
        assert out.returncode == 2, out.stdout
        assert out.stderr.startswith(f"llmdeck: error: {damaged}: not valid JSON"), out.stderr
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 8)  # cut inside the header
    monkeypatch.chdir(tmp_path)
    out = llmdeck("data", "inspect", "d.jsonl", "--model", "broken.gguf")
    assert out.returncode == 2 and out.stderr.startswith("llmdeck: error: broken.gguf is not a GGUF file"), out.stderr


def test_eval_ppl_on_nan_weights_fails_and_saves_nothing(tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "nan-model"
    shutil.copytree(tiny_hf(), folder)
    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    name = next(k for k in tensors if k.endswith("layers.0.mlp.down_proj.weight"))
    tensors[name][0, 0] = float("nan")
    save_file(tensors, str(weights), metadata={"format": "pt"})
    out = llmdeck("eval", "ppl", str(folder), str(PROSE), "--ctx", "64")
    assert out.returncode != 0, out.stdout
    assert "not a number" in out.stderr and "PPL nan" not in out.stdout + out.stderr
    kept = json.loads(llmdeck("bench", "results", "--json").stdout or "[]")
    assert kept == [], kept


def unshare_tmpfs(size: str, command: list[str]) -> list[str]:
    """`command` run with a private tmpfs of `size` mounted over the folder in $FULL_DISK."""
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
            f'mount -t tmpfs -o size={size} tmpfs "$FULL_DISK" && exec "$@"', "sh", *command]


def test_quantize_on_a_full_disk_says_so_and_names_the_folder(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        unavailable(f"user/mount namespaces (`unshare --user --mount`, to mount a small tmpfs): "
                    f"{probe.stderr.decode().strip()}")
    require_module("llama_cpp")
    disk = tmp_path / "small-disk"
    disk.mkdir()
    out_path = disk / "q.gguf"
    env = {**os.environ, "FULL_DISK": str(disk)}
    cmd = unshare_tmpfs("16k", [sys.executable, "-m", "tui.cli", "convert", "quantize", str(tiny_gguf()), "--output",
                               str(out_path), "--type", "Q8_0", "--force", "--no-verify"])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    assert out.returncode != 0, out.stdout
    assert f"llmdeck: error: the disk holding {disk} is full" in out.stderr, out.stderr
