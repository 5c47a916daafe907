"""The lab in network namespaces: the program's rendered configs, run by real keepalived and HAProxy.

One namespace per host (lb01, lb02, every web server, a client) and a switch namespace holding one
bridge per lab network; nothing touches the root namespace's interfaces. Each host also gets its own
PID and mount namespace (unshare), so `pidof haproxy` on lb01 sees lb01 only, /run is private, and the
files the program renders sit at their real paths (bind mounts) where the daemons, the activate script
and the rollout script expect them.

Two documented exceptions to "configs used unmodified": there is no systemd in a namespace, so
/usr/bin/systemctl is a stand-in (tests/netns/systemctl) that does what Debian's units do; and keepalived's
event-driven `vrrp_track_process` cannot listen for process events outside the initial namespaces, so the
configs are rendered with it off (`harness_config`) and HAProxy's death is found by the polled track
script only (the VM end-to-end test covers the event path).

Load balancers are set up as cloud-init leaves a fresh image: the activate script runs by its path (its
rendered mode decides whether it can), the `debian` login user has cloud-init's sudo rule, and the rollout
scripts run as that user (`as_login_user`), so whatever needs root must go through `sudo -n`. `reboot`
ends every process and the kernel's runtime state, then starts only what boot would.

Web servers are stand-ins (tests/netns/web_standin.py) answering on the configured ports with their
name, HTTPS with a throwaway certificate; with `NetnsLab(..., nginx=True)` they are real nginx instead
(Debian's nginx.conf, the rendered site and the certificate its activate script makes), for the
throughput benchmark. Processes are stopped by pid; killing a host's namespace
init ends everything in that host.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import pathlib
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from ipaddress import IPv4Address
from typing import Any, Callable, Iterable, Optional

from components.offline import write_render
from components.program_run import run_program
from components.render import LOAD_BALANCER, PATHS, Host, lab_hosts
from components.settings import LabSettings, load_settings

HERE = pathlib.Path(__file__).resolve().parent
SYSTEMCTL_STANDIN = HERE / "systemctl"
WEB_STANDIN = HERE / "web_standin.py"
CLIENT = HERE / "client.py"
NAMESPACE_PREFIX = "ha-lb-test-"
SWITCH = "switch"
CLIENT_HOST = "client"
STATS_PASSWORD = "correct-horse-battery"
# An address from TEST-NET-2 (RFC 5737) each VIP watch adds and removes on lo when it ends, to prove it listened.
HEARTBEAT_ADDRESS = "198.51.100.77"
# The cloud image's login user (Debian's `debian`), under a uid no account of the test host has.
LOGIN_USER, LOGIN_UID = "debian", 61999
# Where the systemctl stand-in reads the boot's state (`is-system-running`), in each host's private /run.
BOOT_STATE_FILE = "/run/ha-lb-boot-state"
# What haproxy's and keepalived's Debian packages enable when installed (dh_installsystemd's default).
DEBIAN_ENABLED_UNITS = ("haproxy", "keepalived")
# Where cloud-init writes unit files of its own (the boot gate's): each load balancer's private copy.
LOCAL_UNITS = str(pathlib.Path(PATHS.boot_finished_unit).parent)


# The host's init: daemons started by the systemctl stand-in are orphans adopted by it, and a dead one
# must be reaped, or `kill -0` (is-active) would still see the zombie.
REAPER = """
import os, time
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        time.sleep(0.1)
"""


# HAProxy's admin socket, without socat: send stdin, print the answer.
_ADMIN_SOCKET_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect("/run/haproxy/admin.sock")
s.sendall(sys.stdin.buffer.read())
s.shutdown(socket.SHUT_WR)
while chunk := s.recv(65536):
    sys.stdout.buffer.write(chunk)
"""


class HarnessError(RuntimeError):
    pass


def harness_config(vrrp: Optional[dict] = None, **overrides: Any) -> dict[str, Any]:
    """A stack config for the harness. One of the two documented exceptions to "configs used unmodified"
    is here: the kernel's process-event connector exists only in the initial network and PID namespace, so
    keepalived's event-driven HAProxy tracking is rendered off (vrrp.trackProcess: false)."""
    from tests.keys import key_config

    return {**key_config(), "statsPassword": STATS_PASSWORD, "vrrp": {**(vrrp or {}), "trackProcess": False},
            **overrides}


