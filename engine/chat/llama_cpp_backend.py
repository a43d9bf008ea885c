"""llama.cpp backend (llama-cpp-python): any GGUF file, on CPU or with layers on the GPU.

The prompt is rendered here with our own template choice (the model's GGUF template, else the
built-in one for its architecture) and passed as token ids, so the bundled Gemma 3 GGUF, which
has no template, gets Gemma's turn format instead of llama-cpp-python's llama-2 fallback.
A llama.cpp stopping criterion, called once per sampled token, counts tokens (exact TTFT and
speed) and ends generation as soon as the cancel event is set.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.chat.base import BackendError, BackendInfo, ChatBackend, Delta, Message, StatsClock
from engine.chat.params import SamplingParams
from engine.chat.templates import ChatTemplate, resolve_template

DEFAULT_N_CTX = 4096


def check_gguf(path: Path) -> None:
    """Fail early, in words, on what llama.cpp would only report as 'failed to load'."""
    if not path.exists():
        raise BackendError(f"model file not found: {path}")
    if path.is_dir():
        raise BackendError(f"{path} is a folder; the llama.cpp backend needs a .gguf file (use the transformers backend for HF folders)")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise BackendError(f"cannot read {path}: {exc.strerror or exc}") from None
    if magic != b"GGUF":
        raise BackendError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        import psutil

        need = path.stat().st_size
        free = psutil.virtual_memory().available
        if need > free * 1.1:
            raise BackendError(
                f"out of memory: {path.name} needs about {need / 2**30:.1f} GiB and only {free / 2**30:.1f} GiB of RAM is free"
            )
    except ImportError:
        pass


class LlamaCppBackend(ChatBackend):
    NAME = "llama.cpp"

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_gpu_layers: int | None = None,
        n_threads: int | None = None,
        template: str | None = None,
        prompt_mode: str = "chat",
    ) -> None:
        super().__init__()
        path = Path(model_path).expanduser()
        check_gguf(path)
        import llama_cpp

        self.gpu_offload = bool(llama_cpp.llama_supports_gpu_offload())
        if n_gpu_layers is None:
            n_gpu_layers = -1 if self.gpu_offload else 0
        _quiet_llama_logs()
        from engine.llama_runtime import extra_buffers_safe, load

        self.extra_buffers = extra_buffers_safe()
        try:
            self.llm = load(path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, n_threads=n_threads or default_threads())
        except (ValueError, RuntimeError) as exc:
            raise BackendError(
                f"llama.cpp could not load {path.name} ({exc}): the file may be truncated, of an architecture this "
                "llama.cpp does not know, or too big for free memory"
            ) from None
        self.model_path = path
        self.n_gpu_layers = n_gpu_layers
        self.n_threads = getattr(self.llm, "n_threads", n_threads)
        meta: dict[str, Any] = dict(self.llm.metadata or {})
        self.metadata = meta
        self.architecture = str(meta.get("general.architecture", ""))
        bos = self._piece(self.llm.token_bos())
        eos = self._piece(self.llm.token_eos())
        self.template: ChatTemplate = resolve_template(
            override=template,
            model_template=meta.get("tokenizer.chat_template") or None,
            architecture=self.architecture,
            bos_token=bos,
            eos_token=eos,
            has_token=self._is_token,
        )

        self._choose_prompt_mode(
            prompt_mode,
            has_template=bool(meta.get("tokenizer.chat_template")),
            names=(path.name, *(meta.get(f"general.{key}") for key in ("name", "finetune", "basename", "tags"))),
        )

        # Turn markers the model may emit as special tokens, which detokenize to no text and
        # so can never match a stop *string* (a base model like the bundled Gemma does this).
        self.stop_token_ids = {self.llm.token_eos()} | {
            ids[0] for s in self.template.stop_strings
            if len(ids := self.llm.tokenize(s.encode("utf-8"), add_bos=False, special=True)) == 1
        }

    def _piece(self, token: int) -> str:
        if token < 0:
            return ""
        try:
            return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")
        except TypeError:  # older llama-cpp-python without `special`
            return self.llm.detokenize([token]).decode("utf-8", errors="replace")

    def _is_token(self, text: str) -> bool:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)) == 1

    @property
    def shares_cpu(self) -> bool:
        """Every layer not offloaded runs on the CPU threads (-1 offloads them all)."""
        if not self.gpu_offload:
            return True
        if self.n_gpu_layers < 0:
            return False
        layers = int(self.metadata.get(f"{self.architecture}.block_count") or 0)
        return self.n_gpu_layers == 0 or self.n_gpu_layers < layers

    @property
    def info(self) -> BackendInfo:
        details = {"architecture": self.architecture, "gpu layers": self.n_gpu_layers, "threads": self.n_threads}
        mode = self.prompt_mode
        template = "none (completion)" if mode.completion else self.template.label
        return BackendInfo("llama.cpp", str(self.model_path), template, self.llm.n_ctx(), details,
                           prompt_mode=mode.mode, prompt_mode_reason=mode.reason)

    def prompt_tokens(self, messages: list[Message]) -> list[int]:
        prompt = self.render_prompt(messages, self.template)
        if self.prompt_mode.completion:  # plain text: a BOS first, and "<...>" typed is text, not a token
            return self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, messages: list[Message], params: SamplingParams | None = None) -> int | None:
        from engine.chat.base import with_system_prompt

        return len(self.prompt_tokens(with_system_prompt(list(messages), params.system_prompt if params else "")))

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.close()

    def _stream(
        self, messages: list[Message], params: SamplingParams, cancel: threading.Event, clock: StatsClock
    ) -> Iterator[Delta]:
        import llama_cpp

        if self.llm is None:
            raise BackendError("the model was unloaded")
        tokens = self.prompt_tokens(messages)
        clock.stats.prompt_tokens = len(tokens)
        room = self.llm.n_ctx() - len(tokens)
        if room <= 0:
            raise BackendError(
                f"the conversation ({len(tokens)} tokens) fills the whole context ({self.llm.n_ctx()}); "
                "start a new session, clear it, or load the model with a larger context"
            )

        hit_stop_token = False
        counted = len(tokens)

        def per_token(ids: Any, _logits: Any) -> bool:
            """The one place llama.cpp's generated tokens are counted.

            llama-cpp-python calls this after each sampled token with the ids *evaluated* so
            far (the new token is not among them yet), and once more when the completion ends
            with all ids again: so a call counts only when the ids grew. A sampled end-of-turn
            token is counted (transformers counts it too); when the evaluated ids end with a
            stop token, the token sampled after it is thrown away and not counted.
            """
            nonlocal hit_stop_token, counted
            if len(ids) > len(tokens) and int(ids[-1]) in self.stop_token_ids:
                hit_stop_token = True
                return True
            if len(ids) > counted or clock.stats.generated_tokens == 0:
                counted = max(counted, len(ids))
                clock.token(1)
            return cancel.is_set()

        # Start from an empty KV cache: llama-cpp-python's prefix reuse gives different tokens
        # for the same greedy prompt on sliding-window models (Gemma 3), seen with 0.3.36.
        self.llm.reset()
        stream = self.llm.create_completion(
            tokens,
            max_tokens=min(params.max_new_tokens, room),
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            min_p=params.min_p,
            repeat_penalty=params.repetition_penalty,
            stop=list(params.stop) + ([] if self.prompt_mode.completion else list(self.template.stop_strings)),
            seed=params.seed,
            stream=True,
            stopping_criteria=llama_cpp.StoppingCriteriaList([per_token]),
        )
        try:
            for chunk in stream:
                choice = chunk["choices"][0]
                text = choice.get("text") or ""
                if text:
                    yield Delta(text, 0)
                if choice.get("finish_reason") == "length" and not hit_stop_token:
                    clock.stats.finish_reason = "length"
                    # the criterion also saw the sample that hit the cap
                    clock.stats.generated_tokens = min(clock.stats.generated_tokens, params.max_new_tokens)
                if cancel.is_set():
                    break
        finally:
            stream.close()


def _quiet_llama_logs() -> None:
    from engine.llama_runtime import quiet_logs

    quiet_logs()


def default_threads() -> int | None:
    """Physical cores this process may use (llama-cpp-python's own default, half the logical
    CPUs, gives one thread on a 2-vCPU VM); LLMDECK_THREADS overrides it."""
    value = os.environ.get("LLMDECK_THREADS")
    if value and value.isdigit():
        return int(value)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or usable
    except ImportError:
        physical = usable
    return max(1, min(usable, physical))
