"""The state of a lab the program built, seen from the Pulumi host over SSH.

    python -m components.status [STACK] [--json]

Shows which load balancer holds the VIP, each one's VRRP state and when it last changed (as keepalived's
notify script recorded it for the metrics), each backend server's state in each HAProxy, and every VM's
services. Exit status, as monitoring plugins use it: 0 healthy; 1 degraded (the pair serves and can fail
over, but something is down: a backend server HAProxy sends no traffic to, a service, a web server out of
reach, still booting); 2 the pair is unhealthy (no load balancer or both hold the VIP, one is in FAULT,
stopped, still booting or out of reach, or the holder's HAProxy is down); 3 the lab could not be read. A server HAProxy still serves from but
whose last check failed (`UP 1/2`: one more failure takes it out, as `fall` allows) or that HAProxy has not
checked yet since it started is a note, not a problem: it is what `fall` is there to absorb.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from .lab_access import Lab, LabAccessError, Ssh, lab_from_stack
from .render import LOAD_BALANCER, PATHS, SERVICES, VRRP_STATES, Host
from .settings import FRONTEND_INTERFACE

OK, DEGRADED, UNHEALTHY, UNKNOWN = 0, 1, 2, 3
LEVELS = {OK: "healthy", DEGRADED: "degraded", UNHEALTHY: "UNHEALTHY", UNKNOWN: "unknown"}
# A VM that does not answer within this is reported out of reach (emulated guests answer in about a second).
PROBE_TIMEOUT_SECONDS = 20
# What `systemctl is-system-running` says while boot jobs still run (systemctl(1)); then "running", or "degraded"
# when a unit failed. A booting load balancer is kept out of the election (keepalived's boot check), and its VRRP
# state on file is the one its shutdown wrote (STOP).
BOOTING = ("initializing", "starting")
# HAProxy `show stat` CSV columns (management guide, "9.1. CSV format"): 0 pxname, 1 svname, 17 status,
# 36 check_status (the last check's result: L7OK, L4TOUT, L4CON...; INI before the first check; empty without;
# prefixed with "* " while a check runs).
_PROXY, _SERVER, _STATUS, _CHECK_STATUS = 0, 1, 17, 36
# HAProxy's status for a server it sends traffic to (stats.c, srv_hlt_st): UP, or "UP 1/2" while it counts
# failed checks towards `fall` (also right after a start: health begins at `rise`, "will fall down at first
# failure", server.c), or "no check".
_SERVING = ("UP", "no check")

_HAPROXY_SERVERS = f"""\
import socket
connection = socket.socket(socket.AF_UNIX)
connection.settimeout(5)
connection.connect("{PATHS.haproxy_socket}")
connection.sendall(b"show stat\\n")
answer = b""
while chunk := connection.recv(65536):
    answer += chunk
for line in answer.decode().splitlines():
    fields = line.split(",")
    if len(fields) > {_CHECK_STATUS} and not line.startswith("#") and fields[{_SERVER}] not in ("FRONTEND", "BACKEND"):
        print("server", fields[{_PROXY}], fields[{_SERVER}], fields[{_STATUS}].replace(" ", "_"),
              fields[{_CHECK_STATUS}].replace(" ", "_") or "-")
