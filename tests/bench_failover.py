"""Failover benchmark on the rendered configs, in the network-namespace harness (a script, not a test).

    sudo python3 -m tests.bench_failover [--repetitions 5]

For the classic VRRP timing and the fast profile, measures in one run: for (a) backend loss, (b) HAProxy
death on the master, (c) the master's frontend link cut, (d) failback to the repaired master and (e)
keepalived stopped on the master, the time from the fault to the first good answer, the number of failed
requests (a client sends one request every 20 ms, each on its own connection, failing after 0.25 s without
an answer) and, where the master resigns, the time from its dropping the VIP to the peer's taking it
(netlink events); then a one-minute idle soak of the fast profile counting VIP moves. Prints medians over
the repetitions as a Markdown table (the README's copy says how it was produced). Throughput:
tests/bench_throughput.py (wrk).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import statistics
import sys
import time
from typing import Callable, Optional

from tests.netns.harness import NetnsLab, VipWatch, harness_config, outage_after, polled_failover_seconds

@dataclasses.dataclass(frozen=True)
class Result:
    outage: float  # fault to the first good answer after the last failed request (0: nothing failed)
    failed: int
    settled: float  # fault to the new steady state (the VIP where it belongs, or the dead server skipped)
    # The master dropping the VIP to the peer taking it: None where the master does not resign, nan when it
    # should have but the watch did not see both events.
    handover: Optional[float]


PROFILES = {"classic": {}, "fast": {"profile": "fast"}}
INTERVAL, PROBE_TIMEOUT = 0.02, 0.25


def measure(lab: NetnsLab, fault: Callable[[], None], settle: Callable[[], None], seconds: float,
            resigns: Optional[tuple[str, str]] = None) -> Result:
    with VipWatch(lab) as watch:
        load = lab.load(duration=seconds + 10, interval=INTERVAL, timeout=PROBE_TIMEOUT)
        time.sleep(1)
        fault_at = time.time()
        fault()
        settle()
        settled = time.time() - fault_at
        time.sleep(1)
        outage = outage_after(load.stop(), fault_at)
    handover = None if resigns is None else watch.handover_gap(*resigns)
    if resigns is not None and handover is None:
        handover = float("nan")
    return Result(outage.seconds, outage.failed, settled, handover)


def scenarios(lab: NetnsLab) -> dict[str, Callable[[], Result]]:
    bound = 2 * (polled_failover_seconds(lab.settings) + 1)
    on_secondary = lambda: lab.wait_for_vip_on(lab.secondary, timeout=bound)  # noqa: E731
    on_primary = lambda: lab.wait_for_vip_on(lab.primary, timeout=bound)  # noqa: E731

    def backend_loss() -> Result:
        dead = lab.web_names[0]
        return measure(lab, lambda: lab.kill_web(dead), lambda: lab.wait_until_server_down(dead), bound)

    def haproxy_death() -> Result:
        return measure(lab, lambda: lab.kill_haproxy(lab.primary), on_secondary, bound, (lab.primary, lab.secondary))

    def link_cut() -> Result:
        return measure(lab, lambda: lab.cut_link(lab.primary), on_secondary, bound)

    def failback() -> Result:
        lab.kill_haproxy(lab.primary)
        on_secondary()
        time.sleep(1)
        back = 2 * (7 * lab.settings.vrrp.check_interval + 2 * lab.settings.vrrp.advert_interval + 1)
        return measure(lab, lambda: lab.systemctl(lab.primary, "start", "haproxy"),
                       lambda: lab.wait_for_vip_on(lab.primary, timeout=back), back)

    def keepalived_stop() -> Result:
        return measure(lab, lambda: lab.systemctl(lab.primary, "stop", "keepalived"), on_secondary, bound,
                       (lab.primary, lab.secondary))

    return {"(a) backend loss": backend_loss, "(b) HAProxy death on the master": haproxy_death,
            "(c) master link cut": link_cut, "(d) failback": failback, "(e) keepalived stopped on the master": keepalived_stop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--soak", type=float, default=60, help="seconds of idle soak for the fast profile")
    args = parser.parse_args()
    # Stopped by pid (SIGTERM): unwind, so the labs' teardown runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    rows, soak_moves = [], None
    for profile, vrrp in PROFILES.items():
        with NetnsLab(harness_config(vrrp)) as lab:
            for name, scenario in scenarios(lab).items():
                results = []
                for _ in range(args.repetitions):
                    lab.heal()
                    results.append(scenario())
                rows.append((name, profile, results))
                print(f"  {profile:8} {name:34} {[dataclasses.astuple(r) for r in results]}", file=sys.stderr, flush=True)
            if profile == "fast":
                lab.heal()
                with VipWatch(lab) as watch:
                    time.sleep(args.soak)
                soak_moves = watch.moves()

    print(f"Failover benchmark, network-namespace harness, medians of {args.repetitions} "
          f"(request every {INTERVAL * 1000:.0f} ms, failed after {PROBE_TIMEOUT} s)\n")
    print("| scenario | profile | outage (s) | failed requests | new steady state after (s) | outage min-max (s) "
          "| resign to takeover, max (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, profile, results in rows:
        outages = [r.outage for r in results]
        handovers = [r.handover for r in results if r.handover is not None]
        handover = "" if not handovers else "not seen" if any(h != h for h in handovers) else f"{max(handovers):.3f}"
        print(f"| {name} | {profile} | {statistics.median(outages):.2f} | {statistics.median(r.failed for r in results):g} "
              f"| {statistics.median(r.settled for r in results):.2f} | {min(outages):.2f}-{max(outages):.2f} | {handover} |")
    print(f"fast profile idle soak: {soak_moves} VIP moves in {args.soak:.0f} s")


if __name__ == "__main__":
    main()
