"""A failover drill against a lab the program built: break the master, watch, restore, report.

    python -m components.drill [STACK] --fault haproxy|keepalived|link|reboot|host [--wait-healthy S]
                               [--request-interval S] [--json FILE]

Refuses unless `python -m components.status` finds the lab healthy (at once, or within --wait-healthy seconds). Then, with requests sent to the VIP from
this host the whole time (one every 20 ms unless --request-interval says otherwise, each on its own connection
whether or not the earlier ones have answered, 0.25 s timeout, for at most the fault's time limit) and each load
balancer's VIP events followed over SSH, it breaks the load balancer holding the VIP:

  haproxy     HAProxy killed with SIGKILL; systemd restarts it (Restart=always), as a crash would go
  keepalived  keepalived stopped, started again once the peer holds the VIP
  link        the frontend link taken down for --link-down seconds (the node restores it itself: SSH runs
              over that link)
  reboot      the node rebooted
  host        the node's whole libvirt host lost: every VM of the lab there powered off at once (`virsh
              destroy`, as a power cut), started again once the peer holds the VIP

and waits until the lab is back in its original state: the master holds the VIP again (with preempt; without
it the peer keeps it) and the status view finds the lab healthy; then it watches for one more hold-down
(`vrrp.preemptDelay`, at least 5 s), so a late move is seen. It prints a table: who took over, the
client's outage and failed requests, the VIP holders seen, how long until the original state.
Exit status: 0 the drill ran and the lab is back; 1 refused (the lab was not healthy first); 2 the lab did
not return to its original state within the time limit; 3 the lab could not be read.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Optional

from .lab_access import Lab, LabAccessError, Ssh, VipHolders, VipPoller, holds_vip, wait_until
from .settings import FRONTEND_INTERFACE
from .status import LEVELS, OK, add_stack_arguments, format_status, lab_status, table_lines, with_lab

FAULTS = ("haproxy", "keepalived", "link", "reboot", "host")
# Faults that cut the master's own VIP events off (its SSH streams die with it).
SILENCING_FAULTS = ("link", "reboot", "host")
# Faults after which the master's SSH connections are gone.
LOSING_FAULTS = ("reboot", "host")
# Upper bounds for a whole drill (fault, failover, repair, failback), chosen for emulated guests, where a
# reboot takes about three minutes: the drill's client and VIP followers never run longer than this.
TIME_LIMIT_SECONDS = {"haproxy": 180, "keepalived": 180, "link": 180, "reboot": 600, "host": 600}
# A request every 20 ms, each given 0.25 s, whether or not the earlier ones have answered: an outage is resolved
# to 20 ms (a client that waited for its requests would resolve it only to the timeout). --request-interval sets
# another rate: the client's own load counts on guests with little CPU (docs/failover.md).
REQUEST_INTERVAL_SECONDS = 0.02
REQUEST_INTERVAL_RANGE = (0.01, 1.0)
REQUEST_TIMEOUT_SECONDS = 0.25
# After the lab is back, it is watched this long more (at least), so a late move shows in "VIP holders seen".
MIN_SETTLE_SECONDS = 5
DEFAULT_LINK_DOWN_SECONDS = 5
# While the master's VIP events say nothing, `ip` over SSH asks it this often whether it holds the VIP again.
MASTER_CHECK_SECONDS = 5
# --wait-healthy: how often the status view asks again.
HEALTH_RETRY_SECONDS = 3
# How long the peer gets to take the VIP before a stopped service is started again regardless.
TAKEOVER_WAIT_SECONDS = 30
REFUSED, NOT_RESTORED = 1, 2


@dataclass(frozen=True)
class DrillResult:
    fault: str
    master: str  # held the VIP before the fault
    took_over: Optional[str]  # the first other load balancer to take it
    took_over_after: Optional[float]  # seconds from the fault
    outage: float  # the failover: the first outage after the fault (VipPoller.failed_runs), in seconds
    longest_outage: float  # the longest outage in the whole drill (the failback's included)
    failed: int
    sent: int
    failback_failed: Optional[int]  # failed requests from a second before the master took the VIP back
    holders_seen: tuple[str, ...]  # each new VIP holder in turn, the master first
    both_held: Optional[float]  # the longest time both held the VIP, by the host's arrival stamps (s)
    back_after: Optional[float]  # seconds from the fault until the original state (None: not reached)
    vip_back_after: Optional[float]  # seconds from the fault until the master held the VIP again
    failback_outage: Optional[float] = None  # the longest outage from a second before the master took the VIP back
    failures: tuple[tuple[float, str], ...] = ()  # each failed request: (seconds after the fault it was sent, why)
    fault_at: Optional[float] = None  # this host's CLOCK_MONOTONIC when the fault was issued (to line up its other records)
    request_interval: float = REQUEST_INTERVAL_SECONDS  # the client's: one request every this many seconds

    @property
    def moves(self) -> int:
        return len(self.holders_seen) - 1


def fault_command(fault: str, link_down: float) -> str:
    """The command that breaks a node, run over SSH as the login user (sudo, as the rollout does)."""
    if fault == "haproxy":
        return "sudo -n systemctl kill --signal=KILL haproxy.service"
    if fault == "keepalived":
        return "sudo -n systemctl stop keepalived.service"
    if fault == "link":
        # Detached, so the link comes back even though this SSH session, which runs over it, is cut.
        inner = f"ip link set {FRONTEND_INTERFACE} down; sleep {link_down:g}; ip link set {FRONTEND_INTERFACE} up"
        return f"sudo -n setsid -f sh -c {shlex.quote(inner)} >/dev/null 2>&1"
    if fault == "reboot":
        return "sudo -n systemctl reboot"
    raise ValueError(f"--fault {fault}: expected one of {', '.join(FAULTS)}")


def repair_command(fault: str) -> Optional[str]:
    """What restores the node once the peer has taken over (None: it comes back by itself)."""
    if fault == "keepalived":
        return "sudo -n systemctl start keepalived.service"
    if fault == "haproxy":
        return "sudo -n systemctl start haproxy.service"  # a no-op once systemd has restarted it
    return None


def virsh(uri: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True, timeout=120)


def host_fault(lab: Lab, master: str, run=virsh) -> tuple[str, list[str]]:
    """Power off every VM of the lab on the master's libvirt host: (the host, the domains stopped)."""
    lb = next(lb for lb in lab.settings.load_balancers if lb.name == master)
    host = lab.settings.host(lb.host)
    domains = [lab.settings.domain_name(vm) for vm in lab.settings.machines_on(host.name)]
    for domain in domains:
        result = run(host.uri, "destroy", domain)
        if result.returncode != 0:
            raise LabAccessError(f"`virsh -c {host.uri} destroy {domain}` failed: {result.stderr.strip()}")
    return host.name, domains


