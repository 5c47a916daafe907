"""A real OpenSSH server on 127.0.0.1 for tests that need one: its own host key, one client key allowed in,
stopped by its pid."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SshServer:
    """`directory` holds the keys: client (allowed in), stranger (not), host (the server's)."""

    directory: pathlib.Path
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def client_key(self) -> pathlib.Path:
        return self.directory / "client"

    def __enter__(self) -> "SshServer":
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        for name in ("host", "client", "stranger"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
        shutil.copy(d / "client.pub", d / "authorized_keys")
        self.port = self.port or free_port()
        (d / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1\nAuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PidFile none\nPrintMotd no\nLogLevel ERROR\n")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config"), "-p", str(self.port),
                                         "-h", str(d / "host")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"sshd exited: {self.process.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.process.kill()
                    raise
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()  # by its pid
            self.process.wait(10)
