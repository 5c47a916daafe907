"""Talking to the lab from the host: SSH to the guests, HTTP(S) to the VIP, bounded polling loops."""

from __future__ import annotations

import http.client
import pathlib
import shlex
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Optional


class Ssh:
    """`ssh -i KEY debian@ADDR` with one shared connection per guest (ControlMaster), so a command
    costs a round trip, not a TCG-slow key exchange."""

    def __init__(self, key_text: str, user: str, workdir: pathlib.Path):
        self.workdir = workdir
        self.key = workdir / "id"
        self.key.write_text(key_text)
        self.key.chmod(0o600)
        self.user = user

    def base(self, address: str) -> list[str]:
        return ["ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=5", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                "-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=3",
                "-o", "ControlMaster=auto", "-o", f"ControlPath={self.workdir}/cm-%h", "-o", "ControlPersist=120",
                f"{self.user}@{address}"]

    def run(self, address: str, command: str, timeout: float = 60, stdin: Optional[str] = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self.base(address) + [command], input=stdin, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as error:
            return subprocess.CompletedProcess(error.cmd, 124, stdout=str(error.stdout or ""),
                                               stderr=f"timed out after {timeout} s")

    def script(self, address: str, text: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Runs a script as pulumi-command's remote.Command does: the whole text is the command string of one
        SSH exec request (remote/commandOutputs.go CommandOutputs.run: session.Run), which the login user's shell runs."""
        return self.run(address, text, timeout=timeout)

    def wait_for_login(self, address: str, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.run(address, "true", timeout=15).returncode == 0:
                return True
            time.sleep(2)
        return False

    def forget(self, address: str) -> None:
        """Closes the shared connection (e.g. after a reboot)."""
        subprocess.run(self.base(address)[:-1] + ["-O", "exit", f"{self.user}@{address}"], capture_output=True,
                       timeout=10)


def http_get(url_host: str, port: int, path: str = "/", timeout: float = 2.0,
             auth: Optional[tuple[str, str]] = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection(url_host, port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        if auth:
            import base64
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(200_000).decode(errors="replace")
    finally:
        connection.close()


def tls_peer_common_name(host: str, port: int, timeout: float = 5.0) -> tuple[str, str]:
    """(certificate CN, body of GET /): completes a TLS handshake without verifying the self-signed chain."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            body = b""
            while chunk := tls.recv(4096):
                body += chunk
    pem = ssl.DER_cert_to_PEM_cert(der)
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "multiline"], input=pem,
                             capture_output=True, text=True, check=True).stdout
    cn = next((line.split("=", 1)[1].strip() for line in subject.splitlines() if "commonName" in line), "")
    return cn, body.decode(errors="replace")


@dataclass
class Sample:
    at: float  # time.monotonic() when the request started
    ok: bool
    detail: str  # the page, or the error


@dataclass
class VipPoller:
    """GETs http://VIP/ every `interval` s, each request a new connection in its own thread, for at most `limit`
    s: a request stuck in a SYN retry does not hide the moment service returns. At most `in_flight` requests
    at a time (a slot is skipped while they are busy), so a slow emulated lab is not buried in requests that
    pile up: two clients, resolving an outage to about timeout / 2."""

    host: str
    port: int
    interval: float = 0.05
    limit: float = 120.0
    timeout: float = 1.0
    in_flight: int = 2
    _busy: int = 0
    _results: list[Sample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: Optional[threading.Thread] = None

    def __enter__(self) -> "VipPoller":
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)
        for worker in self._workers:
            worker.join(timeout=self.timeout + 1)

    def _loop(self) -> None:
        started = time.monotonic()
        for index in range(int(self.limit / self.interval)):
            if self._stop.wait(max(0.0, started + index * self.interval - time.monotonic())):
                break
            with self._lock:
                if self._busy >= self.in_flight:
                    continue
                self._busy += 1
            worker = threading.Thread(target=self._request, args=(time.monotonic(),), daemon=True)
            worker.start()
            self._workers.append(worker)

    def _request(self, started: float) -> None:
        try:
            status, body = http_get(self.host, self.port, timeout=self.timeout)
            ok, detail = status == 200 and body.startswith("served by"), f"{status} {body.strip()}"
        except (OSError, http.client.HTTPException) as error:
            ok, detail = False, f"{type(error).__name__}: {error}"
        with self._lock:
            self._results.append(Sample(started, ok, detail))
            self._busy -= 1

    @property
    def samples(self) -> list[Sample]:
        """Every answered request so far, in the order they were sent."""
        with self._lock:
            return sorted(self._results, key=lambda sample: sample.at)

    def failures(self, since: float = 0.0) -> list[Sample]:
        return [s for s in self.samples if s.at >= since and not s.ok]

    def first_failure(self, since: float) -> Optional[float]:
        failed = self.failures(since)
        return failed[0].at if failed else None

    def outage(self, since: float) -> float:
        """Seconds from `since` to the first good answer after the first failure (0 when none failed)."""
        failed = self.failures(since)
        if not failed:
            return 0.0
        recovered = next((s for s in self.samples if s.at > failed[0].at and s.ok), None)
        return (recovered.at if recovered else float("inf")) - since

    def longest_outage(self, since: float) -> float:
        """The longest run of failed requests after `since`, from its first failure to the next good answer
        (infinite when the last run never recovered)."""
        longest, first = 0.0, None
        for sample in (s for s in self.samples if s.at >= since):
            if not sample.ok and first is None:
                first = sample.at
            elif sample.ok and first is not None:
                longest, first = max(longest, sample.at - first), None
        return float("inf") if first is not None else longest


class VipHolders:
    """Follows, on each load balancer, whether it holds the VIP: `ip -br addr show` once, then
    `ip monitor address` (event-driven: no polling load on the slow guests), streamed over SSH and
    stamped with the host's clock on arrival; bounded by `limit` s."""

    def __init__(self, ssh: Ssh, addresses: dict[str, str], vip: str, interface: str, limit: int = 120):
        self.reports: dict[str, list[tuple[float, bool]]] = {name: [] for name in addresses}
        self.stopped_at: Optional[float] = None
        dev = shlex.quote(interface)
        follow = (f"ip -br addr show dev {dev}; "
                  f"exec timeout {int(limit)} stdbuf -oL ip -o monitor address dev {dev}")
        self._processes = {name: subprocess.Popen(ssh.base(address) + [follow], stdout=subprocess.PIPE,
                                                  stderr=subprocess.DEVNULL, text=True, bufsize=1)
                           for name, address in addresses.items()}
        self._threads = [threading.Thread(target=self._read, args=(name, process, vip), daemon=True)
                         for name, process in self._processes.items()]
        for thread in self._threads:
            thread.start()

    def _read(self, name: str, process: subprocess.Popen, vip: str) -> None:
        assert process.stdout is not None
        held = None
        for line in process.stdout:
            has_vip = f" {vip}/" in f" {line}"
            if held is None:  # the first line: the current state
                held = has_vip
            elif has_vip:  # an event about the VIP
                held = not line.startswith("Deleted")
            else:
                continue
            self.reports[name].append((time.monotonic(), held))

    def stop(self) -> None:
        self.stopped_at = time.monotonic()
        for process in self._processes.values():
            process.terminate()
        for process in self._processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for thread in self._threads:
            thread.join(timeout=5)

    def holder_at(self, name: str, moment: float) -> Optional[bool]:
        earlier = [held for at, held in self.reports[name] if at <= moment]
        return earlier[-1] if earlier else None

    def first_held(self, name: str, since: float) -> Optional[float]:
        if self.holder_at(name, since):
            return since
        return next((at for at, held in self.reports[name] if at >= since and held), None)

    def longest_double_hold(self) -> float:
        """The longest stretch (s, by the host's arrival stamps) in which every LB's latest report said it held the VIP."""
        moments = sorted(at for reports in self.reports.values() for at, _ in reports)
        longest, started = 0.0, None
        for moment in moments:
            both = all(self.holder_at(name, moment) for name in self.reports)
            if both and started is None:
                started = moment
            elif not both and started is not None:
                longest, started = max(longest, moment - started), None
        if started is not None:
            longest = max(longest, (self.stopped_at or time.monotonic()) - started)
        return longest

    def samples(self, name: str) -> int:
        return len(self.reports[name])

    def ready(self) -> bool:
        return all(self.reports.values())

    def changes(self, since: float) -> list[tuple[float, str]]:
        """(moment, 'lb01 took the VIP' / 'lb01 dropped the VIP') after `since`."""
        events = []
        for name, reports in self.reports.items():
            previous = self.holder_at(name, since)
            for at, held in reports:
                if at > since and held != previous:
                    events.append((at, f"{name} {'took' if held else 'dropped'} the VIP"))
                    previous = held
        return sorted(events)


def timeline(poller: VipPoller, holders: Optional[VipHolders], since: float, until: Optional[float] = None) -> str:
    """What a person debugging a failover wants: failed requests and VIP moves, in seconds after `since`."""
    until = until if until is not None else time.monotonic()
    events = [(s.at, f"request failed: {s.detail}") for s in poller.failures(since) if s.at <= until]
    if holders is not None:
        events += [(at, what) for at, what in holders.changes(since) if at <= until]
    return "\n".join(f"  +{at - since:6.2f} s  {what}" for at, what in sorted(events)) or "  (nothing happened)"
