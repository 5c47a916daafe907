"""Who advertises VRRP on the lab's frontend network, seen from the host without touching the guests.

A master sends an advert every advert interval; a backup sends none. So the adverts on the libvirt bridge tell who
is master at every moment, and a backup that took over for a moment (its master's adverts came late) shows as
adverts from it. Watching this way costs the guests nothing: under software emulation an SSH command on the master
(the status view, a `journalctl`) delayed its fast-profile adverts by 0.2-0.55 s (host-side captures on its tap),
long enough for its peer to take over, so a check over SSH could cause the very lapse it looks for.

tcpdump runs on the host's bridge (`tcpdump -i <bridge> -n -tt -l ip proto 112`); its lines are read as they
come, so the pipe never fills (a full pipe makes tcpdump block and the kernel drop what it captured).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Optional

# tcpdump 4.99 (Debian 12), e.g.
# "1796659271.641359 IP 10.213.10.4 > 224.0.0.18: VRRPv3, Advertisement, vrid 1, prio 254, intvl 10cs, length 12"
_ADVERT = re.compile(r"^(?P<at>\d+\.\d+) IP (?P<source>[\d.]+) > [\d.]+: VRRPv\d, Advertisement\b")


@dataclass(frozen=True)
class Advert:
    at: float  # the host's wall clock (tcpdump's -tt)
    source: str


def parse_advert(line: str) -> Optional[Advert]:
    match = _ADVERT.match(line)
    return Advert(float(match["at"]), match["source"]) if match else None


class VrrpCapture:
    """The VRRP adverts a bridge carries while the context is open (at most `limit` s)."""

    def __init__(self, bridge: str, limit: float, netns: Optional[str] = None):
        self.adverts: list[Advert] = []
        inside = ["ip", "netns", "exec", netns] if netns else []
        self._command = [*inside, "timeout", str(int(limit)), "tcpdump", "-i", bridge, "-n", "-tt", "-l", "ip proto 112"]
        self._process: Optional[subprocess.Popen] = None
        self._reader: Optional[threading.Thread] = None

    def __enter__(self) -> "VrrpCapture":
        self._process = subprocess.Popen(self._command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # tcpdump says "listening on ..." on stderr once its capture is open (after a note on verbosity).
        said = [self._process.stderr.readline() for _ in range(2)]  # type: ignore[union-attr]
        assert "listening on" in said[-1], f"tcpdump did not start: {''.join(said)}"
        return self

    def _read(self) -> None:
        for line in self._process.stdout:  # type: ignore[union-attr]
            advert = parse_advert(line)
            if advert is not None:
                self.adverts.append(advert)

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None and self._reader is not None
        time.sleep(0.3)  # what tcpdump printed last reaches the reader
        self._process.terminate()  # by its pid: the `timeout` wrapper passes the signal on to tcpdump
        self._process.wait(timeout=10)
        self._reader.join(timeout=10)

    def senders(self, since: float, until: float) -> dict[str, int]:
        counts: dict[str, int] = {}
        for advert in self.adverts:
            if since <= advert.at <= until:
                counts[advert.source] = counts.get(advert.source, 0) + 1
        return counts

    def longest_silence(self, source: str, since: float, until: float) -> float:
        """The longest time between two adverts of `source` (and from `since` to its first, its last to `until`)."""
        times = [since] + [a.at for a in self.adverts if a.source == source and since <= a.at <= until] + [until]
        return max(b - a for a, b in zip(times, times[1:]))
