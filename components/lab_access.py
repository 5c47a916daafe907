"""Reaching a lab the program built, from the Pulumi host: its settings and outputs (read with the Pulumi CLI,
as a user's shell would), SSH to its VMs, HTTP to its VIP, and who holds the VIP, all bounded in time.

Used by `python -m components.status` and `python -m components.drill`, and by the VM end-to-end test.
"""

from __future__ import annotations

import base64
import http.client
import json
import pathlib
import shlex
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .render import Host, lab_hosts
from .settings import PROJECT, LabSettings, SettingsError, load_user_settings

PULUMI_TIMEOUT_SECONDS = 120


class LabAccessError(Exception):
    """The lab cannot be read or reached: the message says what to do."""


def _pulumi(pulumi: str, cwd: Optional[str], *args: str) -> Any:
    command = [pulumi, *args, "--json"] + (["--cwd", cwd] if cwd else [])
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PULUMI_TIMEOUT_SECONDS)
    except FileNotFoundError:
        raise LabAccessError(f"--pulumi {pulumi}: no such command (the Pulumi CLI is needed to read the stack)") from None
    except subprocess.TimeoutExpired:
        raise LabAccessError(f"`{shlex.join(command)}` did not answer within {PULUMI_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        raise LabAccessError(f"`{shlex.join(command)}` failed: {result.stderr.strip()}")
    return json.loads(result.stdout or "null")


def raw_config_from_cli(entries: dict[str, Any]) -> dict[str, Any]:
    """`pulumi config --json` to what the program reads: every `ha-lb:` key without its prefix, a structured
    value as the JSON text the runtime hands the program (pulumi/sdk Go: config values reach the language host
    as strings; `objectValue` is the CLI's parsed copy of such a value)."""
    prefix = f"{PROJECT}:"
    raw: dict[str, Any] = {}
    for key, entry in entries.items():
        if not key.startswith(prefix):
            continue
        if "objectValue" in entry:
            raw[key[len(prefix):]] = json.dumps(entry["objectValue"])
        else:
            raw[key[len(prefix):]] = entry.get("value")
    return raw


@dataclass(frozen=True)
class Lab:
    """A built lab: its settings (parsed as the program parses them) and what reaches its VMs."""

    settings: LabSettings
    outputs: dict[str, Any]
    private_key: str = field(repr=False)

    @property
    def vip(self) -> str:
        return str(self.settings.vip)

    @property
    def load_balancers(self) -> dict[str, str]:
        return {lb.name: str(lb.address) for lb in self.settings.load_balancers}

    @property
    def hosts(self) -> tuple[Host, ...]:
        return lab_hosts(self.settings)


def stack_settings(stack: str, pulumi: str = "pulumi", cwd: Optional[str] = None) -> LabSettings:
    """The stack's configuration (`pulumi config --show-secrets`) parsed as the program parses it, with the same
    defaults (~/.ssh, `libvirt:uri`)."""
    entries = _pulumi(pulumi, cwd, "config", "--show-secrets", "--stack", stack) or {}
    try:
        provider_uri = (entries.get("libvirt:uri") or {}).get("value")
        return load_user_settings(raw_config_from_cli(entries), stack=stack.split("/")[-1], provider_uri=provider_uri)
    except SettingsError as error:
        raise LabAccessError(f"stack {stack}: {error}") from None


def lab_from_stack(stack: Optional[str], pulumi: str = "pulumi", cwd: Optional[str] = None) -> Lab:
    """The lab of `stack` (default: the selected stack) as the program saw it at its last `pulumi up`: its
    configuration parsed by the program's own load_settings (with the same defaults from ~/.ssh), and its
    outputs (secrets shown: the generated SSH key, if the stack made one, is one)."""
    if not stack:
        stacks = _pulumi(pulumi, cwd, "stack", "ls") or []
        stack = next((entry["name"] for entry in stacks if entry.get("current")), None)
        if not stack:
            raise LabAccessError("no stack selected: name one, or select it with `pulumi stack select`")
    settings = stack_settings(stack, pulumi, cwd)
    outputs = _pulumi(pulumi, cwd, "stack", "output", "--show-secrets", "--stack", stack) or {}
    if "vip" not in outputs:
        raise LabAccessError(f"stack {stack} has no outputs: the lab is not built (run `pulumi up` first)")
    if outputs["vip"] != str(settings.vip):
        raise LabAccessError(f"stack {stack}: its configuration says vip {settings.vip} but the lab was built with "
                             f"{outputs['vip']}: run `pulumi up` to apply the configuration first")
    private_key = outputs.get("sshPrivateKey") or settings.ssh_private_key
    if not private_key:
        raise LabAccessError(f"stack {stack}: no SSH key to reach the VMs (set sshPrivateKey, or keep "
                             f"waitForReady on so the stack generates one)")
    return Lab(settings, outputs, private_key)


class Ssh:
    """`ssh -i KEY USER@ADDR` with one shared connection per guest (ControlMaster), so a command costs a
    round trip, not a key exchange (slow on emulated guests)."""

    def __init__(self, key_text: str, user: str, workdir: Optional[pathlib.Path] = None):
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ha-lb-ssh-")
            workdir = pathlib.Path(self._tmp.name)
        self.workdir = workdir
        self.key = workdir / "id"
        self.key.write_text(key_text if key_text.endswith("\n") else key_text + "\n")
        self.key.chmod(0o600)
        self.user = user

    def base(self, address: str, shared: bool = True) -> list[str]:
        """The ssh command line; `shared=False` for a long-lived stream of its own, which a connection that a
        reboot left hanging cannot hold up."""
        # A shared master tolerates 30 s of silence: on Debian's cloud images a new session waits for the
        # user's systemd manager (pam_systemd), 3-6 s on an emulated guest and longer when it is busy, and a
        # 6 s window killed masters mid-setup ("Failed to connect to new control master"). A stream keeps 6 s:
        # it must notice a rebooted guest quickly, and is reopened when it drops.
        multiplexing = (["-o", "ControlMaster=auto", "-o", f"ControlPath={self.workdir}/cm-%h", "-o", "ControlPersist=120",
                         "-o", "ServerAliveCountMax=15"]
                        if shared else ["-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "ServerAliveCountMax=3"])
        return ["ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=5", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                "-o", "ServerAliveInterval=2", *multiplexing, f"{self.user}@{address}"]

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
        """Closes the shared connection (e.g. after a reboot), if there is one: best effort, it never raises (the
        status view, the drill and the e2e lab's teardown call it on their way to other work)."""
        try:
            subprocess.run(self.base(address)[:-1] + ["-O", "exit", f"{self.user}@{address}"], capture_output=True,
                           timeout=10)
        except subprocess.TimeoutExpired:
            pass  # the master is stuck: it ends with its ServerAlive checks

    def forget_all(self, addresses: list[str]) -> None:
        for address in addresses:
            self.forget(address)


def http_get(url_host: str, port: int, path: str = "/", timeout: float = 2.0,
             auth: Optional[tuple[str, str]] = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection(url_host, port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(200_000).decode(errors="replace")
    finally:
        connection.close()


@dataclass
class Sample:
    at: float  # time.monotonic() when the request started
    ok: bool
    detail: str  # the page, or the error
    seconds: float = 0.0  # how long it took to answer or fail


@dataclass(frozen=True)
class FailedRun:
    """An outage as the client saw it."""
    started: float  # time.monotonic() when its first failed request was sent
    ended: float  # when the first good answer after its last failed request was sent (inf: not yet)
    failed: int  # failed requests in it

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class VipPoller:
    """GETs http://VIP/ every `interval` s, each request a new connection in its own thread, whether or not the
    earlier ones have answered (as independent clients do), for at most `limit` s: a request stuck in a SYN
    retry does not hide the moment service returns, so an outage is resolved to `interval`, not to `timeout`
    (as the namespace harness's client, tests/netns/client.py `load`): about timeout / interval requests in
    flight at most, while none is answered. A request is good when it is answered 200 (and its body starts
    with `body_prefix`, when given)."""

    host: str
    port: int
    interval: float = 0.05
    limit: float = 120.0
    timeout: float = 1.0
    body_prefix: str = ""
    _results: list[Sample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: Optional[threading.Thread] = None

    @classmethod
    def replayed(cls, samples: list[Sample], interval: float, timeout: float) -> "VipPoller":
        """The figures of a client that ran elsewhere (another network namespace), from its samples."""
        poller = cls("", 0, interval=interval, timeout=timeout)
        poller._results.extend(samples)
        return poller

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
            worker = threading.Thread(target=self._request, args=(time.monotonic(),), daemon=True)
            worker.start()
            self._workers.append(worker)

    def _request(self, started: float) -> None:
        try:
            status, body = http_get(self.host, self.port, timeout=self.timeout)
            ok, detail = status == 200 and body.startswith(self.body_prefix), f"{status} {body.strip()}"
        except (OSError, http.client.HTTPException) as error:
            ok, detail = False, f"{type(error).__name__}: {error}"
        with self._lock:
            self._results.append(Sample(started, ok, detail, time.monotonic() - started))

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

    def failed_runs(self, since: float, until: float = float("inf")) -> list[FailedRun]:
        """The outages after `since`, in order: each from its first failed request to the first good answer sent
        after its last one. A request in flight when a fault strikes can fail after later ones were answered, at
        most a timeout after it was sent: failures sent less than a timeout apart belong to one outage. Failures
        with no good answer between them are one outage too, however far apart (a client that could not send for a
        while, on a starved host, saw nothing end). Failures sent from `until` on are left out."""
        runs: list[list] = []  # [first failure, last failure, first good answer after it or None, failed]
        for sample in (s for s in self.samples if s.at >= since):
            if not sample.ok:
                if sample.at >= until:
                    break  # later failures are not this window's; an answer before them still ends its last outage
                if runs and (sample.at - runs[-1][1] < self.timeout or runs[-1][2] is None):
                    runs[-1][1:] = [sample.at, None, runs[-1][3] + 1]
                else:
                    runs.append([sample.at, sample.at, None, 1])
            elif runs and runs[-1][2] is None:
                runs[-1][2] = sample.at
        return [FailedRun(first, float("inf") if good is None else good, failed) for first, _, good, failed in runs]

    def outage(self, since: float) -> float:
        """Seconds from `since` to the end of the first outage after it (0 when none failed; infinite when it has
        not ended)."""
        runs = self.failed_runs(since)
        return runs[0].ended - since if runs else 0.0

    def longest_outage(self, since: float, until: float = float("inf")) -> float:
        """The longest outage among the requests sent from `since` until `until` (infinite when the last one has not
        ended)."""
        return max((run.seconds for run in self.failed_runs(since, until)), default=0.0)


def holds_vip(ssh: Ssh, address: str, vip: str, interface: str) -> bool:
    """Whether the node at `address` holds the VIP now, by one `ip` over SSH (False when it does not answer)."""
    result = ssh.run(address, f"ip -o -4 addr show dev {shlex.quote(interface)}", timeout=15)
    return result.returncode == 0 and f" {vip}/" in result.stdout


class VipHolders:
    """Follows, on each load balancer, whether it holds the VIP: `ip -br addr show` once, then
    `ip monitor address` (event-driven: no polling load on slow guests), streamed over SSH and stamped with
    the host's clock on arrival, for at most `limit` s. A stream that ends (the node rebooted, the link went
    away) leaves the node's state unknown (a None report) until it is opened again; its first line then reports
    the state at that moment."""

    def __init__(self, ssh: Ssh, addresses: dict[str, str], vip: str, interface: str, limit: int = 120):
        self.reports: dict[str, list[tuple[float, Optional[bool]]]] = {name: [] for name in addresses}
        self.stopped_at: Optional[float] = None
        self._ssh, self._vip, self._limit = ssh, vip, limit
        self._deadline = time.monotonic() + limit
        dev = shlex.quote(interface)
        self._follow = f"ip -br addr show dev {dev}; exec timeout {int(limit)} stdbuf -oL ip -o monitor address dev {dev}"
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._processes: dict[str, subprocess.Popen] = {}
        self._threads = [threading.Thread(target=self._follow_node, args=(name, address), daemon=True)
                         for name, address in addresses.items()]
        for thread in self._threads:
            thread.start()

    def _follow_node(self, name: str, address: str) -> None:
        while not self._stopping.is_set() and time.monotonic() < self._deadline:
            with self._lock:
                if self._stopping.is_set():
                    return
                process = subprocess.Popen(self._ssh.base(address, shared=False) + [self._follow],
                                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
                self._processes[name] = process
            self._read(name, process)
            process.wait()
            if not self._stopping.is_set() and self.reports[name] and self.reports[name][-1][1] is not None:
                self.reports[name].append((time.monotonic(), None))
            self._stopping.wait(1)

    def _read(self, name: str, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        held = None
        for line in process.stdout:
            has_vip = f" {self._vip}/" in f" {line}"
            if held is None:  # the first line: the current state
                held = has_vip
            elif has_vip:  # an event about the VIP
                held = not line.startswith("Deleted")
            else:
                continue
            self.reports[name].append((time.monotonic(), held))

    def stop(self) -> None:
        self.stopped_at = time.monotonic()
        with self._lock:
            self._stopping.set()
            processes = list(self._processes.values())
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for thread in self._threads:
            thread.join(timeout=5)

    def wait_ready(self, limit: float = 20) -> bool:
        deadline = time.monotonic() + limit
        while not self.ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.ready()

    def holder_at(self, name: str, moment: float) -> Optional[bool]:
        """True or False by the latest report at `moment`; None before the first, or while the stream is lost."""
        earlier = [held for at, held in self.reports[name] if at <= moment]
        return earlier[-1] if earlier else None

    def first_held(self, name: str, since: float) -> Optional[float]:
        if self.holder_at(name, since):
            return since
        return next((at for at, held in self.reports[name] if at >= since and held), None)

    def held_alone(self, name: str, moment: float) -> bool:
        """Whether, by the latest reports at `moment`, `name` held the VIP and no other load balancer did."""
        return bool(self.holder_at(name, moment)) and not any(
            self.holder_at(other, moment) for other in self.reports if other != name)

    def held_since(self, name: str, moment: float) -> Optional[float]:
        """When `name`'s current run of holding the VIP (at `moment`) began, by its reports."""
        since = None
        for at, held in self.reports[name]:
            if at > moment:
                break
            since = (since or at) if held else None
        return since

    def longest_double_hold(self, since: float = 0.0) -> float:
        """The longest stretch (s, by the host's arrival stamps) after `since` in which every LB's latest report
        said it held the VIP."""
        moments = sorted(at for reports in self.reports.values() for at, _ in reports if at >= since)
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
            previous = next((held for at, held in reversed(reports) if at <= since and held is not None), None)
            for at, held in reports:
                if at > since and held is not None and held != previous:
                    events.append((at, f"{name} {'took' if held else 'dropped'} the VIP"))
                    previous = held
        return sorted(events)

    def takeovers(self, since: float, holder: str) -> list[tuple[float, str]]:
        """(moment, name) each time a load balancer other than the last one took the VIP after `since`,
        `holder` holding it then. A node re-adding the VIP it just held (one `ip monitor` burst, a stream
        opened again) is not a move."""
        moves, last = [], holder
        for at, what in self.changes(since):
            name = what.split()[0]
            if what.endswith("took the VIP") and name != last:
                moves.append((at, name))
                last = name
        return moves


def timeline(poller: VipPoller, holders: Optional[VipHolders], since: float, until: Optional[float] = None) -> str:
    """What a person debugging a failover wants: failed requests and VIP moves, in seconds after `since`."""
    until = until if until is not None else time.monotonic()
    events = [(s.at, f"request failed: {s.detail}") for s in poller.failures(since) if s.at <= until]
    if holders is not None:
        events += [(at, what) for at, what in holders.changes(since) if at <= until]
    return "\n".join(f"  +{at - since:6.2f} s  {what}" for at, what in sorted(events)) or "  (nothing happened)"


def wait_until(predicate: Callable[[], bool], limit: float, step: float = 0.5) -> Optional[float]:
    """Seconds until `predicate()` held (checked every `step` s), or None after `limit` s."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started >= limit:
            return None
        time.sleep(step)
