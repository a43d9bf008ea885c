"""transformers backend: any local HF model folder, including a base model + LoRA adapter folder.

`generate` runs in its own thread and hands text back through a TextIteratorStreamer; a
StoppingCriteria that reads the cancel event ends generation after the current token. A model
folder's custom code is never run unless the caller passes `trust_remote_code=True`.

On a CUDA device the decode uses a static KV cache, which makes transformers compile the forward
pass (torch.compile + CUDA graphs): plain `generate` is bound by per-token Python overhead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engine.chat.base import BackendError, BackendInfo, ChatBackend, Delta, Message, StatsClock, StopFilter
from engine.chat.params import SamplingParams
from engine.chat.templates import ChatTemplate, resolve_template


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"{path} is not readable JSON ({exc})") from None


def max_memory_map(gpu_memory: Sequence[float] | None, cpu_memory: float | None = None) -> dict[Any, str] | None:
    """`--gpu-memory 20 20` -> {0: '20GiB', 1: '20GiB'} for accelerate's device map."""
    if not gpu_memory:
        return None
    caps: dict[Any, str] = {i: f"{float(g):g}GiB" for i, g in enumerate(gpu_memory)}
    if cpu_memory:
        caps["cpu"] = f"{float(cpu_memory):g}GiB"
    return caps


