"""A client on the lab's LAN, run in a network namespace of its own (the two-host test's client, not the Pulumi
host): the drill's request pattern (components/lab_access.py VipPoller) against http://VIP/ until SIGTERM or
--seconds, then every sample as one JSON line on stdout (the monotonic clock is the machine's, so the test lines
them up with its own events).

    ip netns exec NETNS python3 -m tests.e2e.lan_client VIP PORT --interval 0.1 --timeout 0.25 --seconds 600
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading

from components.lab_access import VipPoller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=0.25)
    parser.add_argument("--seconds", type=float, default=600)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with VipPoller(args.host, args.port, interval=args.interval, limit=args.seconds, timeout=args.timeout) as poller:
        print("started", flush=True)
        stop.wait(args.seconds)
    for sample in poller.samples:
        print(json.dumps(dataclasses.asdict(sample)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
