"""Every pulumi_command call of the program: SSH commands on the guests and the check from the Pulumi host."""

from __future__ import annotations

import math
import sys
from typing import Any, Sequence

import pulumi
import pulumi_command as command

from .settings import LabSettings

PER_DIAL_TIMEOUT = 10  # seconds for one SSH connection attempt
# pulumi-command retries a failed dial with a growing pause: about 11 s over the first ten tries, then
# about 5 s each. The limit below keeps the whole wait for a booting VM near readyTimeout.
_FIRST_DIALS, _FIRST_DIALS_SECONDS, _LATER_DIAL_SECONDS = 10, 11, 5


def dial_error_limit(ready_timeout: int) -> int:
    return _FIRST_DIALS + math.ceil(max(0, ready_timeout - _FIRST_DIALS_SECONDS) / _LATER_DIAL_SECONDS)


def ssh_connection(settings: LabSettings, address: str) -> command.remote.ConnectionArgs:
    assert settings.ssh_private_key is not None, "validated: the gate needs a key"
    return command.remote.ConnectionArgs(
        host=address,
        user=settings.ssh_user,
        private_key=pulumi.Output.secret(settings.ssh_private_key),
        dial_error_limit=dial_error_limit(settings.ready_timeout),
        per_dial_timeout=PER_DIAL_TIMEOUT,
    )


def on_guest(resource_name: str, *, settings: LabSettings, address: str, script: pulumi.Input[str],
             triggers: Sequence[Any], opts: pulumi.ResourceOptions) -> command.remote.Command:
    """Runs `script` on a guest over SSH; it runs again when the script or a trigger changes."""
    return command.remote.Command(
        resource_name,
        connection=ssh_connection(settings, address),
        create=script,
        triggers=list(triggers),
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
        opts=opts,
    )
