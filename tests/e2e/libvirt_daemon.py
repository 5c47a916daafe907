"""libvirtd for the e2e test on machines without systemd as PID 1: started by hand when not running,
and stopped afterwards by pid, only if this test started it."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Optional

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


KVM_DEVICE = pathlib.Path("/dev/kvm")


@dataclass
class Daemons:
    started: dict[str, int] = field(default_factory=dict)  # name -> pid, only the ones this test started
    kvm_mode: Optional[tuple[int, int]] = None  # /dev/kvm's (mode, gid) before this test changed it

    def stop(self) -> None:
        if self.kvm_mode is not None:
            os.chmod(KVM_DEVICE, self.kvm_mode[0])
            os.chown(KVM_DEVICE, -1, self.kvm_mode[1])
            self.kvm_mode = None
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


def _kvm_as_debian_sets_it(daemons: Daemons) -> None:
    """/dev/kvm root:kvm 0660, as Debian's udev rule (50-udev-default.rules) makes it.

    Without udev it can be root-only here: then libvirt probes QEMU as root with KVM, finds the device
    unusable for its qemu user afterwards ("KVM was enabled when probing ..., but it is not available now")
    and throws its capability cache away on every call, re-probing QEMU for seconds each time: a domain
    create then took four minutes instead of one second (measured). The domains run type='qemu' either way.
    """
    import grp

    if not KVM_DEVICE.exists():
        return
    info = KVM_DEVICE.stat()
    wanted_gid = grp.getgrnam("kvm").gr_gid
    if (info.st_mode & 0o777, info.st_gid) != (0o660, wanted_gid):
        daemons.kvm_mode = (info.st_mode & 0o777, info.st_gid)
        os.chown(KVM_DEVICE, -1, wanted_gid)
        os.chmod(KVM_DEVICE, 0o660)


def ensure_running() -> Daemons:
    """virtlogd, then libvirtd (daemonized, no TLS listener) unless libvirt already answers."""
    daemons = Daemons()
    _kvm_as_debian_sets_it(daemons)
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
