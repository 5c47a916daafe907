"""Keeps the e2e lab's traffic on the test host: the lab runs libvirt's default NAT networks (as a user's
does), and this nftables table, hooked before libvirt's own rules, rejects every packet the host would
forward to or from the lab networks, and every DNS query libvirt's dnsmasq would send upstream for the
guests. The guests reach the host and each other, nothing else (traffic between guests stays allowed:
where br_netfilter is loaded, even bridged packets pass the forward hook). Rejected, not dropped: a guest's lookup
or connection out fails at once, as on an isolated network, instead of waiting out its timeouts (which
slowed first boot by minutes, measured)."""

from __future__ import annotations

import subprocess
from typing import Sequence

TABLE = "ha_lb_e2e_guard"
# The users libvirt's dnsmasq may run as: libvirt-dnsmasq where the package created it, else dnsmasq's
# own default, nobody (measured here: nobody:dip, no `user=` in libvirt's dnsmasq config).
DNSMASQ_USERS = ("libvirt-dnsmasq", "dnsmasq", "nobody")


def _nft(script: str) -> None:
    result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"nft failed: {result.stderr.strip()}\n{script}")


def install(cidrs: Sequence[str], table: str = TABLE) -> None:
    import pwd

    nets = ", ".join(cidrs)
    uids = ", ".join(str(pwd.getpwnam(u).pw_uid) for u in DNSMASQ_USERS if u in {p.pw_name for p in pwd.getpwall()})
    remove(table)
    _nft(f"""
table inet {table} {{
    chain forward {{
        type filter hook forward priority -300; policy accept;
        ip saddr {{ {nets} }} ip daddr != {{ {nets} }} counter reject
        ip daddr {{ {nets} }} ip saddr != {{ {nets} }} counter reject
    }}
    chain output {{
        type filter hook output priority -300; policy accept;
        meta skuid {{ {uids} }} meta l4proto {{ tcp, udp }} th dport 53 ip daddr != {{ 127.0.0.0/8, {nets} }} counter reject
    }}
}}
""")


def remove(table: str = TABLE) -> None:
    subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True, text=True, timeout=30)