def host_repair(lab: Lab, host: str, domains: list[str], run=virsh) -> None:
    """The host is back: its VMs start again (as autostart would start them at its boot)."""
    uri = lab.settings.host(host).uri
    for domain in domains:
        result = run(uri, "start", domain)
        if result.returncode != 0 and "already active" not in result.stderr:
            raise LabAccessError(f"`virsh -c {uri} start {domain}` failed: {result.stderr.strip()}")


def run_drill(lab: Lab, ssh: Ssh, fault: str, link_down: float = DEFAULT_LINK_DOWN_SECONDS,
              wait_healthy: float = 0, request_interval: float = REQUEST_INTERVAL_SECONDS,
              log=print, run=virsh) -> tuple[Optional[DrillResult], int]:
    """(result, exit status). The result is None when the drill refused to start (the lab not healthy, after
    waiting up to `wait_healthy` s for it)."""
    waited_until = time.monotonic() + wait_healthy
    before = lab_status(lab, ssh)
    while (before.level != OK or before.holder is None) and time.monotonic() + HEALTH_RETRY_SECONDS < waited_until:
        time.sleep(HEALTH_RETRY_SECONDS)
        before = lab_status(lab, ssh)
    if before.level != OK or before.holder is None:
        log(format_status(before))
        log(f"drill refused: the lab is {LEVELS[before.level]}, a drill needs it healthy first")
        return None, REFUSED
    master = before.holder
    peer = next(name for name in lab.load_balancers if name != master)
    placement = {lb.name: lb.host for lb in lab.settings.load_balancers}
    if fault == "host" and placement[master] == placement[peer]:
        log(f"drill refused: {master} and {peer} share the libvirt host {placement[master]!r}; losing it takes both "
            "(the host fault needs the pair on two hosts: the `hosts` setting)")
        return None, REFUSED
    settle = max(MIN_SETTLE_SECONDS, lab.settings.vrrp.preempt_delay)
    limit = TIME_LIMIT_SECONDS[fault] + (link_down if fault == "link" else 0) + settle
    holders = VipHolders(ssh, lab.load_balancers, lab.vip, FRONTEND_INTERFACE, limit=int(limit) + 30)
    try:
        if not holders.wait_ready():
            log("drill refused: no VIP events from the load balancers (`ip monitor` over SSH)")
            return None, REFUSED
        with VipPoller(lab.vip, lab.settings.http_port, interval=request_interval, limit=limit + 10,
                       timeout=REQUEST_TIMEOUT_SECONDS) as poller:
            time.sleep(2)  # a baseline of good answers
            started = time.monotonic()
            log(f"drill: {fault} on {master} (the VIP holder); {peer} should take over")
            lost_host, lost = "", []
            if fault == "host":
                lost_host, lost = host_fault(lab, master, run)
                log(f"drill: host {lost_host} lost: {', '.join(lost)} powered off")
            else:
                result = ssh.run(lab.load_balancers[master], fault_command(fault, link_down), timeout=30)
                if fault != "reboot" and result.returncode != 0:
                    raise LabAccessError(f"the fault command failed on {master}: {result.stderr.strip()}")
            if fault in LOSING_FAULTS:  # the master, and every VM that went down with its host
                for guest in lab.hosts:
                    if guest.name == master or guest.name in lab.settings.machines_on(lost_host):
                        ssh.forget(str(guest.address))
            deadline = started + limit
            wait_until(lambda: holders.first_held(peer, started) is not None, TAKEOVER_WAIT_SECONDS, 0.1)
            repair = repair_command(fault)
            # Whether or not the peer took over: the drill never leaves a node broken.
            if repair:
                ssh.run(lab.load_balancers[master], repair, timeout=60)
            if lost:
                host_repair(lab, lost_host, lost, run)
            preempt = lab.settings.vrrp.preempt
            vip_back_seen = _wait_for_the_master(lab, ssh, holders, master, deadline) if preempt else None
            time.sleep(settle)
        holders.stop()
        # The client's window is closed: the status view's probes (which load slow guests) may run now.
        healthy_at, final_holder = _wait_for_health(lab, ssh, master, deadline + settle)
        moves = holders.takeovers(started, master)
        vip_back = next((at for at, name in reversed(moves) if name == master), None) if moves else None
        # With preempt the original state is the master holding the VIP again: by its event when one came,
        # else when `ip` over SSH first saw it (a later moment).
        back = ((vip_back or vip_back_seen) if preempt else healthy_at) if healthy_at is not None else None
        back_after = None if back is None else back - started
        if final_holder is not None and (moves[-1][1] if moves else master) != final_holder:
            # The holder's return happened while its event stream was cut (a reboot): it counts from when `ip`
            # over SSH (or the status view) saw it, later than it happened; its failback is not counted.
            moves.append((vip_back_seen or healthy_at or time.monotonic(), final_holder))
        first_other = moves[0] if moves else (None, None)  # a move is always to another node than the last
        runs = poller.failed_runs(started)
        drill = DrillResult(
            fault=fault, master=master, took_over=first_other[1],
            took_over_after=None if first_other[0] is None else first_other[0] - started,
            outage=runs[0].seconds if runs else 0.0,
            longest_outage=poller.longest_outage(started), failed=len(poller.failures(started)),
            sent=len([s for s in poller.samples if s.at >= started]),
            # The host stamps the VIP event on arrival: the requests the handover broke started just before.
            failback_failed=None if vip_back is None else len(poller.failures(vip_back - 1.0)),
            holders_seen=(master, *[name for _, name in moves]),
            # The master's own VIP events cannot reach this host while its link is down or it reboots.
            both_held=None if fault in SILENCING_FAULTS else holders.longest_double_hold(started),
            back_after=back_after, vip_back_after=None if vip_back is None else vip_back - started,
            failback_outage=None if vip_back is None else poller.longest_outage(vip_back - 1.0),
            failures=tuple((round(s.at - started, 3), s.detail) for s in poller.failures(started)),
            fault_at=started, request_interval=request_interval)
        log(format_timeline(poller, holders, started))
        return drill, OK if back_after is not None else NOT_RESTORED
    finally:
        holders.stop()


