"""Throughput benchmark with a real load generator: wrk through the VIP against wrk straight to one web server.

    sudo python3 -m tests.bench_throughput [--seconds 10] [--connections 32] [--rounds 5]

The network-namespace harness runs the rendered configs with real keepalived and HAProxy, and real nginx on
the web servers (Debian's nginx.conf, the rendered site, the certificate the activate script makes). wrk
(Debian's 4.1.0) runs in the client namespace, which has a leg on each lab network: through the VIP (HTTP
on the HTTP port, TLS passthrough on the HTTPS port) and straight to web01 (its HTTP and HTTPS ports), with
the same threads, connections and duration, alternating direct and VIP for each round; it prints the
median of the rounds as a Markdown table, with each CPU's load during the runs (what was the bottleneck).

Fairness: one wrk thread pinned to one core has the same capacity on both sides; by default HAProxy has the
other core to itself, as on its own 1-vCPU VM (restarted under that core's mask, so it runs one thread, as
nbthread follows the CPUs it may use), and nginx shares wrk's core on both sides, so the direct side never
gets more server CPU than the VIP side. Other work on the machine competes for the cores too: the output
says how busy each core was with the lab idle, and during each side's runs. See PLACEMENTS for the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shlex
import signal
import statistics
import sys
import tempfile
import time
from typing import Optional

from tests.netns.harness import CLIENT_HOST, HarnessError, NetnsLab, harness_config, run, wait_until

WRK = "/usr/bin/wrk"
WRK_THREADS = 1  # one event loop on one pinned core: the client's capacity is the same for both sides
WRK_TIMEOUT = "2s"  # wrk's own default, spelled out: a request unanswered this long counts as an error
# wrk's done() hook: one JSON line with what the table needs (latencies in microseconds).
WRK_REPORT_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-REPORT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "socket_errors": %d, "bad_status": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""
REPORT_MARKER = "WRK-REPORT "
BASELINE_SECONDS = 2

# Which core runs what. On the VMs, HAProxy has its own vCPU (one thread: nbthread follows the CPUs it may
# use) and so does each nginx; here 2 cores are shared by wrk, HAProxy and nginx.
PLACEMENTS = {
    # HAProxy alone on one core, as on its own VM; wrk and nginx share the other, on both sides alike.
    "haproxy-own-core": {"wrk": 0, "nginx": 0, "haproxy": 1},
    # The client alone on one core; the servers (HAProxy and nginx) share the other.
    "client-own-core": {"wrk": 0, "nginx": 1, "haproxy": 1},
    # No pinning: the scheduler decides (HAProxy then starts one thread per core).
    "unpinned": {},
}
DEFAULT_PLACEMENT = "haproxy-own-core"


@dataclasses.dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    failed: int  # socket errors (connect, read, write, timeout) plus answers that were not 2xx/3xx


@dataclasses.dataclass(frozen=True)
class Round:
    direct: WrkResult
    via_vip: WrkResult
    cpu_busy_direct: tuple[float, ...]  # per core, percent busy during the direct run
    cpu_busy_vip: tuple[float, ...]


def parse_wrk_report(stdout: str) -> WrkResult:
    """The WRK-REPORT line our done() hook prints; an error naming what is missing otherwise."""
    lines = [line for line in stdout.splitlines() if line.startswith(REPORT_MARKER)]
    if len(lines) != 1:
        raise HarnessError(f"wrk printed {len(lines)} report lines (expected 1); its output:\n{stdout}")
    report = json.loads(lines[0][len(REPORT_MARKER):])
    if report["duration_us"] <= 0:
        raise HarnessError(f"wrk reported a duration of {report['duration_us']} us: {lines[0]}")
    return WrkResult(
        requests_per_second=report["requests"] / (report["duration_us"] / 1e6),
        p50_ms=report["p50_us"] / 1000,
        p99_ms=report["p99_us"] / 1000,
        failed=report["socket_errors"] + report["bad_status"])


def wrk_arguments(url: str, seconds: int, connections: int, script: pathlib.Path) -> list[str]:
    return [WRK, f"--threads={WRK_THREADS}", f"--connections={connections}", f"--duration={seconds}s",
            f"--timeout={WRK_TIMEOUT}", f"--script={script}", url]


def pinned(command: list[str], cpu: Optional[int]) -> list[str]:
    return command if cpu is None else ["taskset", "--cpu-list", str(cpu), *command]


def cpu_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies per core, from /proc/stat (iowait counts as idle)."""
    times = []
    for line in pathlib.Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(v) for v in fields]
            idle = values[3] + values[4]
            times.append((sum(values) - idle, sum(values)))
    return times


