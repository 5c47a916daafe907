"""Two libvirt hosts on this machine, for the two-host test, as a user's two hypervisors on one LAN.

Each host is a libvirtd of its own in a network namespace and a mount namespace of its own: its own /run (the
libvirt sockets, pid files), /etc/libvirt (a copy of this machine's, without the default network), /var/lib/libvirt
(pools, domain state), /var/log/libvirt and /var/cache/libvirt, and an sshd, so that the program reaches it as a
user reaches a hypervisor: qemu+ssh://root@<its address>/system, with the provider's own ssh client (host key in
known_hosts, the key in ~/.ssh). Each host has the bridges the stack names (frontendBridge, backendBridge), cabled by
a veth pair to a switch: a namespace with one bridge per lab network, which the Pulumi host (this machine's own
namespace, holding the gateway address of each network) and a client namespace are cabled to as well. Cutting a
host's cables and killing its QEMU processes is that hypervisor lost.

Nothing here routes anywhere: the switch bridges frames between the namespaces this test made, and the Pulumi host
forwards nothing for the lab networks (tests/e2e/host_guard.py)."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

STATE_ROOT = pathlib.Path("/var/lib/ha-lb-test-hosts")
PREFIX = "hl2h"  # namespaces, links: short (a link name has at most 15 characters)
SWITCH = f"{PREFIX}-switch"
CLIENT = f"{PREFIX}-client"
BRIDGES = {"frontend": "br-front", "backend": "br-back"}  # on every host, as the stack names them


def _run(*command: str, check: bool = True, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def _in(netns: str, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return _run("ip", "netns", "exec", netns, *command, check=check, timeout=timeout)


def _pid_alive(pid: int) -> bool:
    return pathlib.Path(f"/proc/{pid}").exists()


def _kill(pid: int, sig: int = signal.SIGTERM, wait: float = 20) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass(frozen=True)
class Network:
    """One lab network on the switch: its bridge there and the Pulumi host's (gateway) address on it."""

    role: str  # frontend, backend
    gateway_cidr: str  # e.g. 10.214.10.1/24