def _wait_for_the_master(lab: Lab, ssh: Ssh, holders: VipHolders, master: str, deadline: float) -> Optional[float]:
    """The moment the master held the VIP alone again (by its events; every few seconds also by `ip` over SSH,
    for a master whose event stream a reboot cut), or None at `deadline`."""
    others = [name for name in lab.load_balancers if name != master]
    asked = time.monotonic()
    while time.monotonic() < deadline:
        now = time.monotonic()
        if holders.held_alone(master, now):
            return holders.held_since(master, now)
        if not any(holders.holder_at(name, now) for name in others) and now - asked >= MASTER_CHECK_SECONDS:
            asked = now
            if holds_vip(ssh, lab.load_balancers[master], lab.vip, FRONTEND_INTERFACE):
                return time.monotonic()
        time.sleep(0.2)
    return None


def _wait_for_health(lab: Lab, ssh: Ssh, master: str, deadline: float) -> tuple[Optional[float], Optional[str]]:
    """(the moment the status view found the lab healthy, with the VIP on the master when preempt is on; the
    holder it saw), or (None, None) at `deadline`."""
    seen: list[Optional[str]] = [None]

    def healthy() -> bool:
        status = lab_status(lab, ssh)
        seen[0] = status.holder
        return status.level == OK and (status.holder == master or not lab.settings.vrrp.preempt)

    if wait_until(healthy, max(0.0, deadline - time.monotonic()), step=3) is None:
        return None, None
    return time.monotonic(), seen[0]


