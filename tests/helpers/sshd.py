"""A private OpenSSH server on 127.0.0.1 for tests: its own host key, an authorized key made for
the test, and an ssh_config naming one alias per "node" (all on this machine). The user's real
~/.ssh and /etc/ssh are never read or written: the server runs with `-f` its own config and the
client is always given `-F` the generated ssh_config."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from engine.ports import free_port
from tests.helpers.requirements import apt, require_tool, unavailable


class LocalSshd:
    def __init__(self, folder: Path, aliases: tuple[str, ...] = ("node-a", "node-b")) -> None:
        self.folder = Path(folder)
        self.aliases = aliases
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.config = self.folder / "ssh_config"

    def start(self) -> LocalSshd:
        sshd = require_tool("/usr/sbin/sshd", install=apt("openssh-server"))
        keygen = require_tool("ssh-keygen", install=apt("openssh-client"))
        require_tool("ssh", install=apt("openssh-client"))
        d = self.folder
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        for key in ("host_key", "user_key"):
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
        (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
        os.chmod(d / "authorized_keys", 0o600)
        # sshd refuses to start without its privilege separation folder (the Debian service makes it)
        try:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        except PermissionError:
            unavailable("sshd needs /run/sshd, which only root can create (Debian's ssh service makes it)")
        self.port = free_port()
        (d / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
            "MaxStartups 50:30:100\nMaxSessions 50\nLogLevel ERROR\n"
        )
        host_key = (d / "host_key.pub").read_text().split()
        (d / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_key[0]} {host_key[1]}\n")
        user = os.environ.get("USER") or __import__("getpass").getuser()
        blocks = [
            f"Host {' '.join(self.aliases)}\n  HostName 127.0.0.1\n  Port {self.port}\n  User {user}\n"
            f"  IdentityFile {d / 'user_key'}\n  IdentitiesOnly yes\n  UserKnownHostsFile {d / 'known_hosts'}\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n"
        ]
        self.config.write_text("\n".join(blocks))
        log = open(d / "sshd.log", "ab")  # noqa: SIM115 - the server's stderr for as long as it runs
        self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 20
        while True:
            probe = subprocess.run(["ssh", "-F", str(self.config), self.aliases[0], "true"], capture_output=True,
                                   text=True, timeout=30)
            if probe.returncode == 0:
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the test sshd did not accept a login: {probe.stderr.strip()} "
                                   f"(sshd log: {(d / 'sshd.log').read_text()[-500:]})")
            time.sleep(0.2)

    def add_unreachable_alias(self, name: str) -> str:
        """An alias for a port where nothing listens: a node that is down."""
        with open(self.config, "a", encoding="utf-8") as handle:
            handle.write(f"\nHost {name}\n  HostName 127.0.0.1\n  Port {free_port()}\n  ConnectTimeout 5\n")
        return name

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
