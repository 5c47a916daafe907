"""The load balancers' activate script (what cloud-init's runcmd runs once, as root, by its path): what it
enables for the next boot and the order it validates and starts things in. Run for real against recording
stand-ins that accept only the calls systemctl and the validators accept (the namespace harness runs it
against the real daemons; this is the fast check)."""

from __future__ import annotations

import pathlib
import shlex
import subprocess

import pytest
import yaml

from components.render import PATHS, lab_hosts, render_host, stats_password_hash
from components.settings import load_settings
from tests.keys import key_config

# systemctl: the verbs the script may use and Debian's units on a load balancer. An unknown unit fails as
# systemctl fails ("Unit file X.service does not exist", exit 1 for enable; exit 5 for start/restart).
SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> "$CALLS"
verb=$1; shift
[ $# -ge 1 ] || { echo "systemctl stand-in: $verb needs a unit" >&2; exit 1; }
for unit in "$@"; do
    case ${unit%.service} in
        nftables|haproxy|keepalived|qemu-guest-agent|ha-lb-boot-finished) ;;
        *) echo "Unit file $unit does not exist." >&2; [ "$verb" = enable ] && exit 1; exit 5 ;;
    esac
done
case $verb in
    enable|restart|reset-failed|start) exit 0 ;;
    *) echo "systemctl stand-in: verb $verb is not expected here" >&2; exit 1 ;;
esac
"""
# The validators and sysctl: record, and insist on the file the script must hand them.
RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case "$*" in
    *{expected}*) exit 0 ;;
    *) echo "$(basename "$0") stand-in: expected {expected} in: $*" >&2; exit 2 ;;
esac
"""
EXPECTED_FILE = {"sysctl": PATHS.sysctl, "nft": PATHS.nftables, "haproxy": PATHS.haproxy,
                 "keepalived": PATHS.keepalived}


def lb01_user_data() -> dict:
    """lb01's cloud-init user-data, as the program renders it."""
    settings = load_settings({**key_config(), "statsPassword": "correct-horse-battery"}, stack="activate")
    lb01 = next(h for h in lab_hosts(settings) if h.name == "lb01")
    return yaml.safe_load(render_host(settings, lb01, stats_password_hash(settings, "x" * 8)).user_data)


def run_activate(directory, failing: str = "") -> tuple[subprocess.CompletedProcess, list[str], dict]:
    """lb01's activate script, written with the mode write_files gives it and run by its path as runcmd
    runs it (as root), against the stand-ins; `failing` names a validator that rejects its file."""
    user_data = lb01_user_data()
    [activate] = [f for f in user_data["write_files"] if f["path"] == PATHS.activate]
    script = directory / "ha-lb-activate"
    script.write_text(activate["content"])
    script.chmod(int(activate["permissions"], 8))
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(SYSTEMCTL)
    for tool, expected in EXPECTED_FILE.items():
        recorder = RECORDER.replace("{expected}", expected)
        (bin_dir / tool).write_text(recorder if tool != failing else recorder.replace("exit 0 ;;", "exit 1 ;;"))
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    log = directory / "calls"
    log.write_text("")
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=30,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(log)})
    return result, log.read_text().splitlines(), user_data


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> list[str]:
    result, calls, user_data = run_activate(tmp_path_factory.mktemp("activate"))
    assert user_data["runcmd"] == [[PATHS.activate]]  # runcmd runs it by its path
    assert result.returncode == 0, result.stderr
    return calls


def test_every_service_is_enabled_so_a_reboot_brings_back_firewall_haproxy_and_keepalived(calls):
    enabled = {unit.removesuffix(".service") for call in calls if call.startswith("systemctl enable ")
               for unit in call.split()[2:]}
    # Debian's nftables package enables nothing: without this, a rebooted LB would come up with no firewall. Without
    # the boot gate's unit, a rebooted LB would stay out of the election (in FAULT) for good.
    assert enabled == {"nftables", "haproxy", "keepalived", "ha-lb-boot-finished"}


