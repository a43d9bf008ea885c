"""Measure the peak memory of a training/inference step without a GPU.

torch's MemTracker (torch.distributed._tools.mem_tracker) is a TorchDispatchMode that records
every tensor storage created while it is active and frees it when the storage dies: the same
accounting as torch.cuda.max_memory_allocated, minus the caching allocator's 512-byte rounding.
It works on CPU tensors and on FakeTensors (shapes only, no memory), so the estimator's formulas
can be checked against what autograd really keeps, for real model sizes, on a CPU-only machine.

The stock tracker hooks the gradient of every parameter and fails on frozen ones (LoRA); the
subclass here hooks only trainable parameters. torch is imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self


def _tracker_class():
    import torch
    from torch.distributed._tools.mem_tracker import MemTracker, _MemRefType

    class FrozenAwareMemTracker(MemTracker):
        def _track_module_params_and_buffers(self, module, install_grad_hooks: bool = True):
            def _grad_hook(grad: torch.Tensor) -> None:
                self._update_and_maybe_create_winfos(grad, _MemRefType.GRAD)

            param_memory = 0
            for param in module.parameters():
                winfos = self._update_and_maybe_create_winfos(param, _MemRefType.PARAM)
                param_memory += sum(w.mem_consumed for w in winfos)
                if param.grad is not None:
                    self._update_and_maybe_create_winfos(param.grad, _MemRefType.GRAD)
                if param.requires_grad and install_grad_hooks and self._param_to_grad_hook_handles.get(param) is None:
                    self._param_to_grad_hook_handles[param] = (
                        param.register_hook(_grad_hook),
                        param.register_post_accumulate_grad_hook(lambda p: _grad_hook(p.grad)),
                    )
            buffer_memory = 0
            for buffer in module.buffers():
                winfos = self._update_and_maybe_create_winfos(buffer, _MemRefType.BUFFER)
                buffer_memory += sum(w.mem_consumed for w in winfos)
            return param_memory, buffer_memory

    return FrozenAwareMemTracker


def measure_peak(model: Any, optimizer: Any, step: Callable[[], None], steps: int = 2) -> dict[str, int]:
    """Run `step()` `steps` times under the tracker; return the peak snapshot in bytes by category.

    The peak of the last steps is what matters (optimizer states exist from the second step on),
    so module statistics are reset between steps as MemTracker requires.
    """
    tracker = _tracker_class()()
    tracker.track_external(model, optimizer)
    with tracker:
        for _ in range(steps):
            step()
            tracker.reset_mod_stats()
    snap = tracker.get_tracker_snapshot("peak")
    per_device = next(iter(snap.values())) if snap else {}
    return {str(getattr(k, "name", k)).lower(): int(v) for k, v in per_device.items()}


def saved_bytes_by_layer(model: Any, run: Callable[[], Any]) -> list[dict[str, Any]]:
    """What autograd keeps for backward inside each decoder layer while `run()` does a forward.

    torch.autograd.graph.saved_tensors_hooks sees every tensor an op saves; a tensor is counted
    once (by storage), in the first layer that saves it, and parameters are left out (a frozen
    weight saved by a matmul costs nothing extra). Returns, per layer, the total bytes and each
    saved tensor's (shape, dtype, bytes): the ground truth of the activation formulas, exact on CPU
    for everything that is not a device-specific kernel choice (see emulate_cuda_dropout).
    """
    import torch

    params = {p.untyped_storage()._cdata for p in model.parameters()}
    seen: set[int] = set()
    layers = _decoder_layers(model)
    found: list[dict[str, Any]] = [{"bytes": 0, "tensors": []} for _ in layers]
    current: list[int] = []

    def pack(t: Any) -> Any:
        key = t.untyped_storage()._cdata
        if current and key not in params and key not in seen:
            seen.add(key)
            nbytes = t.untyped_storage().nbytes()
            found[current[-1]]["bytes"] += nbytes
            found[current[-1]]["tensors"].append((tuple(t.shape), str(t.dtype).replace("torch.", ""), nbytes))
        return t

    def enter(index: int) -> Callable[..., None]:
        return lambda _module, _args: current.append(index)

    def leave(_module: Any, _args: Any, _output: Any) -> None:  # a forward hook's return value would replace the output
        current.pop()

    handles = []
    for index, layer in enumerate(layers):
        handles.append(layer.register_forward_pre_hook(enter(index)))
        handles.append(layer.register_forward_hook(leave))
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            run()
    finally:
        for handle in handles:
            handle.remove()
    return found


def _decoder_layers(model: Any) -> list[Any]:
    for module in model.modules():
        layers = getattr(module, "layers", None)
        if layers is not None and type(module).__name__.endswith("Model"):
            return list(layers)
    raise ValueError("no decoder layers found (expected a transformers *Model with .layers)")


class LiveBytes:
    """The peak of the bytes held by tensor storages created while it is active.

    A TorchDispatchMode (the mechanism MemTracker uses) that adds each new storage's size when an
    op returns it and subtracts it when the storage dies, without hooks on parameters, so it
    changes nothing about how autograd accumulates gradients. `peak_op` names the op at the peak.
    """

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self.peak_op = ""

    def __enter__(self) -> Self:
        import weakref

        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        owner = self
        seen: set[int] = set()

        def free(key: int, nbytes: int) -> None:
            owner.live -= nbytes
            seen.discard(key)

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in tree_flatten(out)[0]:
                    if not isinstance(t, torch.Tensor):
                        continue
                    storage = t.untyped_storage()
                    key, nbytes = storage._cdata, storage.nbytes()
                    if key in seen or not nbytes:
                        continue
                    seen.add(key)
                    owner.live += nbytes
                    weakref.finalize(storage, free, key, nbytes)
                    if owner.live > owner.peak:
                        owner.peak, owner.peak_op = owner.live, str(func)
                return out

        self._mode = _Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)


def emulate_cuda_dropout():
    """Context manager: F.dropout as CUDA runs it (aten::native_dropout, a bool mask kept for
    backward), so a CPU measurement saves what a GPU saves. On CPU aten::dropout multiplies by a
    noise tensor in the input's dtype and keeps that (4 B per fp32 element instead of 1)."""
    import contextlib

    import torch
    import torch.nn.functional as F

    @contextlib.contextmanager
    def patched():
        original = F.dropout

        def dropout(input, p=0.5, training=True, inplace=False):
            if training and 0 < p < 1:
                return torch.native_dropout(input, p, True)[0]
            return original(input, p, training, inplace)

        F.dropout = dropout
        try:
            yield
        finally:
            F.dropout = original

    return patched()


