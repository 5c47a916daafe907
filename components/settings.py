"""Stack settings: parsed and validated once into frozen dataclasses.

Everything else (rendering, resources, tests) reads these objects, never raw config.
`load_settings` collects *every* problem before raising, so a user fixes a stack file in one go.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Mapping, Optional, Sequence

from .libvirt_uri import ssh_config_problems, uri_problems

PROJECT = "ha-lb"

# Guest interface names, set by network-config (match by MAC + set-name) and used by keepalived and nftables.
FRONTEND_INTERFACE = "frontend"
BACKEND_INTERFACE = "backend"

# Short names for the official Debian generic cloud images (cloud.debian.org: "generic" is the image for
# any hypervisor, with cloud-init and netplan; "latest" is the newest point release's build).
KNOWN_BASE_IMAGES = {
    "debian-13": "https://cloud.debian.org/images/cloud/trixie/latest/debian-13-generic-amd64.qcow2",
    "debian-12": "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2",
}
DEFAULT_BASE_IMAGE = "debian-13"  # Debian's stable release (12 is oldstable)

# The libvirt connection when neither `ha-lb:libvirtUri` nor `libvirt:uri` is set: the provider itself
# has no default (terraform-provider-libvirt 0.8.1 libvirt/provider.go: `uri` required, only
# LIBVIRT_DEFAULT_URI as fallback), so the program always passes one to an explicit provider.
DEFAULT_LIBVIRT_URI = "qemu:///system"
# prometheus-node-exporter's port on every VM: Debian's package starts it on :9100 (its default
# --web.listen-address; /etc/default/prometheus-node-exporter sets no ARGS).
NODE_EXPORTER_PORT = 9100
# Ports a lab setting may not take on a guest: something else already listens there on every VM.
RESERVED_GUEST_PORTS = {22: "SSH", NODE_EXPORTER_PORT: "prometheus-node-exporter"}

# nat and isolated: networks libvirt makes on each host; bridge: the host bridges the user names, on their own
# LAN (the program creates no network, and the gateway and DNS are the user's).
NETWORK_MODES = ("nat", "isolated", "bridge")
LIBVIRT_NETWORK_MODES = ("nat", "isolated")
# The one host of a lab without `hosts`: today's libvirtUri.
DEFAULT_HOST = "default"
DOMAIN_TYPES = ("kvm", "qemu")
# The readiness wait's default per domainType: software emulation (qemu) is slow; measured there, one VM
# whose cloud-init installs the roles' packages took 700-820 s to be ready (two VMs booting on two cores).
READY_TIMEOUT = {"kvm": 900, "qemu": 1800}
VRRP_PROFILES = ("classic", "fast")

# VRRP timing per profile. "classic" is the reference setup; "fast" uses VRRPv3, whose advert interval
# is counted in centiseconds, so a dead master is noticed in about 3 x 0.1 s.
VRRP_PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "classic": {"version": 2, "advertInterval": 1, "checkInterval": 2},
    "fast": {"version": 3, "advertInterval": 0.1, "checkInterval": 1},
}
# The default hold-down before a recovered master preempts, in check intervals: the event-driven track sees
# a restarted HAProxy when it is exec'd, before it serves, and the polled check (where rendered) needs two
# results (rise 2) to agree; preempting at once can hand the VIP to a node about to fail again (measured on
# emulated VMs: four moves in 3.2 s without a hold-down).
PREEMPT_DELAY_CHECKS = 5
# keepalived 2.2.7 vrrp_parser.c vrrp_preempt_delay_handler: 0 to TIMER_MAX_SEC (1000 s).
PREEMPT_DELAY_MAX = 1000

_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


class SettingsError(ValueError):
    """Every problem found in the stack settings, one line each."""

    def __init__(self, problems: Sequence[str]):
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid ha-lb stack configuration ({len(self.problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class LabNetworkPlan:
    """One network of the lab (frontend or backend): its CIDR, the guests' interface name, and who is on it
    besides the VMs."""

    role: str  # "frontend" or "backend"
    network: IPv4Network
    interface: str
    # networkMode bridge: the existing host bridge the VMs' NICs attach to (None: a network libvirt makes).
    bridge: Optional[str] = None
    # The default route of the VMs whose first NIC is on this network, and their DNS servers (None, (): none).
    router: Optional[IPv4Address] = None
    dns_servers: tuple[IPv4Address, ...] = ()

    @property
    def host_address(self) -> Optional[IPv4Address]:
        """The libvirt host's own address on a network libvirt makes: the first host address (libvirt's gateway
        on a NAT network, the host's address on an isolated one). None on a bridged LAN."""
        return None if self.bridge else self.network.network_address + 1

    @property
    def metrics_source(self) -> str:
        """Who may scrape the metrics ports here: the libvirt host's address, or on a bridged LAN the LAN itself."""
        return str(self.network) if self.bridge else str(self.host_address)

    def interface_address(self, address: IPv4Address) -> str:
        return f"{address}/{self.network.prefixlen}"


@dataclass(frozen=True)
class LibvirtHost:
    """A libvirt host the lab's VMs run on, reached through its own provider."""

    name: str
    uri: str


@dataclass(frozen=True)
class LoadBalancer:
    name: str
    address: IPv4Address  # on the frontend network
    backend_address: IPv4Address
    priority: int
    host: str = DEFAULT_HOST  # the libvirt host it runs on (a name in LabSettings.hosts)


@dataclass(frozen=True)
class WebServer:
    name: str
    address: IPv4Address  # on the backend network
    host: str = DEFAULT_HOST  # the libvirt host it runs on (a name in LabSettings.hosts)


