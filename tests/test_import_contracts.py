"""The import contracts of pyproject.toml ([tool.importlinter]) hold: the static twin of
tests/test_import_hygiene.py, which checks the same boundaries at run time.

Each contract is its own test, so a break names the contract; the linter's report (which import
breaks it, on which line) is the failure message. Imports that other parts of issue 16 are still
removing are listed in the contracts' `ignore_imports`, each with its reason; when one is gone,
its ignore line matches nothing and the contract fails until the line is deleted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
CONTRACTS: dict[str, str] = {c["id"]: c["name"] for c in CONFIG["contracts"]}


def lint_imports(*contracts: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("lint-imports")
    if not command.exists():
        pytest.fail(f"{command} is missing: install the dev extra (import-linter)")
    args = [str(command), "--no-cache", "--no-logo"] + [f"--contract={c}" for c in contracts]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_import_contract_is_kept(contract):
    result = lint_imports(contract)
    assert result.returncode == 0 and CONTRACTS[contract] + " KEPT" in result.stdout, result.stdout + result.stderr
