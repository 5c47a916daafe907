"""The rendered HAProxy config served by real HAProxy, started as Debian's haproxy.service starts it, in a
private network, PID and mount namespace (the VIP on its loopback): what a user meets, in a second."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from components.render import render_haproxy_cfg, render_keepalived_conf, stats_password_hash
from components.settings import load_settings
from tests.conftest import require_root, require_tools
from tests.keys import key_config

PASSWORD = "correct-horse-battery"
UNIT = "/lib/systemd/system/haproxy.service"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """HAProxy run on lb01's rendered haproxy.cfg: the stats page's answers and the processes' names."""
    require_root()
    require_tools("haproxy", "curl", "unshare", "ip")
    settings = load_settings({**key_config(), "statsPassword": PASSWORD}, stack="live")
    lb01 = next(lb for lb in settings.load_balancers if lb.name == "lb01")
    directory = tmp_path_factory.mktemp("haproxy")
    config = directory / "haproxy.cfg"
    config.write_text(render_haproxy_cfg(settings, stats_password_hash(settings, PASSWORD)))
    url = f"http://{settings.vip}:{settings.stats_port}{settings.stats_path}"
    user = settings.stats_user
    # The command line of Debian's unit (ExecStart=/usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE ...).
    script = f"""
set -eu
ip link set lo up
ip addr add {settings.vip}/32 dev lo
mount -t tmpfs ha-lb-run /run
mkdir -p /run/haproxy
/usr/sbin/haproxy -Ws -f {config} -p /run/haproxy.pid >/dev/null 2>&1 &
for _ in $(seq 100); do
    curl --silent --output /dev/null --max-time 1 {url} && break
    sleep 0.05
done
code() {{ curl --silent --output /dev/null --max-time 2 --write-out '%{{http_code}}' "$@" {url}; echo; }}
echo "anonymous $(code)"
echo "wrong $(code --user {user}:wrong-password)"
echo "right $(code --user {shlex.quote(user + ':' + PASSWORD)})"
for pid in $(pidof haproxy); do echo "comm $(cat /proc/$pid/comm)"; done
"""
    # PID namespace: when the script (its init) ends, HAProxy ends with it.
    result = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--propagation",
                             "private", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    answers = dict(line.split(" ", 1) for line in result.stdout.splitlines() if not line.startswith("comm "))
    names = {line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith("comm ")}
    return {"answers": answers, "names": names, "keepalived": render_keepalived_conf(settings, lb01)}


def test_the_stats_page_asks_for_the_password_and_takes_only_the_right_one(served):
    assert served["answers"] == {"anonymous": "401", "wrong": "401", "right": "200"}


def test_keepalived_tracks_the_process_name_haproxy_really_runs_under(served):
    """vrrp_track_process matches the kernel's process name (/proc/PID/comm): the name the rendered
    config tracks must be the one Debian's haproxy.service runs, or HAProxy's death goes unseen."""
    assert served["names"] == {"haproxy"}, served["names"]  # master and worker
    block = re.search(r"vrrp_track_process \S+ \{(.*?)\}", served["keepalived"], re.S)
    assert block, "the default config tracks no process"
    tracked = re.search(r"^\s*process (\S+)$", block.group(1), re.M).group(1)
    assert tracked in served["names"]
    execstart = re.search(r"^ExecStart=(\S+)", open(UNIT).read(), re.M).group(1)
    assert execstart.rsplit("/", 1)[1][:15] == tracked  # comm is the executable's name, cut at 15
