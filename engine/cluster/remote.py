"""The shell line a node runs: its environment, then `exec python ...`, for the user's login shell.

ssh hands the command to the remote login shell as one string, so the environment is set with
`export` (sh, bash, zsh, dash all read it) and every value is quoted; PYTHONPATH keeps whatever the
node already had after the folder that holds this llmdeck's `engine` package.
"""

from __future__ import annotations

import shlex


def python_line(python: str, args: list[str], *, env: dict[str, str], pythonpath: str = "") -> str:
    lines = []
    if pythonpath:
        lines.append(f"export PYTHONPATH={shlex.quote(pythonpath)}${{PYTHONPATH:+:$PYTHONPATH}}")
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    lines.append("exec " + shlex.join([python, *args]))
    return "; ".join(lines)
