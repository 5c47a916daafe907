"""lb01's rendered nftables ruleset (unicast and multicast VRRP), loaded by real nft in a network namespace wired
like the VM (interfaces `frontend` and `backend`), meeting real packets from a peer namespace: what it lets in
and what it drops."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from components.render import lab_hosts, render_nftables_conf
from components.settings import BACKEND_INTERFACE, FRONTEND_INTERFACE, load_settings
from tests.conftest import require_root, require_tools
from tests.keys import key_config

STRANGER = "192.168.10.99"  # an address of the frontend network that is not the peer
VRRP_GROUP = "224.0.0.18"
VRRP_TTL = 255  # what every VRRP sender sets; a packet that crossed a router arrives with less
CLOSED_PORT = 2222  # nothing in the ruleset allows it

RECEIVE_VRRP = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s.settimeout(0.2)
    # As keepalived does with multicast: join VRRP's group on the frontend address, or none arrives.
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton("224.0.0.18") + socket.inet_aton(sys.argv[2]))
    print("listening", flush=True)
    seen, deadline = set(), time.monotonic() + float(sys.argv[1])
    while time.monotonic() < deadline:
        try:
            packet, (source, _) = s.recvfrom(2048)
            seen.add(source)
        except socket.timeout:
            pass
    print(" ".join(sorted(seen)))
""")
SEND_VRRP = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s.bind((sys.argv[1], 0))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, int(sys.argv[3]))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, int(sys.argv[3]))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
    for _ in range(3):
        s.sendto(b"\\x21\\x01\\xfe\\x01\\x00\\x01\\x00\\x00" + bytes(4), (sys.argv[2], 0))
""")
CONNECT = textwrap.dedent("""
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
        print("open")
    except socket.timeout:
        print("dropped")
    except ConnectionRefusedError:
        print("refused")
""")
LISTEN = textwrap.dedent("""
    import socket, sys, time
    servers = []
    for port in sys.argv[1:]:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(port))); s.listen(); servers.append(s)
    print("listening", flush=True)
    time.sleep(30)