"""


def probe_script(host: Host, vip: str) -> str:
    """What runs on a VM (`sh -s`): one line per fact, `KIND ARGS...`."""
    lines = ["set -u", "echo clock $(date +%s)", 'echo system "$(systemctl is-system-running)"']
    lines += [f'echo service {unit} "$(systemctl is-active {unit}.service)"' for unit in SERVICES[host.role]]
    if host.role == LOAD_BALANCER:
        lines += [
            f"if ip -o -4 addr show dev {FRONTEND_INTERFACE} | grep -qF ' {vip}/'; then echo vip held; "
            f"else echo vip not-held; fi",
            # The notify script's metrics: `keepalived_vrrp_state{instance="I",state="S"} 1` and the transition time.
            f"sed -n -e 's/^keepalived_vrrp_state{{instance=\"\\([^\"]*\\)\",state=\"\\([A-Z]*\\)\"}} 1$/vrrp \\1 \\2/p' "
            f"-e 's/^keepalived_vrrp_last_transition_timestamp_seconds{{instance=\"\\([^\"]*\\)\"}} \\([0-9.]*\\)$/since \\1 \\2/p' "
            f"{PATHS.vrrp_metrics} 2>/dev/null || true",
            f"sudo -n python3 - <<'PYTHON' 2>/dev/null || echo servers unreadable\n{_HAPROXY_SERVERS}PYTHON",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class VrrpInstance:
    name: str
    state: str  # one of VRRP_STATES, or "unknown" (no notify has run yet)
    since: Optional[float]  # Unix time of the last transition


@dataclass(frozen=True)
class BackendServer:
    proxy: str
    server: str
    status: str  # HAProxy's: UP, DOWN, MAINT, "UP 1/2" (going down), "DOWN 1/2" (going up), "no check"...
    last_check: str = ""  # HAProxy's check_status: L7OK, L4TOUT, INI (not checked yet)...; "" without checks

    def seen_by(self, node: str) -> str:
        """How a problem or note names it."""
        return f"{node}: HAProxy sees {self.proxy}/{self.server} {self.status}"

    @property
    def serving(self) -> bool:
        """HAProxy sends it traffic."""
        return self.status in _SERVING or self.status.startswith("UP ")

    @property
    def note(self) -> str:
        """Why a serving server is not plainly UP, or ""."""
        if not self.serving or self.status in _SERVING:
            return ""
        if self.last_check == "INI":
            return "not checked yet since HAProxy started"
        return f"its last check failed ({self.last_check or 'unknown'}); one more failure as `fall` counts takes it out"


@dataclass(frozen=True)
class NodeStatus:
    name: str
    role: str
    address: str
    reachable: bool
    error: str = ""
    clock: Optional[float] = None
    system: str = ""  # systemd's state (`systemctl is-system-running`)
    services: dict[str, str] = field(default_factory=dict)
    holds_vip: bool = False
    vrrp: tuple[VrrpInstance, ...] = ()
    servers: tuple[BackendServer, ...] = ()
    servers_readable: bool = True

    @property
    def booting(self) -> bool:
        return self.system in BOOTING


def parse_probe(host: Host, output: str) -> NodeStatus:
    """A node's status from probe_script's output."""
    clock, system, services, holds_vip, states, since, servers, readable = None, "", {}, False, {}, {}, [], True
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        words = rest.split()
        if kind == "clock" and words:
            clock = float(words[0])
        elif kind == "system":
            system = words[0] if words else "unknown"
        elif kind == "service" and len(words) == 2:
            services[words[0]] = words[1]
        elif kind == "vip" and words:
            holds_vip = words[0] == "held"
        elif kind == "vrrp" and len(words) == 2 and words[1] in VRRP_STATES:
            states[words[0]] = words[1]
        elif kind == "since" and len(words) == 2:
            since[words[0]] = float(words[1])
        elif kind == "server" and len(words) == 4:
            last_check = "" if words[3] == "-" else words[3].replace("_", " ").removeprefix("* ")
            servers.append(BackendServer(words[0], words[1], words[2].replace("_", " "), last_check))
        elif kind == "servers" and words == ["unreadable"]:
            readable = False
    missing = [unit for unit in SERVICES[host.role] if unit not in services]
    if clock is None or missing:
        return NodeStatus(host.name, host.role, str(host.address), reachable=False,
                          error=f"unexpected answer: {output.strip()[:200] or '(nothing)'}")
    instances = tuple(VrrpInstance(name, states.get(name, "unknown"), since.get(name))
                      for name in sorted(set(states) | set(since)))
    return NodeStatus(host.name, host.role, str(host.address), True, clock=clock, system=system, services=services,
                      holds_vip=holds_vip, vrrp=instances, servers=tuple(servers), servers_readable=readable)


def probe(lab: Lab, ssh: Ssh, host: Host) -> NodeStatus:
    result = ssh.run(str(host.address), "sh -s", timeout=PROBE_TIMEOUT_SECONDS, stdin=probe_script(host, lab.vip))
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        return NodeStatus(host.name, host.role, str(host.address), reachable=False, error=reason)
    return parse_probe(host, result.stdout)


@dataclass(frozen=True)
class LabStatus:
    stack: str
    vip: str
    nodes: tuple[NodeStatus, ...]
    level: int
    problems: tuple[str, ...]

    @property
    def holders(self) -> list[str]:
        return [node.name for node in self.nodes if node.role == LOAD_BALANCER and node.holds_vip]

    @property
    def holder(self) -> Optional[str]:
        return self.holders[0] if len(self.holders) == 1 else None

    @property
    def notes(self) -> tuple[str, ...]:
        """What is worth knowing but not a problem: servers HAProxy serves from that are not plainly UP."""
        return tuple(f"{server.seen_by(node.name)}: {server.note}"
                     for node in self.nodes for server in node.servers if server.note)


def assess(nodes: tuple[NodeStatus, ...]) -> tuple[int, tuple[str, ...]]:
    """(level, problems): UNHEALTHY when the pair cannot serve or cannot fail over, DEGRADED when it can but
    something is down."""
    unhealthy: list[str] = []
    degraded: list[str] = []
    load_balancers = [node for node in nodes if node.role == LOAD_BALANCER]
    for node in load_balancers:
        if not node.reachable:
            unhealthy.append(f"{node.name}: out of reach ({node.error})")
            continue
        if node.booting:
            unhealthy.append(f"{node.name}: booting (systemd: {node.system}); keepalived keeps it out of the "
                             "election until its boot has finished")
        for instance in () if node.booting else node.vrrp or (VrrpInstance("(none)", "unknown", None),):
            if instance.state not in ("MASTER", "BACKUP"):
                unhealthy.append(f"{node.name}: VRRP instance {instance.name} is {instance.state}")
        if node.holds_vip and any(instance.state != "MASTER" for instance in node.vrrp):
            unhealthy.append(f"{node.name}: holds the VIP but is not MASTER")
        if node.holds_vip and node.services.get("haproxy") != "active":
            unhealthy.append(f"{node.name}: holds the VIP but HAProxy is {node.services.get('haproxy')}")
        if not node.servers_readable:
            degraded.append(f"{node.name}: HAProxy's server states are unreadable")
        degraded += [server.seen_by(node.name) for server in node.servers if not server.serving]
    holders = [node.name for node in load_balancers if node.holds_vip]
    if all(node.reachable for node in load_balancers):
        if not holders:
            unhealthy.append("no load balancer holds the VIP")
        elif len(holders) > 1:
            unhealthy.append(f"split brain: {' and '.join(holders)} both hold the VIP")
    for node in nodes:
        if not node.reachable:
            if node.role != LOAD_BALANCER:
                degraded.append(f"{node.name}: out of reach ({node.error})")
            continue
        if node.booting and node.role != LOAD_BALANCER:
            degraded.append(f"{node.name}: booting (systemd: {node.system})")
        degraded += [f"{node.name}: {unit} is {state}" for unit, state in node.services.items()
                     if state != "active" and not (node.role == LOAD_BALANCER and unit == "haproxy" and node.holds_vip)]
    level = UNHEALTHY if unhealthy else DEGRADED if degraded else OK
    return level, tuple(unhealthy + degraded)


def lab_status(lab: Lab, ssh: Ssh) -> LabStatus:
    with ThreadPoolExecutor(max_workers=len(lab.hosts)) as pool:
        nodes = tuple(pool.map(lambda host: probe(lab, ssh, host), lab.hosts))
    level, problems = assess(nodes)
    return LabStatus(lab.settings.stack, lab.vip, nodes, level, problems)


def _ago(since: Optional[float], clock: Optional[float]) -> str:
    if since is None or clock is None:
        return ""
    seconds = max(0, int(clock - since))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
    hours, rest = divmod(seconds, 3600)
    return f"since {stamp} ({f'{hours}h ' if hours else ''}{rest // 60}m {rest % 60}s ago)"


def table_lines(rows: list[list[str]], separator: str = "  ") -> list[str]:
    """Rows as aligned text columns."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [separator.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _server_cell(server: BackendServer) -> str:
    """A server's state in one HAProxy, with the last check's result when it is not plainly UP."""
    shown_check = server.last_check and server.status not in _SERVING
    return f"{server.status} ({server.last_check})" if shown_check else server.status