@dataclass
class LibvirtHost:
    """A hypervisor: libvirtd, virtlogd and sshd in namespaces of their own (see the module's docstring)."""

    name: str  # a, b
    address_cidr: str  # its management address on the frontend LAN, e.g. 10.214.10.251/24
    state: pathlib.Path = field(init=False)
    anchor: Optional[subprocess.Popen] = None  # holds the mount namespace (its /proc/PID/root is the host's view)

    def __post_init__(self) -> None:
        self.state = STATE_ROOT / self.name

    @property
    def netns(self) -> str:
        return f"{PREFIX}-hv-{self.name}"

    @property
    def address(self) -> str:
        return self.address_cidr.split("/")[0]

    @property
    def uri(self) -> str:
        return f"qemu+ssh://root@{self.address}/system"

    def cable(self, role: str) -> str:
        """The switch's end of this host's cable on a network (cut it to take the host off the LAN)."""
        return f"{PREFIX}-{self.name}-{role[:4]}"

    def start(self, authorized_key: str) -> None:
        _run("ip", "netns", "add", self.netns)
        _in(self.netns, "ip", "link", "set", "lo", "up")
        for role, bridge in BRIDGES.items():
            _in(self.netns, "ip", "link", "add", bridge, "type", "bridge")
            _in(self.netns, "ip", "link", "set", bridge, "up")
            _run("ip", "link", "add", self.cable(role), "type", "veth", "peer", "name", "uplink", "netns", self.netns)
            _in(self.netns, "ip", "link", "set", "uplink", "name", f"uplink-{role[:4]}")
            _in(self.netns, "ip", "link", "set", f"uplink-{role[:4]}", "master", bridge, "up")
            _run("ip", "link", "set", self.cable(role), "netns", SWITCH)
            _in(SWITCH, "ip", "link", "set", self.cable(role), "master", f"sw-{role[:4]}", "up")
        _in(self.netns, "ip", "address", "add", self.address_cidr, "dev", BRIDGES["frontend"])

        for directory in ("etc", "lib", "log", "cache", "ssh"):
            (self.state / directory).mkdir(parents=True, exist_ok=True)
        shutil.copytree("/etc/libvirt", self.state / "etc", dirs_exist_ok=True)
        for autostart in (self.state / "etc" / "qemu" / "networks" / "autostart").glob("*.xml"):
            autostart.unlink()  # no default network: the host's LAN is its bridges
        ssh = self.state / "ssh"
        os.chmod(self.state, 0o755)
        if not (ssh / "host").exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "host"))
        (ssh / "authorized_keys").write_text(authorized_key.strip() + "\n")
        init = self.state / "init.sh"
        init.write_text(textwrap.dedent(f"""\
            #!/bin/sh
            # The host's own view of the file system (a private mount namespace), then its daemons.
            set -eu
            mount --bind {self.state}/etc /etc/libvirt
            mount --bind {self.state}/lib /var/lib/libvirt
            mount --bind {self.state}/log /var/log/libvirt
            mount --bind {self.state}/cache /var/cache/libvirt
            mount -t tmpfs tmpfs /run
            mkdir -p /run/sshd /var/lib/libvirt/images
            virtlogd -d
            libvirtd -d
            /usr/sbin/sshd -o ListenAddress={self.address} -o PidFile=/run/sshd.pid -h {ssh}/host \\
                -o AuthorizedKeysFile={ssh}/authorized_keys -o StrictModes=no -o UsePAM=no \\
                -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no -E {self.state}/sshd.log
            echo up
            exec sleep infinity
            """))
        init.chmod(0o755)
        self.anchor = subprocess.Popen(["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation",
                                        "private", str(init)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        (self.state / "anchor.pid").write_text(f"{self.anchor.pid}\n")  # for the cleanup after a killed run
        line = self.anchor.stdout.readline()  # type: ignore[union-attr]
        if line.strip() != "up":
            raise RuntimeError(f"libvirt host {self.name} did not start: {self.anchor.stderr.read()}")  # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while self.virsh("version", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"libvirt host {self.name}: libvirtd does not answer")
            time.sleep(0.5)

    def anchor_pid(self) -> Optional[int]:
        """The process holding this host's mount namespace: this run's, or one a killed run left."""
        if self.anchor is not None:
            return self.anchor.pid if self.anchor.poll() is None else None
        try:
            pid = int((self.state / "anchor.pid").read_text())
        except (OSError, ValueError):
            return None
        # Still the anchor: a sleep in another mount namespace than ours.
        try:
            same = os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
            comm = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return None
        return pid if comm == "sleep" and not same else None

    def _root(self) -> pathlib.Path:
        """This host's file system as it sees it (its /run, its /var/lib/libvirt)."""
        return pathlib.Path(f"/proc/{self.anchor_pid()}/root")

    def virsh(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """virsh on the host itself (the test's own view, not through ssh)."""
        return _run("nsenter", "-t", str(self.anchor_pid()), "-m", "-n", "virsh", "-c", "qemu:///system", *args,
                    check=check, timeout=timeout)

    def daemon_pids(self) -> dict[str, int]:
        found = {}
        for name, pid_file in (("libvirtd", "run/libvirtd.pid"), ("virtlogd", "run/virtlogd.pid"),
                               ("sshd", "run/sshd.pid")):
            try:
                found[name] = int((self._root() / pid_file).read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return found

    def qemu_pids(self) -> list[int]:
        """The QEMU processes of this host's domains (libvirt writes each one's pid under its own /run)."""
        pids = []
        for pid_file in (self._root() / "run" / "libvirt" / "qemu").glob("*.pid"):
            try:
                pids.append(int(pid_file.read_text().strip()))
            except (OSError, ValueError):
                pass
        return pids

    def cut(self) -> None:
        """Its cables out of the switch: nothing of this host reaches the LAN."""
        for role in BRIDGES:
            _in(SWITCH, "ip", "link", "set", self.cable(role), "down")

    def reconnect(self) -> None:
        for role in BRIDGES:
            _in(SWITCH, "ip", "link", "set", self.cable(role), "up")

    def stop(self) -> None:
        """Domains off and undefined, daemons stopped by their pids, the namespace and its state removed."""
        anchor = self.anchor_pid()
        if anchor is not None:
            names = self.virsh("list", "--all", "--name", check=False).stdout.split()
            for name in names:
                self.virsh("destroy", name, check=False)
                self.virsh("undefine", name, "--nvram", check=False)
            for pid in self.qemu_pids():
                _kill(pid, signal.SIGKILL, wait=5)
            pids = self.daemon_pids()
            for name in ("sshd", "libvirtd", "virtlogd"):
                if name in pids:
                    _kill(pids[name])
            _kill(anchor, signal.SIGKILL, wait=5)
        _run("ip", "netns", "del", self.netns, check=False)
        shutil.rmtree(self.state, ignore_errors=True)


@dataclass
class TwoHostLan:
    """The switch, its cables to the Pulumi host and a client, and the libvirt hosts."""

    networks: Sequence[Network]
    hosts: Sequence[LibvirtHost]
    client_cidr: str  # the client's address on the frontend LAN
    started: list[str] = field(default_factory=list)

    def host(self, name: str) -> LibvirtHost:
        return next(h for h in self.hosts if h.name == name)

    def start(self, authorized_key: str) -> None:
        self.stop()  # what a killed run left
        _run("ip", "netns", "add", SWITCH)
        self.started.append(SWITCH)
        _in(SWITCH, "ip", "link", "set", "lo", "up")
        for network in self.networks:
            bridge = f"sw-{network.role[:4]}"
            _in(SWITCH, "ip", "link", "add", bridge, "type", "bridge")
            _in(SWITCH, "ip", "link", "set", bridge, "up")
            # The Pulumi host: the gateway address on each network.
            pulumi_end = f"{PREFIX}-pl-{network.role[:4]}"
            _run("ip", "link", "add", pulumi_end, "type", "veth", "peer", "name", "to-pulumi", "netns", SWITCH)
            _in(SWITCH, "ip", "link", "set", "to-pulumi", "name", f"pl-{network.role[:4]}")
            _in(SWITCH, "ip", "link", "set", f"pl-{network.role[:4]}", "master", bridge, "up")
            _run("ip", "address", "add", network.gateway_cidr, "dev", pulumi_end)
            _run("ip", "link", "set", pulumi_end, "up")
        _run("ip", "netns", "add", CLIENT)
        self.started.append(CLIENT)
        _in(CLIENT, "ip", "link", "set", "lo", "up")
        _run("ip", "link", "add", f"{PREFIX}-cl", "type", "veth", "peer", "name", "lan", "netns", CLIENT)
        _run("ip", "link", "set", f"{PREFIX}-cl", "netns", SWITCH)
        _in(SWITCH, "ip", "link", "set", f"{PREFIX}-cl", "master", "sw-fron", "up")
        _in(CLIENT, "ip", "address", "add", self.client_cidr, "dev", "lan")
        _in(CLIENT, "ip", "link", "set", "lan", "up")
        for host in self.hosts:
            self.started.append(host.netns)
            host.start(authorized_key)

    def client(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """A command in the client namespace (a machine on the LAN that is neither the Pulumi host nor a hypervisor)."""
        return _in(CLIENT, *command, check=False, timeout=timeout)

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()
        for network in self.networks:
            _run("ip", "link", "del", f"{PREFIX}-pl-{network.role[:4]}", check=False)
        for netns in (CLIENT, SWITCH):
            _run("ip", "netns", "del", netns, check=False)
        self.started.clear()
