"""The readiness gate's failure paths, run for real.

1. components/vip_check.py, the last gate of `pulumi up` (run on the Pulumi host): the exact command of the
   program's `vip-check` resource, with only its URL and timeout swapped for a local server's and a short
   one, against HTTP servers started here on 127.0.0.1.
2. The readiness script of `<vm>-ready` (cloud-init/ready-check.sh.j2), run as remote.Command runs it (the
   whole text as one command string for the login shell, bash on Debian) in private mount and network
   namespaces: /proc/uptime and /var/log are bind-mounted, the loopback is the namespace's own (nothing
   listens on 8080/8443 unless the test starts it there), real curl, tail and timeout, and strict stand-ins
   for cloud-init, systemctl, journalctl and sudo (no systemd or cloud-init runs here).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator, Optional

import pytest

from components.render import LOAD_BALANCER, lab_hosts
from components.settings import load_settings
from tests.conftest import require_root, require_tools
from tests.keys import key_config
from tests.program_run import run_program

PASSWORD = "correct-horse-battery"
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                   "no_proxy", "NO_PROXY")


def config() -> dict:
    return {"statsPassword": PASSWORD, **key_config()}


@pytest.fixture(scope="module")
def lab():
    return run_program(config(), stack="dev")


def run_bounded(argv: list[str], limit: float, **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    """Runs argv in its own process group; past `limit` s the group (started here) is killed and the test fails."""
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, **kwargs)
    try:
        stdout, stderr = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=10)
        pytest.fail(f"{argv[:3]} did not finish within {limit} s\nstdout: {stdout}\nstderr: {stderr}")
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr), time.monotonic() - started


# ---------------------------------------------------------------------------------------------
# 1. The VIP check from the Pulumi host


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.requests.append(time.monotonic())  # type: ignore[attr-defined]
        self.server.behaviour(self)  # type: ignore[attr-defined]

    def log_message(self, *args: object) -> None:
        pass


def answer(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"") -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextlib.contextmanager
def local_server(behaviour: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[ThreadingHTTPServer]:
    """An HTTP server on 127.0.0.1 (ephemeral port) answering every GET with `behaviour`, in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.requests = []  # type: ignore[attr-defined]
    server.behaviour = behaviour  # type: ignore[attr-defined]
    server.release = threading.Event()  # type: ignore[attr-defined]  (ends a slow handler's wait)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def url_of(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/"


def vip_check_command(lab, url: str, timeout: int) -> tuple[str, str]:
    """The `vip-check` resource's command (and its dir), with only the URL and the timeout replaced."""
    resource = lab.named("vip-check").inputs
    command, vip_url = resource["create"], lab.outputs["httpUrl"]
    assert command.count(f" {vip_url} ") == 1, command  # the VIP's URL, as one argument
    timeouts = re.findall(r" --timeout \d+(?= |$)", command)
    assert len(timeouts) == 1, command
    local = command.replace(f" {vip_url} ", f" {url} ").replace(timeouts[0], f" --timeout {timeout}")
    assert local.count(url) == 1 and local.count(f" --timeout {timeout}") == 1, local
    return local, resource["dir"]


def run_vip_check(lab, url: str, timeout: int, limit: float,
                  proxy: Optional[str] = None) -> tuple[subprocess.CompletedProcess, float]:
    """Runs the command the way pulumi-command's local.Command does: `sh -c COMMAND` in its dir. No proxy
    variables (so nothing goes anywhere but the local servers), unless `proxy` is given."""
    command, directory = vip_check_command(lab, url, timeout)
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    if proxy:
        env["http_proxy"] = env["HTTP_PROXY"] = proxy
    return run_bounded(["sh", "-c", command], limit, cwd=directory, env=env)


def test_the_vip_check_command_is_python_m_components_vip_check_of_the_vip(lab):
    command, directory = vip_check_command(lab, "http://127.0.0.1:9/", 3)
    assert command == f"{sys.executable} -m components.vip_check http://127.0.0.1:9/ --timeout 3"
    assert pathlib.Path(directory, "components", "vip_check.py").is_file()