def format_status(status: LabStatus) -> str:
    holders = status.holders
    held = holders[0] if len(holders) == 1 else " and ".join(holders) if holders else "no load balancer"
    lines = [f"stack {status.stack}: VIP {status.vip} held by {held}: {LEVELS[status.level]}", ""]
    lbs = [node for node in status.nodes if node.role == LOAD_BALANCER]
    webs = [node for node in status.nodes if node.role != LOAD_BALANCER]
    units = list(SERVICES[LOAD_BALANCER])
    rows = [["load balancer", "address", "VIP", "VRRP", *units, "last VRRP transition"]]
    for node in lbs:
        if not node.reachable:
            rows.append([node.name, node.address, "?", "?", *["?"] * len(units), f"out of reach: {node.error}"])
            continue
        vrrp = "booting" if node.booting else ", ".join(f"{i.name} {i.state}" for i in node.vrrp) or "unknown"
        last = "; ".join(_ago(i.since, node.clock) for i in node.vrrp if i.since is not None)
        rows.append([node.name, node.address, "held" if node.holds_vip else "-", vrrp,
                     *[node.services.get(unit, "?") for unit in units], last])
    lines += table_lines(rows)
    servers = sorted({(s.proxy, s.server) for node in lbs for s in node.servers})
    if servers:
        lines.append("")
        rows = [["backend server", *[f"in HAProxy on {node.name}" for node in lbs]]]
        for proxy, server in servers:
            rows.append([f"{proxy}/{server}", *[
                next((_server_cell(s) for s in node.servers if (s.proxy, s.server) == (proxy, server)), "?")
                for node in lbs]])
        lines += table_lines(rows)
    if webs:
        units = list(SERVICES[webs[0].role])
        lines.append("")
        rows = [["web server", "address", *units]]
        rows += [[node.name, node.address, *([node.services.get(unit, "?") for unit in units] if node.reachable
                                             else ["?"] * len(units))] for node in webs]
        lines += table_lines(rows)
    if status.problems:
        lines += ["", "problems:"] + [f"  {problem}" for problem in status.problems]
    if status.notes:
        lines += ["", "notes:"] + [f"  {note}" for note in status.notes]
    return "\n".join(lines)