def polled_failover_seconds(settings: LabSettings) -> float:
    """VRRP's bound when HAProxy dies on the master and only the polled check sees it: two failed checks
    (`fall 2`), then the master-down interval. The other bounds here are multiples of it."""
    return 2 * settings.vrrp.check_interval + settings.vrrp.master_down_interval


def run(command: list[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise HarnessError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    return result


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def remove_stale_namespaces() -> None:
    """A run that was killed leaves its namespaces (named after its pid): stop their processes (by pid)
    and delete them. Labs of live test processes are left alone."""
    for line in run(["ip", "netns", "list"]).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name.startswith(NAMESPACE_PREFIX):
            continue
        owner = name[len(NAMESPACE_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and pathlib.Path(f"/proc/{owner}").exists():
            continue
        for pid in run(["ip", "netns", "pids", name], check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        run(["ip", "netns", "del", name], check=False)


@dataclasses.dataclass
class NamespaceHost:
    """A host: a network namespace plus its own PID and mount namespaces (entered through init_pid)."""

    name: str
    netns: str
    unshare: Optional[subprocess.Popen] = None
    init_pid: Optional[int] = None

    def start(self, setup: str) -> None:
        """Start the host's namespace init after `setup` (shell run as root inside its mount namespace)."""
        script = f"set -eu\n{setup}\necho ready\nexec {sys.executable} -c {shlex.quote(REAPER)}\n"
        self.unshare = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "--pid", "--fork", "--mount-proc", "--mount",
             "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.unshare.stdout.readline()  # type: ignore[union-attr]
        if line.strip() != "ready":
            self.unshare.wait(timeout=5)
            raise HarnessError(f"{self.name}: namespace setup failed: {self.unshare.stderr.read().strip()}")  # type: ignore[union-attr]
        children = pathlib.Path(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children").read_text().split()
        self.init_pid = int(children[0])

    def command(self, command: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.init_pid), "-p", "-m", "-n", "--", *command]

    def exec(self, command: list[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return run(self.command(command), check=check, timeout=timeout)

    def shell(self, script: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return self.exec(["sh", "-c", script], check=check, timeout=timeout)

    def stop(self) -> None:
        if self.init_pid is not None:
            try:
                os.kill(self.init_pid, signal.SIGKILL)  # the PID namespace ends with its init
            except ProcessLookupError:
                pass
        if self.unshare is not None:
            try:
                self.unshare.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.unshare.kill()
                self.unshare.wait(timeout=5)
            for stream in (self.unshare.stdout, self.unshare.stderr):
                if stream:
                    stream.close()
        self.unshare, self.init_pid = None, None


@dataclasses.dataclass
class LoadRun:
    """A bounded client load loop in the client namespace; results are one dict per request."""

    process: subprocess.Popen
    output: pathlib.Path

    def wait(self, timeout: float) -> list[dict]:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
        return self.results()

    def stop(self) -> list[dict]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        return self.results()

    def results(self) -> list[dict]:
        lines = self.output.read_text().splitlines() if self.output.exists() else []
        # A line cut short by the loop's stop is not a result.
        return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("}")]


@dataclasses.dataclass
class VipWatch:
    """`ip monitor` on every load balancer: when each one held the VIP, to the millisecond."""

    lab: "NetnsLab"
    monitors: dict[str, subprocess.Popen] = dataclasses.field(default_factory=dict)
    outputs: dict[str, pathlib.Path] = dataclasses.field(default_factory=dict)
    initial: dict[str, bool] = dataclasses.field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0

    def __enter__(self) -> "VipWatch":
        for lb in self.lab.load_balancer_names:
            path = self.lab.workdir / f"vip-watch-{lb}-{secrets.token_hex(3)}.log"
            self.outputs[lb] = path
            self.monitors[lb] = subprocess.Popen(
                ["ip", "-n", self.lab.netns(lb), "-ts", "monitor", "address"],
                stdout=path.open("w"), stderr=subprocess.STDOUT)
        time.sleep(0.2)  # the monitors are listening before the initial state is read
        self.started = time.time()
        self.initial = {lb: self.lab.holds_vip(lb) for lb in self.monitors}
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.1)
        self.ended = time.time()
        # Proof of life: an address event each monitor must have logged, so "no overlap" or "no move"
        # can never come from a monitor that saw nothing.
        for lb in self.monitors:
            run(["ip", "-n", self.lab.netns(lb), "addr", "add", f"{HEARTBEAT_ADDRESS}/32", "dev", "lo"])
            run(["ip", "-n", self.lab.netns(lb), "addr", "del", f"{HEARTBEAT_ADDRESS}/32", "dev", "lo"])
        time.sleep(0.2)
        for process in self.monitors.values():
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=5)
        if exc[0] is None:
            deaf = [lb for lb, path in self.outputs.items() if f" {HEARTBEAT_ADDRESS}/32" not in path.read_text()]
            if deaf:
                raise HarnessError(f"the VIP watch on {', '.join(deaf)} saw nothing: its observations cannot count")

    def intervals(self) -> dict[str, list[tuple[float, float]]]:
        """Per LB, the [start, end) times it held the VIP during the watch."""
        marker = f" inet {self.lab.settings.vip}/"
        held: dict[str, list[tuple[float, float]]] = {}
        for lb, path in self.outputs.items():
            since = self.started if self.initial[lb] else None
            spans = []
            for line in path.read_text().splitlines():
                if marker not in line or not line.startswith("["):
                    continue
                stamp = datetime.fromisoformat(line[1:line.index("]")]).timestamp()
                if "Deleted" in line:
                    if since is not None:
                        spans.append((since, stamp))
                    since = None
                elif since is None:
                    since = stamp
            if since is not None:
                spans.append((since, self.ended))
            held[lb] = spans
        return held

    def overlaps(self) -> list[tuple[float, float]]:
        """Moments when more than one LB held the VIP (should be none)."""
        held = list(self.intervals().values())
        found = []
        for i, first in enumerate(held):
            for second in held[i + 1:]:
                for a_start, a_end in first:
                    for b_start, b_end in second:
                        if min(a_end, b_end) > max(a_start, b_start):
                            found.append((max(a_start, b_start), min(a_end, b_end)))
        return found

    def handover_gap(self, leaving: str, taking: str) -> Optional[float]:
        """Seconds from `leaving` dropping the VIP to `taking` adding it: negative when `taking` added it first
        (an overlapping handover); None if either event was not seen."""
        held = self.intervals()
        dropped = next((end for _, end in held[leaving] if end < self.ended), None)
        added = next((start for start, _ in held[taking] if not (self.initial[taking] and start == self.started)), None)
        return None if dropped is None or added is None else added - dropped

    def moves(self) -> int:
        """How many times the VIP was added anywhere during the watch."""
        return sum(len(spans) for spans in self.intervals().values()) - sum(self.initial.values())


class NetnsLab:
    """Build with `with NetnsLab(config) as lab:`; teardown runs even when setup fails halfway."""

    def __init__(self, config: dict[str, Any], stack: str = "netns", nginx: bool = False,
                 client_on_backend: bool = False):
        # nginx: real nginx on the web servers instead of the stand-in. client_on_backend: the client also
        # gets a leg on the backend network, so one client can reach a web server straight (benchmarks).
        self.nginx, self.client_on_backend = nginx, client_on_backend
        self.config = dict(config)
        self.settings: LabSettings = load_settings(self.config, stack)
        self.program = run_program(self.config, stack=stack)
        self.token = secrets.token_hex(2)
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="ha-lb-netns-"))
        self.rendered = self.workdir / "rendered"
        write_render(self.program, self.rendered)
        self.hosts: dict[str, Host] = {host.name: host for host in lab_hosts(self.settings)}
        self.load_balancer_names = [h.name for h in self.hosts.values() if h.role == LOAD_BALANCER]
        self.web_names = [h.name for h in self.hosts.values() if h.role != LOAD_BALANCER]
        self.namespace_hosts: dict[str, NamespaceHost] = {}
        self.ports: dict[str, str] = {}  # "host/interface" -> switch port
        self._private_mounts: dict[str, str] = {}  # load balancer -> its setup lines for /etc
        self.loads: list[LoadRun] = []
        self.strangers: dict[str, str] = {}  # add_stranger's hosts on the frontend network -> their address
        used = {str(nic.address) for host in self.hosts.values() for nic in host.nics} | {str(self.settings.vip)}
        candidates = (str(a) for a in reversed(list(self.settings.frontend.network.hosts())))
        self.client_address = next(a for a in candidates if a not in used)
        backend_candidates = (str(a) for a in reversed(list(self.settings.backend.network.hosts())))
        self.client_backend_address = next(a for a in backend_candidates if a not in used)

    # -- names -------------------------------------------------------------------------------

    def netns(self, host: str) -> str:
        return f"{NAMESPACE_PREFIX}{os.getpid()}-{self.token}-{host}"

    @property
    def vip(self) -> str:
        return str(self.settings.vip)

    def url(self, port: int, path: str = "/") -> str:
        return f"http://{self.vip}:{port}{path}"

    @property
    def http_url(self) -> str:
        return self.url(self.settings.http_port)

    @property
    def stats_url(self) -> str:
        return self.url(self.settings.stats_port, self.settings.stats_path)

    @property
    def primary(self) -> str:
        return max(self.settings.load_balancers, key=lambda lb: lb.priority).name

    @property
    def secondary(self) -> str:
        return min(self.settings.load_balancers, key=lambda lb: lb.priority).name

    def host(self, name: str) -> NamespaceHost:
        return self.namespace_hosts[name]

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "NetnsLab":
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        remove_stale_namespaces()
        self._wire()
        for web in self.web_names:
            self._start_web_server(web)
        for lb in sorted(self.load_balancer_names, key=lambda n: n != self.primary):
            self._start_load_balancer(lb)
        self.wait_for_vip_on(self.primary)
        wait_until(lambda: self.get(self.http_url, timeout=1)["ok"], 20, "HTTP through the VIP")

    def down(self) -> None:
        for load in self.loads:
            if load.process.poll() is None:
                load.process.kill()
                load.process.wait(timeout=5)
        for host in self.namespace_hosts.values():
            host.stop()
        for name in [*self.hosts, CLIENT_HOST, *self.strangers, SWITCH]:
            run(["ip", "netns", "del", self.netns(name)], check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _wire(self) -> None:
        switch = self.netns(SWITCH)
        run(["ip", "netns", "add", switch])
        run(["ip", "-n", switch, "link", "set", "lo", "up"])
        for plan in (self.settings.frontend, self.settings.backend):
            run(["ip", "-n", switch, "link", "add", plan.role, "type", "bridge"])
            run(["ip", "-n", switch, "link", "set", plan.role, "up"])
        wired = [(name, nic.interface, nic.network_role, nic.cidr_address, nic.mac)
                 for name, host in self.hosts.items() for nic in host.nics]
        wired.append((CLIENT_HOST, self.settings.frontend.interface, "frontend",
                      self.settings.frontend.interface_address(IPv4Address(self.client_address)), None))
        if self.client_on_backend:
            wired.append((CLIENT_HOST, self.settings.backend.interface, "backend",
                          self.settings.backend.interface_address(IPv4Address(self.client_backend_address)), None))
        for index, (name, interface, role, cidr, mac) in enumerate(wired):
            netns = self.netns(name)
            if not pathlib.Path(f"/run/netns/{netns}").exists():
                run(["ip", "netns", "add", netns])
                run(["ip", "-n", netns, "link", "set", "lo", "up"])
            port = f"port{index}"
            self.ports[f"{name}/{interface}"] = port
            run(["ip", "-n", switch, "link", "add", port, "type", "veth", "peer", "name", interface, "netns", netns])
            run(["ip", "-n", switch, "link", "set", port, "master", role, "up"])
            if mac:
                run(["ip", "-n", netns, "link", "set", interface, "address", mac])
            run(["ip", "-n", netns, "addr", "add", cidr, "dev", interface])
            run(["ip", "-n", netns, "link", "set", interface, "up"])

    def add_stranger(self, name: str) -> str:
        """A host no config knows of, plugged into the frontend network (a bare network namespace, run things
        in it with `ip netns exec`): its address, the highest free one below the client's."""
        taken = {str(nic.address) for host in self.hosts.values() for nic in host.nics}
        taken |= {self.vip, self.client_address, *self.strangers.values()}
        address = next(str(a) for a in reversed(list(self.settings.frontend.network.hosts())) if str(a) not in taken)
        netns, interface = self.netns(name), self.settings.frontend.interface
        run(["ip", "netns", "add", netns])
        self.strangers[name] = address
        run(["ip", "-n", netns, "link", "set", "lo", "up"])
        port = f"port-{name}"
        self.ports[f"{name}/{interface}"] = port
        run(["ip", "-n", self.netns(SWITCH), "link", "add", port, "type", "veth", "peer", "name", interface, "netns", netns])
        run(["ip", "-n", self.netns(SWITCH), "link", "set", port, "master", self.settings.frontend.role, "up"])
        run(["ip", "-n", netns, "addr", "add",
             self.settings.frontend.interface_address(IPv4Address(address)), "dev", interface])
        run(["ip", "-n", netns, "link", "set", interface, "up"])
        return address

    def _rendered_root(self, host: str) -> pathlib.Path:
        return self.rendered / host / "files"

    def _bind_rendered_files(self, host: str) -> str:
        """Shell lines that put the host's rendered files at their real paths, inside its mount namespace."""
        root = self._rendered_root(host)
        # /etc itself is never hidden: the host sees it through an overlay of its own, where a file directly in /etc
        # (nftables.conf) is a real file that the rollout's `install` can replace (a bind-mounted file cannot be
        # unlinked: EBUSY), and nothing reaches the test host's /etc.
        # The overlay's upper layer persists across the host's reboots, as a disk does.
        upper = self.workdir / host / "etc-overlay"
        first_boot = not upper.exists()
        (upper / "upper").mkdir(parents=True, exist_ok=True)
        (upper / "work").mkdir(exist_ok=True)
        lines = [f"mount -t overlay ha-lb-etc -o lowerdir=/etc,upperdir={upper / 'upper'},workdir={upper / 'work'} /etc"]
        directories: set[str] = set()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            target = "/" + str(path.relative_to(root))
            if target.startswith(LOCAL_UNITS + "/"):  # written into the host's own unit directory instead
                continue
            parent = os.path.dirname(target)
            if parent == "/etc":
                if first_boot:
                    shutil.copy2(path, upper / "upper" / path.name)
            elif parent not in directories:
                directories.add(parent)
                lines.append(f"mount --bind {root / parent.lstrip('/')} {parent}")
        return "\n".join(lines)

    def _private_system_files(self, name: str) -> str:
        """Shell lines giving a load balancer what a fresh cloud image has after cloud-init installed the
        packages: the login user with cloud-init's sudo rule, and the units the packages' postinst enabled
        (haproxy and keepalived; Debian's nftables package enables nothing), in its own /etc."""
        private = self.workdir / name / "etc"
        wants = private / "systemd-system" / "multi-user.target.wants"
        wants.mkdir(parents=True)
        for unit in DEBIAN_ENABLED_UNITS:
            (wants / f"{unit}.service").symlink_to(f"/lib/systemd/system/{unit}.service")
        # Unit files cloud-init writes (write_files) into /etc/systemd/system, beside the links.
        rendered_units = self._rendered_root(name) / LOCAL_UNITS.lstrip("/")
        for unit in rendered_units.glob("*.service") if rendered_units.is_dir() else ():
            shutil.copy2(unit, wants.parent / unit.name)
        passwd = pathlib.Path("/etc/passwd").read_text()
        group = pathlib.Path("/etc/group").read_text()
        (private / "passwd").write_text(passwd + f"{LOGIN_USER}:x:{LOGIN_UID}:{LOGIN_UID}::/tmp:/bin/sh\n")
        (private / "group").write_text(group + f"{LOGIN_USER}:x:{LOGIN_UID}:\n")
        # Password locked, as cloud-init leaves the default user (lock_passwd: usermod --lock puts a "!").
        shadow = pathlib.Path("/etc/shadow")
        (private / "shadow").write_text(shadow.read_text() + f"{LOGIN_USER}:!:20000:0:99999:7:::\n")
        (private / "shadow").chmod(shadow.stat().st_mode & 0o777)
        os.chown(private / "shadow", shadow.stat().st_uid, shadow.stat().st_gid)
        sudoers = private / "sudoers.d"
        sudoers.mkdir()
        (sudoers / "90-cloud-init-users").write_text(f"{LOGIN_USER} ALL=(ALL) NOPASSWD:ALL\n")
        (sudoers / "90-cloud-init-users").chmod(0o440)
        return "\n".join([
            f"mount --bind {private / 'systemd-system'} /etc/systemd/system",
            f"mount --bind {private / 'passwd'} /etc/passwd",
            f"mount --bind {private / 'group'} /etc/group",
            f"mount --bind {private / 'shadow'} /etc/shadow",
            f"mount --bind {sudoers} /etc/sudoers.d",
        ])

    def _load_balancer_setup(self, name: str) -> str:
        return "\n".join([
            "mount -t tmpfs -o mode=0755 ha-lb-run /run",
            "mkdir -p /run/haproxy",
            # The notify script's metrics directory: each load balancer's own, never the test host's.
            "mkdir -p /var/lib/prometheus && mount -t tmpfs -o mode=0755 ha-lb-var-prometheus /var/lib/prometheus",
            f"mount --bind {SYSTEMCTL_STANDIN} /usr/bin/systemctl",
            # A boot is under way until the harness says it finished (systemd: until every boot job is done).
            f"echo starting > {BOOT_STATE_FILE}",
            self._bind_rendered_files(name),
            self._private_mounts[name],
        ])

    def _start_load_balancer(self, name: str) -> None:
        host = NamespaceHost(name, self.netns(name))
        self.namespace_hosts[name] = host
        self._private_mounts[name] = self._private_system_files(name)
        host.start(self._load_balancer_setup(name))
        # What cloud-init's runcmd does on the VM: run the activate script by its path (its mode and
        # shebang decide whether it runs): sysctl, validation, firewall, services. It runs in cloud-final,
        # a boot job: the boot finishes after it.
        host.exec([PATHS.activate])
        self.finish_boot(name)

    def finish_boot(self, name: str) -> None:
        """The load balancer's boot has finished: `systemctl is-system-running` says "running" from now on."""
        self.host(name).shell(f"echo running > {BOOT_STATE_FILE}")

    def as_login_user(self, name: str, script: str, check: bool = False) -> subprocess.CompletedProcess:
        """Run a script as `pulumi up`'s commands run on the VM: as the unprivileged login user, one
        command string for its shell; what needs root goes through `sudo -n`."""
        return self.host(name).exec(["runuser", "-u", LOGIN_USER, "--", "sh", "-c", script], check=check, timeout=60)

    def reboot(self, name: str, boot_finishes: bool = True) -> None:
        """A load balancer reboots: every process ends, the kernel forgets its runtime state (firewall,
        addresses keepalived added, sysctls), then boot starts what systemd would: sysctl.d, and the units
        linked in multi-user.target.wants. cloud-init's runcmd does not run again (same instance). With
        boot_finishes=False the boot stays under way (as a slow one does) until `finish_boot`."""
        host = self.host(name)
        host.stop()
        netns = self.netns(name)
        run(["ip", "netns", "exec", netns, "nft", "flush", "ruleset"])
        for nic in self.hosts[name].nics:
            run(["ip", "-n", netns, "addr", "flush", "dev", nic.interface])
            run(["ip", "-n", netns, "addr", "add", nic.cidr_address, "dev", nic.interface])
        for key in ("net.ipv4.ip_nonlocal_bind", "net.ipv4.ip_forward"):
            run(["ip", "netns", "exec", netns, "sysctl", "--quiet", "-w", f"{key}=0"])
        host.start(self._load_balancer_setup(name))
        host.shell("for f in /etc/sysctl.d/*.conf; do sysctl --quiet -p \"$f\"; done\n"
                   # nftables.service runs before the network is up (Before=network-pre.target).
                   "if [ -e /etc/systemd/system/multi-user.target.wants/nftables.service ]; then systemctl start nftables; fi\n"
                   "for link in /etc/systemd/system/multi-user.target.wants/*.service; do\n"
                   "    unit=${link##*/}; [ \"$unit\" = nftables.service ] || systemctl start \"$unit\"\n"
                   "done")
        if boot_finishes:
            self.finish_boot(name)

    def _start_nginx_web_server(self, name: str) -> None:
        """A web server as its VM runs it: Debian's nginx.conf with the rendered site, the certificate made
        by the rendered activate script's own lines (those before its first `systemctl`: there is no
        nginx unit in the systemctl stand-in), then what its `systemctl restart nftables nginx` does."""
        host = NamespaceHost(name, self.netns(name))
        self.namespace_hosts[name] = host
        private = self.workdir / name
        for directory in ("ssl-certs", "ssl-private", "nginx-log"):
            (private / directory).mkdir(parents=True)
        (private / "ssl-private").chmod(0o700)
        shutil.copytree("/etc/nginx/sites-enabled", private / "sites-enabled", symlinks=True)
        host.start("\n".join([
            "mount -t tmpfs -o mode=0755 ha-lb-run /run",
            self._bind_rendered_files(name),
            f"mount --bind {private / 'ssl-certs'} {os.path.dirname(PATHS.tls_certificate)}",
            f"mount --bind {private / 'ssl-private'} {os.path.dirname(PATHS.tls_key)}",
            f"mount --bind {private / 'sites-enabled'} /etc/nginx/sites-enabled",
            f"mount --bind {private / 'nginx-log'} /var/log/nginx",
        ]))
        host.shell(f"sh -eu -c \"$(sed '/^systemctl /,$d' {PATHS.activate})\"")
        host.exec(["nft", "-f", PATHS.nftables])
        self.start_web(name)

    def _start_web_server(self, name: str) -> None:
        if self.nginx:
            return self._start_nginx_web_server(name)
        host = NamespaceHost(name, self.netns(name))
        self.namespace_hosts[name] = host
        directory = self.workdir / name
        directory.mkdir()
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")])
        host.start("mount -t tmpfs -o mode=0755 ha-lb-run /run")
        # The web server's own rendered firewall: health checks and traffic must pass it.
        host.exec(["nft", "-f", str(self._rendered_root(name) / PATHS.nftables.lstrip("/"))])
        self.start_web(name)

    # -- faults and repairs ------------------------------------------------------------------

    def start_web(self, name: str) -> None:
        host, address = self.host(name), self.hosts[name].address
        directory = self.workdir / name
        if self.nginx:  # as Debian's nginx.service starts it; /run/web.pid names its master
            host.exec(["nginx", "-t", "-q", "-g", "daemon on; master_process on;"])
            host.exec(["nginx", "-g", "daemon on; master_process on;"])
            host.shell("ln -sf nginx.pid /run/web.pid")
        else:
            subprocess.Popen(host.command(
                [sys.executable, str(WEB_STANDIN), name, str(address), str(self.settings.web_http_port),
                 str(self.settings.web_https_port), str(directory / "cert.pem"), str(directory / "key.pem"),
                 "/run/web.pid"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: host.exec(["test", "-s", "/run/web.pid"], check=False).returncode == 0, 10,
                   f"{name}'s web stand-in")
        wait_until(lambda: host.exec(["python3", "-c", (
            "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)"),
            str(address), str(self.settings.web_http_port)], check=False).returncode == 0, 10, f"{name} listening")

    def kill_web(self, name: str) -> None:
        if self.nginx:  # nginx's workers outlive a killed master: every nginx process of this host
            self.host(name).shell("kill -KILL $(pidof nginx) && rm /run/web.pid /run/nginx.pid")
            return
        self.host(name).shell("kill -KILL $(cat /run/web.pid) && rm /run/web.pid")

    def web_certificate_sha256(self, name: str) -> str:
        """The fingerprint a client sees when its TLS session ends at this web server."""
        pem = (self.workdir / name / ("ssl-certs/" + os.path.basename(PATHS.tls_certificate) if self.nginx
                                      else "cert.pem")).read_text()
        body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
        return hashlib.sha256(base64.b64decode(body)).hexdigest()

    def systemctl(self, name: str, verb: str, unit: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.host(name).exec(["systemctl", verb, unit], check=check)

    def kill_haproxy(self, name: str) -> None:
        """HAProxy dies (master and workers, SIGKILL): what a crash or the OOM killer does."""
        host = self.host(name)
        host.shell("for pid in $(pidof haproxy); do kill -KILL $pid 2>/dev/null || true; done")
        wait_until(lambda: host.exec(["pidof", "haproxy"], check=False).returncode != 0, 5, f"HAProxy gone on {name}")

    def cut_link(self, name: str, interface: str = "frontend") -> None:
        """Pull the cable: the switch port goes down, so the host loses carrier on that interface."""
        run(["ip", "-n", self.netns(SWITCH), "link", "set", self.ports[f"{name}/{interface}"], "down"])

    def restore_link(self, name: str, interface: str = "frontend") -> None:
        run(["ip", "-n", self.netns(SWITCH), "link", "set", self.ports[f"{name}/{interface}"], "up"])

    def keepalived_log(self, name: str) -> str:
        return self.host(name).exec(["cat", "/run/keepalived.log"], check=False).stdout

    def heal(self) -> None:
        """Every service up, every link up, the VIP on the primary and the peer settled as backup."""
        vrrp = self.settings.vrrp
        bound = 3 * (polled_failover_seconds(self.settings) + 1)
        for web in self.web_names:
            if self.host(web).exec(["test", "-s", "/run/web.pid"], check=False).returncode != 0:
                self.start_web(web)
        for lb in self.load_balancer_names:
            self.finish_boot(lb)
            self.restore_link(lb)
            self.systemctl(lb, "start", "haproxy")
            self.systemctl(lb, "start", "keepalived")
        holder = wait_until(self.vip_holders, bound, "a VIP holder")[0]
        if holder != self.primary and not vrrp.preempt:
            # Without preemption the VIP stays where it is: hand it back by restarting the holder's keepalived.
            self.systemctl(holder, "stop", "keepalived")
            self.wait_for_vip_on(self.primary, timeout=bound)
            self.systemctl(holder, "start", "keepalived")
        self.wait_for_vip_on(self.primary, timeout=bound)
        wait_until(lambda: self.get(self.http_url, timeout=1)["ok"], 10, "HTTP through the VIP")
        time.sleep(vrrp.master_down_interval)

    # -- observation -------------------------------------------------------------------------

    def server_states(self) -> dict[str, str]:
        """HAProxy's view on the VIP holder (its admin socket): "backend/server" -> UP, DOWN, ..."""
        holder = self.vip_holders()[0]
        output = self.host(holder).shell("echo 'show servers state' | "
                                         f"{sys.executable} -c {shlex.quote(_ADMIN_SOCKET_CLIENT)}").stdout
        states = {}
        for line in output.splitlines():
            fields = line.split()
            if len(fields) > 6 and fields[0].isdigit():
                states[f"{fields[1]}/{fields[3]}"] = {"0": "DOWN", "1": "STARTING", "2": "UP", "3": "STOPPING"}.get(
                    fields[5], fields[5])
        return states

    def wait_until_server_down(self, name: str, timeout: float = 10) -> None:
        wait_until(lambda: all(state == "DOWN" for key, state in self.server_states().items()
                               if key.endswith(f"/{name}")), timeout, f"HAProxy marking {name} down")

    def holds_vip(self, name: str) -> bool:
        out = run(["ip", "-n", self.netns(name), "-o", "-4", "addr", "show", "dev", self.settings.frontend.interface]).stdout
        return f" {self.vip}/" in out

    def vip_holders(self) -> list[str]:
        return [lb for lb in self.load_balancer_names if self.holds_vip(lb)]

    def wait_for_vip_on(self, name: str, timeout: float = 20) -> None:
        wait_until(lambda: self.vip_holders() == [name], timeout, f"the VIP on {name} alone")

    def _client_command(self, host: str, *arguments: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns(host), sys.executable, str(CLIENT), *arguments]

    def client(self, *arguments: str, timeout: float = 30, host: str = CLIENT_HOST) -> dict:
        """tests/netns/client.py in a host's network namespace (the client's unless told): its JSON answer."""
        result = run(self._client_command(host, *arguments), timeout=timeout)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def get(self, url: str, timeout: float = 2, user: Optional[str] = None, password: Optional[str] = None) -> dict:
        extra = ["--user", user, "--password", password] if user is not None else []
        return self.client("get", url, "--timeout", str(timeout), *extra)

    def tls(self, port: int) -> dict:
        return self.client("tls", self.vip, str(port))

    def rate(self, url: str, duration: float, connections: int = 4, host: str = CLIENT_HOST) -> dict:
        return self.client("rate", url, "--duration", str(duration), "--connections", str(connections),
                           timeout=duration + 30, host=host)

    def load(self, url: Optional[str] = None, duration: float = 10, interval: float = 0.02,
             timeout: float = 0.5) -> LoadRun:
        """Start a bounded load loop (one request every `interval` s, each with `timeout`)."""
        output = self.workdir / f"load-{len(self.loads)}.jsonl"
        process = subprocess.Popen(
            self._client_command(CLIENT_HOST, "load", url or self.http_url, "--duration", str(duration),
                                 "--interval", str(interval), "--timeout", str(timeout)),
            stdout=output.open("w"), stderr=subprocess.DEVNULL)
        run_ = LoadRun(process, output)
        self.loads.append(run_)
        wait_until(lambda: output.stat().st_size > 0, 10, "the first request of the load loop")
        return run_

    def web_address(self, name: str) -> str:
        return str(self.hosts[name].address)


# -- reading load results ----------------------------------------------------------------------

def server_of(result: dict) -> Optional[str]:
    body = result.get("body") or ""
    return body.split()[2] if body.startswith("served by ") else None


@dataclasses.dataclass(frozen=True)
class Outage:
    failed: int  # client requests that failed after the fault
    seconds: float  # from the fault to the first good answer after the last failure (0 when none failed)
    answered_after: bool  # a good answer came after the fault


def outage_after(results: Iterable[dict], fault_at: float) -> Outage:
    after = sorted((r for r in results if r["t"] + r["elapsed"] >= fault_at), key=lambda r: r["t"])
    failures = [r for r in after if not r["ok"]]
    if not failures:
        return Outage(0, 0.0, any(r["ok"] for r in after))
    last_failure = failures[-1]["t"]
    recovered = [r for r in after if r["ok"] and r["t"] > last_failure]
    if not recovered:
        return Outage(len(failures), float("inf"), False)
    return Outage(len(failures), recovered[0]["t"] + recovered[0]["elapsed"] - fault_at, True)