@dataclass(frozen=True)
class Vrrp:
    profile: str
    version: int
    virtual_router_id: int
    advert_interval: float
    unicast: bool
    check_interval: int
    check_weight: int
    preempt: bool
    # Seconds a recovered master waits, as BACKUP hearing the lower-priority peer, before it takes the VIP
    # back (keepalived's preempt_delay); 0 when preempt is false.
    preempt_delay: float
    # keepalived's event-driven HAProxy tracking needs the kernel's process-event connector, which exists
    # only in the initial network and PID namespace: off where keepalived runs in a container.
    track_process: bool = True

    @property
    def polled_check(self) -> bool:
        """The polled `systemctl is-active haproxy` check: where the event-driven track is off, or a weight
        needs it. With the event on it adds nothing (HAProxy gone is the event) but harm: on busy emulated
        guests a slow answer failed it twice in a row and made a node with a healthy HAProxy resign (measured:
        the VIP moved seven times in 40 s after one HAProxy restart, fast profile, under client load)."""
        return bool(self.check_weight) or not self.track_process

    @property
    def wire_terms(self) -> dict[str, Any]:
        """What the two load balancers must share to hear each other's adverts. keepalived 2.3.3 vrrp.c
        vrrp_check_packet drops an advert of the other VRRP version, one sent unicast where it expects multicast
        or the reverse ("Expected unicast packet but received multicast packet"), and with VRRPv2 one with another
        advert interval; another virtual router id is another router. A rollout that changes any of them leaves
        the two deaf to each other between their turns."""
        terms: dict[str, Any] = {"version": self.version, "transport": "unicast" if self.unicast else "multicast",
                                 "virtualRouterId": self.virtual_router_id}
        if self.version == 2:
            terms["advertInterval"] = self.advert_interval
        return terms

    @property
    def master_down_interval(self) -> float:
        """RFC 3768/5798 bound: how long a backup waits before it takes over a silent master
        (3 adverts plus the skew time, which is below one advert)."""
        return 4 * self.advert_interval


@dataclass(frozen=True)
class PackageMirror:
    """Where the guests' apt takes packages from: a Debian archive and its security archive (what
    cloud-init's `apt: primary` and `apt: security` point at)."""

    archive: str
    security: str


@dataclass(frozen=True)
class MachineSize:
    vcpus: int
    memory_mib: int
    disk_gib: int


@dataclass(frozen=True)
class LabSettings:
    stack: str
    vip: IPv4Address
    frontend: LabNetworkPlan
    backend: LabNetworkPlan
    network_mode: str
    load_balancers: tuple[LoadBalancer, ...]
    web_servers: tuple[WebServer, ...]
    http_port: int
    https_port: int
    stats_port: int
    # HAProxy's built-in Prometheus exporter (/metrics) on every load balancer.
    metrics_port: int
    web_http_port: int
    web_https_port: int
    stats_user: str
    # None: generated at deploy time (a secret in state). Never rendered: only its hash is.
    stats_password: Optional[str] = field(repr=False)
    vrrp: Vrrp
    domain_type: str
    base_image: str
    pool_path: str
    machine: MachineSize
    ssh_public_keys: tuple[str, ...]
    install_packages: bool
    # None: the image's own apt sources.
    package_mirror: Optional[PackageMirror]
    # Readiness gate and in-place rollouts (over SSH).
    wait_for_ready: bool
    ssh_user: str
    # Key text (secret), never rendered. None: the stack generates a key pair (see generates_ssh_key).
    ssh_private_key: Optional[str] = field(repr=False)
    ready_timeout: int
    # Every libvirt host the lab uses, in the order given; one unless `hosts` names several.
    hosts: tuple[LibvirtHost, ...]

    @property
    def lab_name(self) -> str:
        """Prefix of every libvirt object, so two stacks can share one host."""
        return f"{PROJECT}-{self.stack}"

    @property
    def generates_ssh_key(self) -> bool:
        """No key given and none found: the readiness gate logs in with a key the stack generates."""
        return self.wait_for_ready and self.ssh_private_key is None

    @property
    def stats_path(self) -> str:
        return "/haproxy_stats"

    @property
    def bridged(self) -> bool:
        return self.network_mode == "bridge"

    def host(self, name: str) -> LibvirtHost:
        return next(h for h in self.hosts if h.name == name)

    def domain_name(self, machine: str) -> str:
        """The libvirt domain of a VM (and the prefix of its volumes' names)."""
        return f"{self.lab_name}-{machine}"

    def machines_on(self, host: str) -> tuple[str, ...]:
        """The names of the VMs placed on a host: load balancers first."""
        return tuple(vm.name for vm in (*self.load_balancers, *self.web_servers) if vm.host == host)


# ---------------------------------------------------------------------------------------------
# Parsing


