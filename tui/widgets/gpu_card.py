"""One GPU: memory bar, utilisation, temperature, power, clocks, throttle reasons, sparklines.

Three densities so one GPU or eight fit 80x24 or a wide terminal: "full" (text + three
sparklines), "brief" (text, no sparklines) and "line" (one line, no border). The screen picks
the density from the space it has; the card only renders.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget

from engine.monitor import format as fmt
from engine.monitor.history import History
from engine.monitor.sample import GpuSample, num
from tui.widgets.monitor_spark import MonitorSpark

DENSITIES = ("full", "brief", "line")
CARD_HEIGHT = {"full": 8, "brief": 5, "line": 1}


def bar(fraction: float | None, width: int) -> tuple[str, str]:
    """(filled, empty) block strings for a bar of `width` cells."""
    if fraction is None or width <= 0:
        return "", "·" * max(0, width)
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled, "░" * (width - filled)


class GpuCardText(Widget):
    DEFAULT_CSS = """
    GpuCardText { height: auto; width: 1fr; }
    GpuCardText > .gpu-card--bar { color: $primary; }
    GpuCardText > .gpu-card--bar-high { color: $error; }
    GpuCardText > .gpu-card--muted { color: $text-muted; }
    GpuCardText > .gpu-card--warn { color: $warning; }
    """
    COMPONENT_CLASSES = {"gpu-card--bar", "gpu-card--bar-high", "gpu-card--muted", "gpu-card--warn"}

    def __init__(self) -> None:
        super().__init__()
        self.gpu: GpuSample | None = None
        self.density = "full"

    def get_content_height(self, container, viewport, width: int) -> int:  # noqa: ANN001
        return {"full": 3, "brief": 3, "line": 1}[self.density]

    def _style(self, name: str):  # noqa: ANN202
        return self.get_component_rich_style(name)

    def render(self) -> Text:
        gpu = self.gpu
        if gpu is None:
            return Text("waiting for the first sample…", style=self._style("gpu-card--muted"))
        width = max(20, self.size.width)
        frac = gpu.memory_fraction
        mem_text = f"{fmt.size(gpu.memory_used, 'GiB').removesuffix(' GiB')}/{fmt.size(gpu.memory_total, 'GiB')}"
        bar_style = self._style("gpu-card--bar-high" if frac is not None and frac >= 0.95 else "gpu-card--bar")
        muted = self._style("gpu-card--muted")
        power = f"{fmt.unit(gpu.power_w, '')}/{fmt.unit(gpu.power_limit_w, 'W')}"
        if self.density == "line":
            head = f"{gpu.index} {_short(gpu.name)} "
            tail = f" {mem_text} {fmt.pct(gpu.util_gpu):>4} {fmt.unit(gpu.temperature, '°C')} {power}"
            filled, empty = bar(frac, max(4, width - len(head) - len(tail)))
            text = Text(head, style="bold")
            text.append(filled, style=bar_style).append(empty, style=muted).append(tail)
            throttled = _bad_throttle(gpu)
            if throttled:
                text.append(f" ⚠ {throttled}", style=self._style("gpu-card--warn"))
            return text
        label = f"mem {fmt.pct(None if frac is None else 100 * frac):>4} "
        tail = f" {mem_text}"
        filled, empty = bar(frac, max(4, width - len(label) - len(tail)))
        text = Text(label, style=muted)
        text.append(filled, style=bar_style).append(empty, style=muted).append(tail)
        text.append("\n")
        text.append(
            f"util {fmt.pct(gpu.util_gpu):>4}  mem-bw {fmt.pct(gpu.util_memory)}  {fmt.unit(gpu.temperature, '°C')}  "
            f"{power}  fan {fmt.pct(gpu.fan_percent)}"
        )
        text.append("\n")
        clocks = (f"SM {fmt.unit(gpu.clock_sm_mhz, '')}/{fmt.unit(gpu.clock_sm_max_mhz, ' MHz')}  "
                  f"mem {fmt.unit(gpu.clock_mem_mhz, ' MHz')}")
        pcie = f"PCIe {fmt.text(gpu.pcie_gen)}x{fmt.text(gpu.pcie_width)}"
        text.append(f"{clocks}  {pcie}  ", style=muted)
        throttle = fmt.throttle_text(gpu)
        text.append(f"throttle: {throttle}", style=self._style("gpu-card--warn") if _bad_throttle(gpu) else muted)
        return text


def _short(name: object) -> str:
    text = fmt.text(name)
    return text.removeprefix("NVIDIA ").removeprefix("GeForce ")


def _bad_throttle(gpu: GpuSample) -> str:
    """Throttle reasons that cost speed (idle and app clocks are normal)."""
    if not isinstance(gpu.throttle, tuple):
        return ""
    return ", ".join(r for r in gpu.throttle if r not in ("idle", "application clocks", "display clocks"))


class GpuCard(Vertical):
    DEFAULT_CSS = """
    GpuCard {
        height: auto; border: round $panel-lighten-2; border-title-color: $primary; border-subtitle-color: $muted;
        padding: 0 1;
    }
    GpuCard.-line { border: none; padding: 0; }
    GpuCard.-line MonitorSpark, GpuCard.-brief MonitorSpark { display: none; }
    GpuCard.-brief MonitorSpark#spark-util { display: block; }
    GpuCard.-stalled { border: round $warning; }
    """

    def __init__(self, index: int) -> None:
        super().__init__(id=f"gpu-card-{index}")
        self.index = index
        self.density = "full"
        self.add_class("-full")
        # Built here, not in compose, so the screen can update a card before it is mounted.
        self.text = GpuCardText()
        self.sparks = {
            "util": MonitorSpark("util", id="spark-util"),
            "mem": MonitorSpark("mem", id="spark-mem"),
            "power": MonitorSpark("power", id="spark-power", top=0),
        }

    def compose(self) -> ComposeResult:
        yield self.text
        yield from self.sparks.values()

    def set_density(self, density: str) -> None:
        if density == self.density:
            return
        self.remove_class(f"-{self.density}")
        self.density = density
        self.add_class(f"-{density}")
        self.text.density = density
        self.text.refresh(layout=True)

    def update_sample(self, gpu: GpuSample, history: History | None, window_s: float) -> None:
        if gpu != self.text.gpu:
            self.text.gpu = gpu
            self.text.refresh()
        pstate = fmt.pstate(gpu.pstate)
        title = f"{gpu.index} {_short(gpu.name)}"
        subtitle = f"{pstate} · {fmt.text(gpu.uuid)[:12]}" if self.density == "full" else pstate
        if (self.border_title, self.border_subtitle) != (title, subtitle):  # unchanged: no repaint
            self.border_title, self.border_subtitle = title, subtitle
        if history is None or self.density == "line":
            return
        for key, value, top in (
            ("util", fmt.pct(gpu.util_gpu), 100.0),
            ("mem", fmt.pct(None if gpu.memory_fraction is None else 100 * gpu.memory_fraction), 100.0),
            ("power", fmt.unit(gpu.power_w, " W"), num(gpu.power_limit_w) or 0.0),
        ):
            spark = self.sparks[key]
            if spark.is_mounted and spark.display:
                width = spark.chart_width
                spark.set_data(history.series(("gpu", gpu.index, key), window_s, width or 60), value, top)
