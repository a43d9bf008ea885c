"""CI must not go green by skipping: every test asks for a missing tool through tests/helpers/requirements.py,
which fails under CI=true, and no test skips any other way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.requirements import require_module, require_tool, unavailable

TESTS = Path(__file__).resolve().parent
SKIPS = re.compile(r"pytest\.importorskip\(|pytest\.skip\(|mark\.skipif\(|mark\.skip\(")
ALLOWED = {TESTS / "helpers" / "requirements.py", Path(__file__).resolve()}


def test_no_test_skips_except_through_the_requirements_helper() -> None:
    found = [
        f"{path.relative_to(TESTS.parent)}:{number}: {line.strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        if path not in ALLOWED
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SKIPS.search(line)
    ]
    assert not found, "skip through tests.helpers.requirements (it fails under CI=true):\n" + "\n".join(found)


def test_missing_tool_skips_here_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-program-llmdeck"):
        require_tool("no-such-program-llmdeck", install="apt-get install it")
    monkeypatch.setenv("CI", "true")
    expected = r"CI=true and the program no-such-program-llmdeck .*apt-get install it"
    with pytest.raises(pytest.fail.Exception, match=expected):
        require_tool("no-such-program-llmdeck", install="apt-get install it")
    with pytest.raises(pytest.fail.Exception, match="the Python module no_such_module_llmdeck"):
        require_module("no_such_module_llmdeck")


def test_present_tool_and_module_are_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert Path(require_tool("no-such-program-llmdeck", "sh", install="-")).name == "sh"
    assert require_module("json").dumps([]) == "[]"


def test_a_full_path_and_a_missing_capability(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CI", "true")
    sh = require_tool("/no/such/sh", str(Path(require_tool("sh", install="-")).resolve()), install="-")
    assert Path(sh).is_absolute()
    not_executable = tmp_path / "tool"
    not_executable.write_text("")
    with pytest.raises(pytest.fail.Exception, match=f"the program {not_executable} is not installed"):
        require_tool(str(not_executable), install="-")
    with pytest.raises(pytest.fail.Exception, match="CI=true and root .*: CI must provide it"):
        unavailable("root (slurmd switches users)")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="root"):
        unavailable("root (slurmd switches users)")
