"""libvirtd for the e2e test on machines without systemd as PID 1: started by hand when not running,
and stopped afterwards by pid, only if this test started it."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time
from dataclasses import dataclass, field

URI = "qemu:///system"
STATE_DIRS = (pathlib.Path("/var/lib/libvirt/dnsmasq"),)
PID_FILES = {"virtlogd": pathlib.Path("/run/virtlogd.pid"), "libvirtd": pathlib.Path("/run/libvirtd.pid")}


def virsh(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def _running_pid(name: str) -> int | None:
    try:
        pid = int(PID_FILES[name].read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    comm = pathlib.Path(f"/proc/{pid}/comm")
    return pid if comm.exists() and comm.read_text().strip() == name else None


def _responds() -> bool:
    try:
        return virsh("version", check=False, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@dataclass
class Daemons:
    started: dict[str, int] = field(default_factory=dict)  # name -> pid, only the ones this test started

    def stop(self) -> None:
        for name in ("libvirtd", "virtlogd"):
            pid = self.started.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and pathlib.Path(f"/proc/{pid}").exists():
                time.sleep(0.2)


def ensure_running() -> Daemons:
    """virtlogd, then libvirtd (daemonized, no TLS listener) unless libvirt already answers."""
    daemons = Daemons()
    # Made by the package's tmpfiles/systemd setup on a normal host; without systemd as PID 1 it may be
    # missing, and then every domain start on a libvirt network fails ("virbrN.macs.new").
    STATE_DIRS[0].mkdir(mode=0o755, parents=True, exist_ok=True)
    if _responds():
        return daemons
    try:
        for name in ("virtlogd", "libvirtd"):
            if _running_pid(name) is None:
                subprocess.run([name, "-d"], check=True, timeout=30)
                deadline = time.monotonic() + 15
                while (pid := _running_pid(name)) is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} -d did not leave a running daemon ({PID_FILES[name]})")
                    time.sleep(0.2)
                daemons.started[name] = pid
        deadline = time.monotonic() + 30
        while not _responds():
            if time.monotonic() > deadline:
                raise RuntimeError(f"libvirtd started but `virsh -c {URI} version` does not answer")
            time.sleep(0.5)
    except BaseException:
        daemons.stop()
        raise
    return daemons