def busy_percent(before: list[tuple[int, int]], after: list[tuple[int, int]]) -> tuple[float, ...]:
    return tuple(100 * (b1 - b0) / max(1, t1 - t0) for (b0, t0), (b1, t1) in zip(before, after))


def run_wrk(lab: NetnsLab, url: str, cpu: Optional[int], seconds: int, connections: int,
            script: pathlib.Path) -> tuple[WrkResult, tuple[float, ...]]:
    command = ["ip", "netns", "exec", lab.netns(CLIENT_HOST),
               *pinned(wrk_arguments(url, seconds, connections, script), cpu)]
    before = cpu_times()
    result = run(command, timeout=seconds + 30)
    return parse_wrk_report(result.stdout), busy_percent(before, cpu_times())


def host_pids(lab: NetnsLab, host: str, program: str) -> list[str]:
    """The program's pids as the host's own PID namespace numbers them (use them inside that host)."""
    return lab.host(host).exec(["pidof", program], check=False).stdout.split()


def process_facts(lab: NetnsLab, host: str, program: str) -> list[str]:
    """Per process of `program` on `host`: its thread count and the CPUs it may run on, read in the host."""
    script = ('for pid in "$@"; do echo "$(ls /proc/$pid/task | wc -l) threads on CPU '
              '$(taskset --cpu-list --pid $pid | sed "s/.*: //")"; done')
    return lab.host(host).exec(["sh", "-c", script, "sh", *host_pids(lab, host, program)]).stdout.splitlines()


def place_daemons(lab: NetnsLab, placement: dict[str, int]) -> None:
    """HAProxy restarted under its core's mask (so it starts one thread, as on a 1-vCPU VM); nginx, whose
    `worker_processes auto` counts the machine's cores whatever its mask, has its processes moved."""
    if "haproxy" in placement:
        for lb in lab.load_balancer_names:
            lab.host(lb).exec(pinned(["systemctl", "restart", "haproxy"], placement["haproxy"]))
        lab.wait_for_vip_on(lab.primary)
        wait_until(lambda: lab.get(lab.http_url, timeout=1)["ok"], 10, "HTTP through the VIP after the restart")
    if "nginx" in placement:
        for web in lab.web_names:
            for pid in host_pids(lab, web, "nginx"):
                lab.host(web).exec(["taskset", "--all-tasks", "--cpu-list", "--pid", str(placement["nginx"]), pid])


def describe_daemons(lab: NetnsLab) -> str:
    """What actually runs, read from /proc (not from the placement asked for)."""
    web = lab.web_names[0]
    return (f"HAProxy on {lab.primary} (master, worker): {'; '.join(process_facts(lab, lab.primary, 'haproxy'))}. "
            f"nginx on {web} (master, workers): {'; '.join(process_facts(lab, web, 'nginx'))}")


def measure(lab: NetnsLab, targets: dict[str, str], cpu: Optional[int], rounds: int, seconds: int,
            connections: int, script: pathlib.Path) -> list[Round]:
    """Alternating direct and VIP runs, `rounds` times, after one unrecorded warm-up run of each."""
    for url in targets.values():
        run_wrk(lab, url, cpu, 1, connections, script)
    measured = []
    for _ in range(rounds):
        direct, busy_direct = run_wrk(lab, targets["direct"], cpu, seconds, connections, script)
        via_vip, busy_vip = run_wrk(lab, targets["vip"], cpu, seconds, connections, script)
        measured.append(Round(direct, via_vip, busy_direct, busy_vip))
        print(f"  {targets['vip']}: direct {direct}, VIP {via_vip}", file=sys.stderr, flush=True)
    return measured


def median_busy(samples: list[tuple[float, ...]]) -> str:
    return " / ".join(f"{statistics.median(core):.0f}%" for core in zip(*samples))


