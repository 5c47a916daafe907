"""Where the host's cores went while a drill ran: each lab VM's QEMU threads and the host's own counters, sampled
from /proc on the host.

Under software emulation (TCG) a guest runs only while its vCPU thread holds a host core: a guest whose vCPU
thread waits on the host's runqueue answers nothing, however idle the guest itself is. Two figures tell the
causes apart for each guest and each 0.1 s of a drill:
- `ran`: the share of the interval its vCPU thread ran on a host core (the guest busy, as far as the host can
  tell: TCG executes the guest's instructions on that thread; an idle guest's vCPU thread sleeps in its halt);
- `waited`: the share it spent runnable on the host's runqueue without a core (the host busy elsewhere).
Both come from /proc/<pid>/task/<tid>/schedstat (the kernel's Documentation/scheduler/sched-stats.rst: time
spent on the cpu, time spent waiting on a runqueue, in nanoseconds). The vCPU threads are the ones QEMU names
"CPU <n>/TCG" (libvirt starts QEMU with `-name guest=<domain>,debug-threads=on`). The host's own line of
/proc/stat adds how busy both cores were and how much its own hypervisor took from it (`steal`).
The kernel adds a wait to a thread's count when the wait ends, so an interval right after a long wait can show
more than 100% waited (the wait began in earlier intervals).
"""

from __future__ import annotations

import pathlib
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

PROC = pathlib.Path("/proc")
SAMPLE_SECONDS = 0.05
BUCKET_SECONDS = 0.1


def qemu_processes(domains: list[str]) -> dict[str, int]:
    """domain name -> pid of the QEMU process running it (found by its `-name guest=<domain>,...`)."""
    found: dict[str, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for flag, value in zip(argv, argv[1:]):
            if flag == b"-name":
                guest = dict(part.split("=", 1) for part in value.decode().split(",") if "=" in part).get("guest")
                if guest in domains:
                    found[guest] = int(entry.name)
    missing = sorted(set(domains) - set(found))
    if missing:
        raise RuntimeError(f"no QEMU process found for {', '.join(missing)}")
    return found


def _vcpu_schedstat(pid: int) -> tuple[int, int]:
    """(ns on a core, ns waiting for one), summed over the process's vCPU threads."""
    ran = waited = 0
    for task in (PROC / str(pid) / "task").iterdir():
        try:
            if not (task / "comm").read_text().startswith("CPU "):
                continue
            on_cpu, on_queue, _ = (task / "schedstat").read_text().split()
        except (OSError, ValueError):
            continue  # a thread that ended between the listing and the read
        ran += int(on_cpu)
        waited += int(on_queue)
    return ran, waited


def _host_ticks() -> tuple[int, int, int]:
    """(all, idle, steal) jiffies of /proc/stat's `cpu` line (every core)."""
    fields = [int(value) for value in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + idle + iowait + irq + softirq + steal, idle + iowait, steal


@dataclass(frozen=True)
class CpuSample:
    at: float  # time.monotonic()
    guests: dict[str, tuple[int, int]]  # domain -> (vCPU ns ran, vCPU ns waited), cumulative
    host: tuple[int, int, int]  # (all, idle, steal) jiffies, cumulative


@dataclass(frozen=True)
class CpuInterval:
    start: float
    seconds: float
    ran: dict[str, float]  # domain -> share of the interval its vCPU ran (0-1 per vCPU)
    waited: dict[str, float]  # domain -> share of the interval its vCPU was runnable without a core
    host_busy: float  # share of all cores busy
    host_steal: float  # share of all cores taken by the host's own hypervisor


@dataclass
class GuestCpu:
    """Samples every lab VM's vCPU threads and the host's counters every 50 ms while the `with` block runs."""
    domains: dict[str, str]  # short name (lb01) -> libvirt domain name
    limit: float = 600  # the sampler never runs longer than this
    samples: list[CpuSample] = field(default_factory=list)
    _pids: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: Optional[threading.Thread] = None

    def __enter__(self) -> "GuestCpu":
        by_domain = qemu_processes(list(self.domains.values()))
        self._pids = {name: by_domain[domain] for name, domain in self.domains.items()}
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        ends = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < ends:
            guests = {}
            for name, pid in self._pids.items():
                try:
                    guests[name] = _vcpu_schedstat(pid)
                except OSError:  # this guest's QEMU has exited (a new one after a power-off is not followed)
                    pass
            self.samples.append(CpuSample(time.monotonic(), guests, _host_ticks()))
            self._stop.wait(SAMPLE_SECONDS)

    def intervals(self, since: float, until: float, width: float = BUCKET_SECONDS) -> list[CpuInterval]:
        """Consecutive intervals of about `width` seconds between the samples nearest to `since` and `until`."""
        chosen = [s for s in self.samples if since - SAMPLE_SECONDS <= s.at <= until + SAMPLE_SECONDS]
        found: list[CpuInterval] = []
        first = chosen[0] if chosen else None
        for sample in chosen[1:]:
            if first is None or sample.at - first.at < width - SAMPLE_SECONDS / 2:
                continue
            found.append(_interval(first, sample))
            first = sample
        return found

    def share(self, since: float, until: float) -> Optional[CpuInterval]:
        """The whole span as one interval (None: fewer than two samples in it)."""
        chosen = [s for s in self.samples if since <= s.at <= until]
        return _interval(chosen[0], chosen[-1]) if len(chosen) >= 2 else None


def _interval(first: CpuSample, last: CpuSample) -> CpuInterval:
    seconds = last.at - first.at
    names = sorted(set(first.guests) & set(last.guests))
    ran = {n: (last.guests[n][0] - first.guests[n][0]) / 1e9 / seconds for n in names}
    waited = {n: (last.guests[n][1] - first.guests[n][1]) / 1e9 / seconds for n in names}
    total = last.host[0] - first.host[0]
    busy = 1 - (last.host[1] - first.host[1]) / total if total else 0.0
    steal = (last.host[2] - first.host[2]) / total if total else 0.0
    return CpuInterval(first.at, seconds, ran, waited, busy, steal)


def format_intervals(intervals: list[CpuInterval], since: float, marks: dict[float, str] | None = None) -> str:
    """A table a line per interval: seconds after `since`, the host's cores, each guest's vCPU ran/waited (%)."""
    if not intervals:
        return "  (no CPU samples)"
    names = sorted(intervals[0].ran)
    lines = ["  t (s)  host busy/steal  " + "  ".join(f"{n} ran/waited" for n in names)]
    for interval in intervals:
        row = f"  {interval.start - since:+6.2f}  {interval.host_busy:4.0%} / {interval.host_steal:3.0%}     " + "  ".join(
            f"{interval.ran.get(n, 0):4.0%} / {interval.waited.get(n, 0):4.0%}" for n in names)
        for at, what in sorted((marks or {}).items()):
            if interval.start <= at < interval.start + interval.seconds:
                row += f"   <- {what}"
        lines.append(row)
    return "\n".join(lines)
