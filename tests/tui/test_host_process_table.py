"""The no-GPU Monitor's host process list (tui/widgets/monitor_top.py) on its own: ranking, a
cursor that follows its process, keys and scrolling, and a re-ranked tick that repaints only the
lines whose text changed (bench/idle.py: a DataTable re-rendered every cell at each tick)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.geometry import Region

from engine.monitor.sample import HostProcess
from tui.widgets.monitor_top import HostProcessTable


def procs(*rows: tuple[int, float, int]) -> tuple[HostProcess, ...]:
    return tuple(HostProcess(pid=pid, user="u", name=f"p{pid}", command=f"cmd {pid}", cpu_percent=cpu, rss=rss,
                             mem_percent=1.0) for pid, cpu, rss in rows)


class Holder(App):
    def compose(self) -> ComposeResult:
        yield HostProcessTable()


def texts(table: HostProcessTable) -> list[str]:
    return [table.render_line(y).text.rstrip() for y in range(table.size.height)]


async def test_rows_rank_by_cpu_or_memory_and_the_cursor_follows_its_process() -> None:
    app = Holder()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(HostProcessTable)
        table.set_processes(procs((1, 5.0, 100), (2, 50.0, 10), (3, 20.0, 1000)))
        await pilot.pause()
        assert [p.pid for p in table.shown] == [2, 3, 1]
        assert texts(table)[0].split() == ["PID", "user", "CPU%", "RSS", "MEM%", "command"]
        assert texts(table)[1].split()[0] == "2" and texts(table)[1].endswith("cmd 2")
        await pilot.press("down")
        assert table.selected.pid == 3
        table.set_processes(procs((1, 90.0, 100), (2, 50.0, 10), (3, 20.0, 1000)))  # 1 jumps to the top
        assert [p.pid for p in table.shown] == [1, 2, 3] and table.cursor_row == 2 and table.selected.pid == 3
        assert table.next_sort() == "memory" and [p.pid for p in table.shown] == [3, 1, 2]
        assert table.selected.pid == 3 and table.cursor_row == 0
        await pilot.press("end")
        assert table.selected.pid == 2
        await pilot.press("home")
        assert table.selected.pid == 3


async def test_a_tick_repaints_only_the_lines_that_changed() -> None:
    app = Holder()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(HostProcessTable)
        table.set_processes(procs((1, 50.0, 100), (2, 40.0, 100), (3, 30.0, 100)))
        await pilot.pause()
        painted: list[tuple] = []
        table.refresh = lambda *regions, **kw: painted.append(regions)  # type: ignore[method-assign]
        table.set_processes(procs((1, 50.0, 100), (2, 41.0, 100), (3, 30.0, 100)))  # one figure moved
        assert painted == [(Region(0, 2, table.size.width, 1),)]
        painted.clear()
        same = procs((1, 50.0, 100), (2, 41.0, 100), (3, 30.0, 100))
        table.set_processes(same)
        table.set_processes(same)
        assert painted == []  # nothing shown changed: nothing repainted
        table.set_processes(procs((1, 50.0, 100), (2, 41.0, 100), (3, 30.0, 100), (4, 1.0, 100)))
        assert painted == [()]  # a row more: the whole table


async def test_more_rows_than_lines_scroll_with_the_cursor() -> None:
    app = Holder()
    async with app.run_test(size=(60, 6)) as pilot:  # a header and five rows on screen
        table = app.query_one(HostProcessTable)
        table.set_processes(procs(*((pid, 100.0 - pid, 10) for pid in range(1, 21))))
        await pilot.pause()
        assert texts(table)[1].split()[0] == "1" and texts(table)[5].split()[0] == "5"
        await pilot.press("pagedown")
        assert table.selected.pid == 6 and texts(table)[5].split()[0] == "6"
        await pilot.press("end")
        assert table.selected.pid == 20 and texts(table)[5].split()[0] == "20" and texts(table)[0].startswith(" PID")
        await pilot.click(HostProcessTable, offset=(3, 1))
        assert table.selected.pid == 16
