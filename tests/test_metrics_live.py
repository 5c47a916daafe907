"""Metrics on every VM (issue #11), served and read by the real programs: HAProxy's Prometheus exporter on the
rendered haproxy.cfg, the rendered firewall letting only the libvirt host scrape, the rendered keepalived notify
script run as keepalived runs it and read by real prometheus-node-exporter, and the script called by real
keepalived in the namespace harness across a failover."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
import time

import pytest

from components.render import PATHS, lab_hosts, render_haproxy_cfg, render_nftables_conf, render_vrrp_notify, \
    stats_password_hash
from components.settings import load_settings
from tests import promises
from tests.conftest import require, require_root, require_tools
from tests.keys import key_config

PASSWORD = "correct-horse-battery"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"  # Debian's package; its unit runs it as `prometheus`
# The contract's file, line for line; only the transition time varies.
STATE_LINES = (
    "# HELP keepalived_vrrp_state VRRP state of the instance on this node: 1 for the current state, 0 for the others.",
    "# TYPE keepalived_vrrp_state gauge",
)
TIMESTAMP_LINES = (
    "# HELP keepalived_vrrp_last_transition_timestamp_seconds When the instance entered its current state (Unix time).",
    "# TYPE keepalived_vrrp_last_transition_timestamp_seconds gauge",
)
TIMESTAMP = re.compile(r'^keepalived_vrrp_last_transition_timestamp_seconds\{instance="web-prod"\} (\d+\.\d{3})$')


def expected_file_without_time(state: str) -> list[str]:
    return [*STATE_LINES,
            *(f'keepalived_vrrp_state{{instance="web-prod",state="{each}"}} {int(each == state)}'
              for each in ("MASTER", "BACKUP", "FAULT", "STOP")),
            *TIMESTAMP_LINES]


def parse_vrrp_file(text: str) -> tuple[str, float]:
    """(the state the file shows, its transition time); asserts the file is exactly the contract's."""
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 9, text
    states = [s for s in ("MASTER", "BACKUP", "FAULT", "STOP") if f'state="{s}"}} 1' in text]
    assert len(states) == 1, text
    assert lines[:8] == expected_file_without_time(states[0]), text
    stamp = TIMESTAMP.match(lines[8])
    assert stamp, lines[8]
    return states[0], float(stamp.group(1))


def unshared(script: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """A shell script as root in private network, mount and PID namespaces: whatever it starts ends with it."""
    return subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--propagation",
                           "private", "sh", "-c", "set -eu\nip link set lo up\n" + script],
                          capture_output=True, text=True, timeout=timeout)


# -- HAProxy's exporter ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def haproxy_answers(tmp_path_factory):
    """lb01's rendered haproxy.cfg served by real HAProxy, web01 answering on its port and web02 silent."""
    require_root()
    require_tools("haproxy", "curl", "unshare", "ip")
    settings = load_settings({**key_config(), "statsPassword": PASSWORD}, stack="metrics")
    web01, web02 = settings.web_servers
    directory = tmp_path_factory.mktemp("promex")
    config = directory / "haproxy.cfg"
    config.write_text(render_haproxy_cfg(settings, stats_password_hash(settings, PASSWORD)))
    metrics = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    stats = f"http://{settings.vip}:{settings.stats_port}{settings.stats_path}"
    script = f"""
for address in {settings.vip} {web01.address} {web02.address}; do ip addr add $address/32 dev lo; done
mount -t tmpfs ha-lb-run /run
mkdir -p /run/haproxy
mkdir {directory}/docroot
{sys.executable} -m http.server --bind {web01.address} --directory {directory}/docroot {settings.web_http_port} \
    >/dev/null 2>&1 &
web=$!
/usr/sbin/haproxy -Ws -f {config} -p /run/haproxy.pid >/dev/null 2>&1 &
haproxy=$!
# Health checks every 500 ms, two to change a state: web01 UP and web02 DOWN within a few seconds.
for _ in $(seq 200); do
    if curl --silent --max-time 1 {metrics} >{directory}/metrics \
            && grep -q '^haproxy_server_status{{proxy="web-prod-http",server="{web01.name}",state="UP"}} 1$' {directory}/metrics \
            && grep -q '^haproxy_server_status{{proxy="web-prod-http",server="{web02.name}",state="DOWN"}} 1$' {directory}/metrics; then
        break
    fi
    sleep 0.05
done
code() {{ curl --silent --output /dev/null --max-time 2 --write-out '%{{http_code}}' "$@"; echo; }}
echo "stats-anonymous $(code {stats})"
echo "stats-right $(code --user {shlex.quote(settings.stats_user + ':' + PASSWORD)} {stats})"
echo "metrics-on-stats-port $(code http://{settings.vip}:{settings.stats_port}/metrics)"
echo "other-path $(code http://127.0.0.1:{settings.metrics_port}/)"
kill $haproxy $web
"""
    result = unshared(script)
    assert result.returncode == 0, result.stderr
    return {"codes": dict(line.split(" ", 1) for line in result.stdout.splitlines()),
            "metrics": (directory / "metrics").read_text()}


