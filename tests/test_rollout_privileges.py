"""The rollout script runs as the VM's login user (pulumi-command's SSH session), not as root: everything
that needs root must go through `sudo -n`. The fast check: the script runs against stand-ins that refuse
what a non-root user is refused (writing root's files, reading keepalived.conf (0640), systemctl state
changes, nft's netlink), unless called through a `sudo` stand-in that accepts only `-n` (no password
prompt can be answered over a non-interactive SSH session). tests/test_failover_netns.py runs the same
scripts as a real unprivileged user with real sudo against the real daemons."""

from __future__ import annotations

import subprocess

import pytest

from components.guest_scripts import load_balancer_rollout_script
from components.render import stats_password_hash
from components.settings import load_settings
from tests.keys import key_config

SUDO = """#!/bin/sh
[ "$1" = -n ] || { echo "sudo: a terminal is required to read the password" >&2; exit 1; }
shift
echo "sudo $*" >> "$CALLS"
command=$1
shift
# What the rollout installed under /usr/local/sbin (the boot gate's script) is played by its stand-in here.
case $command in /usr/local/sbin/*) command="$(dirname "$0")/${command##*/}" ;; esac
HA_LB_ROOT=1 exec "$command" "$@"
"""
# What only root may do: fails for the login user as the real command does.
NEEDS_ROOT = """#!/bin/sh
if [ "${{HA_LB_ROOT:-}}" != 1 ]; then
    echo "{name}: Operation not permitted" >&2
    exit {code}
fi
echo "root {name} $*" >> "$CALLS"
{after}
"""
TOOLS = {
    "install": (1, "exit 0"),
    "cmp": (2, "exit 1"),  # the installed file differs: every file is installed
    "nft": (1, "exit 0"),
    "haproxy": (1, "exit 0"),
    "keepalived": (1, "exit 0"),
    "journalctl": (1, "exit 0"),
    "ha-lb-boot-finished": (1, "exit 0"),  # writes keepalived's track file in /run
}
SYSTEMCTL = """#!/bin/sh
case "$1" in
    is-active) echo "user systemctl $*" >> "$CALLS"; exit 0 ;;  # any user may ask
esac
if [ "${HA_LB_ROOT:-}" != 1 ]; then
    echo "Failed to $1 $2: Interactive authentication required." >&2
    exit 1
fi
echo "root systemctl $*" >> "$CALLS"
"""


def run_rollout(tmp_path, script: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text(SUDO)
    (bin_dir / "systemctl").write_text(SYSTEMCTL)
    for name, (code, after) in TOOLS.items():
        (bin_dir / name).write_text(NEEDS_ROOT.format(name=name, code=code, after=after))
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls)})
    return result, calls.read_text().splitlines()


@pytest.fixture(scope="module")
def scripts():
    settings = load_settings({**key_config(), "statsPassword": "correct-horse-battery"}, stack="rollout")
    lb01 = next(lb for lb in settings.load_balancers if lb.name == "lb01")
    digest = stats_password_hash(settings, "correct-horse-battery")
    return {activate: load_balancer_rollout_script(settings, lb01, digest, activate=activate) for activate in (False, True)}


@pytest.mark.parametrize("activate", [False, True], ids=["config-check", "config-rollout"])
def test_every_privileged_step_goes_through_sudo(tmp_path, scripts, activate):
    result, calls = run_rollout(tmp_path, scripts[activate])
    assert result.returncode == 0, result.stderr
    checked = [c for c in calls if c.startswith("root ") and ("-c -f" in c or "--config-test" in c or "--check" in c)]
    assert len(checked) == 3, calls
    if activate:
        installed = [c.split()[-1] for c in calls if c.startswith("root install")]
        assert installed == ["/etc/nftables.conf", "/etc/haproxy/haproxy.cfg", "/etc/keepalived/keepalived.conf",
                             "/usr/local/sbin/ha-lb-vrrp-notify", "/usr/local/sbin/ha-lb-boot-finished",
                             "/etc/systemd/system/ha-lb-boot-finished.service"]
        privileged = [c for c in calls if c.startswith(("root systemctl", "root ha-lb-boot-finished"))]
        # The boot gate (new or changed) is in force before keepalived reads a config that tracks its file.
        assert privileged == ["root systemctl restart nftables.service", "root systemctl daemon-reload",
                              "root systemctl enable ha-lb-boot-finished.service", "root ha-lb-boot-finished ",
                              "root systemctl reload haproxy.service", "root systemctl reload keepalived.service"], calls
    else:
        assert not [c for c in calls if "install" in c or "systemctl" in c], calls


def test_a_step_without_sudo_fails_as_it_would_for_the_login_user(tmp_path, scripts):
    """The stand-ins are not kinder than the VM: the same script with one `sudo -n` dropped fails."""
    result, _ = run_rollout(tmp_path, scripts[True].replace("sudo -n systemctl reload haproxy", "systemctl reload haproxy"))
    assert result.returncode != 0 and "Interactive authentication required" in result.stderr