def table_row(name: str, rounds: list[Round]) -> str:
    med = lambda values: statistics.median(list(values))  # noqa: E731
    direct_rps = med(r.direct.requests_per_second for r in rounds)
    vip_rps = med(r.via_vip.requests_per_second for r in rounds)
    ratio = med(r.via_vip.requests_per_second / r.direct.requests_per_second for r in rounds)
    p50 = (med(r.direct.p50_ms for r in rounds), med(r.via_vip.p50_ms for r in rounds))
    p99 = (med(r.direct.p99_ms for r in rounds), med(r.via_vip.p99_ms for r in rounds))
    added_p99 = med(r.via_vip.p99_ms - r.direct.p99_ms for r in rounds)
    failed = sum(r.direct.failed + r.via_vip.failed for r in rounds)
    return (f"| {name} | {direct_rps:.0f} | {vip_rps:.0f} | {ratio:.2f} | {p50[0]:.2f} | {p50[1]:.2f} "
            f"| {p99[0]:.2f} | {p99[1]:.2f} | {added_p99:+.2f} | {failed} "
            f"| {median_busy([r.cpu_busy_direct for r in rounds])} | {median_busy([r.cpu_busy_vip for r in rounds])} |")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number of at least 1")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=positive, default=10, help="duration of each wrk run (default 10)")
    parser.add_argument("--connections", type=positive, default=32, help="wrk connections (default 32)")
    parser.add_argument("--rounds", type=positive, default=5, help="direct/VIP pairs per protocol (default 5)")
    parser.add_argument("--placement", choices=sorted(PLACEMENTS), default=DEFAULT_PLACEMENT,
                        help=f"which core runs what (default {DEFAULT_PLACEMENT})")
    args = parser.parse_args()
    placement = PLACEMENTS[args.placement]
    cores = len(os.sched_getaffinity(0))
    if placement and cores < 2:
        parser.error(f"--placement {args.placement} needs 2 cores; this process may use {cores} (use unpinned)")
    if not os.access(WRK, os.X_OK):
        parser.error(f"{WRK} not found: apt-get install wrk")
    # Stopped by pid (SIGTERM): unwind, so the lab's teardown runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    with tempfile.TemporaryDirectory(prefix="ha-lb-wrk-") as scratch, \
            NetnsLab(harness_config(), nginx=True, client_on_backend=True) as lab:
        script = pathlib.Path(scratch) / "report.lua"
        script.write_text(WRK_REPORT_LUA)
        place_daemons(lab, placement)
        # Other work on the machine competes for the same cores: measured, idle lab, before the runs.
        before = cpu_times()
        time.sleep(BASELINE_SECONDS)
        baseline = busy_percent(before, cpu_times())
        web, settings = lab.web_address(lab.web_names[0]), lab.settings
        protocols = {
            f"HTTP (VIP :{settings.http_port} vs {lab.web_names[0]} :{settings.web_http_port})": {
                "direct": f"http://{web}:{settings.web_http_port}/", "vip": lab.http_url},
            f"TLS passthrough (VIP :{settings.https_port} vs {lab.web_names[0]} :{settings.web_https_port})": {
                "direct": f"https://{web}:{settings.web_https_port}/", "vip": f"https://{lab.vip}:{settings.https_port}/"},
        }
        results = {name: measure(lab, targets, placement.get("wrk"), args.rounds, args.seconds,
                                 args.connections, script) for name, targets in protocols.items()}
        daemons = describe_daemons(lab)

    example = shlex.join(["ip", "netns", "exec", "<client>", *pinned(
        wrk_arguments("<url>", args.seconds, args.connections, pathlib.Path("report.lua")), placement.get("wrk"))])
    print(f"Throughput benchmark, network-namespace harness, medians of {args.rounds} alternating rounds "
          f"(direct, then VIP), {cores} cores\n")
    print("| traffic | requests/s direct | requests/s VIP | ratio VIP/direct | p50 direct (ms) | p50 VIP (ms) "
          "| p99 direct (ms) | p99 VIP (ms) | added p99 (ms) | failed requests | CPU busy direct (per core) "
          "| CPU busy VIP (per core) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, rounds in results.items():
        print(table_row(name, rounds))
    print(f"\nwrk command (each run): {example}")
    print(f"placement {args.placement}: " + (", ".join(f"{what} on CPU {cpu}" for what, cpu in placement.items())
                                             or "no pinning"))
    print(f"daemons: {daemons}")
    print(f"CPU busy per core with the lab idle, before the runs (other work on this machine): "
          f"{' / '.join(f'{core:.0f}%' for core in baseline)}")


if __name__ == "__main__":
    main()
