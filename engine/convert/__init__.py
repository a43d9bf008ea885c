"""Model conversion: Meta -> HF, HF -> GGUF, quantize, merge LoRA, GGUF -> HF.

Every conversion is a job (`engine.convert.jobs`) that checks its input first
(`engine.convert.preflight`), streams tensors one at a time with per-tensor progress, writes into
a temporary sibling of the output and renames it into place only after the output verified
(`engine.convert.verify`). Heavy libraries (torch, transformers, gguf, llama_cpp) are imported
inside the functions that use them, so importing this package is cheap.
"""

from __future__ import annotations

ACTIONS: tuple[str, ...] = ("meta-to-hf", "hf-to-gguf", "quantize", "merge-lora", "gguf-to-hf")
