"""The libvirt URIs the provider can use: pulumi-libvirt 0.5.4 runs terraform-provider-libvirt v0.8.1, whose own
Go client (libvirt/uri, not libvirt's C library) dials them. Each refusal here names a failure of that code, so a
`pulumi up` that would fail at the provider's first connection fails before any resource, with the reason.

From v0.8.1's source:
- connection_uri.go Dial: transports unix, tcp, tls and ssh only (the suffix after '+'; none with a host means
  tls); anything else is "transport '...' not implemented".
- ssh.go dialHost: it dials net.JoinHostPort(hostName, port) with hostName the URI's Host, port included, so
  qemu+ssh://user@host:2222/system dials "[host:2222]:2222" and never connects; without a port in the URI it
  dials 22 and never reads ssh_config's Port (v0.8.3 fixed both; 0.5.4 will not get the fix).
- ssh.go dialHost: the login name is the URI's user; ssh_config's User is read under an inverted error check
  (`if err != nil`) and never applied, so a URI without a user logs in with an empty user name.
"""

from __future__ import annotations

import re
import subprocess
from typing import Callable, Optional
from urllib.parse import urlsplit

_SHAPE = re.compile(r"^[a-z][a-z0-9]*(\+[a-z0-9]+)?://[^\s]*$")
TRANSPORTS = ("unix", "tcp", "tls", "ssh")
SSH_PORT = 22


def uri_problems(uri: str) -> list[str]:
    """Why the provider cannot use this URI (empty: it can)."""
    if not _SHAPE.fullmatch(uri):
        return ["expected a libvirt connection URI such as qemu:///system or qemu+ssh://user@host/system"]
    parts = urlsplit(uri)
    scheme, _, transport = parts.scheme.partition("+")
    transport = transport or ("tls" if parts.netloc else "unix")
    if transport not in TRANSPORTS:
        return [f"the provider (terraform-provider-libvirt 0.8.1) implements the transports {', '.join(TRANSPORTS)} "
                f"and not '{transport}'; use e.g. {scheme}+ssh://user@host/system"]
    if transport != "ssh":
        return []
    try:
        port = parts.port
    except ValueError:
        return ["expected a port from 1 to 65535 after the host"]
    problems = []
    if port is not None:
        problems.append(f"the provider (terraform-provider-libvirt 0.8.1, libvirt/uri/ssh.go) dials "
                        f"'{parts.hostname}:{port}' as a host name and never connects: its ssh transport reaches only "
                        f"port {SSH_PORT}; run the host's sshd on {SSH_PORT} (a ProxyJump in ~/.ssh/config also "
                        f"ends on {SSH_PORT}) or use qemu+tls:// or qemu+tcp://, which take a port")
    if not parts.username:
        problems.append("expected a user in it (qemu+ssh://USER@host/system): the provider (terraform-provider-"
                        "libvirt 0.8.1) logs in as the URI's user only and never applies ssh_config's User")
    if not parts.hostname:
        problems.append("expected a host in it (qemu+ssh://user@HOST/system)")
    return problems


def ssh_config_port(host: str, run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                    config: Optional[str] = None) -> Optional[int]:
    """The port OpenSSH would use for `host` (`ssh -G`: ~/.ssh/config and /etc/ssh/ssh_config, or only `config`);
    None without ssh."""
    try:
        result = run(["ssh", "-G", *(["-F", config] if config else []), host], capture_output=True, text=True,
                     timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "port" and value.strip().isdigit():
            return int(value)
    return None


def ssh_config_problems(uri: str, run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                        config: Optional[str] = None) -> list[str]:
    """A qemu+ssh host for which the user's ssh configuration names another port than the one the provider dials."""
    parts = urlsplit(uri)
    if not parts.scheme.endswith("+ssh") or not parts.hostname:
        return []
    port = ssh_config_port(parts.hostname, run, config)
    if port is None or port == SSH_PORT:
        return []
    return [f"the ssh configuration gives {parts.hostname} port {port} (`ssh -G {parts.hostname}`), which the "
            f"provider (terraform-provider-libvirt 0.8.1, libvirt/uri/ssh.go) never reads: it dials port {SSH_PORT}; "
            f"run the host's sshd on {SSH_PORT} or use qemu+tls:// or qemu+tcp://, which take a port"]
