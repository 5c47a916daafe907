"""Scripts `pulumi up` runs on the guests over SSH: the readiness check and the in-place config rollout.

Pure functions from settings to shell text, like render.py, so they can be read, diffed and run by the
tests against real hosts without Pulumi.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .render import (
    LOAD_BALANCER,
    PATHS,
    GuestFile,
    Host,
    _render,
    load_balancer_files,
    render_cloud_init,
    render_host,
)
from .settings import LabSettings, LoadBalancer

@dataclass(frozen=True)
class RolloutAction:
    """What the rollout does when files of `service` changed: `commands`, each through `sudo -n`, in order."""

    service: str
    done: str  # what the pull-request review says happened
    commands: tuple[str, ...]


BOOT_GATE = "boot-gate"
# The files a load balancer can take without a rebuild, and the service each belongs to.
# The notify script goes with keepalived: keepalived checks a script's ownership and mode when it loads its config.
ROLLOUT_SERVICES = {PATHS.haproxy: "haproxy", PATHS.keepalived: "keepalived", PATHS.vrrp_notify: "keepalived",
                    PATHS.nftables: "nftables", PATHS.boot_finished_script: BOOT_GATE,
                    PATHS.boot_finished_unit: BOOT_GATE}
# How the rollout applies each changed service's files (each command through `sudo -n`), in this order: the
# firewall first, so a new port is open before HAProxy listens on it; HAProxy's reload starts new workers beside
# the old ones (no connection is refused). A new or changed boot gate is in force before keepalived reads a config
# that tracks its file: systemd learns the unit and enables it for the next boot, and the script writes the file
# now (the node is booted: it returns at once), so the reload does not put a serving node in FAULT.
ROLLOUT_ACTIONS = (
    RolloutAction("nftables", "nftables restarted", ("systemctl restart nftables.service",)),
    RolloutAction(BOOT_GATE, "boot gate installed", ("systemctl daemon-reload",
                                                     f"systemctl enable {PATHS.boot_finished_unit_name}",
                                                     PATHS.boot_finished_script)),
    RolloutAction("haproxy", "haproxy reloaded", ("systemctl reload haproxy.service",)),
    RolloutAction("keepalived", "keepalived reloaded", ("systemctl reload keepalived.service",)),
)
_DELIMITER = "HA_LB_END_OF_FILE"


@dataclass(frozen=True)
class _StagedFile:
    name: str
    path: str
    mode: str
    service: str
    content: str


def readiness_script(settings: LabSettings, host: Host) -> str:
    if host.role == LOAD_BALANCER:
        units, urls = ("haproxy", "keepalived"), ()
    else:
        units = ("nginx",)
        urls = (f"http://127.0.0.1:{settings.web_http_port}/", f"https://127.0.0.1:{settings.web_https_port}/")
    return _render("ready-check.sh.j2", host=host, units=units, local_urls=urls, timeout=settings.ready_timeout)


def rollout_files(settings: LabSettings, lb: LoadBalancer, stats_password_hash: str) -> tuple[GuestFile, ...]:
    return tuple(f for f in load_balancer_files(settings, lb, stats_password_hash) if f.path in ROLLOUT_SERVICES)


def load_balancer_rollout_script(settings: LabSettings, lb: LoadBalancer, stats_password_hash: str,
                                 activate: bool) -> str:
    """activate=False: only validate on the host (run on both LBs before either changes)."""
    staged = []
    for file in rollout_files(settings, lb, stats_password_hash):
        if _DELIMITER in file.content or not file.content.endswith("\n"):
            raise ValueError(f"{file.path} cannot be embedded in a here-document")
        service = ROLLOUT_SERVICES[file.path]
        staged.append(_StagedFile(file.path.rsplit("/", 1)[1], file.path, file.mode, service, file.content))
    return _render("load-balancer-rollout.sh.j2", lb=lb, files=staged, delimiter=_DELIMITER, activate=activate,
                   actions=ROLLOUT_ACTIONS)


def rebuild_key(settings: LabSettings, host: Host) -> str:
    """A digest of everything in a VM's cloud-init that only a rebuild can apply.

    Load balancers leave out the files the rollout applies in place (so neither a new web server nor the
    stats password replaces them); for web servers every byte counts. A change of this key replaces the VM.
    """
    if host.role == LOAD_BALANCER:
        lb = next(lb for lb in settings.load_balancers if lb.name == host.name)
        files = tuple(
            GuestFile(f.path, f.mode, "(rolled out in place)\n") if f.path in ROLLOUT_SERVICES else f
            for f in load_balancer_files(settings, lb, stats_password_hash="(rolled out in place)")
        )
        cloud_init = render_cloud_init(settings, host, files)
    else:
        cloud_init = render_host(settings, host, None)
    digest = hashlib.sha256()
    for part in (cloud_init.user_data, cloud_init.meta_data, cloud_init.network_config):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]
