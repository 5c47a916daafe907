"""The VM test's host guard (tests/e2e/host_guard.py) on a bridge as libvirt's: frames bridged between guests pass
the forward hook where br_netfilter is on, as on these machines. Real nft, real packets, in private network
namespaces: a switch namespace holding the bridge (with `net.bridge.bridge-nf-call-iptables = 1`, per namespace)
and the guard, two lab hosts and one outside the lab plugged into it.

What the guard must let through is the lab's own traffic, VRRP's multicast adverts included (without them both
load balancers stay MASTER); what it must stop is anything leaving the lab, other multicast included. On the same
bridge, the VM test's passive VRRP watch (tests/e2e/vrrp_capture.py) sees each advert by its sender."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import require_root, require_tools
from tests.e2e import host_guard
from tests.e2e.vrrp_capture import VrrpCapture

LAB_NETWORKS = ("10.213.10.0/24", "10.213.80.0/24")
SENDER, RECEIVER, OUTSIDE = "10.213.10.4", "10.213.10.2", "198.51.100.9"
OTHER_GROUP = "224.0.0.251"  # mDNS: a multicast group that is not VRRP's

# Receives VRRP (IP protocol 112, VRRP's group joined as keepalived joins it) and UDP on port 7 (to the host or to
# OTHER_GROUP) for `seconds`; prints what arrived, one "protocol destination" a line.
RECEIVE = textwrap.dedent("""
    import select, socket, sys, time
    IP_PKTINFO = 8  # <linux/in.h>; Python 3.11's socket module lacks the name
    seconds, address = float(sys.argv[1]), sys.argv[2]
    vrrp = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    vrrp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton("224.0.0.18") + socket.inet_aton(address))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind(("0.0.0.0", 7))
    udp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(sys.argv[3]) + socket.inet_aton(address))
    udp.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    print("listening", flush=True)
    seen, deadline = set(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        for ready in select.select([vrrp, udp], [], [], 0.1)[0]:
            if ready is vrrp:
                packet = vrrp.recv(2048)
                seen.add("vrrp " + socket.inet_ntoa(packet[16:20]))
            else:
                _, ancillary, _, _ = udp.recvmsg(2048, 64)
                # struct in_pktinfo: ifindex, local address, header destination address
                destination = next(socket.inet_ntoa(data[8:12]) for level, kind, data in ancillary
                                   if kind == IP_PKTINFO)
                seen.add("udp " + destination)
    print("\\n".join(sorted(seen)))
""")
# Sends three packets of each kind from `source`: VRRP to its group, UDP to each destination given.
SEND = textwrap.dedent("""
    import socket, sys
    source = sys.argv[1]
    vrrp = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    vrrp.bind((source, 0))
    vrrp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    vrrp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(source))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((source, 0))
    udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(source))
    for _ in range(3):
        vrrp.sendto(b"\\x21\\x01\\xfe\\x01\\x00\\x01\\x00\\x00" + bytes(4), ("224.0.0.18", 0))
        for destination in sys.argv[2:]:
            try:
                udp.sendto(b"guard", (destination, 7))
            except OSError:  # the guard's reject came back as an ICMP error on this socket
                pass
""")


def sh(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def bridge():
    require_root()
    require_tools("ip", "nft")
    prefix = f"ha-lb-guard-{os.getpid()}"
    switch, hosts = f"{prefix}-sw", {name: f"{prefix}-{name}" for name in ("sender", "receiver", "outside")}
    addresses = {"sender": f"{SENDER}/24", "receiver": f"{RECEIVER}/24", "outside": f"{OUTSIDE}/24"}
    try:
        for namespace in (switch, *hosts.values()):
            sh("ip", "netns", "add", namespace)
            sh("ip", "-n", namespace, "link", "set", "lo", "up")
        sh("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", switch, "link", "set", "br0", "up")
        # As the host's own: bridged IPv4 frames go through the inet hooks (br_netfilter's per-namespace switch).
        sh("ip", "netns", "exec", switch, "sysctl", "--quiet", "-w", "net.bridge.bridge-nf-call-iptables=1")
        for name, namespace in hosts.items():
            sh("ip", "-n", switch, "link", "add", f"p-{name}", "type", "veth", "peer", "name", "eth0", "netns", namespace)
            sh("ip", "-n", switch, "link", "set", f"p-{name}", "master", "br0", "up")
            sh("ip", "-n", namespace, "link", "set", "eth0", "up")
            sh("ip", "-n", namespace, "addr", "add", addresses[name], "dev", "eth0")
            sh("ip", "-n", namespace, "route", "add", "224.0.0.0/4", "dev", "eth0")
        # The sender reaches the outside host on the same wire, as a guest would reach anything the host forwards.
        sh("ip", "-n", hosts["sender"], "route", "add", "198.51.100.0/24", "dev", "eth0")
        host_guard.install(list(LAB_NETWORKS), table="ha_lb_guard_test", netns=switch)
        yield {"switch": switch, **hosts}
    finally:
        for namespace in (*hosts.values(), switch):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def arrived(bridge, at: str, address: str) -> set[str]:
    """What reaches the host `at` (listening on `address`) while the sender sends VRRP to its group and UDP to the
    receiver, to another multicast group and to the outside host."""
    receiver = subprocess.Popen(["ip", "netns", "exec", bridge[at], sys.executable, "-c", RECEIVE, "1.5", address,
                                 OTHER_GROUP], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout.readline().strip() == "listening"
        sh("ip", "netns", "exec", bridge["sender"], sys.executable, "-c", SEND, SENDER, RECEIVER, OTHER_GROUP, OUTSIDE)
        out, _ = receiver.communicate(timeout=10)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    return {line for line in out.splitlines() if line}


def test_the_labs_own_traffic_and_its_vrrp_adverts_cross_the_guarded_bridge(bridge):
    # VRRP to its group and unicast to another lab host arrive; other multicast from the lab does not.
    assert arrived(bridge, "receiver", RECEIVER) == {"vrrp 224.0.0.18", f"udp {RECEIVER}"}


def test_nothing_else_leaves_the_lab(bridge):
    # A host outside the lab networks on the same wire gets neither the unicast sent to it nor the other multicast.
    # (VRRP's adverts go to whatever is on a lab bridge: on libvirt's, the lab's own guests and the host.)
    assert {packet for packet in arrived(bridge, "outside", OUTSIDE) if not packet.startswith("vrrp ")} == set()


def test_the_vm_tests_vrrp_watch_counts_each_advert_by_its_sender(bridge):
    require_tools("tcpdump")
    with VrrpCapture("br0", limit=30, netns=bridge["switch"]) as capture:
        since = time.time()
        sh("ip", "netns", "exec", bridge["sender"], sys.executable, "-c", SEND, SENDER, RECEIVER)
        time.sleep(1)
        until = time.time()
    assert capture.senders(since, until) == {SENDER: 3}
    assert capture.longest_silence(RECEIVER, since, until) == until - since  # the receiver never advertised