def status_json(status: LabStatus) -> str:
    document = asdict(status)
    document.update(level=LEVELS[status.level], holders=status.holders, notes=list(status.notes))
    return json.dumps(document, indent=2)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stack", nargs="?", help="the stack (default: the selected one)")
    parser.add_argument("--pulumi", default="pulumi", help="the Pulumi CLI (default: %(default)s)")
    parser.add_argument("--cwd", help="the Pulumi project directory (default: the current one)")


def with_lab(args: argparse.Namespace, command: str, action: Callable[[Lab, Ssh], int]) -> int:
    """Runs `action` on the lab of the stack the arguments name; UNKNOWN, with the reason, when it cannot be read
    or reached."""
    try:
        lab = lab_from_stack(args.stack, args.pulumi, args.cwd)
        ssh = Ssh(lab.private_key, lab.settings.ssh_user)
        try:
            return action(lab, ssh)
        finally:
            ssh.forget_all([str(host.address) for host in lab.hosts])
    except LabAccessError as error:
        print(f"{command}: {error}", file=sys.stderr)
        return UNKNOWN


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.status", description=__doc__.split("\n\n")[0],
                                     epilog="exit status: 0 healthy, 1 degraded, 2 unhealthy pair, 3 unreadable")
    add_stack_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    def show(lab: Lab, ssh: Ssh) -> int:
        status = lab_status(lab, ssh)
        print(status_json(status) if args.json else format_status(status))
        return status.level

    return with_lab(args, "status", show)


if __name__ == "__main__":
    sys.exit(main())
