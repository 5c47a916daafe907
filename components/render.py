"""Rendering: pure functions from LabSettings to the text each VM receives.

No Pulumi here, so every byte a VM gets can be produced and checked without a deployment.
Same settings in, byte-identical text out (no clocks, no randomness, sorted where order is free).
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Optional, Union

import jinja2

from .settings import NODE_EXPORTER_PORT, LabNetworkPlan, LabSettings, LoadBalancer, WebServer, mac_address
from .sha_crypt import sha512_crypt, stable_salt

TEMPLATE_DIR = pathlib.Path(__file__).resolve().parent.parent / "cloud-init"

LOAD_BALANCER = "load-balancer"
WEB_SERVER = "web-server"

PACKAGES = {
    LOAD_BALANCER: ("haproxy", "keepalived", "nftables", "qemu-guest-agent", "prometheus-node-exporter"),
    WEB_SERVER: ("nginx", "openssl", "curl", "nftables", "qemu-guest-agent", "prometheus-node-exporter"),
}

# apt's settings for cloud-init's install of PACKAGES: no Recommends. prometheus-node-exporter recommends
# prometheus-node-exporter-collectors (perl, smartmontools, nvme-cli, ipmitool, openipmi: timers every 15 minutes
# that load an emulated guest, for hardware a VM does not have); keepalived recommends ipvsadm (LVS, unused).
# Measured under TCG: 53 packages instead of ~20, and each VM's boot slower by the collectors' units.
APT_CONF = 'APT::Install-Recommends "false";\n'

# The services each role runs (what `python -m components.status` reports on).
SERVICES = {
    LOAD_BALANCER: ("haproxy", "keepalived", "nftables", "prometheus-node-exporter"),
    WEB_SERVER: ("nginx", "nftables", "prometheus-node-exporter"),
}

# The states keepalived passes to a `notify` script for an instance (keepalived.conf(5): "notify"; DELETED
# only with notify_deleted, which the lab does not set), in the order the metrics list them.
VRRP_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")


@dataclass(frozen=True)
class GuestPaths:
    """Where things live on the guests (Debian layout), named once."""

    haproxy: str = "/etc/haproxy/haproxy.cfg"
    haproxy_socket: str = "/run/haproxy/admin.sock"  # Debian's; the status view reads `show stat` there
    keepalived: str = "/etc/keepalived/keepalived.conf"
    sysctl: str = "/etc/sysctl.d/60-ha-lb.conf"
    nftables: str = "/etc/nftables.conf"
    nginx_site: str = "/etc/nginx/conf.d/ha-lb.conf"
    tls_certificate: str = "/etc/ssl/certs/ha-lb-web.crt"
    tls_key: str = "/etc/ssl/private/ha-lb-web.key"
    activate: str = "/usr/local/sbin/ha-lb-activate"
    vrrp_notify: str = "/usr/local/sbin/ha-lb-vrrp-notify"
    # The boot gate: keepalived's track_file (a tmpfs, empty at every boot), the script that writes it once the
    # boot has finished, and the unit that runs that script at every boot.
    boot_finished_marker: str = "/run/ha-lb-boot-finished"
    boot_finished_script: str = "/usr/local/sbin/ha-lb-boot-finished"
    boot_finished_unit: str = "/etc/systemd/system/ha-lb-boot-finished.service"
    # prometheus-node-exporter's textfile collector directory (Debian's build default,
    # --collector.textfile.directory) and the file the VRRP notify script writes there.
    node_exporter_textfiles: str = "/var/lib/prometheus/node-exporter"

    @property
    def boot_finished_unit_name(self) -> str:
        """systemd's name for the boot gate's unit: its file name."""
        return self.boot_finished_unit.rsplit("/", 1)[1]

    @property
    def vrrp_metrics(self) -> str:
        return f"{self.node_exporter_textfiles}/ha_lb_vrrp.prom"


PATHS = GuestPaths()


@dataclass(frozen=True)
class Nic:
    interface: str
    network_role: str  # "frontend" or "backend": which lab network it plugs into
    address: IPv4Address
    cidr_address: str
    mac: str
    bridge: Optional[str]  # networkMode bridge: the host bridge it plugs into (else a network libvirt makes)
    # On the NIC that carries the default route, where its network has a router (libvirt's NAT, the user's LAN).
    router: Optional[IPv4Address]
    dns_servers: tuple[IPv4Address, ...]


@dataclass(frozen=True)
class Host:
    name: str
    role: str  # LOAD_BALANCER or WEB_SERVER
    address: IPv4Address  # the address clients or the load balancers use
    nics: tuple[Nic, ...]
    placement: str  # the libvirt host it runs on (LabSettings.hosts)


@dataclass(frozen=True)
class GuestFile:
    path: str
    mode: str
    content: str


@dataclass(frozen=True)
class CloudInit:
    user_data: str
    meta_data: str
    network_config: str


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def _render(template: str, **context: object) -> str:
    return _ENV.get_template(template).render(**context)


# ---------------------------------------------------------------------------------------------
# Hosts


def _nic(settings: LabSettings, host: str, plan: LabNetworkPlan, address: IPv4Address, default_route: bool) -> Nic:
    return Nic(
        interface=plan.interface,
        network_role=plan.role,
        address=address,
        cidr_address=plan.interface_address(address),
        mac=mac_address(settings, host, plan.role),
        bridge=plan.bridge,
        router=plan.router if default_route else None,
        dns_servers=plan.dns_servers if default_route else (),
    )


def load_balancer_host(settings: LabSettings, lb: LoadBalancer) -> Host:
    return Host(lb.name, LOAD_BALANCER, lb.address, (
        _nic(settings, lb.name, settings.frontend, lb.address, default_route=True),
        _nic(settings, lb.name, settings.backend, lb.backend_address, default_route=False),
    ), lb.host)


def web_server_host(settings: LabSettings, web: WebServer) -> Host:
    return Host(web.name, WEB_SERVER, web.address, (
        _nic(settings, web.name, settings.backend, web.address, default_route=True),
    ), web.host)


def lab_hosts(settings: LabSettings) -> tuple[Host, ...]:
    hosts = tuple(load_balancer_host(settings, lb) for lb in settings.load_balancers)
    hosts += tuple(web_server_host(settings, web) for web in settings.web_servers)
    macs = [nic.mac for host in hosts for nic in host.nics]
    if len(set(macs)) != len(macs):  # 24 hash bits: practically never, but a clash would be silent
        raise ValueError(f"derived MAC addresses collide in lab {settings.lab_name}: {sorted(macs)}")
    return hosts


def peers_of(settings: LabSettings, lb: LoadBalancer) -> tuple[LoadBalancer, ...]:
    return tuple(other for other in settings.load_balancers if other.name != lb.name)


def is_primary(settings: LabSettings, lb: LoadBalancer) -> bool:
    return lb.priority == max(other.priority for other in settings.load_balancers)


# ---------------------------------------------------------------------------------------------
# Service configuration


def stats_password_hash(settings: LabSettings, password: str) -> str:
    """What HAProxy's userlist holds. The salt comes from non-secret facts so that the same
    password renders the same file (a second preview shows no change)."""
    return sha512_crypt(password, stable_salt(settings.lab_name, settings.stats_user))


def _seconds(value: float) -> str:
    """keepalived's decimal seconds: 1, 0.1, 2.5 (no trailing zeros, no float noise)."""
    return str(int(value)) if value == int(value) else f"{value:.6f}".rstrip("0")