class _Problems:
    """Collects problems; each reader returns a usable fallback so checking can go on."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, value: Any, allowed: str) -> None:
        self.items.append(f"{key}: {_show(value)} is not valid; {allowed}")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _decode(value: Any) -> Any:
    """Pulumi hands structured config over as JSON text; plain values as text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _as_int(problems: _Problems, key: str, value: Any, low: int, high: int) -> Optional[int]:
    value = _decode(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.add(key, value, f"expected a whole number from {low} to {high}")
        return None
    return value


def _as_bool(problems: _Problems, key: str, value: Any) -> Optional[bool]:
    value = _decode(value)
    if not isinstance(value, bool):
        problems.add(key, value, "expected true or false")
        return None
    return value


def _as_choice(problems: _Problems, key: str, value: Any, choices: Sequence[str]) -> Optional[str]:
    if value not in choices:
        problems.add(key, value, f"expected one of: {', '.join(choices)}")
        return None
    return value


def _as_text(problems: _Problems, key: str, value: Any, pattern: str, meaning: str) -> Optional[str]:
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        problems.add(key, value, meaning)
        return None
    return value


def _as_address(problems: _Problems, key: str, value: Any) -> Optional[IPv4Address]:
    try:
        return IPv4Address(value)
    except (ValueError, TypeError):
        problems.add(key, value, "expected an IPv4 address such as 192.168.10.3")
        return None


def _as_network(problems: _Problems, key: str, value: Any) -> Optional[IPv4Network]:
    try:
        network = IPv4Network(value, strict=True)
    except (ValueError, TypeError):
        problems.add(key, value, "expected an IPv4 network in CIDR form such as 192.168.10.0/24 (host bits zero)")
        return None
    if network.prefixlen > 29:
        problems.add(key, value, "expected a prefix of /29 or shorter: the gateway, two load balancers and the VIP need room")
        return None
    return network


def _as_object_list(problems: _Problems, key: str, value: Any) -> list[Mapping[str, Any]]:
    value = _decode(value)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.add(key, value, "expected a list of objects")
        return []
    return value


def _as_object(problems: _Problems, key: str, value: Any) -> Mapping[str, Any]:
    value = _decode(value)
    if not isinstance(value, dict):
        problems.add(key, value, "expected an object")
        return {}
    return value


def _check_keys(problems: _Problems, where: str, given: Mapping[str, Any], known: Sequence[str]) -> None:
    for key in given:
        if key not in known:
            problems.items.append(f"{where}{key}: unknown setting; known settings are: {', '.join(known)}")


def _valid_ssh_public_key(line: str) -> bool:
    parts = line.split()
    if len(parts) < 2 or parts[0] not in _SSH_KEY_TYPES:
        return False
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return False
    # The key blob starts with its own type name (RFC 4253 string): a pasted-together key fails here.
    name = parts[0].encode()
    return blob[4 : 4 + len(name)] == name and int.from_bytes(blob[:4], "big") == len(name)


DEFAULTS: dict[str, Any] = {
    "vip": "192.168.10.3",
    "frontendCidr": "192.168.10.0/24",
    "backendCidr": "192.168.80.0/24",
    "networkMode": "nat",
    # The reference plan puts lb01 on .1 and web01 on .1: libvirt's gateway takes that address,
    # so those two move (lb01 -> .4, web01 -> .3). Priorities sit at the top of VRRP's range (255 is the
    # address owner's): when the master resigns, the backup waits the skew time (256 - priority) / 256
    # adverts, 12 ms at 253 against the reference's 0.61 s at 99 (Pulumi.example.yaml keeps 100/99).
    "loadBalancers": [
        {"name": "lb01", "address": "192.168.10.4", "backendAddress": "192.168.80.11", "priority": 254},
        {"name": "lb02", "address": "192.168.10.2", "backendAddress": "192.168.80.12", "priority": 253},
    ],
    "webServers": [
        {"name": "web01", "address": "192.168.80.3"},
        {"name": "web02", "address": "192.168.80.2"},
    ],
    "httpPort": 80,
    "httpsPort": 443,
    "statsPort": 9000,
    "metricsPort": 8405,  # the port HAProxy's documentation uses for its Prometheus exporter
    "webHttpPort": 8080,
    "webHttpsPort": 8443,
    "statsUser": "admin",
    "statsPassword": None,
    "vrrp": {},
    "domainType": "kvm",
    "baseImage": DEFAULT_BASE_IMAGE,
    "pool": None,  # default depends on the stack name
    "vcpus": 1,
    "memoryMiB": 1024,
    "diskGiB": 10,
    "sshPublicKeys": None,  # default: the user's own public keys, found by the caller
    "installPackages": True,
    "packageMirror": None,  # default: the image's own apt sources (deb.debian.org on Debian's images)
    "waitForReady": True,
    "sshUser": "debian",  # the default user of Debian cloud images
    "sshPrivateKey": None,  # key text or a path; default: the user's own private key, found by the caller
    # Seconds per VM: boot, cloud-init and service checks. Default: READY_TIMEOUT per domainType.
    "readyTimeout": None,
    "libvirtUri": None,  # default: `libvirt:uri`, then LIBVIRT_DEFAULT_URI, then qemu:///system (the caller's)
    # {NAME: URI}: the libvirt hosts the VMs are spread over. Default: one host, libvirtUri.
    "hosts": None,
    # networkMode bridge only: existing host bridges (on every host), the user's router(s) and DNS servers.
    "frontendBridge": None,
    "backendBridge": None,
    "frontendGateway": None,  # default: the first host address of frontendCidr, where LANs keep their router
    "backendGateway": None,  # default: none (a private backend: web servers reach only their LAN)
    "dnsServers": None,  # default: frontendGateway
}

VRRP_KEYS = ("profile", "virtualRouterId", "advertInterval", "unicast", "checkInterval", "checkWeight", "preempt",
             "preemptDelay", "trackProcess")
LOAD_BALANCER_KEYS = ("name", "address", "backendAddress", "priority", "host")
WEB_SERVER_KEYS = ("name", "address", "host")
BRIDGE_KEYS = ("frontendBridge", "backendBridge", "frontendGateway", "backendGateway", "dnsServers")


def load_settings(raw: Mapping[str, Any], stack: str, default_ssh_keys: Sequence[str] = (),
                  default_private_key: Optional[str] = None,
                  default_libvirt_uri: str = DEFAULT_LIBVIRT_URI) -> LabSettings:
    """Parse camelCase stack config (keys without the `ha-lb:` prefix) into LabSettings.

    Raises SettingsError listing every problem; nothing is half-parsed.
    """
    problems = _Problems()
    _check_keys(problems, "", raw, tuple(DEFAULTS))
    given = {**DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}

    if not _HOSTNAME.fullmatch(stack or ""):
        problems.add("stack name", stack, "expected lowercase letters, digits and dashes (it names libvirt objects)")

    frontend_net = _as_network(problems, "frontendCidr", given["frontendCidr"])
    backend_net = _as_network(problems, "backendCidr", given["backendCidr"])
    if frontend_net and backend_net and frontend_net.overlaps(backend_net):
        problems.add("backendCidr", str(backend_net), f"expected a network that does not overlap frontendCidr {frontend_net}")
    network_mode = _as_choice(problems, "networkMode", given["networkMode"], NETWORK_MODES)
    frontend, backend = _network_plans(problems, given, network_mode, frontend_net, backend_net)
    vip = _as_address(problems, "vip", given["vip"])

    hosts = _parse_hosts(problems, given, default_libvirt_uri)
    load_balancers = _parse_load_balancers(problems, given["loadBalancers"], hosts)
    web_servers = _parse_web_servers(problems, given["webServers"], hosts)
    _check_placement(problems, hosts, network_mode, load_balancers, web_servers)

    _check_addresses(problems, vip, frontend if frontend_net else None, backend if backend_net else None,
                     load_balancers, web_servers)
    _check_names(problems, load_balancers, web_servers)

    ports = {
        key: _as_int(problems, key, given[key], 1, 65535)
        for key in ("httpPort", "httpsPort", "statsPort", "metricsPort", "webHttpPort", "webHttpsPort")
    }
    _check_port_collisions(problems, ports, ("httpPort", "httpsPort", "statsPort", "metricsPort"), "load balancer")
    _check_port_collisions(problems, ports, ("webHttpPort", "webHttpsPort"), "web server")

    stats_user = _as_text(problems, "statsUser", given["statsUser"], r"[A-Za-z0-9_.-]{1,64}",
                          "expected 1-64 letters, digits, '.', '_' or '-'")
    stats_password = given["statsPassword"]
    if stats_password is not None and (not isinstance(stats_password, str) or len(stats_password) < 8
                                       or any(c.isspace() for c in stats_password)):
        problems.items.append("statsPassword: the given secret is not valid; expected at least 8 characters "
                              "without white space (or leave it unset to have one generated)")
        stats_password = None

    vrrp = _parse_vrrp(problems, given["vrrp"], load_balancers)

    domain_type = _as_choice(problems, "domainType", given["domainType"], DOMAIN_TYPES)
    base_image = KNOWN_BASE_IMAGES.get(given["baseImage"], given["baseImage"])
    if not isinstance(base_image, str) or not (base_image.startswith(("/", "http://", "https://"))):
        problems.add("baseImage", base_image, f"expected {', '.join(KNOWN_BASE_IMAGES)}, an absolute path or an "
                     "http(s) URL of a cloud image")
    pool_path = given["pool"] if given["pool"] is not None else f"/var/lib/libvirt/images/{PROJECT}-{stack}"
    if not isinstance(pool_path, str) or not pool_path.startswith("/") or pool_path.rstrip("/") in ("", "/var", "/var/lib"):
        problems.add("pool", pool_path, "expected an absolute directory path for the lab's own storage pool")

    machine = MachineSize(
        vcpus=_as_int(problems, "vcpus", given["vcpus"], 1, 64) or 1,
        memory_mib=_as_int(problems, "memoryMiB", given["memoryMiB"], 512, 262144) or 512,
        disk_gib=_as_int(problems, "diskGiB", given["diskGiB"], 4, 2048) or 4,
    )

    ssh_keys = _parse_ssh_keys(problems, given["sshPublicKeys"], default_ssh_keys)
    install_packages = _as_bool(problems, "installPackages", given["installPackages"])
    package_mirror = _parse_package_mirror(problems, given["packageMirror"], backend, network_mode)
    # A mirror given but invalid has its own problem; this one is for none given at all.
    if install_packages and network_mode == "isolated" and _decode(given["packageMirror"]) is None:
        problems.items.append(
            "installPackages: true cannot work with networkMode 'isolated' and no packageMirror (guests reach "
            f"only the host); set packageMirror to a mirror served at the host's backend address "
            f"{backend.host_address}, use networkMode 'nat', or an image that carries the packages with "
            "installPackages false"
        )
    if install_packages and network_mode == "bridge" and backend.router is None \
            and _decode(given["packageMirror"]) is None and backend_net:
        problems.items.append(
            "installPackages: true cannot work on a bridged backend without backendGateway and without "
            f"packageMirror (the web servers reach only their LAN {backend_net}); set backendGateway, a "
            "packageMirror served on that LAN, or use an image that carries the packages with installPackages false"
        )

    wait_for_ready = _as_bool(problems, "waitForReady", given["waitForReady"])
    ssh_user = _as_text(problems, "sshUser", given["sshUser"], r"[a-z_][a-z0-9_-]{0,31}", "expected a Linux user name")
    ready_timeout = (_as_int(problems, "readyTimeout", given["readyTimeout"], 60, 7200)
                     if given["readyTimeout"] is not None else READY_TIMEOUT.get(domain_type or "kvm"))
    ssh_private_key = _parse_private_key(problems, given["sshPrivateKey"], default_private_key)
    # No key given and none in ~/.ssh: the stack generates one (its public half joins sshPublicKeys).
    if wait_for_ready and ssh_private_key is not None and not ssh_keys \
            and not any(p.startswith("sshPublicKeys") for p in problems.items):
        problems.items.append("sshPublicKeys: empty, so nothing can log in for the readiness gate; "
                              "add the public half of sshPrivateKey, or set waitForReady false")

    if problems.items:
        raise SettingsError(problems.items)

    assert vip and network_mode and domain_type and stats_user and vrrp and install_packages is not None
    return LabSettings(
        stack=stack,
        vip=vip,
        frontend=frontend,
        backend=backend,
        network_mode=network_mode,
        load_balancers=tuple(load_balancers),
        web_servers=tuple(web_servers),
        http_port=ports["httpPort"],  # type: ignore[arg-type]
        https_port=ports["httpsPort"],  # type: ignore[arg-type]
        stats_port=ports["statsPort"],  # type: ignore[arg-type]
        metrics_port=ports["metricsPort"],  # type: ignore[arg-type]
        web_http_port=ports["webHttpPort"],  # type: ignore[arg-type]
        web_https_port=ports["webHttpsPort"],  # type: ignore[arg-type]
        stats_user=stats_user,
        stats_password=stats_password,
        vrrp=vrrp,
        domain_type=domain_type,
        base_image=base_image,
        pool_path=pool_path.rstrip("/"),
        machine=machine,
        ssh_public_keys=ssh_keys,
        install_packages=install_packages,
        package_mirror=package_mirror,
        wait_for_ready=bool(wait_for_ready),
        ssh_user=ssh_user or "debian",
        ssh_private_key=ssh_private_key,
        ready_timeout=ready_timeout or 900,
        hosts=tuple(hosts),
    )


def _on_network(host: str, network: IPv4Network) -> bool:
    try:
        return IPv4Address(host) in network
    except ValueError:
        return False  # a name: where it points is not known here


_MIRROR_URL = re.compile(r"^(https?)://([A-Za-z0-9.-]+(?::[^/\s?#@]*)?)(/[^\s?#]*)?$")


def _parse_package_mirror(problems: _Problems, value: Any, backend: LabNetworkPlan,
                          network_mode: Optional[str]) -> Optional[PackageMirror]:
    """`packageMirror`: the URL of a Debian archive mirror (its security archive beside it, `<URL>-security`,
    as on deb.debian.org and in apt-cacher-ng's and debmirror's layouts), or {archive, security}."""
    value = _decode(value)
    if value is None:
        return None
    if isinstance(value, str):
        given = {"archive": value.rstrip("/"), "security": value.rstrip("/") + "-security"}
        keys = {"archive": "packageMirror", "security": "packageMirror (its security archive, <URL>-security)"}
    elif isinstance(value, Mapping):
        _check_keys(problems, "packageMirror.", value, ("archive", "security"))
        given = {key: value.get(key) for key in ("archive", "security")}
        keys = {key: f"packageMirror.{key}" for key in given}
    else:
        problems.add("packageMirror", value, "expected the URL of a Debian archive mirror (e.g. "
                     "http://192.168.80.1:3142/debian) or {archive: URL, security: URL}")
        return None
    found = {}
    for key, url in given.items():
        match = _MIRROR_URL.fullmatch(url) if isinstance(url, str) else None
        if not match:
            problems.add(keys[key], url, "expected an http:// or https:// URL without spaces, query or user "
                         "(e.g. http://192.168.80.1:3142/debian)")
            continue
        host, _, port = match.group(2).partition(":")
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            problems.add(keys[key], url, "expected a port from 1 to 65535 after the host")
            continue
        if network_mode == "isolated" and host != str(backend.host_address):
            problems.add(keys[key], url, f"with networkMode 'isolated' the guests reach only the host: expected a "
                         f"mirror served at the host's backend address {backend.host_address} (every VM has an "
                         "address on the backend network)")
        elif network_mode == "bridge" and backend.router is None and not _on_network(host, backend.network):
            problems.add(keys[key], url, f"with a bridged backend and no backendGateway the web servers reach only "
                         f"their LAN: expected a mirror served at an address inside backendCidr {backend.network}")
        found[key] = url.rstrip("/")
    if len(found) != 2:
        return None
    return PackageMirror(archive=found["archive"], security=found["security"])


def _parse_load_balancers(problems: _Problems, value: Any, hosts: Sequence[LibvirtHost]) -> list[LoadBalancer]:
    items = _as_object_list(problems, "loadBalancers", value)
    if items and len(items) != 2:
        problems.add("loadBalancers", [i.get("name") for i in items], "expected exactly two load balancers (one VRRP pair)")
    result = []
    for index, item in enumerate(items):
        where = f"loadBalancers[{index}]."
        _check_keys(problems, where, item, LOAD_BALANCER_KEYS)
        name = item.get("name")
        address = _as_address(problems, where + "address", item.get("address"))
        backend_address = _as_address(problems, where + "backendAddress", item.get("backendAddress"))
        priority = _as_int(problems, where + "priority", item.get("priority"), 1, 254)
        host = _placement(problems, where + "host", item.get("host"), hosts, index)
        if address and backend_address and priority and host:
            result.append(LoadBalancer(str(name), address, backend_address, priority, host))
    if len(result) == 2 and result[0].priority == result[1].priority:
        problems.add("loadBalancers[1].priority", result[1].priority,
                     f"expected a priority different from {result[0].name}'s ({result[0].priority}): VRRP needs a clear master")
    return result


def _parse_web_servers(problems: _Problems, value: Any, hosts: Sequence[LibvirtHost]) -> list[WebServer]:
    items = _as_object_list(problems, "webServers", value)
    if not items and isinstance(_decode(value), list):
        problems.add("webServers", [], "expected at least one web server")
    result = []
    for index, item in enumerate(items):
        where = f"webServers[{index}]."
        _check_keys(problems, where, item, WEB_SERVER_KEYS)
        address = _as_address(problems, where + "address", item.get("address"))
        host = _placement(problems, where + "host", item.get("host"), hosts, index)
        if address and host:
            result.append(WebServer(str(item.get("name")), address, host))
    return result


# ---------------------------------------------------------------------------------------------
# Hosts and networks


_BRIDGE_NAME = re.compile(r"^(?!\.\.?$)[A-Za-z0-9_.-]{1,15}$")  # a Linux interface name (IFNAMSIZ 16)


def _parse_hosts(problems: _Problems, given: Mapping[str, Any], default_uri: str) -> list[LibvirtHost]:
    """`hosts: {NAME: URI}`, or the one host of `libvirtUri`; each URI one the provider can use."""
    if given["hosts"] is None:
        uri = given["libvirtUri"] if given["libvirtUri"] is not None else default_uri
        found = [LibvirtHost(DEFAULT_HOST, uri)]
        for problem in uri_problems(uri):
            problems.add("libvirtUri", uri, problem)
        return found
    if given["libvirtUri"] is not None:
        problems.add("libvirtUri", given["libvirtUri"], "expected it unset when hosts is set: each host's URI is "
                     "in hosts")
    value = _decode(given["hosts"])
    if not isinstance(value, dict) or not value:
        problems.add("hosts", value, "expected a mapping of host names to libvirt URIs, e.g. "
                     "{hv1: qemu:///system, hv2: qemu+ssh://root@hv2.example.net/system}")
        return []
    found, seen = [], {}
    for name, uri in value.items():
        key = f"hosts.{name}"
        if not _HOSTNAME.fullmatch(name):
            problems.add("hosts", name, "expected host names of 1-63 lowercase letters, digits or dashes "
                         "(they name resources)")
            continue
        if not isinstance(uri, str):
            problems.add(key, uri, "expected a libvirt connection URI such as qemu+ssh://root@hv1/system")
            continue
        reasons = uri_problems(uri)
        for problem in reasons:
            problems.add(key, uri, problem)
        if uri in seen:
            problems.add(key, uri, f"expected a URI other than hosts.{seen[uri]}'s: one libvirt host is one entry")
            continue
        seen[uri] = name
        if not reasons:
            found.append(LibvirtHost(name, uri))
    return found


def _placement(problems: _Problems, key: str, value: Any, hosts: Sequence[LibvirtHost], index: int) -> Optional[str]:
    """A VM's host: the one given, else the hosts in turn (the first VM of a tier on the first host)."""
    if not hosts:
        return None
    if value is None:
        return hosts[index % len(hosts)].name
    names = [h.name for h in hosts]
    if value not in names:
        problems.add(key, value, f"expected one of the hosts: {', '.join(names)}")
        return None
    return value


def _check_placement(problems: _Problems, hosts: Sequence[LibvirtHost], network_mode: Optional[str],
                     load_balancers: Sequence[LoadBalancer], web_servers: Sequence[WebServer]) -> None:
    if len(hosts) < 2:
        return
    if len(load_balancers) == 2 and load_balancers[0].host == load_balancers[1].host:
        problems.add("loadBalancers[1].host", load_balancers[1].host,
                     f"expected a host other than {load_balancers[0].name}'s: with several hosts the two load "
                     "balancers run on different ones, so that losing one hypervisor does not take both")
    used = {vm.host for vm in (*load_balancers, *web_servers)}
    for host in hosts:
        if host.name not in used:
            problems.add(f"hosts.{host.name}", host.uri, "expected a host that carries a VM (set `host` on a load "
                         "balancer or web server, or remove it)")
    if network_mode in LIBVIRT_NETWORK_MODES and len(used) > 1:
        placed = "; ".join(f"{host}: {', '.join(vm.name for vm in (*load_balancers, *web_servers) if vm.host == host)}"
                           for host in sorted(used))
        problems.add("networkMode", network_mode,
                     f"expected 'bridge' when the lab's VMs are on more than one host ({placed}): libvirt's "
                     f"{network_mode} networks do not span hosts")


def _network_plans(problems: _Problems, given: Mapping[str, Any], network_mode: Optional[str],
                   frontend_net: Optional[IPv4Network],
                   backend_net: Optional[IPv4Network]) -> tuple[LabNetworkPlan, LabNetworkPlan]:
    """The two networks: made by libvirt on each host (nat, isolated), or the user's LAN behind host bridges."""
    front = frontend_net or IPv4Network("0.0.0.0/29")
    back = backend_net or IPv4Network("0.0.0.0/29")
    if network_mode != "bridge":
        for key in BRIDGE_KEYS:
            if given[key] is not None:
                problems.add(key, _decode(given[key]), "expected it unset unless networkMode is 'bridge' (libvirt "
                             "makes the networks, their gateway and DNS)")
        def libvirt_network(role: str, network: IPv4Network, interface: str) -> LabNetworkPlan:
            plan = LabNetworkPlan(role, network, interface)
            if network_mode != "nat":
                return plan  # isolated: the host alone, no way out
            # On a NAT network the host's address is libvirt's gateway and DNS.
            return dataclasses.replace(plan, router=plan.host_address, dns_servers=(plan.host_address,))

        return libvirt_network("frontend", front, FRONTEND_INTERFACE), libvirt_network("backend", back, BACKEND_INTERFACE)

    bridges = {}
    for key in ("frontendBridge", "backendBridge"):
        value = given[key]
        if value is None:
            problems.items.append(f"{key}: required with networkMode 'bridge': the name of an existing host bridge "
                                  "(on every host) that reaches the lab's LAN, e.g. br0")
        elif not isinstance(value, str) or not _BRIDGE_NAME.fullmatch(value):
            problems.add(key, value, "expected a Linux bridge name: 1-15 letters, digits, '.', '_' or '-'")
        else:
            bridges[key] = value
    if len(bridges) == 2 and bridges["frontendBridge"] == bridges["backendBridge"]:
        problems.add("backendBridge", bridges["backendBridge"], "expected a bridge other than frontendBridge: the "
                     "backend is the web servers' own network, out of the clients' reach")
    routers = {}
    for key, net in (("frontendGateway", frontend_net), ("backendGateway", backend_net)):
        value = given[key]
        if value is None:
            routers[key] = net.network_address + 1 if key == "frontendGateway" and net else None
            continue
        address = _as_address(problems, key, value)
        if address and net and address not in net:
            problems.add(key, str(address), f"expected an address inside {key.replace('Gateway', 'Cidr')} {net}")
        routers[key] = address
    dns_value = _decode(given["dnsServers"])
    dns: tuple[IPv4Address, ...] = (routers["frontendGateway"],) if dns_value is None and routers["frontendGateway"] \
        else ()
    if dns_value is not None:
        if not isinstance(dns_value, list):
            problems.add("dnsServers", dns_value, "expected a list of IPv4 addresses, e.g. [192.168.10.1]")
        else:
            dns = tuple(a for i, v in enumerate(dns_value) if (a := _as_address(problems, f"dnsServers[{i}]", v)))
    frontend = LabNetworkPlan("frontend", front, FRONTEND_INTERFACE, bridges.get("frontendBridge"),
                              routers["frontendGateway"], dns)
    # Web servers resolve names only where they have a way out.
    backend = LabNetworkPlan("backend", back, BACKEND_INTERFACE, bridges.get("backendBridge"),
                             routers["backendGateway"], dns if routers["backendGateway"] else ())
    return frontend, backend


def _check_addresses(
    problems: _Problems,
    vip: Optional[IPv4Address],
    frontend: Optional[LabNetworkPlan],
    backend: Optional[LabNetworkPlan],
    load_balancers: Sequence[LoadBalancer],
    web_servers: Sequence[WebServer],
) -> None:
    """Every address inside its network, not reserved, and used once."""
    owners: dict[tuple[str, IPv4Address], str] = {}

    def claim(key: str, address: IPv4Address, plan: Optional[LabNetworkPlan], setting: str) -> None:
        if plan is None:
            return
        net = plan.network
        if address not in net:
            problems.add(key, str(address), f"expected an address inside {setting} {net}")
            return
        reserved = {net.network_address: "the network address", net.broadcast_address: "the broadcast address"}
        if plan.host_address is not None:
            reserved[plan.host_address] = "the libvirt host/gateway address"
        if plan.router is not None:
            reserved.setdefault(plan.router, f"the {plan.role} gateway")  # on a NAT network: the libvirt host
        if address in reserved:
            lo, hi = net.network_address + (2 if plan.host_address else 1), net.broadcast_address - 1
            problems.add(key, str(address), f"it is {reserved[address]} of {net}; expected one of {lo}-{hi}")
            return
        previous = owners.get((plan.role, address))
        if previous:
            problems.add(key, str(address), f"already used by {previous}; every address must be unique")
            return
        owners[(plan.role, address)] = key

    if vip is not None:
        claim("vip", vip, frontend, "frontendCidr")
    for i, lb in enumerate(load_balancers):
        claim(f"loadBalancers[{i}].address", lb.address, frontend, "frontendCidr")
        claim(f"loadBalancers[{i}].backendAddress", lb.backend_address, backend, "backendCidr")
    for i, web in enumerate(web_servers):
        claim(f"webServers[{i}].address", web.address, backend, "backendCidr")


def _check_names(problems: _Problems, load_balancers: Sequence[LoadBalancer], web_servers: Sequence[WebServer]) -> None:
    seen: set[str] = set()
    entries = [(f"loadBalancers[{i}].name", lb.name) for i, lb in enumerate(load_balancers)]
    entries += [(f"webServers[{i}].name", web.name) for i, web in enumerate(web_servers)]
    for key, name in entries:
        if not _HOSTNAME.fullmatch(name):
            problems.add(key, name, "expected a host name: 1-63 lowercase letters, digits or dashes, not starting or ending with a dash")
        elif name in seen:
            problems.add(key, name, "expected a unique name; it is used twice")
        seen.add(name)


def _check_port_collisions(problems: _Problems, ports: Mapping[str, Optional[int]], keys: Sequence[str], where: str) -> None:
    seen: dict[int, str] = {}
    for key in keys:
        port = ports[key]
        if port is None:
            continue
        if port in RESERVED_GUEST_PORTS:
            problems.add(key, port, f"expected a port other than {port}: {RESERVED_GUEST_PORTS[port]} listens there "
                                    f"on every {where}")
        elif port in seen:
            problems.add(key, port, f"expected a port different from {seen[port]}: both listen on the {where}")
        else:
            seen[port] = key


def _parse_vrrp(problems: _Problems, value: Any, load_balancers: Sequence[LoadBalancer]) -> Optional[Vrrp]:
    given = _as_object(problems, "vrrp", value)
    _check_keys(problems, "vrrp.", given, VRRP_KEYS)
    profile = _as_choice(problems, "vrrp.profile", given.get("profile", "classic"), VRRP_PROFILES) or "classic"
    defaults = VRRP_PROFILE_DEFAULTS[profile]
    version = defaults["version"]

    virtual_router_id = _as_int(problems, "vrrp.virtualRouterId", given.get("virtualRouterId", 1), 1, 255)
    advert = _decode(given.get("advertInterval", defaults["advertInterval"]))
    advert_interval: Optional[float] = None
    if version == 2:
        # VRRPv2 counts adverts in whole seconds.
        if isinstance(advert, bool) or not isinstance(advert, int) or not 1 <= advert <= 255:
            problems.add("vrrp.advertInterval", advert, "expected whole seconds from 1 to 255 with the classic profile (VRRPv2); "
                         "use profile 'fast' (VRRPv3) for sub-second adverts")
        else:
            advert_interval = float(advert)
    else:
        # VRRPv3 counts centiseconds, 1 to 4095.
        if isinstance(advert, bool) or not isinstance(advert, (int, float)) or not 0.01 <= advert <= 40.95 \
                or abs(round(advert * 100) - advert * 100) > 1e-9:
            problems.add("vrrp.advertInterval", advert, "expected seconds from 0.01 to 40.95 in steps of 0.01 (VRRPv3)")
        else:
            advert_interval = float(advert)

    unicast = _as_bool(problems, "vrrp.unicast", given.get("unicast", True))
    # keepalived refuses script intervals under one second.
    check_interval = _as_int(problems, "vrrp.checkInterval", given.get("checkInterval", defaults["checkInterval"]), 1, 3600)
    # 0 (default): a failed check puts the node in FAULT, so it drops the VIP and resigns at once. A weight
    # (the reference's 2) only lowers its priority: the peer then waits out the master-down timer and
    # preempts, so the VIP moves later and both hold it for the moment of the handover.
    check_weight = _as_int(problems, "vrrp.checkWeight", given.get("checkWeight", 0), 0, 253)
    preempt = _as_bool(problems, "vrrp.preempt", given.get("preempt", True))
    track_process = _as_bool(problems, "vrrp.trackProcess", given.get("trackProcess", True))
    preempt_delay = _parse_preempt_delay(problems, given, preempt, check_interval, check_weight)

    if check_weight and len(load_balancers) == 2:
        gap = abs(load_balancers[0].priority - load_balancers[1].priority)
        if check_weight <= gap:
            problems.add("vrrp.checkWeight", check_weight,
                         f"expected 0 or more than the priority gap ({gap}): otherwise a failed HAProxy check never moves the VIP")
    if check_weight:
        # A positive weight is added while the check passes (keepalived's man page: vrrp_script weight), and
        # keepalived caps a tracked priority at 254: above that the two nodes would tie.
        for lb in load_balancers:
            if lb.priority + check_weight > 254:
                problems.add("vrrp.checkWeight", check_weight,
                             f"expected at most {254 - lb.priority}: {lb.name}'s priority {lb.priority} plus the weight "
                             "must stay within 254 (keepalived caps it there, and the pair would tie); lower the priorities "
                             "(the reference uses 100 and 99)")
                break
    if check_weight and preempt is False:
        problems.add("vrrp.checkWeight", check_weight,
                     "expected 0 when vrrp.preempt is false: without preemption a lowered priority never moves the VIP")
    if None in (virtual_router_id, advert_interval, unicast, check_interval, check_weight, preempt, preempt_delay,
                track_process):
        return None
    return Vrrp(profile, version, virtual_router_id, advert_interval, unicast, check_interval,  # type: ignore[arg-type]
                check_weight, preempt, preempt_delay, track_process)  # type: ignore[arg-type]


def _parse_preempt_delay(problems: _Problems, given: Mapping[str, Any], preempt: Optional[bool],
                         check_interval: Optional[int], check_weight: Optional[int]) -> Optional[float]:
    if "preemptDelay" not in given:
        if preempt is False or check_weight:
            return 0.0
        return float(PREEMPT_DELAY_CHECKS * check_interval) if check_interval else None
    delay = _decode(given["preemptDelay"])
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= PREEMPT_DELAY_MAX:
        problems.add("vrrp.preemptDelay", delay, f"expected seconds from 0 to {PREEMPT_DELAY_MAX}")
        return None
    if delay and preempt is False:
        # keepalived 2.2.7 vrrp.c: "preempt_delay is incompatible with nopreempt mode - resetting".
        problems.add("vrrp.preemptDelay", delay, "expected 0 (or unset) when vrrp.preempt is false: nothing is preempted")
        return None
    if delay and check_weight:
        problems.add("vrrp.preemptDelay", delay, "expected 0 (or unset) with vrrp.checkWeight: a weight moves the VIP "
                     "by preemption, so a hold-down would delay every failover")
        return None
    return float(delay)


def _parse_ssh_keys(problems: _Problems, value: Any, default_keys: Sequence[str]) -> tuple[str, ...]:
    if value is None:
        value = list(default_keys)
    value = _decode(value)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        problems.add("sshPublicKeys", value, "expected a list of OpenSSH public keys")
        return ()
    keys = []
    for index, key in enumerate(value):
        if not isinstance(key, str) or not _valid_ssh_public_key(key.strip()):
            shown = key if not isinstance(key, str) or len(key) < 40 else key[:37] + "..."
            problems.add(f"sshPublicKeys[{index}]", shown,
                         f"expected an OpenSSH public key line ({', '.join(_SSH_KEY_TYPES[:3])}, ...)")
        else:
            keys.append(key.strip())
    return tuple(keys)


def _parse_private_key(problems: _Problems, value: Any, default_key: Optional[str]) -> Optional[str]:
    """Key text as given (a secret), or read from a path."""
    if value is None:
        return default_key
    if not isinstance(value, str) or not value.strip():
        problems.items.append("sshPrivateKey: expected OpenSSH private key text or the path of a key file")
        return None
    if value.lstrip().startswith("-----BEGIN"):
        return value if value.endswith("\n") else value + "\n"
    import pathlib

    try:
        text = pathlib.Path(value).expanduser().read_text()
    except OSError as error:
        problems.add("sshPrivateKey", value, f"it is not key text and the file cannot be read ({error.strerror})")
        return None
    if "PRIVATE KEY-----" not in text:
        problems.add("sshPrivateKey", value, "the file does not hold a private key")
        return None
    return text


def mac_address(settings: LabSettings, host: str, role: str) -> str:
    """A MAC that stays the same for the same lab, host and network (network-config matches it)."""
    digest = hashlib.sha256(f"{settings.lab_name}/{host}/{role}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def default_ssh_private_key(home: str) -> Optional[str]:
    """The private half of the user's first key pair, the default for sshPrivateKey."""
    import pathlib

    for public in sorted(pathlib.Path(home, ".ssh").glob("id_*.pub")):
        private = public.with_suffix("")
        if private.is_file():
            return private.read_text()
    return None


def default_ssh_public_keys(home: str) -> list[str]:
    """The user's own public keys (~/.ssh/*.pub), the default for sshPublicKeys."""
    import pathlib

    keys = []
    for path in sorted(pathlib.Path(home, ".ssh").glob("id_*.pub")):
        text = path.read_text(errors="replace").strip()
        if text:
            keys.append(text)
    return keys


def load_user_settings(raw: Mapping[str, Any], stack: str, provider_uri: Optional[str] = None) -> LabSettings:
    """load_settings as the program calls it for the user running it: their ~/.ssh keys as the key defaults,
    and the libvirt URI from `libvirt:uri` (the provider's own key, `provider_uri`), then LIBVIRT_DEFAULT_URI
    (the provider's only fallback), then ours."""
    home = os.path.expanduser("~")
    settings = load_settings(raw, stack=stack, default_ssh_keys=default_ssh_public_keys(home),
                             default_private_key=default_ssh_private_key(home),
                             default_libvirt_uri=provider_uri or os.environ.get("LIBVIRT_DEFAULT_URI")
                             or DEFAULT_LIBVIRT_URI)
    key = "libvirtUri" if raw.get("hosts") is None else "hosts.{}"
    problems = _Problems()
    for host in settings.hosts:
        for problem in ssh_config_problems(host.uri):
            problems.add(key.format(host.name), host.uri, problem)
    if problems.items:
        raise SettingsError(problems.items)
    return settings