def measure_llama_step(h: int, i: int, L: int, nh: int, nkv: int, V: int, b: int, s: int, *, mode: str = "train",
                       precision: str = "bf16", method: str = "full", ckpt: bool = False, rank: int = 8,
                       device: str = "fake", tied: bool = False, stats: dict[str, int] | None = None) -> int:
    """Peak bytes of one Llama-shaped step: training (2 steps, AdamW fused) or inference (prefill).

    device "fake": FakeTensors on CPU (shapes only, any size); "cpu": real tensors;
    "cuda": real tensors on the GPU, measured with torch.cuda.max_memory_allocated; then `stats`
    (if given) receives the step's peaks of requested bytes (before the caching allocator rounds
    them up), allocated bytes and reserved bytes, which tell rounding and fragmentation apart.
    """
    import contextlib

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=h, intermediate_size=i, num_hidden_layers=L, num_attention_heads=nh,
                      num_key_value_heads=nkv, vocab_size=V, max_position_embeddings=max(s, 64),
                      tie_word_embeddings=tied)
    cfg._attn_implementation = "sdpa"
    fake = contextlib.nullcontext()
    if device == "fake":
        from torch._subclasses.fake_tensor import FakeTensorMode

        fake = FakeTensorMode()
    dev = "cuda" if device == "cuda" else "cpu"
    threads = torch.get_num_threads()
    if device != "cuda":
        torch.set_num_threads(1)  # small CPU ops: extra threads only contend (much slower on 2 busy cores)
    try:
        return _run_step(torch, LlamaForCausalLM, cfg, fake, dev, device, mode, precision, method, ckpt, rank, V, b, s,
                         stats)
    finally:
        torch.set_num_threads(threads)