def format_timeline(poller: VipPoller, holders: VipHolders, started: float) -> str:
    """VIP moves and outages, in seconds after the fault was issued."""
    events = [(at, what) for at, what in holders.changes(started)]
    failures = poller.failures(started)
    for run in poller.failed_runs(started):
        kinds = sorted({s.detail.split(":")[0][:40] for s in failures if run.started <= s.at < run.ended})
        recovered = f", answered again at +{run.ended - started:.2f} s" if run.ended != float("inf") else ""
        events.append((run.started, f"{run.failed} failed request(s) ({', '.join(kinds)}){recovered}"))
    lines = [f"  +{at - started:6.2f} s  {what}" for at, what in sorted(events)]
    return "timeline (from issuing the fault):\n" + ("\n".join(lines) or "  (nothing happened)")


def _seconds(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_result(drill: DrillResult) -> str:
    rows = [
        ["fault", "master", "took over", "after (s)", "outage (s)", "longest (s)", "failed requests",
         "VIP holders seen", "both held (s)", "original state after (s)"],
        [drill.fault, drill.master, drill.took_over or "nobody", _seconds(drill.took_over_after),
         f"{drill.outage:.2f}", f"{drill.longest_outage:.2f}", f"{drill.failed} of {drill.sent}", " -> ".join(drill.holders_seen),
         _seconds(drill.both_held), _seconds(drill.back_after) if drill.back_after is not None else "not reached"],
    ]
    return "\n".join(table_lines(rows, separator=" | "))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.drill", description=__doc__.split("\n\n")[0])
    add_stack_arguments(parser)
    parser.add_argument("--fault", required=True, choices=FAULTS, help="how to break the master")
    parser.add_argument("--link-down", type=float, default=DEFAULT_LINK_DOWN_SECONDS,
                        help="seconds the link stays down (--fault link; default %(default)s)")
    parser.add_argument("--wait-healthy", type=float, default=0, metavar="SECONDS",
                        help="wait up to this long for a healthy lab before refusing (default: refuse at once)")
    parser.add_argument("--request-interval", type=float, default=REQUEST_INTERVAL_SECONDS, metavar="SECONDS",
                        help="the client sends one request to the VIP every this many seconds (default %(default)s)")
    parser.add_argument("--json", type=pathlib.Path, help="also write the result as JSON to this file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not 1 <= args.link_down <= 60:
        parser.error(f"--link-down {args.link_down:g}: expected 1 to 60 seconds")
    if not 0 <= args.wait_healthy <= 3600:
        parser.error(f"--wait-healthy {args.wait_healthy:g}: expected 0 to 3600 seconds")
    low, high = REQUEST_INTERVAL_RANGE
    if not low <= args.request_interval <= high:
        parser.error(f"--request-interval {args.request_interval:g}: expected {low:g} to {high:g} seconds")

    def drill_lab(lab: Lab, ssh: Ssh) -> int:
        drill, code = run_drill(lab, ssh, args.fault, args.link_down, args.wait_healthy, args.request_interval,
                                log=lambda line: print(line, flush=True))
        if drill is None:
            return code
        print(format_result(drill))
        if code == NOT_RESTORED:
            print(f"the lab did not return to its original state within {TIME_LIMIT_SECONDS[args.fault]} s: "
                  f"see python -m components.status", file=sys.stderr)
        if args.json:
            args.json.write_text(json.dumps({**asdict(drill), "moves": drill.moves, "exit": code}, indent=2) + "\n")
        return code

    return with_lab(args, "drill", drill_lab)


if __name__ == "__main__":
    sys.exit(main())
