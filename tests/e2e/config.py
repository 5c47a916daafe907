"""The e2e stack: the default (NAT) networking on CIDRs unlikely to clash with the host, an image built like
Debian's official cloud images, packages installed by cloud-init from the test host's mirror, TCG, and the
readiness gate on, as a user runs it."""

from __future__ import annotations

from typing import Any

from tests.keys import key_config

STACK = "e2e"
STATS_PASSWORD = "e2e-stats-password"
POOL_PATH = "/var/lib/libvirt/images/ha-lb-e2e"


# The host's address on the backend network: every VM reaches the test's package mirror there.
MIRROR_HOST = "10.213.80.1"
LAB_NETWORKS = ("10.213.10.0/24", "10.213.80.0/24")


def e2e_config(base_image: str, mirror_port: int, install_packages: bool, **overrides: Any) -> dict[str, Any]:
    return {
        **key_config(),
        "domainType": "qemu",  # no usable KVM here: TCG
        # True: cloud-init installs the roles' packages (the default path, 5-10 minutes per VM under TCG);
        # False: a golden image that carries them.
        "installPackages": install_packages,
        "packageMirror": f"http://{MIRROR_HOST}:{mirror_port}/debian",
        "baseImage": base_image,
        "pool": POOL_PATH,
        "frontendCidr": LAB_NETWORKS[0],
        "backendCidr": LAB_NETWORKS[1],
        "vip": "10.213.10.3",
        "loadBalancers": [
            # The default priorities (components/settings.py DEFAULTS): the timings measured are a user's.
            {"name": "lb01", "address": "10.213.10.4", "backendAddress": "10.213.80.11", "priority": 254},
            {"name": "lb02", "address": "10.213.10.2", "backendAddress": "10.213.80.12", "priority": 253},
        ],
        "webServers": [{"name": "web01", "address": "10.213.80.3"}, {"name": "web02", "address": "10.213.80.2"}],
        "statsPassword": STATS_PASSWORD,
        "memoryMiB": 1024,
        **overrides,
    }
