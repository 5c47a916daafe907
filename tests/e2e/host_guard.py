"""Keeps the e2e lab's traffic on the test host: the lab runs libvirt's default NAT networks (as a user's
does), and this nftables table, hooked before libvirt's own rules, rejects every packet the host would
forward to or from the lab networks, and every DNS query libvirt's dnsmasq would send upstream for the
guests. The guests reach the host and each other, nothing else. Where br_netfilter is loaded (on these machines:
net.bridge.bridge-nf-call-iptables = 1), frames bridged between two guests pass the forward hook too: traffic
between lab addresses stays allowed, and so does the lab's own VRRP to its multicast group, which the rule for
"destination outside the lab" would otherwise reject (both load balancers then stayed MASTER, measured).
Rejected, not dropped: a guest's lookup or connection out fails at once, as on an isolated network, instead of
waiting out its timeouts (which slowed first boot by minutes, measured)."""

from __future__ import annotations

import subprocess
from typing import Optional, Sequence

TABLE = "ha_lb_e2e_guard"
# VRRP's IPv4 multicast group (RFC 5798 section 5.1.1.2): where keepalived sends adverts without unicast peers.
VRRP_GROUP = "224.0.0.18"
# The users libvirt's dnsmasq may run as: libvirt-dnsmasq where the package created it, else dnsmasq's
# own default, nobody (measured here: nobody:dip, no `user=` in libvirt's dnsmasq config).
DNSMASQ_USERS = ("libvirt-dnsmasq", "dnsmasq", "nobody")


def _in(netns: Optional[str]) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def _nft(script: str, netns: Optional[str] = None) -> None:
    result = subprocess.run([*_in(netns), "nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"nft failed: {result.stderr.strip()}\n{script}")


def install(cidrs: Sequence[str], table: str = TABLE, netns: Optional[str] = None) -> None:
    """The guard for the lab networks `cidrs`, in the host's network namespace (or `netns`, for its own test)."""
    import pwd

    nets = ", ".join(cidrs)
    uids = ", ".join(str(pwd.getpwnam(u).pw_uid) for u in DNSMASQ_USERS if u in {p.pw_name for p in pwd.getpwall()})
    remove(table, netns)
    _nft(f"""
table inet {table} {{
    chain forward {{
        type filter hook forward priority -300; policy accept;
        ip saddr {{ {nets} }} ip daddr {VRRP_GROUP} ip protocol vrrp counter accept
        ip saddr {{ {nets} }} ip daddr != {{ {nets} }} counter reject
        ip daddr {{ {nets} }} ip saddr != {{ {nets} }} counter reject
    }}
    chain output {{
        type filter hook output priority -300; policy accept;
        meta skuid {{ {uids} }} meta l4proto {{ tcp, udp }} th dport 53 ip daddr != {{ 127.0.0.0/8, {nets} }} counter reject
    }}
}}
""", netns)


def remove(table: str = TABLE, netns: Optional[str] = None) -> None:
    subprocess.run([*_in(netns), "nft", "delete", "table", "inet", table], capture_output=True, text=True, timeout=30)