def test_a_200_passes_at_once_printing_the_start_of_the_page(lab):
    body = b"served by web01 (192.168.80.3)\n" + b"x" * 500
    with local_server(lambda h: answer(h, 200, body)) as server:
        result, seconds = run_vip_check(lab, url_of(server), timeout=10, limit=20)
    assert result.returncode == 0, result
    # The first 200 bytes of the page, for the person reading `pulumi up`'s output.
    assert result.stdout == f"{url_of(server)} answers: {body[:200].decode().strip()}\n", result.stdout
    assert result.stderr == ""
    assert len(server.requests) == 1
    assert seconds < 5, seconds


def test_a_503_for_the_whole_timeout_fails_with_the_status_after_retrying(lab):
    with local_server(lambda h: answer(h, 503, b"no server is available\n")) as server:
        result, seconds = run_vip_check(lab, url_of(server), timeout=3, limit=20)
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr == f"{url_of(server)} did not answer within 3 s (last: HTTP 503)\n", result.stderr
    # It kept asking (about once a second) for the whole timeout, and stopped soon after it.
    assert len(server.requests) >= 3, server.requests
    assert 3 <= seconds < 3 + 1 + 3, seconds


def test_a_refused_connection_fails_with_the_reason(lab):
    # A bound socket that does not listen: the kernel refuses connections to its port, and no one else
    # can take the port while the test runs.
    with contextlib.closing(socket.socket()) as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
        result, seconds = run_vip_check(lab, url, timeout=2, limit=20)
    assert result.returncode == 1, result
    assert result.stderr == f"{url} did not answer within 2 s (last: [Errno 111] Connection refused)\n", result.stderr
    assert 2 <= seconds < 2 + 1 + 3, seconds


def test_a_server_that_never_answers_fails_within_the_timeout_plus_one_attempt(lab):
    def never(handler: BaseHTTPRequestHandler) -> None:
        handler.server.release.wait(60)  # type: ignore[attr-defined]  (accepted, read, never answered)

    with local_server(never) as server:
        result, seconds = run_vip_check(lab, url_of(server), timeout=2, limit=30)
    assert result.returncode == 1, result
    assert result.stderr == f"{url_of(server)} did not answer within 2 s (last: timed out)\n", result.stderr
    # One attempt waits at most 5 s (urlopen's timeout), the pause between attempts is 1 s: past the
    # deadline by at most one of each, never hanging on the server.
    assert server.requests, "the check never reached the server"
    assert 2 <= seconds < 2 + 5 + 1 + 2, seconds


def test_a_503_then_a_200_passes_it_keeps_asking(lab):
    switch = time.monotonic() + 2.0

    def recovering(handler: BaseHTTPRequestHandler) -> None:
        if time.monotonic() < switch:
            answer(handler, 503, b"no server is available\n")
        else:
            answer(handler, 200, b"served by web02 (192.168.80.2)\n")

    with local_server(recovering) as server:
        result, seconds = run_vip_check(lab, url_of(server), timeout=15, limit=30)
    assert result.returncode == 0, result
    assert result.stdout == f"{url_of(server)} answers: served by web02 (192.168.80.2)\n", result.stdout
    assert len(server.requests) >= 3, server.requests  # 503s first, then the 200
    assert seconds < 2 + 1 + 3, seconds