""")


def sh(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module", params=["unicast", "multicast"])
def wired(request, tmp_path_factory):
    require_root()
    require_tools("ip", "nft")
    settings = load_settings({**key_config(), "statsPassword": "correct-horse-battery",
                              "vrrp": {"unicast": request.param == "unicast"}}, stack="fw")
    lb01, lb02 = (next(h for h in lab_hosts(settings) if h.name == n) for n in ("lb01", "lb02"))
    path = tmp_path_factory.mktemp("nft") / "nftables.conf"
    path.write_text(render_nftables_conf(settings, lb01))
    lb, peer = f"ha-lb-fw-{os.getpid()}-lb", f"ha-lb-fw-{os.getpid()}-peer"
    try:
        for namespace in (lb, peer):
            sh("ip", "netns", "add", namespace)
            sh("ip", "-n", namespace, "link", "set", "lo", "up")
        for nic_lb, nic_peer in ((FRONTEND_INTERFACE, "fpeer"), (BACKEND_INTERFACE, "bpeer")):
            sh("ip", "-n", lb, "link", "add", nic_lb, "type", "veth", "peer", "name", nic_peer, "netns", peer)
            sh("ip", "-n", lb, "link", "set", nic_lb, "up")
            sh("ip", "-n", peer, "link", "set", nic_peer, "up")
        addresses = {nic.network_role: nic.cidr_address for nic in lb01.nics}
        peer_addresses = {nic.network_role: nic.cidr_address for nic in lb02.nics}
        sh("ip", "-n", lb, "addr", "add", addresses["frontend"], "dev", FRONTEND_INTERFACE)
        sh("ip", "-n", lb, "addr", "add", addresses["backend"], "dev", BACKEND_INTERFACE)
        sh("ip", "-n", peer, "addr", "add", peer_addresses["frontend"], "dev", "fpeer")
        sh("ip", "-n", peer, "addr", "add", f"{STRANGER}/24", "dev", "fpeer")
        sh("ip", "-n", peer, "addr", "add", peer_addresses["backend"], "dev", "bpeer")
        sh("ip", "netns", "exec", lb, "nft", "-f", str(path))
        yield {"lb": lb, "peer": peer, "lb01": lb01, "lb02": lb02, "settings": settings}
    finally:
        for namespace in (lb, peer):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def vrrp_seen(wired, sends: list[tuple[str, str]], ttl: int = VRRP_TTL) -> set[str]:
    """Send VRRP packets from the peer namespace (source, destination); the sources lb01 received."""
    receiver = subprocess.Popen(["ip", "netns", "exec", wired["lb"], sys.executable, "-c", RECEIVE_VRRP, "1.5",
                                 str(wired["lb01"].address)], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout.readline().strip() == "listening"
        for source, destination in sends:
            sh("ip", "netns", "exec", wired["peer"], sys.executable, "-c", SEND_VRRP, source, destination, str(ttl))
        out, _ = receiver.communicate(timeout=10)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    return set(out.split())


def vrrp_dropped(wired) -> int:
    listing = sh("ip", "netns", "exec", wired["lb"], "nft", "list", "counter", "inet", "ha_lb", "vrrp_dropped").stdout
    return int(re.search(r"packets (\d+)", listing).group(1))


def test_vrrp_is_taken_from_the_peer_on_the_frontend_only(wired):
    lb01, lb02 = wired["lb01"], wired["lb02"]
    peer = {n.network_role: str(n.address) for n in lb02.nics}
    own = {n.network_role: str(n.address) for n in lb01.nics}
    # Where the peer's adverts go: to this host (unicast) or to VRRP's group (multicast).
    target = own["frontend"] if wired["settings"].vrrp.unicast else VRRP_GROUP
    other = VRRP_GROUP if wired["settings"].vrrp.unicast else own["frontend"]
    dropped_before = vrrp_dropped(wired)
    seen = vrrp_seen(wired, [(peer["frontend"], target), (STRANGER, target), (STRANGER, other),
                             (peer["frontend"], other), (peer["backend"], own["backend"])])
    # The peer's adverts arrive; a stranger on the same network (to the group or to this host), the peer
    # sending where this mode never sends, and anything on the backend are dropped.
    assert seen == {peer["frontend"]}, seen
    # Every packet dropped was counted: 3 per send, four sends.
    assert vrrp_dropped(wired) - dropped_before == 4 * 3, vrrp_dropped(wired) - dropped_before


def test_vrrp_from_the_peer_that_crossed_a_router_is_dropped(wired):
    # The peer's address with a TTL below 255: sent from off the network (RFC 3768 5.2.3, RFC 5798 5.1.1.3).
    target = str(wired["lb01"].address) if wired["settings"].vrrp.unicast else VRRP_GROUP
    peer = str(wired["lb02"].address)
    assert vrrp_seen(wired, [(peer, target)], ttl=VRRP_TTL - 1) == set()
    assert vrrp_seen(wired, [(peer, target)]) == {peer}  # the same packets with VRRP's TTL do arrive


def test_only_the_allowed_ports_are_open(wired):
    s = wired["settings"]
    address = str(wired["lb01"].address)
    listener = subprocess.Popen(["ip", "netns", "exec", wired["lb"], sys.executable, "-c", LISTEN,
                                 str(s.stats_port), str(CLOSED_PORT)], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "listening"

        def connect(port: int) -> str:
            return sh("ip", "netns", "exec", wired["peer"], sys.executable, "-c", CONNECT, address, str(port)).stdout.strip()

        assert connect(s.stats_port) == "open"  # allowed, and something listens
        assert connect(22) == "refused"  # allowed (SSH), nothing listens in this namespace
        assert connect(CLOSED_PORT) == "dropped"  # something listens, but inbound is denied
    finally:
        listener.kill()
        listener.wait()
