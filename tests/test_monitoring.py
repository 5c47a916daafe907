"""The Prometheus config `python -m components.monitoring` renders for a stack (issue #11): `promtool check
config` accepts it with the rules file, its targets are the lab's VMs with the labels the rules read, and real
Prometheus on it, scraping real HAProxy (the rendered haproxy.cfg) and real node-exporter (serving the rendered
notify script's file), finds every series the rules select and evaluates every rule without error."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

from components.monitoring import RULES_FILE, render_prometheus_config
from components.render import PATHS, render_haproxy_cfg, render_vrrp_notify, stats_password_hash
from components.settings import load_settings
from tests.conftest import require_root, require_tools
from tests.keys import key_config

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
NODE_EXPORTER = "prometheus-node-exporter"  # Debian's package's binary
# The README's default addresses ("Addresses: the reference plan, mapped") and ports: metricsPort 8405,
# node-exporter 9100.
DEFAULT_TARGETS = {
    "ha-lb-haproxy": [("192.168.10.4:8405", "load-balancer", "lb01"), ("192.168.10.2:8405", "load-balancer", "lb02")],
    "ha-lb-node": [("192.168.10.4:9100", "load-balancer", "lb01"), ("192.168.10.2:9100", "load-balancer", "lb02"),
                   ("192.168.80.3:9100", "web-server", "web01"), ("192.168.80.2:9100", "web-server", "web02")],
}


def targets_of(config_text: str) -> dict[str, list[tuple[str, str, str, str]]]:
    """job -> (target, stack, role, vm) for every target of the rendered config."""
    jobs = yaml.safe_load(config_text)["scrape_configs"]
    return {job["job_name"]: [(target, entry["labels"]["stack"], entry["labels"]["role"], entry["labels"]["vm"])
                              for entry in job["static_configs"] for target in entry["targets"]] for job in jobs}


def test_the_default_stack_is_scraped_on_every_vm_with_its_labels():
    rendered = render_prometheus_config(load_settings(key_config(), stack="lab"))
    assert targets_of(rendered) == {job: [(target, "lab", role, vm) for target, role, vm in targets]
                                    for job, targets in DEFAULT_TARGETS.items()}
    assert yaml.safe_load(rendered)["rule_files"] == [str(RULES_FILE)]


def test_a_changed_metrics_port_and_more_web_servers_are_scraped():
    web_servers = [{"name": f"web{n:02d}", "address": f"192.168.80.{n + 1}"} for n in range(2, 5)]
    settings = load_settings({**key_config(), "metricsPort": 9405, "webServers": web_servers}, stack="big")
    targets = targets_of(render_prometheus_config(settings))
    assert [target for target, *_ in targets["ha-lb-haproxy"]] == ["192.168.10.4:9405", "192.168.10.2:9405"]
    assert [(target, vm) for target, _, _, vm in targets["ha-lb-node"]][2:] == [
        ("192.168.80.3:9100", "web02"), ("192.168.80.4:9100", "web03"), ("192.168.80.5:9100", "web04")]


@pytest.mark.parametrize("stack", ["default", "example"])
def test_promtool_accepts_the_rendered_config_with_the_rules(stack, tmp_path):
    require_tools("promtool")
    if stack == "example":
        rendered = subprocess.run([sys.executable, "-m", "components.monitoring", "Pulumi.example.yaml"],
                                  cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    else:
        rendered = render_prometheus_config(load_settings(key_config(), stack="lab"))
    config = tmp_path / "prometheus.yml"
    config.write_text(rendered)
    result = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    assert re.search(rf"Checking {re.escape(str(RULES_FILE))}\n\s+SUCCESS: \d+ rules found", result.stdout), result.stdout


def test_the_command_names_the_bad_setting_and_fails(tmp_path):
    stack_file = tmp_path / "Pulumi.bad.yaml"
    stack_file.write_text("config:\n  ha-lb:metricsPort: 70000\n")
    result = subprocess.run([sys.executable, "-m", "components.monitoring", str(stack_file)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert "metricsPort: 70000 is not valid; expected a whole number from 1 to 65535" in result.stderr


# -- real Prometheus on real exporters -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus_answers(tmp_path_factory):
    """lb01 of the default stack in a private network, mount and PID namespace: HAProxy on the rendered
    haproxy.cfg (web01 answering, web02 absent, no HTTPS server), node-exporter serving the file the rendered
    notify script wrote for MASTER, and Prometheus on the rendered config. lb02, web01's and web02's
    node-exporters are absent: their targets are down. Returns the answers of Prometheus's HTTP API."""
    require_root()
    require_tools("haproxy", "prometheus", NODE_EXPORTER, "curl", "unshare", "ip")
    settings = load_settings({**key_config(), "statsPassword": "correct-horse"}, stack="live")
    lb01, _ = settings.load_balancers
    web01, _ = settings.web_servers
    directory = tmp_path_factory.mktemp("prometheus")
    (directory / "haproxy.cfg").write_text(render_haproxy_cfg(settings, stats_password_hash(settings, "correct-horse")))
    (directory / "notify").write_text(render_vrrp_notify())
    (directory / "prometheus.yml").write_text(render_prometheus_config(settings))
    (directory / "docroot").mkdir()
    api = "http://127.0.0.1:9090/api/v1"
    queries = {
        "vrrp": 'keepalived_vrrp_state{job="ha-lb-node",state="MASTER"}',
        "server": 'haproxy_server_status{job="ha-lb-haproxy",proxy="web-prod-http",state="DOWN"}',
        "backend": 'haproxy_backend_status{job="ha-lb-haproxy",state="DOWN"}',
        "up": "up",
        "alerts": "ALERTS",
    }
    fetches = "\n".join(f"curl --silent --max-time 5 --get --data-urlencode {json.dumps('query=' + query)} "
                        f"{api}/query >{directory}/{name}.json" for name, query in queries.items())
    script = f"""
set -eu
ip link set lo up
for address in {lb01.address} {web01.address} {settings.vip}; do ip addr add $address/32 dev lo; done
mount -t tmpfs ha-lb-run /run
mkdir -p /run/haproxy
mount -t tmpfs ha-lb-textfiles {pathlib.PurePosixPath(PATHS.node_exporter_textfiles).parent}
sh {directory}/notify INSTANCE web-prod MASTER 254
{sys.executable} -m http.server --bind {web01.address} --directory {directory}/docroot {settings.web_http_port} \
    >/dev/null 2>&1 &
/usr/sbin/haproxy -Ws -f {directory}/haproxy.cfg -p /run/haproxy.pid >/dev/null 2>&1 &
{NODE_EXPORTER} --web.listen-address={lb01.address}:9100 --collector.disable-defaults --collector.textfile \
    --collector.textfile.directory={PATHS.node_exporter_textfiles} >{directory}/node-exporter.log 2>&1 &
prometheus --config.file={directory}/prometheus.yml --storage.tsdb.path={directory}/data \
    --web.listen-address=127.0.0.1:9090 >{directory}/prometheus.log 2>&1 &
# Scrapes and rule evaluations every 5 s: wait (at most 60 s) for web02's server-down alert, which needs
# HAProxy scraped and its checks done, then one more evaluation so every rule has seen the same data.
for _ in $(seq 60); do
    if curl --silent --max-time 2 --get --data-urlencode 'query=ALERTS{{alertname="HaLbBackendServerDown"}}' \
            {api}/query | grep -q '"server":"web02"'; then
        break
    fi
    sleep 1
done
sleep 6
{fetches}
curl --silent --max-time 5 {api}/rules >{directory}/rules.json
"""
    # PID namespace: when the script (its init) ends, everything it started ends with it.
    result = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--propagation",
                             "private", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + (directory / "prometheus.log").read_text()[-3000:]
    answers = {name: json.loads((directory / f"{name}.json").read_text())["data"] for name in [*queries, "rules"]}
    return {name: answer["result"] if "result" in answer else answer for name, answer in answers.items()}