def _run_step(torch, LlamaForCausalLM, cfg, fake, dev, device, mode, precision, method, ckpt, rank, V, b, s,
              stats) -> int:
    import contextlib

    with fake:
        dtype = torch.float32 if precision in ("fp32", "mixed") else torch.bfloat16
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(dev):
                model = LlamaForCausalLM(cfg)
        finally:
            torch.set_default_dtype(previous)
        ids = torch.randint(0, V, (b, s), device=dev)
        if mode == "infer":
            model.eval()

            def step() -> None:
                with torch.no_grad():
                    model(input_ids=ids, use_cache=True, logits_to_keep=1)

            opt = None
        else:
            if method == "lora":
                from peft import LoraConfig, get_peft_model

                model = get_peft_model(model, LoraConfig(r=rank, target_modules="all-linear", lora_dropout=0.05))
            if ckpt:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                if method == "lora":
                    model.enable_input_require_grads()
            model.train()
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)

            def step() -> None:
                ctx = torch.autocast(dev, dtype=torch.bfloat16) if precision == "mixed" else contextlib.nullcontext()
                with ctx:
                    loss = model(input_ids=ids, labels=ids).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

        if device == "cuda":
            for _ in range(2):
                step()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            step()
            torch.cuda.synchronize()
            if stats is not None:
                peaks = torch.cuda.memory_stats()
                stats.update(requested=int(peaks.get("requested_bytes.all.peak", 0)),
                             allocated=int(peaks.get("allocated_bytes.all.peak", 0)),
                             reserved=int(torch.cuda.max_memory_reserved()))
            return int(torch.cuda.max_memory_allocated())
        if opt is None:
            from torch import nn

            opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0)
        return measure_peak(model, opt, step, steps=2 if mode == "train" else 1)["total"]


GRID = (
    # (name, dims, b, s, mode, precision, method, ckpt)
    ("llama-2-7b width x4 layers bf16 full", (4096, 11008, 4, 32, 32, 32000), 1, 4096, "train", "bf16", "full", False),
    ("llama-2-7b width x4 mixed full", (4096, 11008, 4, 32, 32, 32000), 1, 2048, "train", "mixed", "full", False),
    ("llama-2-7b width x4 bf16 ckpt b4", (4096, 11008, 4, 32, 32, 32000), 4, 2048, "train", "bf16", "full", True),
    ("llama-3-8b width x4 bf16 GQA", (4096, 14336, 4, 32, 8, 128256), 2, 2048, "train", "bf16", "full", False),
    ("llama-3-8b width x4 LoRA ckpt", (4096, 14336, 4, 32, 8, 128256), 2, 2048, "train", "bf16", "lora", True),
    ("llama-2-7b width x4 infer 4096", (4096, 11008, 4, 32, 32, 32000), 1, 4096, "infer", "bf16", "full", False),
    ("llama-3-8b width x4 infer 8192 b4", (4096, 14336, 4, 32, 8, 128256), 4, 8192, "infer", "bf16", "full", False),
)


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.estimate.measure [--device fake|cpu|cuda]`: predicted vs measured per grid row."""
    import argparse

    from engine.estimate.inference import estimate_inference
    from engine.estimate.spec import ModelSpec
    from engine.estimate.training import estimate_training

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--device", default="fake", choices=("fake", "cpu", "cuda"))
    parser.add_argument("--layers", type=int, default=None, help="override the layer count of every row")
    args = parser.parse_args(argv)
    print(f"{'case':40} {'measured MiB':>13} {'predicted':>10} {'error':>7}")
    for name, (h, i, L, nh, nkv, V), b, s, mode, precision, method, ckpt in GRID:
        L = args.layers or L
        if method == "lora" and args.device == "fake":
            print(f"{name:40} skipped: peft cannot wrap FakeTensors (use --device cpu/cuda)")
            continue
        spec = ModelSpec("m", L, h, i, nh, nkv, V)
        if mode == "infer":
            est = estimate_inference(spec, context=s, batch=b, weight_dtype=precision)
        else:
            est = estimate_training(spec, method=method, precision=precision, batch=b, seq_len=s,
                                    grad_checkpointing=ckpt, lora_rank=8, lora_dropout=0.05, optimizer_impl="fused",
                                    device="cuda" if args.device == "cuda" else "cpu")
        measured = measure_llama_step(h, i, L, nh, nkv, V, b, s, mode=mode, precision=precision, method=method,
                                      ckpt=ckpt, device=args.device)
        predicted = est.allocated_bytes
        print(f"{name:40} {measured / 2**20:13.0f} {predicted / 2**20:10.0f} {100 * (predicted / measured - 1):+6.1f}%",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