def test_it_validates_everything_before_it_starts_anything_and_the_firewall_first(calls):
    def first(prefix: str) -> int:
        return next(i for i, call in enumerate(calls) if call.startswith(prefix))

    starts = [i for i, call in enumerate(calls) if call.startswith(("systemctl restart", "systemctl start"))]
    for validation in ("sysctl", "nft --check", "haproxy -c", "keepalived --config-test"):
        assert first(validation) < min(starts), calls
    assert first("systemctl restart nftables") < first("systemctl restart haproxy") < first("systemctl restart keepalived")
    assert first("systemctl reset-failed haproxy") < first("systemctl restart haproxy")
    # This first boot's gate: the unit waits for the boot (runcmd's own included) to finish.
    assert first("systemctl restart keepalived") < first("systemctl start ha-lb-boot-finished")


def test_the_script_stops_at_the_first_failure(tmp_path):
    """set -eu: a config HAProxy rejects starts nothing (cloud-init shows the failure)."""
    result, calls, _ = run_activate(tmp_path, failing="haproxy")
    assert result.returncode != 0
    assert any(call.startswith("haproxy -c") for call in calls)
    assert not [call for call in calls if call.startswith("systemctl")], calls


# systemctl is-system-running --wait: waits for the boot to be over, prints the manager's state and exits 0 only
# for "running" (systemctl(1), is-system-running).
IS_SYSTEM_RUNNING = """#!/bin/sh
[ "$*" = "is-system-running --wait" ] || { echo "systemctl stand-in: only is-system-running --wait is expected, got: $*" >&2; exit 1; }
echo "$STATE" >> "$CALLS"
echo "$STATE"
[ "$STATE" = running ]
"""


def run_boot_finished_script(directory, state: str) -> tuple[subprocess.CompletedProcess, list[str], pathlib.Path]:
    """lb01's boot-finished script as cloud-init writes it, run by its path against a systemctl whose boot ended in
    `state`, its marker (keepalived's track file, on the guest's /run) moved into `directory`; keepalived itself
    reads it in the namespace harness. (result, states systemctl was asked for, marker)."""
    [script] = [f for f in lb01_user_data()["write_files"] if f["path"] == PATHS.boot_finished_script]
    marker = directory / "boot-finished"
    path = directory / "ha-lb-boot-finished"
    path.write_text(script["content"].replace(PATHS.boot_finished_marker, str(marker)))
    path.chmod(int(script["permissions"], 8))
    (directory / "bin").mkdir(exist_ok=True)
    (directory / "bin" / "systemctl").write_text(IS_SYSTEM_RUNNING)
    (directory / "bin" / "systemctl").chmod(0o755)
    calls = directory / "calls"
    calls.write_text("")
    result = subprocess.run([str(path)], capture_output=True, text=True, timeout=30,
                            env={"PATH": f"{directory / 'bin'}:/usr/bin:/bin", "STATE": state, "CALLS": str(calls)})
    return result, calls.read_text().split(), marker


@pytest.mark.parametrize("state, passes", [
    ("running", True), ("degraded", True), ("maintenance", False), ("stopping", False), ("offline", False),
    ("unknown", False),
])
def test_the_boot_gate_opens_only_once_systemd_has_finished_booting(tmp_path, state, passes):
    """A load balancer whose boot ended otherwise stays out of the election (its unit fails, saying why); a failed
    unit elsewhere (degraded) does not keep it out. "1", whole, is what keepalived's reversed track file needs."""
    result, asked, marker = run_boot_finished_script(tmp_path, state)
    assert (result.returncode == 0) == passes, (state, result)
    assert asked == [state]
    assert marker.exists() == passes
    if passes:
        assert marker.read_text() == "1\n" and result.stderr == ""
        assert not marker.with_name(marker.name + ".new").exists()
    else:
        assert f"the boot did not finish (systemd: {state})" in result.stderr


def test_the_boot_gate_unit_runs_the_script_without_holding_the_boot_open():
    """Type=simple: systemd counts the unit started once its process runs, so the boot it waits for can finish;
    wanted by multi-user.target, so every boot starts it (the activate script enables it)."""
    [unit] = [f for f in lb01_user_data()["write_files"] if f["path"] == PATHS.boot_finished_unit]
    lines = unit["content"].splitlines()
    assert "Type=simple" in lines and f"ExecStart={PATHS.boot_finished_script}" in lines
    assert "WantedBy=multi-user.target" in lines
