"""The stacks whose rendered files are kept whole under tests/golden/<name>/ (see tests/golden/__init__.py).

Each is a stack name (it is also the golden directory: the stack name reaches libvirt object names, MAC
addresses and the stats password's salt), the `ha-lb:` config without its prefix, and other namespaces'
keys (`libvirt:uri`). They are chosen so that every branch of the templates shows in at least one of them:

    default         nothing set: unicast VRRPv2, FAULT mode (checkWeight 0), generated stats password and
                    generated SSH key pair (the ssh_authorized_keys a fresh machine gets)
    example         Pulumi.example.yaml as it stands (the reference plan: multicast, classic profile)
    multicast-fast  the fast profile (VRRPv3, 0.1 s adverts) over multicast, no preemption; an isolated
                    lab on Debian 12 installing its packages from a mirror on the host (`apt:` in user-data)
    weight          the reference with its check weight 2 (priority lost on failure, needs preempt)
    many-webs       eight web servers (HAProxy's server lists, nftables on each), a given stats password
    two-hosts       the pair on two libvirt hosts over qemu+ssh, bridged networks with the user's gateways and DNS
                    (network-config's routes, the firewall's metrics rules for a LAN)
"""

from __future__ import annotations

import base64
import pathlib
from typing import Any

from components.offline import read_stack_file

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
EXAMPLE_STACK_FILE = ROOT / "Pulumi.example.yaml"

# Fixed stand-ins for the SSH keys (tests/keys.py makes a fresh pair per run, which would change every
# user-data). The public key is well formed (the settings check its blob) but its key bytes are a
# counter nobody holds; the private key only reaches the readiness commands' SSH connections
# (resources.txt), never a VM, and is not a key at all.
_ED25519 = b"ssh-ed25519"
GOLDEN_PUBLIC_KEY = "ssh-ed25519 " + base64.b64encode(
    len(_ED25519).to_bytes(4, "big") + _ED25519 + (32).to_bytes(4, "big") + bytes(range(32))).decode() + " ha-lb-golden"
GOLDEN_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\n(ha-lb golden test placeholder)\n-----END OPENSSH PRIVATE KEY-----\n"
KEYS = {"sshPublicKeys": [GOLDEN_PUBLIC_KEY], "sshPrivateKey": GOLDEN_PRIVATE_KEY}


def _stack_file(path: pathlib.Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The `ha-lb:` config of a stack file and its other namespaces' keys (offline's reader drops those)."""
    import yaml

    _, config = read_stack_file(path)
    document = yaml.safe_load(path.read_text()) or {}
    other = {key: str(value) for key, value in (document.get("config") or {}).items() if not key.startswith("ha-lb:")}
    return config, other


def stacks() -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """name -> (ha-lb config, other config). Read on each call: the example follows Pulumi.example.yaml."""
    example, example_other = _stack_file(EXAMPLE_STACK_FILE)
    return {
        "default": ({}, {}),
        "example": ({**example, **KEYS}, example_other),
        "multicast-fast": ({**KEYS, "vrrp": {"profile": "fast", "unicast": False, "preempt": False},
                            "networkMode": "isolated", "baseImage": "debian-12",
                            "packageMirror": "http://192.168.80.1:3142/debian"}, {}),
        "weight": ({**example, **KEYS, "vrrp": {**example.get("vrrp", {}), "checkWeight": 2, "preempt": True}},
                   example_other),
        "many-webs": ({**KEYS, "statsPassword": "correct-horse-battery",
                       "webServers": [{"name": f"web{i:02}", "address": f"192.168.80.{20 + i}"} for i in range(1, 9)]},
                      {}),
        "two-hosts": ({**KEYS, "statsPassword": "correct-horse-battery", "networkMode": "bridge",
                       "frontendBridge": "br-lan", "backendBridge": "br-web", "backendGateway": "192.168.80.254",
                       "dnsServers": ["192.168.10.53"],
                       "hosts": {"hv1": "qemu+ssh://root@hv1.lab.example/system",
                                 "hv2": "qemu+ssh://root@hv2.lab.example/system"}}, {}),
    }