def test_an_answer_that_is_not_http_is_retried_not_a_crash(lab):
    """A server that answers with something that is not HTTP (http.client raises BadStatusLine, which is
    no OSError) must be one more failed attempt, not a traceback that ends the wait at once."""
    bad_answers = 2

    def garbled_then_ok(handler: BaseHTTPRequestHandler) -> None:
        if len(handler.server.requests) <= bad_answers:  # type: ignore[attr-defined]
            handler.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
            handler.close_connection = True
        else:
            answer(handler, 200, b"served by web01 (192.168.80.3)\n")

    with local_server(garbled_then_ok) as server:
        result, _ = run_vip_check(lab, url_of(server), timeout=15, limit=30)
    assert result.returncode == 0, result
    assert "Traceback" not in result.stderr, result.stderr
    assert len(server.requests) == bad_answers + 1

    with local_server(lambda h: h.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")) as server:
        result, seconds = run_vip_check(lab, url_of(server), timeout=2, limit=20)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result
    # What came back instead of HTTP, on the one line.
    assert result.stderr == f"{url_of(server)} did not answer within 2 s (last: BadStatusLine: SSH-2.0-OpenSSH_9.2)\n", \
        result.stderr
    assert len(server.requests) >= 2 and seconds < 2 + 1 + 3


def test_the_vip_is_asked_directly_never_through_a_proxy_from_the_environment(lab):
    """The VIP sits on a libvirt network of this host (as do the guests the gate reaches over SSH): an
    http_proxy of the user's environment cannot reach it, and must not be asked instead of the VIP."""
    with local_server(lambda h: answer(h, 502, b"proxy\n")) as proxy, \
            local_server(lambda h: answer(h, 200, b"served by web01 (192.168.80.3)\n")) as vip:
        result, _ = run_vip_check(lab, url_of(vip), timeout=3, limit=20, proxy=url_of(proxy).rstrip("/"))
    assert result.returncode == 0, result
    assert len(vip.requests) == 1 and proxy.requests == []


# ---------------------------------------------------------------------------------------------
# 2. The readiness script on a guest

# What `cloud-init status`, `status --long` print and the exit code, per version and state, taken from the
# sources. 22.4.2 (Debian 12's, the default image; the installed package 22.4.2-1+deb12u4 here,
# /usr/lib/python3/dist-packages/cloudinit/cmd/status.py): handle_status_args prints
# "status: <done|error|running|disabled|not run>" and, with --long, TABULAR_LONG_TMPL (boot_status_code,
# last_update, "detail:" then the errors or the datasource on the next line); it returns 1 for "error", else
# 0, so a recoverable problem is just "done" there. From 23.4 on (25.1 here; canonical/cloud-init at
# 0167c1b9: cloudinit/cmd/status.py handle_status_args and print_status, doc/rtd/explanation/failure_states.rst
# "Cloud-init error codes"): exit 0 success, 1 unrecoverable error, 2 recoverable error; for a recoverable
# error the short status still says "done" ("For backwards compatibility, don't report degraded status
# here") and `--long` adds "extended_status: degraded done" and the recoverable_errors.
CLOUD_INIT_REPORTS = {
    ("22.4", "done"): (0, "status: done", "boot_status_code: enabled-by-generator\n"
                       "last_update: Thu, 01 Jan 1970 00:02:41 +0000\ndetail:\nDataSourceNoCloud [seed=/dev/sr0][dsmode=net]"),
    ("22.4", "error"): (1, "status: error", "boot_status_code: enabled-by-generator\n"
                        "last_update: Thu, 01 Jan 1970 00:02:41 +0000\ndetail:\n"
                        "('scripts_user', RuntimeError('Runparts: 1 failures (part-001) in 1 attempted commands'))"),
    ("22.4", "disabled"): (0, "status: disabled", "boot_status_code: disabled-by-generator\n"
                           "detail:\nCloud-init disabled by cloud-init-generator"),
    ("25.1", "done"): (0, "status: done", "extended_status: done\nboot_status_code: enabled-by-generator\n"
                       "last_update: Thu, 01 Jan 1970 00:02:41 +0000\ndetail: DataSourceNoCloud [seed=/dev/sr0]\n"
                       "errors: []\nrecoverable_errors: {}"),
    ("25.1", "error"): (1, "status: error", "extended_status: error - done\nboot_status_code: enabled-by-generator\n"
                        "last_update: Thu, 01 Jan 1970 00:02:41 +0000\ndetail: DataSourceNoCloud [seed=/dev/sr0]\n"
                        "errors:\n\t- ('scripts_user', RuntimeError('Runparts: 1 failures (part-001) in 1 attempted commands'))\n"
                        "recoverable_errors: {}"),
    ("25.1", "degraded done"): (2, "status: done", "extended_status: degraded done\n"
                                "boot_status_code: enabled-by-generator\nlast_update: Thu, 01 Jan 1970 00:02:41 +0000\n"
                                "detail: DataSourceNoCloud [seed=/dev/sr0]\nerrors: []\nrecoverable_errors:\n"
                                "WARNING:\n\t- Failed to write boot finished file /var/lib/cloud/instance/boot-finished"),
}

# Every stand-in: the exact argument forms the readiness script uses, the real tool's exit codes, and for
# anything else exit 2 with a message on stderr, also noted in UNEXPECTED (the script may take a non-zero
# exit for a verdict, so the tests check that file is empty).
_PROLOGUE = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> '{calls}'
unexpected() {{
    echo "stand-in $(basename "$0"): unexpected invocation: $*" >&2
    printf '%s\\n' "$(basename "$0") $*" >> '{unexpected}'
    exit 2
}}
"""

# cloud-init: `status --wait` (prints a dot per poll, then the status after a newline), `status`,
# `status --long`; each exits with the version's code for the state.
_CLOUD_INIT = """case "$#:$*" in
    "2:status --wait") printf '.\\n'; cat '{short}'; exit {code} ;;
    "1:status") cat '{short}'; exit {code} ;;
    "2:status --long") cat '{short}' '{long}'; exit {code} ;;
