"""`llmdeck convert ...`: detached runs, followed or not, pre-flight refusals as one line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.cli import OpenTUI, run_command
from engine.runs import RunStore
from tests.engine.test_convert_tiny import make_llama
from tests.helpers.requirements import require_module

require_module("llama_cpp")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    make_llama(root / "m", tokenizer="bpe", n_kv_heads=2)
    return root / "m"


def test_no_action_opens_tui() -> None:
    result = run_command(["convert"])
    assert isinstance(result, OpenTUI) and result.mode == "convert"


def test_follow_prints_progress_and_verification(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.gguf"
    assert run_command(["convert", "hf-to-gguf", str(model), "-o", str(out), "--outtype", "f16"]) == 0
    text = capsys.readouterr().out
    assert "write gguf 21/21" in text
    assert f"wrote {out} (" in text and "verify: max |Δlogit|" in text and "tokenizer 7/7 samples identical" in text
    assert "tokenizer: tokenizer.json (byte-level BPE, pre-tokenizer gpt-2) (llama.cpp splits 7/7 samples" in text
    assert " MiB" in text or " KiB" in text
    assert out.is_file()
    runs = RunStore().list()
    assert runs[0].kind == "convert.hf-to-gguf" and runs[0].status == "succeeded"


def test_detach_returns_at_once(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.gguf"
    started = time.monotonic()
    assert run_command(["convert", "hf-to-gguf", str(model), "-o", str(out), "--detach", "--no-verify"]) == 0
    assert time.monotonic() - started < 10
    assert "started run" in capsys.readouterr().out
    store = RunStore()
    info = store.list()[0]
    deadline = time.monotonic() + 90
    while store.get(info.id).active and time.monotonic() < deadline:
        time.sleep(0.2)
    assert store.get(info.id).status == "succeeded", store.log_tail(info.id)
    events, _ = store.read_events(info.id)
    assert any(e.KIND == "progress" and e.phase == "write gguf" for e in events)
    assert out.is_file()


def test_refusal_is_one_line(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exists.gguf"
    out.write_bytes(b"x")
    assert run_command(["convert", "hf-to-gguf", str(model), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--force" in err[0]
    assert run_command(["convert", "quantize", str(tmp_path / "missing.gguf")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_check_prints_verdict(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(["convert", "hf-to-gguf", str(model), "-o", str(tmp_path / "c.gguf"), "--check"]) == 0
    text = capsys.readouterr().out
    assert "model: LlamaForCausalLM -> GGUF llama" in text and "tokenizer: byte-level BPE" in text and "ready" in text
    assert not (tmp_path / "c.gguf").exists()


def test_relative_paths_resolve_where_typed(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The detached worker runs in its run folder; relative paths must still mean the user's."""
    import shutil

    shutil.copytree(model, tmp_path / "rel")
    monkeypatch.chdir(tmp_path)
    assert run_command(["convert", "hf-to-gguf", "rel", "-o", "out/rel.gguf", "--no-verify"]) == 0
    assert (tmp_path / "out" / "rel.gguf").is_file()
