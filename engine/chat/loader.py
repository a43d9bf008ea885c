"""Pick and load a backend from what the user gave: a .gguf file, an HF folder, a server URL.

`BackendSpec` is plain data (the CLI, the side panel and saved sessions build it); `load_backend`
turns it into a loaded `ChatBackend` or raises `BackendError` with one actionable line. It runs
in a worker thread in the TUI, so a slow load never freezes the screen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.chat.base import BackendError, ChatBackend

BACKENDS = ("auto", "llama.cpp", "transformers", "openai")


@dataclass
class BackendSpec:
    model: str = ""
    """A .gguf file, an HF model folder (or LoRA adapter folder), or a server's model name;
    empty: the bundled Gemma 3 270M GGUF."""
    backend: str = "auto"
    template: str = "auto"
    prompt_mode: str = "auto"
    """auto (chat when the model has a template or is instruction-tuned, else completion), chat
    or completion (engine.chat.prompt_mode)."""
    # llama.cpp
    n_ctx: int = 4096
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    # transformers
    dtype: str = "auto"
    device_map: str | None = None
    gpu_memory: list[float] = field(default_factory=list)
    base_model: str = ""
    trust_remote_code: bool = False
    # openai-compatible
    base_url: str = ""
    api_key: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("api_key")  # never stored with a session
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackendSpec:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def resolve_kind(spec: BackendSpec) -> str:
    """Which backend `auto` means for this spec."""
    if spec.backend not in BACKENDS:
        raise BackendError(f"unknown backend {spec.backend!r}: use one of {', '.join(BACKENDS)}")
    if spec.backend != "auto":
        return spec.backend
    if spec.base_url:
        return "openai"
    if not spec.model:
        return "llama.cpp"
    path = Path(spec.model).expanduser()
    if path.is_dir():
        return "transformers"
    if path.suffix.lower() == ".gguf" or path.is_file():
        return "llama.cpp"
    raise BackendError(f"model not found: {spec.model} (give a .gguf file, an HF model folder, or --base-url for a server)")


def model_path(spec: BackendSpec) -> str:
    """The model the spec names, the bundled GGUF when it names none."""
    if spec.model or spec.base_url:
        return spec.model
    from engine.chat.default_model import NoDefaultModel, default_model_path

    try:
        return str(default_model_path())
    except NoDefaultModel as exc:
        raise BackendError(str(exc)) from None


def ignored_options(spec: BackendSpec) -> list[str]:
    """Options given that the chosen backend does not use, one sentence each (said, not
    silently dropped)."""
    kind = resolve_kind(spec)
    out = []
    if spec.gpu_memory and kind != "transformers":
        out.append(
            f"--gpu-memory caps apply to transformers models; {kind} ignores them"
            + (" (llama.cpp places layers on the GPU with --gpu-layers N)" if kind == "llama.cpp" else "")
        )
    return out


def load_backend(spec: BackendSpec) -> ChatBackend:
    from engine.chat.prompt_mode import PROMPT_MODES

    if spec.prompt_mode not in PROMPT_MODES:  # before a slow load, not after
        raise BackendError(f"unknown prompt mode {spec.prompt_mode!r}: use one of {', '.join(PROMPT_MODES)}")
    kind = resolve_kind(spec)
    model = model_path(spec)
    if kind != "openai":
        from engine.model_files import ModelFileError, check_model_files

        try:
            check_model_files(model)  # a truncated or crafted file is named, before any loader sees it
        except ModelFileError as exc:
            raise BackendError(str(exc)) from None
    if kind == "llama.cpp":
        from engine.chat.llama_cpp_backend import LlamaCppBackend

        return LlamaCppBackend(model, n_ctx=spec.n_ctx, n_gpu_layers=spec.n_gpu_layers, n_threads=spec.n_threads,
                               template=spec.template, prompt_mode=spec.prompt_mode)
    if kind == "transformers":
        from engine.chat.transformers_backend import TransformersBackend

        return TransformersBackend(model, base_model=spec.base_model or None, dtype=spec.dtype, device_map=spec.device_map,
                                   gpu_memory=spec.gpu_memory or None, trust_remote_code=spec.trust_remote_code,
                                   template=spec.template, prompt_mode=spec.prompt_mode)
    from engine.chat.openai_backend import OpenAIBackend, api_key_from

    key = spec.api_key or api_key_from(_settings_key())
    backend = OpenAIBackend(spec.base_url, spec.model, api_key=key)
    try:
        backend.set_prompt_mode(spec.prompt_mode)
    except BackendError:
        backend.close()
        raise
    return backend


def _settings_key() -> str:
    from engine import settings

    loaded, _problems = settings.load()
    return loaded.chat.openai_api_key