esac
unexpected "$@"
"""

# systemctl is-active --quiet UNIT: prints nothing, exits 0 when active and 3 (LSB "program is not
# running", systemctl(1) is-active) when not. Only the role's units.
_SYSTEMCTL = """if [ "$#" -eq 3 ] && [ "$1" = is-active ] && [ "$2" = --quiet ]; then
    case " {units} " in *" $3 "*) ;; *) unexpected "$@" ;; esac
    case " {inactive} " in *" $3 "*) exit 3 ;; esac
    exit 0
fi
unexpected "$@"
"""

# journalctl --unit UNIT --lines 30 --no-pager: the unit's own lines. As a user who is not root (no sudo)
# it sees none of the system journal, as the real one: a hint and "-- No entries --", exit 0.
_JOURNALCTL = """if [ "$#" -eq 5 ] && [ "$1" = --unit ] && [ "$3" = --lines ] && [ "$4" = 30 ] && [ "$5" = --no-pager ]; then
    case " {units} " in *" $2 "*) ;; *) unexpected "$@" ;; esac
    if [ -z "${{SUDO_USER:-}}" ]; then
        echo "Hint: You are currently not seeing messages from other users and the system."
        echo "-- No entries --"
        exit 0
    fi
    echo "Jan 01 00:02:40 {host} systemd[1]: Starting $2.service - stand-in unit $2..."
    echo "Jan 01 00:02:41 {host} $2[612]: stand-in journal of $2: bind() failed"
    echo "Jan 01 00:02:41 {host} systemd[1]: $2.service: Failed with result 'exit-code'."
    exit 0
fi
unexpected "$@"
"""

# sudo -n COMMAND: only the two commands the script runs as root, without a password prompt (-n).
_SUDO = """[ "${{1:-}}" = -n ] || unexpected "$@"
shift
case "$#:$*" in
    "4:tail -n 30 /var/log/cloud-init-output.log") ;;
    "6:journalctl --unit "*) ;;
    *) unexpected -n "$@" ;;
esac
SUDO_USER=debian exec "$@"
"""

JOURNAL_MARK = "stand-in journal of {unit}: bind() failed"
OUTPUT_LOG_LINES = [f"cloud-init-output.log line {i:02d}" for i in range(1, 41)]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    require_tools("openssl")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=web01", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


# Runs inside the namespaces (`unshare --mount --net`): the bind mounts, the loopback up, the web servers the
# case asks for on 127.0.0.1 (threads of this process, gone with it), then the script as one command
# string for bash; exits with the script's code.
NAMESPACE_MAIN = r"""
import http.server, json, os, ssl, subprocess, sys, threading
spec = json.loads(sys.argv[1])
for source, target in spec["binds"]:
    subprocess.run(["mount", "--bind", source, target], check=True)
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"stand-in page\n"
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

for scheme, port, status in spec["servers"]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.status = status
    if scheme == "https":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(spec["cert"], spec["key"])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
