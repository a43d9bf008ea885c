"""Where each rank of a QLoRA run loads its 4-bit model (engine/train/devices.py).

Every rank of a multi-GPU run sees all the run's GPUs; a quantized model must be placed at load
time, so each rank has to name its own GPU (LOCAL_RANK) rather than GPU 0.
"""

from __future__ import annotations

import pytest

from engine.train.devices import local_rank, quantized_device_map
from engine.train.spec import TrainSpec


@pytest.mark.parametrize("rank", [0, 1, 2, 7])
def test_each_rank_loads_on_its_own_gpu(rank):
    assert quantized_device_map({"LOCAL_RANK": str(rank), "RANK": str(rank + 8), "WORLD_SIZE": "16"}) == {"": rank}


def test_a_single_process_run_uses_the_first_visible_gpu():
    assert quantized_device_map({}) == {"": 0}
    assert local_rank({"LOCAL_RANK": " "}) == 0


@pytest.mark.parametrize("bad", ["one", "-1", "1.5"])
def test_a_broken_local_rank_is_refused_with_its_value(bad):
    with pytest.raises(ValueError, match="LOCAL_RANK"):
        local_rank({"LOCAL_RANK": bad})


def test_spec_reads_the_rank_of_this_process(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert TrainSpec(method="qlora").quantized_device_map() == {"": 3}


class _Loaded(Exception):
    """Stops load_model right after from_pretrained was called (no weights, no GPU needed)."""


def test_runner_loads_each_ranks_qlora_model_on_that_rank(monkeypatch):
    """Rank 1 of `--devices 0,1` must load onto cuda:1; it used to load onto cuda:0."""
    from transformers import AutoModelForCausalLM

    from engine.train import runner

    seen: dict = {}

    def from_pretrained(path, **kwargs):
        seen.update(kwargs)
        raise _Loaded

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", from_pretrained)
    spec = TrainSpec(model="m", dataset="d", method="qlora", devices="0,1")
    for rank in (0, 1):
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        with pytest.raises(_Loaded):
            runner.load_model(spec, "bf16", True)
        assert seen["device_map"] == {"": rank}
