"""Sizes in one unit system (binary, labelled KiB/MiB/GiB), and output files that follow the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine.atomic import write_json, write_text
from engine.formatting import format_bytes


def test_format_bytes_is_binary_and_labelled_so() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 1024) == "3.0 KiB"
    assert format_bytes(253_121_440) == "241.4 MiB"  # the bundled Gemma's Q4_K_M, as `ls -l` counts it
    assert format_bytes(1.5 * 2**30) == "1.5 GiB"
    assert format_bytes(150_754_820_096, unit="GiB") == "140 GiB"
    assert format_bytes(52_689_698_816, unit="GiB") == "49.1 GiB"
    with pytest.raises(ValueError):
        format_bytes(1, unit="GB")


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "b.json", {"a": 1})
    assert mode(tmp_path / "a.txt") == 0o644 and mode(tmp_path / "b.json") == 0o644
    os.umask(0o077)
    write_text(tmp_path / "c.txt", "x")
    assert mode(tmp_path / "c.txt") == 0o600


def test_converted_and_merged_weights_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    """safetensors writes its files 0600: a model converted for another user of the box must be
    readable by them, like every other file the conversion writes."""
    from engine.convert import jobs
    from engine.events import Finished
    from engine.jobs import JobContext, execute
    from tests.engine.test_convert_tiny import make_llama

    make_llama(tmp_path / "m", tokenizer="spm", n_kv_heads=2)
    ctx = JobContext(lambda e: None)
    gguf = tmp_path / "m.gguf"
    assert isinstance(
        execute(jobs.hf_to_gguf, {"input": str(tmp_path / "m"), "output": str(gguf), "verify": False}, ctx), Finished
    )
    back = tmp_path / "back"
    assert isinstance(
        execute(jobs.gguf_to_hf, {"input": str(gguf), "output": str(back), "verify": False}, ctx), Finished
    )
    modes = {p.name: mode(p) for p in [gguf, back, *back.iterdir()]}
    assert modes["model.safetensors"] == 0o644, modes
    assert set(modes.values()) <= {0o644, 0o755}, modes