def render_keepalived_conf(settings: LabSettings, lb: LoadBalancer) -> str:
    return _render(
        "keepalived.conf.j2",
        lb=lb,
        peers=peers_of(settings, lb),
        is_primary=is_primary(settings, lb),
        vrrp=settings.vrrp,
        advert_int=_seconds(settings.vrrp.advert_interval),
        preempt_delay=_seconds(settings.vrrp.preempt_delay),
        frontend=settings.frontend,
        vip=settings.vip,
        notify_path=PATHS.vrrp_notify,
        boot_finished_marker=PATHS.boot_finished_marker,
        boot_finished_unit=PATHS.boot_finished_unit_name,
    )


def render_vrrp_notify() -> str:
    return _render("vrrp-notify.sh.j2", path=PATHS.vrrp_notify, directory=PATHS.node_exporter_textfiles,
                   metrics_file=PATHS.vrrp_metrics, states=VRRP_STATES)


def render_boot_finished_script() -> str:
    return _render("boot-finished.sh.j2", script=PATHS.boot_finished_script, marker=PATHS.boot_finished_marker,
                   unit=PATHS.boot_finished_unit_name)


def render_boot_finished_unit() -> str:
    return _render("boot-finished.service.j2", unit=PATHS.boot_finished_unit_name,
                   script=PATHS.boot_finished_script)


