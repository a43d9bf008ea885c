"""The estimator's answer: named components, which of them coexist at the peak, and the total."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.estimate.spec import GIB


@dataclass(frozen=True)
class Component:
    """One line of the breakdown.

    `at_peak`: alive at the moment of peak memory (the total sums only these). `allocator`: counted
    by torch.cuda.max_memory_allocated (False for the CUDA context, allocator slack, and llama.cpp).
    """

    key: str
    label: str
    bytes: float
    formula: str = ""
    at_peak: bool = True
    allocator: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "bytes": int(self.bytes), "gib": round(self.bytes / GIB, 3),
                "formula": self.formula, "at_peak": self.at_peak, "allocator": self.allocator}


@dataclass(frozen=True)
class Estimate:
    mode: str  # infer | full | lora | qlora
    model: dict[str, Any]
    settings: dict[str, Any]
    components: tuple[Component, ...]
    peak_phase: str = ""
    notes: tuple[str, ...] = ()
    trainable_params: int | None = None
    per_gpu: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_bytes(self) -> float:
        """Memory needed on each GPU: every component alive at the peak, context included."""
        return sum(c.bytes for c in self.components if c.at_peak)

    @property
    def allocated_bytes(self) -> float:
        """What torch.cuda.max_memory_allocated should report (no context, no allocator slack)."""
        return sum(c.bytes for c in self.components if c.at_peak and c.allocator)

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB

    def component(self, key: str) -> Component | None:
        return next((c for c in self.components if c.key == key), None)

    def bytes_of(self, key: str) -> float:
        c = self.component(key)
        return c.bytes if c else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "model": self.model,
            "settings": self.settings,
            "components": [c.to_dict() for c in self.components],
            "peak_phase": self.peak_phase,
            "total_bytes": int(self.total_bytes),
            "total_gib": round(self.total_gib, 3),
            "allocated_bytes": int(self.allocated_bytes),
            "allocated_gib": round(self.allocated_bytes / GIB, 3),
            "trainable_params": self.trainable_params,
            "notes": list(self.notes),
            **self.extra,
        }