class TransformersBackend(ChatBackend):
    NAME = "transformers"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        base_model: str | Path | None = None,
        dtype: str = "auto",
        device_map: str | None = None,
        gpu_memory: Sequence[float] | None = None,
        trust_remote_code: bool = False,
        template: str | None = None,
        static_cache: bool | None = None,
        prompt_mode: str = "chat",
    ) -> None:
        super().__init__()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_dir).expanduser()
        if not path.exists():
            raise BackendError(f"model folder not found: {path}")
        if not path.is_dir():
            raise BackendError(f"{path} is not a folder; a transformers model is a folder with config.json")
        adapter_cfg = path / "adapter_config.json"
        self.adapter: Path | None = None
        weights_dir = path
        if adapter_cfg.is_file():
            self.adapter = path
            base = Path(base_model or _read_json(adapter_cfg).get("base_model_name_or_path") or "").expanduser()
            if not str(base) or not (base / "config.json").is_file():
                raise BackendError(
                    f"{path} is a LoRA adapter whose base model {str(base)!r} is not a local folder; pass --base-model DIR"
                )
            weights_dir = base
        elif not (path / "config.json").is_file():
            raise BackendError(f"{path} has no config.json: not a transformers model folder")
        config = _read_json(weights_dir / "config.json")
        if config.get("auto_map") and not trust_remote_code:
            # transformers would refuse anyway for unknown types; say why in our words.
            known = _known_model_type(str(config.get("model_type", "")))
            if not known:
                raise BackendError(
                    f"{weights_dir} needs its own Python code (auto_map in config.json); "
                    "pass --trust-remote-code if you trust it"
                )

        cuda = torch.cuda.is_available()
        self.device_map = device_map or ("auto" if cuda else "cpu")
        torch_dtype = _dtype(dtype, cuda)
        kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
        if self.device_map != "cpu" or gpu_memory:
            kwargs["device_map"] = self.device_map
            caps = max_memory_map(gpu_memory)
            if caps:
                kwargs["max_memory"] = caps
        try:
            tok_dir = self.adapter if self.adapter and (self.adapter / "tokenizer_config.json").is_file() else weights_dir
            self.tokenizer = AutoTokenizer.from_pretrained(tok_dir, trust_remote_code=trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(weights_dir, **kwargs)
            if self.adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, self.adapter)
        except torch.cuda.OutOfMemoryError:
            raise BackendError("out of GPU memory loading the model; use a smaller dtype, cap --gpu-memory or use a GGUF") from None
        except MemoryError:
            raise BackendError("out of RAM loading the model; free memory or use a quantized GGUF") from None
        except OSError as exc:
            raise BackendError(f"cannot load {path}: {exc}") from None
        except ValueError as exc:
            if "trust_remote_code" in str(exc):
                raise BackendError(f"{weights_dir} needs its own Python code; pass --trust-remote-code if you trust it") from None
            raise BackendError(f"cannot load {path}: {exc}") from None
        model.eval()
        self.model = model
        self.model_dir = path
        self.dtype = str(torch_dtype).replace("torch.", "")
        self.device = str(next(model.parameters()).device)
        self.static_cache = (self.device.startswith("cuda")) if static_cache is None else static_cache
        self._context = int(config.get("max_position_embeddings") or 0) or None
        vocab = self.tokenizer.get_vocab()
        self.template: ChatTemplate = resolve_template(
            override=template,
            model_template=getattr(self.tokenizer, "chat_template", None) or None,
            architecture=str(config.get("model_type", "")),
            bos_token=self.tokenizer.bos_token or "",
            eos_token=self.tokenizer.eos_token or "",
            has_token=lambda t: t in vocab,
        )
        self._stop_ids = self._stop_token_ids(vocab)
        self._choose_prompt_mode(
            prompt_mode,
            has_template=bool(getattr(self.tokenizer, "chat_template", None)),
            names=(path.name, weights_dir.name, str(config.get("_name_or_path") or "")),
        )

    def _stop_token_ids(self, vocab: dict[str, int]) -> list[int]:
        ids: list[int] = []
        eos = self.model.generation_config.eos_token_id
        ids += eos if isinstance(eos, list) else ([eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        ids += [vocab[s] for s in self.template.stop_strings if s in vocab]
        return sorted(set(ids))

    @property
    def shares_cpu(self) -> bool:
        devices = set(getattr(self.model, "hf_device_map", {}).values()) or {self.device}
        return any(str(d) in ("cpu", "disk") for d in devices)

    @property
    def info(self) -> BackendInfo:
        details = {"dtype": self.dtype, "device": self.device, "static cache": self.static_cache}
        if self.adapter:
            details["adapter"] = str(self.adapter)
        mode = self.prompt_mode
        template = "none (completion)" if mode.completion else self.template.label
        return BackendInfo("transformers", str(self.model_dir), template, self._context, details,
                           prompt_mode=mode.mode, prompt_mode_reason=mode.reason)

    def _prompt_ids(self, messages: list[Message]):
        prompt = self.render_prompt(messages, self.template)
        # plain text gets the tokenizer's BOS; a rendered template carries its own
        return self.tokenizer(prompt, return_tensors="pt", add_special_tokens=self.prompt_mode.completion)

    def count_tokens(self, messages: list[Message], params: SamplingParams | None = None) -> int | None:
        from engine.chat.base import with_system_prompt

        msgs = with_system_prompt(list(messages), params.system_prompt if params else "")
        return int(self._prompt_ids(msgs)["input_ids"].shape[1])

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - freeing is best effort
            pass

    def _stream(
        self, messages: list[Message], params: SamplingParams, cancel: threading.Event, clock: StatsClock
    ) -> Iterator[Delta]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        if self.model is None:
            raise BackendError("the model was unloaded")
        enc = self._prompt_ids(messages)
        input_ids = enc["input_ids"].to(self.model.device)
        clock.stats.prompt_tokens = int(input_ids.shape[1])
        stop_now = threading.Event()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001
                return torch.full((input_ids.shape[0],), cancel.is_set() or stop_now.is_set(), dtype=torch.bool, device=input_ids.device)

        class _CountingStreamer(TextIteratorStreamer):
            def put(self, value):  # noqa: ANN001
                if not (self.skip_prompt and self.next_tokens_are_prompt):
                    clock.token(int(value.numel()))
                super().put(value)

        streamer = _CountingStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        gen: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": enc["attention_mask"].to(self.model.device),
            "max_new_tokens": params.max_new_tokens,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Stop()]),
            "eos_token_id": self._stop_ids or None,
            "pad_token_id": self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else (self._stop_ids or [0])[0],
            "repetition_penalty": params.repetition_penalty,
        }
        if params.greedy:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None, min_p=None)
        else:
            gen.update(do_sample=True, temperature=params.temperature, top_p=params.top_p,
                       top_k=params.top_k or None, min_p=params.min_p or None)
        if self.static_cache:
            gen["cache_implementation"] = "static"
        errors: list[BaseException] = []

        def run() -> None:
            try:
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                with torch.inference_mode():
                    self.model.generate(**gen)
            except BaseException as exc:  # noqa: BLE001 - reported in the consumer thread
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True, name="llmdeck-generate")
        thread.start()
        template_stops = () if self.prompt_mode.completion else self.template.stop_strings
        stops = StopFilter(tuple(params.stop) + tuple(s for s in template_stops if s not in self.tokenizer.get_vocab()))
        try:
            for piece in streamer:
                text = stops.feed(piece)
                if text:
                    yield Delta(text, 0)
                if stops.stopped:
                    stop_now.set()
                    break
                if cancel.is_set():
                    break
            tail = stops.flush()
            if tail and not cancel.is_set():
                yield Delta(tail, 0)
        finally:
            stop_now.set()
            thread.join()
        if errors:
            exc = errors[0]
            if self.static_cache and clock.stats.generated_tokens == 0 and not isinstance(exc, torch.cuda.OutOfMemoryError):
                # compiled static-cache decoding is the fast path, not a requirement
                self.static_cache = False
                raise BackendError(f"compiled decoding failed ({type(exc).__name__}: {exc}); "
                                   "switched to plain decoding, send again")
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                raise BackendError("out of GPU memory while generating; shorten the conversation or max new tokens")
            raise BackendError(f"generation failed: {type(exc).__name__}: {exc}")
        if clock.stats.generated_tokens >= params.max_new_tokens:
            clock.stats.finish_reason = "length"


def _dtype(name: str, cuda: bool):  # -> torch.dtype
    import torch

    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if name == "auto":
        return torch.bfloat16 if cuda else torch.float32
    if name not in table:
        raise BackendError(f"unknown dtype {name!r}: use auto, float32, bfloat16 or float16")
    return table[name]


def _known_model_type(model_type: str) -> bool:
    try:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

        return model_type in CONFIG_MAPPING_NAMES
    except ImportError:
        return False