def series(answer: list[dict]) -> list[tuple[dict, str]]:
    return [(item["metric"], item["value"][1]) for item in answer]


def test_prometheus_stores_the_vrrp_state_with_the_vm_labels_and_the_instance_renamed(prometheus_answers):
    """node-exporter's `instance="web-prod"` clashes with the target label: Prometheus keeps the target's and
    stores the file's as `exported_instance`, which the rules read."""
    assert series(prometheus_answers["vrrp"]) == [(
        {"__name__": "keepalived_vrrp_state", "job": "ha-lb-node", "instance": "192.168.10.4:9100",
         "exported_instance": "web-prod", "state": "MASTER", "stack": "live", "role": "load-balancer", "vm": "lb01"},
        "1")]


def test_prometheus_stores_haproxys_server_and_backend_states_as_the_rules_read_them(prometheus_answers):
    labels = {"job": "ha-lb-haproxy", "instance": "192.168.10.4:8405", "stack": "live", "role": "load-balancer",
              "vm": "lb01", "state": "DOWN"}
    servers = {(m["server"], value) for m, value in series(prometheus_answers["server"])
               if {k: m[k] for k in labels} == labels}
    assert servers == {("web01", "0"), ("web02", "1")}
    backends = {(m["proxy"], value) for m, value in series(prometheus_answers["backend"])
                if {k: m[k] for k in labels} == labels}
    # No HTTPS server runs: that backend is DOWN; `stats` has no server at all and is UP.
    assert backends == {("stats", "0"), ("web-prod-http", "0"), ("web-prod-https", "1")}