def test_haproxy_exports_each_web_servers_state_on_the_metrics_port(haproxy_answers):
    metrics = haproxy_answers["metrics"]
    for server, up in (("web01", 1), ("web02", 0)):
        for backend in ("web-prod-http", "web-prod-https"):
            assert f'haproxy_server_status{{proxy="{backend}",server="{server}",state="UP"}}' in metrics
        assert f'haproxy_server_status{{proxy="web-prod-http",server="{server}",state="UP"}} {up}\n' in metrics
    assert "haproxy_process_start_time_seconds" in metrics


def test_the_stats_page_still_asks_for_its_password_and_serves_no_metrics(haproxy_answers):
    assert haproxy_answers["codes"] == {"stats-anonymous": "401", "stats-right": "200",
                                        "metrics-on-stats-port": "503", "other-path": "503"}


# -- the firewall -------------------------------------------------------------------------------------------


CONNECT = textwrap.dedent("""
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1, source_address=(sys.argv[3], 0)).close()
        print("open")
    except socket.timeout:
        print("dropped")
    except ConnectionRefusedError:
        print("refused")
""")


@pytest.mark.parametrize("name", ["lb01", "web01"])
def test_only_the_networks_gateway_reaches_the_metrics_ports(name, tmp_path):
    """The VM's rendered ruleset in a namespace wired like the VM; the libvirt host (the gateway address of the
    network) and a stranger on the same network try every metrics port, with something listening on each."""
    require_root()
    require_tools("ip", "nft")
    settings = load_settings({**key_config(), "statsPassword": PASSWORD}, stack="metrics-fw")
    host = next(h for h in lab_hosts(settings) if h.name == name)
    nic = host.nics[0]  # lb: frontend (where the host scrapes it); web: backend, its only network
    plan = settings.frontend if nic.network_role == "frontend" else settings.backend
    ports = [settings.metrics_port, 9100] if name.startswith("lb") else [9100]
    gateway, stranger = str(plan.host_address), str(plan.network.network_address + 99)
    ruleset = tmp_path / "nftables.conf"
    ruleset.write_text(render_nftables_conf(settings, host))
    vm, peer = f"ha-lb-metrics-fw-{os.getpid()}-vm", f"ha-lb-metrics-fw-{os.getpid()}-peer"
    listener = None
    try:
        for namespace in (vm, peer):
            subprocess.run(["ip", "netns", "add", namespace], check=True)
            subprocess.run(["ip", "-n", namespace, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", vm, "link", "add", nic.interface, "type", "veth", "peer", "name", "p",
                        "netns", peer], check=True)
        subprocess.run(["ip", "-n", vm, "addr", "add", nic.cidr_address, "dev", nic.interface], check=True)
        subprocess.run(["ip", "-n", vm, "link", "set", nic.interface, "up"], check=True)
        for address in (gateway, stranger):
            subprocess.run(["ip", "-n", peer, "addr", "add", f"{address}/{plan.network.prefixlen}", "dev", "p"],
                           check=True)
        subprocess.run(["ip", "-n", peer, "link", "set", "p", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", vm, "nft", "-f", str(ruleset)], check=True)
        listen = ("import socket, sys, time\nservers = []\nfor port in sys.argv[1:]:\n"
                  "    s = socket.socket(); s.bind(('0.0.0.0', int(port))); s.listen(); servers.append(s)\n"
                  "print('listening', flush=True)\ntime.sleep(30)\n")
        listener = subprocess.Popen(["ip", "netns", "exec", vm, sys.executable, "-c", listen, *map(str, ports)],
                                    stdout=subprocess.PIPE, text=True)
        assert listener.stdout.readline().strip() == "listening"
        seen = {(source, port): subprocess.run(
            ["ip", "netns", "exec", peer, sys.executable, "-c", CONNECT, str(nic.address), str(port), source],
            capture_output=True, text=True, timeout=10).stdout.strip()
            for source in (gateway, stranger) for port in ports}
        assert seen == {**{(gateway, port): "open" for port in ports},
                        **{(stranger, port): "dropped" for port in ports}}, seen
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        for namespace in (vm, peer):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


# -- the notify script and node-exporter's textfile collector ----------------------------------------------


def run_notify_script(tmp_path, calls: list[list[str]], setup: str = "", after: str = "") -> subprocess.CompletedProcess:
    """The rendered notify script at its real path, executed by path (its mode and shebang decide whether it
    runs) as keepalived runs it: as root, with keepalived's four arguments, and with /var/lib/prometheus a
    fresh private tmpfs (so the textfile directory does not exist yet, as before the package is installed)."""
    require_root()
    require_tools("unshare", "mount", "ip")
    require(os.path.isdir("/var/lib/prometheus"), "needs /var/lib/prometheus (prometheus-node-exporter, installed by .ci/run)")
    sbin = tmp_path / "sbin"
    sbin.mkdir(exist_ok=True)
    script = sbin / os.path.basename(PATHS.vrrp_notify)
    script.write_text(render_vrrp_notify())
    script.chmod(0o755)
    lines = [f"mount --bind {sbin} {os.path.dirname(PATHS.vrrp_notify)}",
             "mount -t tmpfs -o mode=0755 ha-lb-var-prometheus /var/lib/prometheus", setup]
    lines += [f"env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin {PATHS.vrrp_notify} {shlex.join(call)}" for call in calls]
    return unshared("\n".join([*lines, after]))


def test_the_notify_script_writes_the_contracts_file_and_node_exporter_serves_it(tmp_path):
    require_tools(NODE_EXPORTER, "curl")
    out = tmp_path / "out"
    out.mkdir()
    before = time.time()
    # node-exporter as its unit runs it (user prometheus, Debian's defaults: :9100 and its textfile directory),
    # only the textfile collector on; stopped by its pid.
    result = run_notify_script(tmp_path, [["INSTANCE", "web-prod", "BACKUP", "253"],
                                          ["INSTANCE", "web-prod", "MASTER", "253"]], after=f"""
stat -c '%a %U' {PATHS.node_exporter_textfiles} {PATHS.vrrp_metrics} >{out}/modes
ls -A {PATHS.node_exporter_textfiles} >{out}/listing
cp {PATHS.vrrp_metrics} {out}/file
setpriv --reuid prometheus --regid prometheus --clear-groups {NODE_EXPORTER} --collector.disable-defaults \
    --collector.textfile >{out}/node-exporter.log 2>&1 &
exporter=$!
for _ in $(seq 100); do curl --silent --max-time 1 http://127.0.0.1:9100/metrics >{out}/metrics && break; sleep 0.05; done
kill $exporter
""")
    after = time.time()
    assert result.returncode == 0, result.stderr
    state, stamp = parse_vrrp_file((out / "file").read_text())
    assert state == "MASTER" and before <= stamp <= after
    metrics = (out / "metrics").read_text()
    assert 'keepalived_vrrp_state{instance="web-prod",state="MASTER"} 1\n' in metrics, metrics
    assert 'keepalived_vrrp_state{instance="web-prod",state="BACKUP"} 0\n' in metrics
    served = re.search(r'^keepalived_vrrp_last_transition_timestamp_seconds\{instance="web-prod"\} (\S+)$', metrics, re.M)
    assert served and abs(float(served.group(1)) - stamp) < 0.0005, metrics
    assert "node_textfile_scrape_error 0\n" in metrics, metrics
    # Made by the script (the package was "not installed"), readable by node-exporter's user, no leftovers.
    assert (out / "modes").read_text().split("\n")[:2] == ["755 root", "644 root"]
    assert (out / "listing").read_text().split() == [os.path.basename(PATHS.vrrp_metrics)]


def test_a_reader_never_sees_a_half_written_file(tmp_path):
    """A reader polls the file while the script rewrites it 200 times: every read is a whole file."""
    reader = tmp_path / "reader.py"
    reader.write_text(textwrap.dedent(f"""
        import sys, time
        seen, bad, deadline = 0, [], time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                text = open({PATHS.vrrp_metrics!r}).read()
            except FileNotFoundError:
                continue
            seen += 1
            if text.count("\\n") != 9 or not text.endswith("\\n"):
                bad.append(text)
            if open(sys.argv[1]).read():
                break
        print(seen, len(bad), repr(bad[:1]))
    """))
    done = tmp_path / "done"
    done.write_text("")
    calls = [["INSTANCE", "web-prod", ("MASTER", "BACKUP", "FAULT", "STOP")[i % 4], "254"] for i in range(200)]
    result = run_notify_script(tmp_path, calls, setup=f"{sys.executable} {reader} {done} >{tmp_path}/reads &\nreader=$!",
                               after=f"echo done >{done}\nwait $reader")
    assert result.returncode == 0, result.stderr
    seen, bad, sample = (tmp_path / "reads").read_text().split(" ", 2)
    assert int(seen) > 200 and int(bad) == 0, (seen, bad, sample)


def test_an_earlier_transition_never_overwrites_a_later_one(tmp_path):
    """keepalived does not wait for one notify run before starting the next: a run that comes late (its time is
    older than the file's) leaves the file alone."""
    later = "9999999999.000"
    written = "\\n".join([*expected_file_without_time("MASTER"),
                          f'keepalived_vrrp_last_transition_timestamp_seconds{{instance="web-prod"}} {later}', ""])
    result = run_notify_script(tmp_path, [["INSTANCE", "web-prod", "BACKUP", "253"]],
                               setup=f"mkdir {PATHS.node_exporter_textfiles}\nprintf '{written}' >{PATHS.vrrp_metrics}",
                               after=f"cat {PATHS.vrrp_metrics}")
    assert result.returncode == 0, result.stderr
    assert parse_vrrp_file(result.stdout) == ("MASTER", float(later))


@pytest.mark.parametrize("arguments", [["GROUP", "web-prod", "MASTER", "253"], ["INSTANCE", "web-prod", "DELETED", "0"],
                                       ["INSTANCE", 'web"prod', "MASTER", "253"], ["INSTANCE", "web-prod", "MASTER"]])
def test_arguments_keepalived_never_passes_are_refused_by_name(tmp_path, arguments):
    result = run_notify_script(tmp_path, [arguments], after="")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "expected 'INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <priority>'" in result.stderr
    assert shlex.join(arguments).replace("'", "") in result.stderr.replace("'", "")


# -- real keepalived across a failover (the namespace harness) --------------------------------------------


def test_each_load_balancers_file_follows_a_failover(tmp_path):
    """keepalived stops on the master (lb01): its file says STOP, lb02's says MASTER, both with a later
    transition time. Each load balancer gets a private, empty /var/lib/prometheus (mounted before keepalived
    starts, as on a fresh VM where the package made the directory, here the script makes it)."""
    require_root()
    require_tools("keepalived", "haproxy", "nft", "ip", "unshare", "nsenter")
    require(os.path.isdir("/var/lib/prometheus"), "needs /var/lib/prometheus (prometheus-node-exporter)")
    from tests.netns.harness import NetnsLab, harness_config, wait_until

    class MetricsLab(NetnsLab):
        def _load_balancer_setup(self, name: str) -> str:
            return super()._load_balancer_setup(name) + \
                "\nmount -t tmpfs -o mode=0755 ha-lb-var-prometheus /var/lib/prometheus"

    def vrrp_file(lab: NetnsLab, name: str) -> tuple[str, float] | None:
        text = lab.host(name).exec(["cat", PATHS.vrrp_metrics], check=False).stdout
        return parse_vrrp_file(text) if text else None

    with MetricsLab(harness_config(), stack="metrics") as lab:
        # The harness waited for the VIP on lb01; lb02 settled as BACKUP at its start.
        # keepalived runs the notify script after the state change: the MASTER file may follow the VIP by a moment.
        wait_until(lambda: (vrrp_file(lab, "lb01") or ("",))[0] == "MASTER" and vrrp_file(lab, "lb02"), 5,
                   "lb01's file saying MASTER and lb02's file")
        lb01_before, lb02_before = vrrp_file(lab, "lb01"), vrrp_file(lab, "lb02")
        assert (lb01_before[0], lb02_before[0]) == ("MASTER", "BACKUP")
        stopped = time.time()
        lab.systemctl("lb01", "stop", "keepalived")
        lab.wait_for_vip_on("lb02", timeout=promises.FAILOVER_SECONDS["keepalived stops on the master"]["classic"] + 5)
        wait_until(lambda: vrrp_file(lab, "lb01")[0] == "STOP" and vrrp_file(lab, "lb02")[0] == "MASTER", 5,
                   "the files to show the failover")
        lb01_after, lb02_after = vrrp_file(lab, "lb01"), vrrp_file(lab, "lb02")
        print(f"lb01 STOP written {lb01_after[1] - stopped:.3f} s and lb02 MASTER {lb02_after[1] - stopped:.3f} s "
              "after `systemctl stop keepalived` on lb01")
        assert lb01_after[1] > lb01_before[1] and lb02_after[1] > lb02_before[1]
        assert stopped - 0.01 <= lb01_after[1] and stopped - 0.01 <= lb02_after[1]
