"""The readiness gate's wait is bounded by readyTimeout in fact: the SSH dialing (pulumi-command's retry
schedule, re-derived here from its source) and the readiness script's wait for cloud-init together."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import time

import pytest

from components.commands import PER_DIAL_TIMEOUT, dial_error_limit
from components.guest_scripts import readiness_script
from components.render import lab_hosts
from components.settings import load_settings
from tests.conftest import require, require_root
from tests.keys import key_config

# The README: readyTimeout (default 900) is the seconds one VM may take to boot and finish cloud-init.
README_READY_TIMEOUTS = (60, 600, 900, 7200)


def worst_case_dialing(limit: int, per_dial: float) -> float:
    """pulumi-command 1.2.1 remote/connection.go dialWithRetry over the SDK's retry.Until: an attempt, then a
    pause starting at 100 ms, growing 1.5x, at most 5 s; it gives up once failed dials exceed the limit."""
    total, pause, failed = 0.0, 0.1, 0
    while True:
        total += per_dial  # this attempt timed out
        failed += 1
        if failed > limit:
            return total
        total += min(pause, 5.0)
        pause *= 1.5


@pytest.mark.parametrize("ready_timeout", README_READY_TIMEOUTS)
def test_dialing_never_outlasts_ready_timeout_yet_keeps_trying_most_of_it(ready_timeout):
    limit = dial_error_limit(ready_timeout)
    assert worst_case_dialing(limit, PER_DIAL_TIMEOUT) <= ready_timeout
    # One more allowed failure would overrun it: the budget is used, not wasted.
    assert worst_case_dialing(limit + 1, PER_DIAL_TIMEOUT) > ready_timeout


STAND_IN_CLOUD_INIT = """#!/bin/sh
# cloud-init that never finishes booting: `status --wait` blocks, `status` says running.
case "$*" in
    "status --wait") exec sleep 3600 ;;
    "status --long") echo "status: running"; echo "detail: still booting" ;;
    *) echo "status: running" ;;
esac
"""


def _run_readiness(tmp_path: pathlib.Path, ready_timeout: int, uptime: str) -> tuple[subprocess.CompletedProcess, float]:
    """The program's readiness script, run as remote.Command runs it (one command string for the login
    shell), with a stand-in cloud-init and /proc/uptime bind-mounted to `uptime` in a private mount namespace."""
    settings = load_settings({**key_config(), "readyTimeout": ready_timeout}, stack="dev")
    web01 = next(h for h in lab_hosts(settings) if h.name == "web01")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "cloud-init").write_text(STAND_IN_CLOUD_INIT)
    (bin_dir / "cloud-init").chmod(0o755)
    for tool in ("sudo",):  # `sudo -n tail ...` of the failure report: run it as is
        (bin_dir / tool).write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
        (bin_dir / tool).chmod(0o755)
    fake_uptime = tmp_path / "uptime"
    fake_uptime.write_text(f"{uptime} 1.00\n")
    script = readiness_script(settings, web01)
    wrapper = f"mount --bind {fake_uptime} /proc/uptime && exec bash -c \"$READINESS\""
    started = time.monotonic()
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", wrapper],
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "READINESS": script},
                            capture_output=True, text=True, timeout=120)
    return result, time.monotonic() - started


def test_the_readiness_script_waits_only_for_what_is_left_of_ready_timeout(tmp_path):
    require_root()
    require(shutil.which("unshare") is not None, "needs unshare (util-linux)")
    # Booted 897 s ago with readyTimeout 900: cloud-init gets 3 s more, not 900.
    result, seconds = _run_readiness(tmp_path, 900, "897.42")
    assert result.returncode == 1
    assert "web01: cloud-init did not finish cleanly (status: running" in result.stderr
    assert "detail: still booting" in result.stderr  # `cloud-init status --long` for the person reading
    assert 2.5 <= seconds < 10, seconds


def test_a_vm_past_its_ready_timeout_fails_at_once(tmp_path):
    require_root()
    result, seconds = _run_readiness(tmp_path, 60, "4000.00")
    assert result.returncode == 1 and "did not finish cleanly" in result.stderr
    assert seconds < 5, seconds