def test_every_vm_is_a_target_and_only_lb01_answers(prometheus_answers):
    up = {(m["job"], m["vm"]): value for m, value in series(prometheus_answers["up"])}
    assert up == {("ha-lb-haproxy", "lb01"): "1", ("ha-lb-haproxy", "lb02"): "0",
                  ("ha-lb-node", "lb01"): "1", ("ha-lb-node", "lb02"): "0",
                  ("ha-lb-node", "web01"): "0", ("ha-lb-node", "web02"): "0"}


def test_every_rule_is_evaluated_on_real_data_without_error(prometheus_answers):
    rules = [rule for group in prometheus_answers["rules"]["groups"] for rule in group["rules"]]
    assert len(rules) == 9
    assert {(rule["name"], rule["health"], rule.get("lastError", "")) for rule in rules} == {
        (rule["name"], "ok", "") for rule in rules}


def test_the_rules_see_the_faults_of_this_lab_and_no_other(prometheus_answers):
    """Pending, not firing (their `for:` is longer than the test): web02 down for HAProxy, web01 too behind
    the HTTPS backend (no HTTPS server runs), that backend without a server, the absent VMs. lb01 is MASTER,
    lb02 is not scraped: the VIP has one holder."""
    pending = {(m["alertname"], m["alertstate"], m["vm"], m.get("proxy"), m.get("server"))
               for m, _ in series(prometheus_answers["alerts"])}
    assert pending == {
        ("HaLbBackendServerDown", "pending", "lb01", "web-prod-http", "web02"),
        ("HaLbBackendServerDown", "pending", "lb01", "web-prod-https", "web01"),
        ("HaLbBackendServerDown", "pending", "lb01", "web-prod-https", "web02"),
        ("HaLbBackendAllServersDown", "pending", "lb01", "web-prod-https", None),
        ("HaLbVmDown", "pending", "lb02", None, None),
        ("HaLbVmDown", "pending", "web01", None, None),
        ("HaLbVmDown", "pending", "web02", None, None),
    }