sys.exit(subprocess.run(["bash", "-c", os.environ["READINESS"]]).returncode)
"""


class Guest:
    """A host's readiness script with its stand-ins, cloud-init state, inactive units and local servers."""

    def __init__(self, tmp_path: pathlib.Path, lab, host: str):
        require_root()
        require_tools("unshare", "mount", "ip", "curl", "bash", "timeout", "tail")
        self.host = host
        self.script = lab.named(f"{host}-ready").inputs["create"]
        self.settings = load_settings(config(), stack="dev")
        role = next(h.role for h in lab_hosts(self.settings) if h.name == host)
        self.units = ("haproxy", "keepalived") if role == LOAD_BALANCER else ("nginx",)
        assert f"for unit in {' '.join(self.units)}; do" in self.script  # the role's units, as the stand-ins know them
        self.dir = tmp_path
        self.calls, self.unexpected = tmp_path / "calls", tmp_path / "unexpected"
        self.calls.write_text("")
        self.unexpected.write_text("")
        self.varlog = tmp_path / "varlog"
        self.varlog.mkdir()
        (self.varlog / "cloud-init-output.log").write_text("\n".join(OUTPUT_LOG_LINES) + "\n")
        (self.varlog / "cloud-init-output.log").chmod(0o640)
        self.uptime = tmp_path / "uptime"
        self.uptime.write_text("100.00 90.00\n")  # booted 100 s ago: most of readyTimeout is left

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_http_port}/"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.settings.web_https_port}/"

    def _tool(self, bin_dir: pathlib.Path, name: str, body: str) -> None:
        path = bin_dir / name
        path.write_text(_PROLOGUE.format(calls=self.calls, unexpected=self.unexpected) + body)
        path.chmod(0o755)

    def run(self, cloud_init: tuple[str, str] = ("22.4", "done"), inactive: tuple[str, ...] = (),
            servers: tuple[tuple[str, int], ...] = (), certificate=None) -> subprocess.CompletedProcess:
        """servers: (scheme, HTTP status) of what answers on the web ports (http on web_http_port, https on
        web_https_port); absent ones have nothing listening."""
        bin_dir = self.dir / "bin"
        bin_dir.mkdir(exist_ok=True)
        code, short, long = CLOUD_INIT_REPORTS[cloud_init]
        (self.dir / "status").write_text(short + "\n")
        (self.dir / "status-long").write_text(long + "\n")
        self._tool(bin_dir, "cloud-init", _CLOUD_INIT.format(short=self.dir / "status", long=self.dir / "status-long",
                                                             code=code))
        units = " ".join(self.units)
        self._tool(bin_dir, "systemctl", _SYSTEMCTL.format(units=units, inactive=" ".join(inactive)))
        self._tool(bin_dir, "journalctl", _JOURNALCTL.format(units=units, host=self.host))
        self._tool(bin_dir, "sudo", _SUDO.format())
        ports = {"http": self.settings.web_http_port, "https": self.settings.web_https_port}
        spec = {
            "binds": [[str(self.uptime), "/proc/uptime"], [str(self.varlog), "/var/log"]],
            "servers": [[scheme, ports[scheme], status] for scheme, status in servers],
            "cert": str(certificate[0]) if certificate else "",
            "key": str(certificate[1]) if certificate else "",
        }
        env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
        env.update(PATH=f"{bin_dir}:{os.environ['PATH']}", READINESS=self.script)
        result, _ = run_bounded(["unshare", "--mount", "--net", "--propagation", "private",
                                 sys.executable, "-c", NAMESPACE_MAIN, json.dumps(spec)], 60, env=env)
        assert self.unexpected.read_text() == "", f"a stand-in was called in a way the script never should:\n" \
                                                  f"{self.unexpected.read_text()}\n{result.stderr}"
        return result

    def called(self, tool: str) -> list[str]:
        return [line for line in self.calls.read_text().splitlines() if line.split(" ", 1)[0] == tool]


def assert_output_log_tail(stderr: str) -> None:
    """The last 30 lines of /var/log/cloud-init-output.log, in order, and nothing before them."""
    tail = "\n".join(OUTPUT_LOG_LINES[-30:]) + "\n"
    assert stderr.endswith(tail), stderr
    assert OUTPUT_LOG_LINES[-31] not in stderr


CLOUD_INIT_FAILURES = [
    # (version, state): what the headline says after "status: "
    (("22.4", "error"), "error, exit code 1"),
    (("22.4", "disabled"), "disabled"),
    (("25.1", "error"), "error, exit code 1"),
    (("25.1", "degraded done"), "done, exit code 2: recoverable errors"),
]


