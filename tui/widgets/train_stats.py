"""The numbers beside the curve: lr, grad norm, throughput, memory per device, host RAM, ETA, and
what a preference or RL method is judged by (reward margin and accuracy; reward, KL, length)."""

from __future__ import annotations

from textual.widgets import Static

from engine.formatting import format_duration


def stats_text(values: dict[str, float], step: int) -> str:
    """Latest metric values as two or three short lines (missing values are left out)."""
    total = int(values.get("total_steps", 0))
    line1 = [f"[b]step[/b] {step}/{total}" if total else f"[b]step[/b] {step}"]
    if "loss" in values:
        line1.append(f"[b]loss[/b] {values['loss']:.4f}")
    if "eval_loss" in values:
        ppl = f" (ppl {values['eval_ppl']:.2f})" if "eval_ppl" in values else ""
        line1.append(f"[b]eval[/b] {values['eval_loss']:.4f}{ppl}")
    if "samples_per_s" in values:
        line1.append(f"[b]samples/s[/b] {values['samples_per_s']:.2f}")
    line2 = []
    if "lr" in values:
        line2.append(f"[b]lr[/b] {values['lr']:.2e}")
    if "grad_norm" in values:
        line2.append(f"[b]grad[/b] {values['grad_norm']:.3f}")
    if "tokens_per_s" in values:
        line2.append(f"[b]tok/s[/b] {values['tokens_per_s']:.0f}")
    if "epoch" in values:
        line2.append(f"[b]epoch[/b] {values['epoch']:.2f}")
    if "eta_s" in values:
        line2.append(f"[b]ETA[/b] {format_duration(values['eta_s'])}")
    method = method_figures(values)
    mem = []
    gpus = sorted({k.split("_")[0] for k in values if k.startswith("gpu") and k.endswith("_alloc_gib")})
    for gpu in gpus:
        alloc, reserved = values.get(gpu + "_alloc_gib", 0), values.get(gpu + "_reserved_gib", 0)
        mem.append(f"[b]{gpu}[/b] {alloc:.1f}/{reserved:.1f} GiB")
    if "host_rss_gib" in values:
        mem.append(f"[b]RAM[/b] {values['host_rss_gib']:.2f} GiB")
    return "\n".join("  ".join(part) for part in (line1, line2, method, mem) if part)


# (metric, label, format): the method's headline numbers, in TRL's names
_METHOD_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("rewards/margins", "margin", "{:.3f}"),
    ("rewards/accuracies", "acc", "{:.2f}"),
    ("rewards/chosen", "chosen", "{:.3f}"),
    ("rewards/rejected", "rejected", "{:.3f}"),
    ("reward", "reward", "{:.3f}"),
    ("reward_std", "±", "{:.3f}"),
    ("kl", "KL", "{:.4f}"),
    ("completions/mean_length", "len", "{:.1f}"),
    ("clip_ratio/region_mean", "clip", "{:.3f}"),
)


def method_figures(values: dict[str, float]) -> list[str]:
    return [f"[b]{label}[/b] {fmt.format(values[key])}" for key, label, fmt in _METHOD_FIGURES if key in values]


class TrainStats(Static):
    DEFAULT_CSS = """
    TrainStats { height: auto; max-height: 4; padding: 0 1; }
    """

    def show(self, values: dict[str, float], step: int) -> None:
        self.update(stats_text(values, step) if values else "no metrics yet")
