"""Meta -> HF: a random HF Llama is exported to Meta's format over 2 model-parallel shards (the
inverse of the conversion, written here independently), converted back, and must reproduce the
original weights exactly and give identical logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.convert import jobs, preflight
from engine.events import Failed, Finished
from engine.jobs import JobContext, execute
from tests.engine.test_convert_tiny import make_llama

# HF name -> (Meta name, dim it is split on across model-parallel shards; None = replicated)
META = {
    "self_attn.q_proj": ("attention.wq", 0),
    "self_attn.k_proj": ("attention.wk", 0),
    "self_attn.v_proj": ("attention.wv", 0),
    "self_attn.o_proj": ("attention.wo", 1),
    "mlp.gate_proj": ("feed_forward.w1", 0),
    "mlp.down_proj": ("feed_forward.w2", 1),
    "mlp.up_proj": ("feed_forward.w3", 0),
    "input_layernorm": ("attention_norm", None),
    "post_attention_layernorm": ("ffn_norm", None),
}


def unpermute(w, n_heads: int):
    """HF rotate-half -> Meta interleaved rotary layout."""
    dim1, dim2 = w.shape
    return w.view(n_heads, 2, dim1 // n_heads // 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def export_meta(model, folder: Path, n_shards: int, *, rope_theta: float | None = None) -> None:
    import torch

    cfg = model.config
    sd = model.state_dict()
    shards: list[dict] = [{} for _ in range(n_shards)]

    def put(name: str, tensor, dim: int | None) -> None:
        parts = [tensor] * n_shards if dim is None else list(torch.chunk(tensor, n_shards, dim=dim))
        for shard, part in zip(shards, parts, strict=True):
            shard[name] = part.clone()

    put("tok_embeddings.weight", sd["model.embed_tokens.weight"], 1)
    put("norm.weight", sd["model.norm.weight"], None)
    put("output.weight", sd["lm_head.weight"], 0)
    for i in range(cfg.num_hidden_layers):
        for hf, (meta, dim) in META.items():
            w = sd[f"model.layers.{i}.{hf}.weight"]
            if hf == "self_attn.q_proj":
                w = unpermute(w, cfg.num_attention_heads)
            elif hf == "self_attn.k_proj":
                w = unpermute(w, cfg.num_key_value_heads)
            put(f"layers.{i}.{meta}.weight", w, dim)
    folder.mkdir(parents=True, exist_ok=True)
    for n, shard in enumerate(shards):
        torch.save(shard, folder / f"consolidated.{n:02d}.pth")
    params = {
        "dim": cfg.hidden_size,
        "n_layers": cfg.num_hidden_layers,
        "n_heads": cfg.num_attention_heads,
        "n_kv_heads": cfg.num_key_value_heads,
        "vocab_size": -1,
        "multiple_of": 32,
        "norm_eps": cfg.rms_norm_eps,
    }
    if rope_theta:
        params["rope_theta"] = rope_theta
    (folder / "params.json").write_text(json.dumps(params))


@pytest.fixture(scope="module")
def meta(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("meta")
    model = make_llama(root / "hf", tokenizer="spm", n_kv_heads=2)
    export_meta(model, root / "llama-tiny", 2)
    (root / "hf" / "tokenizer.model").rename(root / "tokenizer.model")  # Meta keeps it one folder up
    return {"root": root, "model": model, "ckpt": root / "llama-tiny"}


def test_two_shards_gqa_exact(meta: dict, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = tmp_path / "hf"
    result = execute(
        jobs.meta_to_hf,
        {"input": str(meta["ckpt"]), "output": str(out), "shard_size": "150KB"},
        JobContext(lambda e: None),
    )
    assert isinstance(result, Finished), getattr(result, "message", result)
    s = result.summary
    assert s["shards_in"] == 2 and s["shards_out"] > 1 and s["gqa"] and s["context_length"] == 4096
    assert s["verify"]["ok"] and s["verify"]["top1_agreement"] == 1.0 and s["verify"]["max_abs_diff"] < 1e-3
    index = json.loads((out / "model.safetensors.index.json").read_text())
    original = meta["model"].state_dict()
    back = {}
    for file in set(index["weight_map"].values()):
        back.update(load_file(str(out / file)))
    assert set(back) == set(original)
    for name, tensor in original.items():
        assert torch.equal(back[name], tensor), name
    ids = torch.tensor([[1, 40, 41, 42, 43, 44]])
    converted = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    with torch.no_grad():
        assert torch.equal(converted(ids).logits, meta["model"](ids).logits)
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(str(out))) == 320


def test_code_llama_context(meta: dict, tmp_path: Path) -> None:
    ckpt = tmp_path / "codellama"
    export_meta(meta["model"], ckpt, 1, rope_theta=1_000_000.0)
    out = tmp_path / "out"
    result = execute(
        jobs.meta_to_hf,
        {"input": str(ckpt), "output": str(out), "tokenizer": str(meta["root"] / "tokenizer.model"), "verify": False},
        JobContext(lambda e: None),
    )
    assert isinstance(result, Finished), getattr(result, "message", result)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["max_position_embeddings"] == 16384
    assert json.dumps(cfg).count("1000000") >= 1


def test_shards_disagree(meta: dict, tmp_path: Path) -> None:
    import shutil

    import torch

    bad = tmp_path / "bad"
    shutil.copytree(meta["ckpt"], bad)
    shard = torch.load(bad / "consolidated.01.pth", weights_only=True)
    shard["layers.1.attention.wo.weight"] = shard["layers.1.attention.wo.weight"][:, :-2].clone()
    torch.save(shard, bad / "consolidated.01.pth")
    verdict = preflight.check({"action": "meta-to-hf", "input": str(bad)})
    text = verdict.problems[0].text
    assert "consolidated.01.pth" in text and "layers.1.attention.wo.weight" in text and "disagree" in text


def test_params_missing_key(meta: dict, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(meta["ckpt"], bad)
    params = json.loads((bad / "params.json").read_text())
    del params["n_heads"]
    (bad / "params.json").write_text(json.dumps(params))
    text = preflight.check({"action": "meta-to-hf", "input": str(bad)}).problems[0].text
    assert "params.json lacks n_heads" in text


def test_truncated_pth(meta: dict, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(meta["ckpt"], bad)
    data = (bad / "consolidated.00.pth").read_bytes()
    (bad / "consolidated.00.pth").write_bytes(data[: len(data) // 2])
    text = preflight.check({"action": "meta-to-hf", "input": str(bad)}).problems[0].text
    assert "consolidated.00.pth is truncated or not a PyTorch checkpoint" in text
    result = execute(jobs.meta_to_hf, {"input": str(bad), "output": str(tmp_path / "o")}, JobContext(lambda e: None))
    assert isinstance(result, Failed) and not (tmp_path / "o").exists()


def test_missing_shard(meta: dict, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(meta["ckpt"], bad)
    (bad / "consolidated.00.pth").unlink()
    text = preflight.check({"action": "meta-to-hf", "input": str(bad)}).problems[0].text
    assert "a shard is missing" in text
