"""Open a model for evaluation: a GGUF through llama.cpp, an HF folder through transformers.

Why not the chat backends as they are: perplexity needs llama.cpp's logits for every position
(`logits_all=True`) and speed needs raw token-level calls without a chat template. Loading still
goes through the same guarded paths (`engine.llama_runtime.load` avoids the AMX repack crash,
`TransformersBackend` handles LoRA adapter folders, dtypes, device maps and remote code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.jobs import JobError

BACKENDS = ("auto", "llama.cpp", "transformers")


class EvalError(JobError):
    """An evaluation cannot run as asked; the text says what to change."""


def resolve_backend(model: str | Path, backend: str = "auto") -> str:
    """`auto` means llama.cpp for a .gguf file and transformers for a folder."""
    if backend not in BACKENDS:
        raise EvalError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    path = Path(model).expanduser()
    if not path.exists():
        raise EvalError(f"model not found: {path} (give a .gguf file or an HF model folder)")
    if backend != "auto":
        if backend == "llama.cpp" and path.is_dir():
            raise EvalError(f"{path} is a folder; llama.cpp needs a .gguf file (convert it with `llmdeck convert`)")
        return backend
    return "transformers" if path.is_dir() else "llama.cpp"


@dataclass
class LoadedModel:
    """A loaded model plus what evaluation needs to know about it."""

    backend: str
    path: Path
    handle: Any  # llama_cpp.Llama, or a transformers model
    tokenizer: Any = None  # transformers tokenizer (None for llama.cpp)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> str:
        return str(self.details.get("device", "cpu"))

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None and hasattr(handle, "close") and self.backend == "llama.cpp":
            handle.close()

    # -- tokens ------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` without BOS or other added specials."""
        if self.backend == "llama.cpp":
            return list(self.handle.tokenize(text.encode("utf-8"), add_bos=False, special=False))
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def bos_id(self) -> int | None:
        """BOS id when the model's tokenizer puts one in front of every text, else None."""
        if self.backend == "llama.cpp":
            bos = int(self.handle.token_bos())
            with_bos = list(self.handle.tokenize(b"Hello", add_bos=True, special=False))
            return bos if bos >= 0 and with_bos and with_bos[0] == bos else None
        bos = self.tokenizer.bos_token_id
        ids = list(self.tokenizer("Hello")["input_ids"])
        return int(bos) if bos is not None and ids and ids[0] == bos else None

    @property
    def context_capacity(self) -> int | None:
        """Most tokens one llama.cpp sequence may hold (llama.cpp may pad its own n_ctx up, but
        llama-cpp-python's token buffer has the size asked for); None for transformers."""
        if self.backend != "llama.cpp":
            return None
        return min(int(self.handle.n_ctx()), len(self.handle.input_ids))

    @property
    def n_vocab(self) -> int:
        if self.backend == "llama.cpp":
            return int(self.handle.n_vocab())
        return int(self.handle.get_output_embeddings().weight.shape[0])


