"""Every pulumi_command call of the program: SSH commands on the guests and the check from the Pulumi host."""

from __future__ import annotations

import sys
from typing import Any, Sequence

import pulumi
import pulumi_command as command

from .settings import LabSettings

PER_DIAL_TIMEOUT = 10  # seconds for one SSH connection attempt

# pulumi-command 1.2.1 dials with retry.Until of the Pulumi SDK (remote/connection.go dialWithRetry;
# sdk go/common/util/retry/until.go): a pause of 0.1 s growing 1.5x per failure up to 5 s, and it gives up
# when the number of failed dials exceeds dialErrorLimit (so limit + 1 attempts, limit pauses).
_FIRST_PAUSE, _PAUSE_GROWTH, _LONGEST_PAUSE = 0.1, 1.5, 5.0


def worst_dial_seconds(dial_error_limit: int, per_dial_timeout: int = PER_DIAL_TIMEOUT) -> float:
    """The longest the dialing can take: every attempt times out, then the pause before the next."""
    pause, total = _FIRST_PAUSE, 0.0
    for _ in range(dial_error_limit):
        total += per_dial_timeout + min(pause, _LONGEST_PAUSE)
        pause *= _PAUSE_GROWTH
    return total + per_dial_timeout


def dial_error_limit(ready_timeout: int) -> int:
    """The most failed dials whose worst case still fits in readyTimeout (counting each attempt's own
    time, not just the pauses between attempts)."""
    limit = 0
    while worst_dial_seconds(limit + 1) <= ready_timeout:
        limit += 1
    return limit


def ssh_connection(settings: LabSettings, address: str, private_key: pulumi.Input[str]) -> command.remote.ConnectionArgs:
    return command.remote.ConnectionArgs(
        host=address,
        user=settings.ssh_user,
        private_key=pulumi.Output.secret(private_key),
        dial_error_limit=dial_error_limit(settings.ready_timeout),
        per_dial_timeout=PER_DIAL_TIMEOUT,
    )


def on_guest(resource_name: str, *, settings: LabSettings, address: str, private_key: pulumi.Input[str],
             script: pulumi.Input[str], triggers: Sequence[Any], opts: pulumi.ResourceOptions) -> command.remote.Command:
    """Runs `script` on a guest over SSH; it runs again when the script or a trigger changes."""
    return command.remote.Command(
        resource_name,
        connection=ssh_connection(settings, address, private_key),
        create=script,
        triggers=list(triggers),
        # On by default: it sends the previous output as SSH environment variables on every re-run, which
        # sshd refuses (AcceptEnv), and the provider warns each time.
        add_previous_output_in_env=False,
        opts=opts,
    )


def vip_check(resource_name: str, *, url: str, timeout: int, project_dir: str,
              triggers: Sequence[Any], opts: pulumi.ResourceOptions) -> command.local.Command:
    """From the Pulumi host: the VIP serves HTTP through a load balancer (components/vip_check.py)."""
    return command.local.Command(
        resource_name,
        create=f"{sys.executable} -m components.vip_check {url} --timeout {timeout}",
        dir=project_dir,
        triggers=list(triggers),
        add_previous_output_in_env=False,
        opts=opts,
    )
