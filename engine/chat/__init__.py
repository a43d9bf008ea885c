"""Chat: backends (llama.cpp, transformers, OpenAI-compatible), templates, sampling, sessions.

Importing this package is light: each backend imports its heavy library (llama_cpp, torch,
transformers, httpx) only when a model is loaded.
"""

from engine.chat.base import ChatBackend, Delta, GenerationStats, Message
from engine.chat.params import SamplingParams

__all__ = ["ChatBackend", "Delta", "GenerationStats", "Message", "SamplingParams"]
