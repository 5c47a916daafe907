"""The e2e stack: the default (NAT) networking on CIDRs unlikely to clash with the host, the test image,
TCG, and the readiness gate on, as a user runs it."""

from __future__ import annotations

from typing import Any

from tests.keys import key_config

STACK = "e2e"
STATS_PASSWORD = "e2e-stats-password"
POOL_PATH = "/var/lib/libvirt/images/ha-lb-e2e"


def e2e_config(base_image: str, **overrides: Any) -> dict[str, Any]:
    return {
        **key_config(),
        "domainType": "qemu",  # no usable KVM here: TCG
        "installPackages": False,  # the test image carries every package
        "baseImage": base_image,
        "pool": POOL_PATH,
        "frontendCidr": "10.213.10.0/24",
        "backendCidr": "10.213.80.0/24",
        "vip": "10.213.10.3",
        "loadBalancers": [
            # The default priorities (components/settings.py DEFAULTS): the timings measured are a user's.
            {"name": "lb01", "address": "10.213.10.4", "backendAddress": "10.213.80.11", "priority": 254},
            {"name": "lb02", "address": "10.213.10.2", "backendAddress": "10.213.80.12", "priority": 253},
        ],
        "webServers": [{"name": "web01", "address": "10.213.80.3"}, {"name": "web02", "address": "10.213.80.2"}],
        "statsPassword": STATS_PASSWORD,
        "memoryMiB": 1024,
        "readyTimeout": 600,
        **overrides,
    }