def load_model(
    model: str | Path,
    backend: str = "auto",
    *,
    n_ctx: int = 512,
    logits_all: bool = False,
    n_gpu_layers: int | None = None,
    n_threads: int | None = None,
    dtype: str = "auto",
    device_map: str | None = None,
    base_model: str = "",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load `model` for evaluation. Failures become an `EvalError` with one actionable line."""
    from engine.model_files import ModelFileError, check_model_files

    kind = resolve_backend(model, backend)
    path = Path(model).expanduser()
    try:
        check_model_files(path)  # a truncated or crafted file is named, before any loader sees it
    except ModelFileError as exc:
        raise EvalError(str(exc)) from None
    if kind == "llama.cpp":
        return _load_llama(path, n_ctx=n_ctx, logits_all=logits_all, n_gpu_layers=n_gpu_layers, n_threads=n_threads)
    if n_threads:
        import torch

        torch.set_num_threads(int(n_threads))  # CPU threads for torch (process-wide)
    return _load_transformers(path, dtype=dtype, device_map=device_map, base_model=base_model,
                              trust_remote_code=trust_remote_code)


def _load_llama(path: Path, *, n_ctx: int, logits_all: bool, n_gpu_layers: int | None,
                n_threads: int | None) -> LoadedModel:
    from engine.chat.base import BackendError
    from engine.chat.llama_cpp_backend import _quiet_llama_logs, check_gguf, default_threads

    try:
        check_gguf(path)
    except BackendError as exc:
        raise EvalError(str(exc)) from None
    import llama_cpp

    from engine import llama_runtime

    if n_gpu_layers is None:
        n_gpu_layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
    _quiet_llama_logs()
    try:
        llm = llama_runtime.load(
            path,
            n_ctx=n_ctx,
            n_batch=min(n_ctx, 512),
            n_ubatch=min(n_ctx, 512),
            logits_all=logits_all,
            n_gpu_layers=n_gpu_layers,
            n_threads=n_threads or default_threads(),
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise EvalError(f"llama.cpp could not load {path.name} ({exc}): truncated file, unknown architecture, or not "
                        "enough memory") from None
    meta = dict(llm.metadata or {})
    details = {
        "architecture": meta.get("general.architecture", ""),
        "file_type": meta.get("general.file_type", ""),
        "n_params": int(llama_cpp.llama_model_n_params(llm.model)),
        "tensor_bytes": int(llama_cpp.llama_model_size(llm.model)),
        "gpu_layers": n_gpu_layers,
        "threads": llm.n_threads,
        "n_ctx": llm.n_ctx(),
        "device": "gpu" if n_gpu_layers and llama_cpp.llama_supports_gpu_offload() else "cpu",
        "llama_cpp": getattr(llama_cpp, "__version__", ""),
    }
    return LoadedModel("llama.cpp", path, llm, None, details)


def _load_transformers(path: Path, *, dtype: str, device_map: str | None, base_model: str,
                       trust_remote_code: bool) -> LoadedModel:
    from engine.chat.base import BackendError

    if path.is_file() and path.suffix.lower() == ".gguf":
        return _load_transformers_gguf(path, dtype=dtype)
    from engine.chat.transformers_backend import TransformersBackend

    try:
        backend = TransformersBackend(path, base_model=base_model or None, dtype=dtype, device_map=device_map,
                                      trust_remote_code=trust_remote_code)
    except BackendError as exc:
        raise EvalError(str(exc)) from None
    import transformers

    model = backend.model
    n_params = sum(p.numel() for p in model.parameters())
    details = {"dtype": backend.dtype, "device": backend.device, "n_params": int(n_params),
               "transformers": transformers.__version__}
    if backend.adapter:
        details["adapter"] = str(backend.adapter)
    return LoadedModel("transformers", path, model, backend.tokenizer, details)


def _load_transformers_gguf(path: Path, *, dtype: str) -> LoadedModel:
    """transformers reading a GGUF (dequantized to full precision): slow, but lets the same
    file be checked against llama.cpp."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.chat.transformers_backend import _dtype
    from engine.transformers_compat import gguf_add_bos, match_gguf_bos

    cuda = torch.cuda.is_available()
    try:
        torch_dtype = _dtype(dtype, cuda)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        match_gguf_bos(tokenizer, gguf_add_bos(path))
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch_dtype)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported in one line
        raise EvalError(f"transformers could not load {path.name} ({type(exc).__name__}: {exc})") from None
    if cuda:
        model = model.to("cuda")
    model.eval()
    details = {"dtype": str(torch_dtype).replace("torch.", ""), "device": str(next(model.parameters()).device),
               "n_params": int(sum(p.numel() for p in model.parameters())), "transformers": transformers.__version__}
    return LoadedModel("transformers", path, model, tokenizer, details)