def scrape_targets(settings: LabSettings) -> dict[str, list[str]]:
    """The `metrics` stack output: what Prometheus scrapes (each VM by its address on the network whose
    metrics_source the firewall lets in)."""
    return {
        "haproxy": [f"{lb.address}:{settings.metrics_port}" for lb in settings.load_balancers],
        "node": [f"{host.address}:{NODE_EXPORTER_PORT}" for host in lab_hosts(settings)],
    }


def render_haproxy_cfg(settings: LabSettings, stats_password_hash: str) -> str:
    return _render("haproxy.cfg.j2", lab=settings, stats_password_hash=stats_password_hash,
                   stats_socket=PATHS.haproxy_socket)


def render_sysctl_conf(settings: LabSettings) -> str:
    return _render("sysctl.conf.j2", vip=settings.vip)


def render_nftables_conf(settings: LabSettings, host: Host) -> str:
    lb = next((lb for lb in settings.load_balancers if lb.name == host.name), None)
    return _render("nftables.conf.j2", lab=settings, host=host, peers=peers_of(settings, lb) if lb else (),
                   node_exporter_port=NODE_EXPORTER_PORT)


def render_nginx_site(settings: LabSettings, web: WebServer) -> str:
    return _render(
        "nginx-site.conf.j2",
        web=web,
        web_http_port=settings.web_http_port,
        web_https_port=settings.web_https_port,
        tls_certificate=PATHS.tls_certificate,
        tls_key=PATHS.tls_key,
    )


def load_balancer_files(settings: LabSettings, lb: LoadBalancer, stats_password_hash: str) -> tuple[GuestFile, ...]:
    host = load_balancer_host(settings, lb)
    return (
        GuestFile(PATHS.sysctl, "0644", render_sysctl_conf(settings)),
        GuestFile(PATHS.nftables, "0755", render_nftables_conf(settings, host)),
        GuestFile(PATHS.haproxy, "0644", render_haproxy_cfg(settings, stats_password_hash)),
        GuestFile(PATHS.keepalived, "0640", render_keepalived_conf(settings, lb)),
        # 0755 and root's: keepalived's enable_script_security refuses a script others can write.
        GuestFile(PATHS.vrrp_notify, "0755", render_vrrp_notify()),
        GuestFile(PATHS.boot_finished_script, "0755", render_boot_finished_script()),
        GuestFile(PATHS.boot_finished_unit, "0644", render_boot_finished_unit()),
        GuestFile(PATHS.activate, "0755", _render("activate-load-balancer.sh.j2", host=host, paths=PATHS,
                                                  boot_finished_unit=PATHS.boot_finished_unit_name)),
    )


def web_server_files(settings: LabSettings, web: WebServer) -> tuple[GuestFile, ...]:
    host = web_server_host(settings, web)
    return (
        GuestFile(PATHS.nftables, "0755", render_nftables_conf(settings, host)),
        GuestFile(PATHS.nginx_site, "0644", render_nginx_site(settings, web)),
        GuestFile(PATHS.activate, "0755", _render("activate-web-server.sh.j2", host=host, paths=PATHS)),
    )


# ---------------------------------------------------------------------------------------------
# cloud-init


def instance_id(settings: LabSettings, host: Host) -> str:
    return f"{settings.lab_name}-{host.name}"


def render_cloud_init(settings: LabSettings, host: Host, files: tuple[GuestFile, ...]) -> CloudInit:
    user_data = _render(
        "user-data.yaml.j2",
        host=host,
        lab_name=settings.lab_name,
        ssh_public_keys=settings.ssh_public_keys,
        packages=PACKAGES[host.role] if settings.install_packages else (),
        package_mirror=settings.package_mirror,
        apt_conf=APT_CONF,
        files=files,
        activate_path=PATHS.activate,
    )
    meta_data = _render("meta-data.yaml.j2", host=host, instance_id=instance_id(settings, host))
    network_config = _render("network-config.yaml.j2", host=host, nics=host.nics)
    return CloudInit(user_data=user_data, meta_data=meta_data, network_config=network_config)


def render_host(settings: LabSettings, host: Host, stats_password_hash: Union[str, None]) -> CloudInit:
    """cloud-init for one host; load balancers need the stats password hash, web servers do not."""
    if host.role == LOAD_BALANCER:
        if stats_password_hash is None:
            raise ValueError("a load balancer needs the stats password hash")
        lb = next(lb for lb in settings.load_balancers if lb.name == host.name)
        return render_cloud_init(settings, host, load_balancer_files(settings, lb, stats_password_hash))
    web = next(web for web in settings.web_servers if web.name == host.name)
    return render_cloud_init(settings, host, web_server_files(settings, web))
