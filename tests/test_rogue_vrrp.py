"""A rogue VRRP speaker on the frontend network cannot talk the pair out of its VIP (issue #10).

In the namespace harness, with the load balancers' rendered firewall loaded by their activate script as on
the VMs, a stranger (tests/netns/rogue_vrrp.py) sends well-formed VRRPv2 and VRRPv3 adverts with the lab's
router id, priority 254 and an address above both load balancers' (so it would win even a priority tie),
to the group 224.0.0.18 and to each load balancer. lb01 stays MASTER with the VIP, lb02 stays BACKUP, the
VIP never moves, requests through it keep succeeding, and each load balancer drops, counts and logs the
adverts, naming the sender. The same rogue against lb01 with its ruleset flushed makes lb01 leave MASTER:
the adverts are good enough to win, so only the firewall stopped them.

One lab per VRRP mode: unicast with the classic profile (VRRPv2, what keepalived there accepts) and
multicast with the fast profile (VRRPv3), so each advert version is shown able to win somewhere.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from ipaddress import IPv4Address

import pytest

from tests.conftest import require_root, require_tools
from tests.netns.harness import HERE, NetnsLab, VipWatch, harness_config, run

ROGUE_SCRIPT = HERE / "rogue_vrrp.py"
LABS = {
    "unicast-v2": {"unicast": True},
    "multicast-v3": {"unicast": False, "profile": "fast"},
}
ROGUE_PRIORITY = 254  # the highest a non-owner may claim, equal to lb01's: the tie goes to the higher address
VRRP_GROUP = "224.0.0.18"
# Longer than the classic profile's master-down interval (3 adverts and the skew, about 3.1 s): had lb01
# resigned, lb02 would have taken the VIP within this time and the VIP watch would have seen it move.
ROGUE_SECONDS = 5.0
ROGUE_PERIOD = 0.1  # a round of adverts (each version to each destination) every 0.1 s
# The rendered log rule's rate limit, as the README states it: a burst of 10 lines, then 5 per second.
LOG_BURST, LOG_PER_SECOND = 10, 5
LOG_PREFIX = "ha-lb: VRRP dropped: "
NF_LOG_ALL_NETNS = "/proc/sys/net/netfilter/nf_log_all_netns"


class KernelLog:
    """The kernel's log from now on, read from /dev/kmsg (what dmesg reads): only lines written after
    the reader opened count."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def lines(self) -> list[str]:
        found = []
        for _ in range(100_000):  # bounded: the ring buffer holds far fewer records
            try:
                record = os.read(self.fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except BrokenPipeError:  # records overwritten before we read them: go on with the next
                continue
            found.append(record.split(";", 1)[-1].strip())
        return found

    def close(self) -> None:
        os.close(self.fd)


def drop_lines(lines: list[str], source: str) -> list[str]:
    return [line for line in lines if line.startswith(LOG_PREFIX) and f" SRC={source} " in line]


def vrrp_state(log: str) -> str:
    """The instance's state after the last transition keepalived logged ("" if none)."""
    states = re.findall(r"\(web-prod\) Entering (\w+) STATE", log)
    return states[-1] if states else ""


def dropped_count(lab: NetnsLab, name: str) -> int:
    listing = run(["ip", "netns", "exec", lab.netns(name), "nft", "list", "counter", "inet", "ha_lb", "vrrp_dropped"]).stdout
    return int(re.search(r"packets (\d+)", listing).group(1))


def run_rogue(lab: NetnsLab, source: str, seconds: float) -> dict:
    """The rogue, in its own namespace, for `seconds`: both versions, to the group and to each load balancer."""
    vrrp = lab.settings.vrrp
    destinations = [VRRP_GROUP, *(str(lb.address) for lb in lab.settings.load_balancers)]
    command = ["ip", "netns", "exec", lab.netns("rogue"), sys.executable, str(ROGUE_SCRIPT), "--source", source,
               "--router-id", str(vrrp.virtual_router_id), "--priority", str(ROGUE_PRIORITY), "--vip", lab.vip,
               "--advert-interval", str(vrrp.advert_interval), "--version", "2", "--version", "3",
               "--period", str(ROGUE_PERIOD), "--duration", str(seconds),
               *(part for destination in destinations for part in ("--to", destination))]
    result = run(command, timeout=seconds + 10)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def kernel_logs_netns_firewalls():
    """nftables' `log` in a namespace other than the initial one writes nothing unless the host allows it."""
    require_root()
    with open(NF_LOG_ALL_NETNS) as f:
        previous = f.read().strip()
    with open(NF_LOG_ALL_NETNS, "w") as f:
        f.write("1")
    yield
    with open(NF_LOG_ALL_NETNS, "w") as f:
        f.write(previous)


@pytest.fixture(scope="module", params=list(LABS))
def lab(request, kernel_logs_netns_firewalls):
    require_tools("ip", "unshare", "nsenter", "haproxy", "keepalived", "nft", "openssl", "sudo")
    with NetnsLab(harness_config(LABS[request.param]), stack="rogue") as built:
        built.add_stranger("rogue")
        yield built


def test_a_rogue_speaker_moves_nothing_and_is_dropped_and_logged(lab):
    rogue = lab.strangers["rogue"]
    lb01, lb02 = lab.primary, lab.secondary
    assert all(IPv4Address(rogue) > lb.address for lb in lab.settings.load_balancers), rogue
    assert lab.vip_holders() == [lb01]
    assert vrrp_state(lab.keepalived_log(lb01)) == "MASTER" and vrrp_state(lab.keepalived_log(lb02)) == "BACKUP"
    logged_before = {name: len(lab.keepalived_log(name)) for name in lab.load_balancer_names}
    dropped_before = {name: dropped_count(lab, name) for name in lab.load_balancer_names}
    kernel = KernelLog()
    try:
        load = lab.load(duration=ROGUE_SECONDS + 1, interval=0.05, timeout=0.5)
        with VipWatch(lab) as watch:
            sent = run_rogue(lab, rogue, ROGUE_SECONDS)
            time.sleep(1)  # a takeover the last adverts caused would have started by now
        results = load.wait(timeout=10)
        lines = kernel.lines()
    finally:
        kernel.close()

    assert sent["rounds"] >= ROGUE_SECONDS / ROGUE_PERIOD * 0.9, sent  # the rogue really sent, at its rate
    assert watch.moves() == 0 and watch.intervals()[lb01] == [(watch.started, watch.ended)], watch.intervals()
    assert lab.vip_holders() == [lb01]
    for name, state in ((lb01, "MASTER"), (lb02, "BACKUP")):
        log = lab.keepalived_log(name)
        new = log[logged_before[name]:]
        assert vrrp_state(log) == state and "Entering" not in new, new
        # keepalived never even saw the rogue's adverts: it names the sender of one it would act on, and
        # logs those of the other VRRP version without their sender.
        assert rogue not in new and "wrong version" not in new, new
    assert results and all(r["ok"] for r in results), [r for r in results if not r["ok"]][:5]

    dropped = drop_lines(lines, rogue)
    for lb in lab.settings.load_balancers:
        # Every advert addressed to this load balancer (two versions per round) was counted...
        assert dropped_count(lab, lb.name) - dropped_before[lb.name] >= 2 * sent["rounds"], lb.name
        # ... and its kernel logged the drop, naming the sender.
        assert any(f" DST={lb.address} " in line for line in dropped), (lb.name, dropped[:4])
    if not lab.settings.vrrp.unicast:
        assert any(f" DST={VRRP_GROUP} " in line for line in dropped), dropped[:4]
    # Rate-limited: two load balancers, each at most a burst and then so many lines a second.
    assert len(dropped) <= 2 * (LOG_BURST + LOG_PER_SECOND * (sent["seconds"] + 1)), len(dropped)


def test_without_the_firewall_the_same_rogue_takes_the_master_down(lab):
    """The proof that the test above can fail: the rogue's adverts win when nothing drops them."""
    rogue, lb01 = lab.strangers["rogue"], lab.primary
    assert lab.vip_holders() == [lb01]
    logged_before = len(lab.keepalived_log(lb01))
    lab.host(lb01).exec(["nft", "flush", "ruleset"])
    try:
        with VipWatch(lab) as watch:
            run_rogue(lab, rogue, 2.0)
        new = lab.keepalived_log(lb01)[logged_before:]
        assert f"received advert from {rogue} with same priority {ROGUE_PRIORITY} but higher IP address" in new, new
        assert "Entering BACKUP STATE" in new, new
        assert any(end < watch.ended for _, end in watch.intervals()[lb01]), watch.intervals()  # lb01 dropped the VIP
    finally:
        lab.systemctl(lb01, "restart", "nftables")  # as the unit would bring it back