@pytest.mark.parametrize("host", ["lb01", "web01"])
@pytest.mark.parametrize("cloud_init, headline", CLOUD_INIT_FAILURES, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_cloud_init_not_done_cleanly_fails_with_its_report_and_output_log(tmp_path, lab, certificate, host,
                                                                          cloud_init, headline):
    guest = Guest(tmp_path, lab, host)
    # Everything else healthy: only cloud-init's verdict can fail the check.
    result = guest.run(cloud_init=cloud_init, servers=(("http", 200), ("https", 200)), certificate=certificate)
    assert result.returncode == 1, result
    assert result.stdout == ""
    _, short, long = CLOUD_INIT_REPORTS[cloud_init]
    expected_start = (f"{host}: cloud-init did not finish cleanly (status: {headline})\n"
                      f"{short}\n{long}\n")  # then `cloud-init status --long`, as it printed it
    assert result.stderr.startswith(expected_start), result.stderr
    assert_output_log_tail(result.stderr)
    assert result.stderr == expected_start + "\n".join(OUTPUT_LOG_LINES[-30:]) + "\n"
    assert guest.called("cloud-init") == ["cloud-init status --wait", "cloud-init status", "cloud-init status --long"]
    assert guest.called("sudo") == ["sudo -n tail -n 30 /var/log/cloud-init-output.log"]
    assert guest.called("systemctl") == []  # it stopped at cloud-init


@pytest.mark.parametrize("host, unit", [("lb01", "haproxy"), ("lb01", "keepalived"), ("web01", "nginx")])
def test_an_inactive_unit_fails_with_its_name_and_journal(tmp_path, lab, certificate, host, unit):
    guest = Guest(tmp_path, lab, host)
    result = guest.run(inactive=(unit,), servers=(("http", 200), ("https", 200)), certificate=certificate)
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr == (
        f"{host}: {unit} is not active after cloud-init:\n"
        f"Jan 01 00:02:40 {host} systemd[1]: Starting {unit}.service - stand-in unit {unit}...\n"
        f"Jan 01 00:02:41 {host} {unit}[612]: {JOURNAL_MARK.format(unit=unit)}\n"
        f"Jan 01 00:02:41 {host} systemd[1]: {unit}.service: Failed with result 'exit-code'.\n"), result.stderr
    for other in set(guest.units) - {unit}:
        assert other not in result.stderr
    assert guest.called("sudo") == [f"sudo -n journalctl --unit {unit} --lines 30 --no-pager"]
    checked = guest.called("systemctl")
    assert checked[-1] == f"systemctl is-active --quiet {unit}"  # the first inactive unit ends the check
    assert checked == [f"systemctl is-active --quiet {u}" for u in guest.units[:guest.units.index(unit) + 1]]


def test_a_web_server_with_nothing_listening_fails_naming_the_url(tmp_path, lab):
    guest = Guest(tmp_path, lab, "web01")
    result = guest.run()  # a fresh network namespace: nothing listens on 127.0.0.1 there
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    # curl's own reason (--show-error), then the script's line naming the URL; the https one is never tried.
    assert len(lines) == 2 and lines[0].startswith("curl: (7) Failed to connect to 127.0.0.1 port 8080"), lines
    assert lines[1] == f"web01: {guest.http_url} does not answer"


def test_a_web_server_answering_an_error_fails_naming_the_url(tmp_path, lab, certificate):
    guest = Guest(tmp_path, lab, "web01")
    result = guest.run(servers=(("http", 503), ("https", 200)), certificate=certificate)
    assert result.returncode == 1, result
    assert result.stderr.splitlines() == ["curl: (22) The requested URL returned error: 503",
                                          f"web01: {guest.http_url} does not answer"], result.stderr


def test_a_web_server_without_https_fails_naming_the_https_url(tmp_path, lab):
    guest = Guest(tmp_path, lab, "web01")
    result = guest.run(servers=(("http", 200),))
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("curl: (7) Failed to connect to 127.0.0.1 port 8443"), lines
    assert lines[1] == f"web01: {guest.https_url} does not answer"


@pytest.mark.parametrize("version", ["22.4", "25.1"])
@pytest.mark.parametrize("host", ["lb01", "web01"])
def test_a_healthy_host_is_ready(tmp_path, lab, certificate, host, version):
    guest = Guest(tmp_path, lab, host)
    result = guest.run(cloud_init=(version, "done"), servers=(("http", 200), ("https", 200)), certificate=certificate)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{host}: ready\n", ""), result
    assert guest.called("systemctl") == [f"systemctl is-active --quiet {u}" for u in guest.units]
    assert guest.called("sudo") == []
