"""OpenSSH, as the user already runs it: their keys, their ~/.ssh/config (or the file given with
`--ssh-config` / LLMDECK_SSH_CONFIG), and `BatchMode=yes`, so a missing key fails at once with
ssh's own message instead of waiting for a password nobody will type.

Everything here builds argv lists for `ssh`, `rsync` and `scp` and runs them; no library of our
own speaks the protocol (the user's agent, jump hosts and ControlMaster keep working).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

SSH_CONFIG_ENV = "LLMDECK_SSH_CONFIG"
_OPTIONS = (
    "-o", "BatchMode=yes",  # never ask for a password or a host key: fail with ssh's message
    "-o", "ConnectTimeout=15",
    "-o", "ServerAliveInterval=15",  # a node that vanishes is noticed within a minute
    "-o", "ServerAliveCountMax=4",
)


class SshError(RuntimeError):
    """ssh (or the copy over it) failed; the text is ssh's own last line and what was asked."""


def config_file(given: str = "") -> str:
    """The ssh config to use: the run's `--ssh-config`, else LLMDECK_SSH_CONFIG, else ssh's own
    default (~/.ssh/config, returned as "")."""
    return given or os.environ.get(SSH_CONFIG_ENV, "")


def base_command(config: str = "") -> list[str]:
    """`ssh` with llmdeck's fixed options (and `-F config` when one is given)."""
    cmd = ["ssh"]
    if config:
        cmd += ["-F", str(Path(config).expanduser())]
    return cmd + list(_OPTIONS)


def command(host: str, remote: list[str] | str, config: str = "") -> list[str]:
    """argv that runs `remote` on `host` (no terminal: output stays plain, stdin is a pipe)."""
    text = remote if isinstance(remote, str) else shlex.join(remote)
    return base_command(config) + ["-T", host, "--", text]


def run(host: str, remote: list[str] | str, *, config: str = "", timeout: float = 60.0,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a short command on `host` and return ssh's result (exit 255: ssh itself failed)."""
    try:
        return subprocess.run(command(host, remote, config), input=input_text, capture_output=True, text=True,
                              timeout=timeout, stdin=None if input_text is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SshError(f"{host}: no answer over ssh within {timeout:g} s") from None
    except FileNotFoundError:
        raise SshError("the OpenSSH client (`ssh`) is not installed on this machine") from None


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def address_of(host: str, config: str = "") -> str:
    """The address ssh connects to for `host` (its HostName after ~/.ssh/config), from `ssh -G`;
    the other nodes reach rank 0's rendezvous there."""
    try:
        out = subprocess.run(base_command(config) + ["-G", host], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SshError(f"{host}: `ssh -G` failed ({exc})") from None
    if out.returncode != 0:
        raise SshError(f"{host}: `ssh -G` failed: {last_line(out.stderr)}")
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "hostname" and value.strip():
            return value.strip()
    return host.rpartition("@")[2]


def copy_to(host: str, path: Path, *, config: str = "", timeout: float = 3600.0, dest: str = "") -> str:
    """Copy a local file or folder to `dest` on `host` (default: the same absolute path; rsync when
    installed on both ends is quicker, resumes and skips what is up to date; scp otherwise).
    Returns the tool used."""
    path = Path(path).resolve()
    target = Path(dest or path)
    if target.name != path.name:
        raise ValueError(f"copy_to keeps the name: {dest} does not end in {path.name}")
    parent = str(target.parent)
    made = run(host, ["mkdir", "-p", parent], config=config, timeout=60)
    if made.returncode != 0:
        raise SshError(f"{host}: cannot create {parent}: {last_line(made.stderr)}")
    ssh_text = shlex.join(base_command(config))
    if shutil.which("rsync"):
        tool = "rsync"
        source = str(path) + ("/" if path.is_dir() else "")
        # into a folder of llmdeck's own (`dest`), the copy is made exact: files gone here go there too
        argv = ["rsync", "-a", "--partial", *(["--delete"] if dest else []), "-e", ssh_text, source,
                f"{host}:{target}" + ("/" if path.is_dir() else "")]
    else:
        tool = "scp"
        scp = ["scp"] + base_command(config)[1:]
        argv = scp + ["-r", "-p", str(path), f"{host}:{parent}/"]  # dest keeps the name: target is parent/name
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SshError(f"{host}: copying {path} took more than {timeout:g} s") from None
    if done.returncode != 0:
        raise SshError(f"{host}: {tool} of {path} failed: {last_line(done.stderr)}")
    return tool
