"""The lab's ComponentResources: Lab > LabNetwork x2, LabStorage, WebTier, LoadBalancerPair > VirtualMachine.

Every child is parented to its component; no resource is created inside an apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi
import pulumi_random as random

from . import libvirt
from .render import (
    CloudInit,
    Host,
    lab_hosts,
    render_host,
    stats_password_hash,
)
from .settings import LabNetworkPlan, LabSettings

TOKEN = "ha-lb:index:"


@dataclass(frozen=True)
class LabNetworkArgs:
    lab_name: str
    plan: LabNetworkPlan
    mode: str


class LabNetwork(pulumi.ComponentResource):
    """One libvirt network (frontend or backend) of the lab."""

    def __init__(self, name: str, args: LabNetworkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TOKEN + "LabNetwork", name, None, opts)
        self.plan = args.plan
        self.network = libvirt.network(
            f"{name}-network",
            name=f"{args.lab_name}-{args.plan.role}",
            cidr=str(args.plan.network),
            mode=args.mode,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.network_id = self.network.id
        self.register_outputs({"networkId": self.network.id, "cidr": str(args.plan.network),
                               "gateway": str(args.plan.gateway)})


@dataclass(frozen=True)
class LabStorageArgs:
    lab_name: str
    pool_path: str
    base_image: str


class LabStorage(pulumi.ComponentResource):
    """The lab's own storage pool and the base image every VM disk is layered on."""

    def __init__(self, name: str, args: LabStorageArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TOKEN + "LabStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.pool = libvirt.pool(f"{name}-pool", name=args.lab_name, path=args.pool_path, opts=child)
        self.pool_name = self.pool.name
        self.base_image = libvirt.base_image(
            f"{name}-base-image",
            name=f"{args.lab_name}-base.qcow2",
            pool_name=self.pool.name,
            source=args.base_image,
            opts=child,
        )
        self.register_outputs({"pool": self.pool.name, "baseImageId": self.base_image.id})


@dataclass(frozen=True)
class VirtualMachineArgs:
    lab_name: str
    host: Host
    cloud_init: pulumi.Input[CloudInit]
    storage: LabStorage
    networks: Mapping[str, LabNetwork]  # by network role
    domain_type: str
    vcpus: int
    memory_mib: int
    disk_gib: int


class VirtualMachine(pulumi.ComponentResource):
    """A disk layered on the base image, its cloud-init seed, and the domain booting them."""

    def __init__(self, name: str, args: VirtualMachineArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TOKEN + "VirtualMachine", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        host = args.host
        full_name = f"{args.lab_name}-{host.name}"
        cloud_init = pulumi.Output.from_input(args.cloud_init)

        self.disk = libvirt.overlay_disk(
            f"{name}-disk",
            name=f"{full_name}.qcow2",
            pool_name=args.storage.pool_name,
            base_volume_id=args.storage.base_image.id,
            size_gib=args.disk_gib,
            opts=child,
        )
        self.cloud_init_disk = libvirt.cloud_init_disk(
            f"{name}-cloud-init",
            name=f"{full_name}-cloud-init.iso",
            pool_name=args.storage.pool_name,
            user_data=cloud_init.apply(lambda c: c.user_data),
            meta_data=cloud_init.apply(lambda c: c.meta_data),
            network_config=cloud_init.apply(lambda c: c.network_config),
            opts=child,
        )
        self.domain = libvirt.domain(
            f"{name}-domain",
            name=full_name,
            domain_type=args.domain_type,
            vcpus=args.vcpus,
            memory_mib=args.memory_mib,
            disk_id=self.disk.id,
            cloud_init_id=self.cloud_init_disk.id,
            nics=[(args.networks[nic.network_role].network_id, nic.mac) for nic in host.nics],
            opts=child,
        )
        self.addresses = {nic.network_role: str(nic.address) for nic in host.nics}
        self.register_outputs({"domainId": self.domain.id, "addresses": self.addresses})


@dataclass(frozen=True)
class TierArgs:
    settings: LabSettings
    storage: LabStorage
    networks: Mapping[str, LabNetwork]


def _machine(parent: pulumi.ComponentResource, args: TierArgs, host: Host,
             cloud_init: pulumi.Input[CloudInit]) -> VirtualMachine:
    s = args.settings
    return VirtualMachine(
        host.name,
        VirtualMachineArgs(
            lab_name=s.lab_name,
            host=host,
            cloud_init=cloud_init,
            storage=args.storage,
            networks=args.networks,
            domain_type=s.domain_type,
            vcpus=s.machine.vcpus,
            memory_mib=s.machine.memory_mib,
            disk_gib=s.machine.disk_gib,
        ),
        pulumi.ResourceOptions(parent=parent),
    )


class WebTier(pulumi.ComponentResource):
    """The web servers behind the load balancers."""

    def __init__(self, name: str, args: TierArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TOKEN + "WebTier", name, None, opts)
        s = args.settings
        hosts = [h for h in lab_hosts(s) if h.name in {w.name for w in s.web_servers}]
        self.machines = {h.name: _machine(self, args, h, render_host(s, h, None)) for h in hosts}
        self.addresses = {name: vm.addresses for name, vm in self.machines.items()}
        self.register_outputs({"webServers": self.addresses})


@dataclass(frozen=True)
class LoadBalancerPairArgs(TierArgs):
    stats_password: pulumi.Input[str]


class LoadBalancerPair(pulumi.ComponentResource):
    """lb01 and lb02: HAProxy behind a keepalived VIP."""

    def __init__(self, name: str, args: LoadBalancerPairArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TOKEN + "LoadBalancerPair", name, None, opts)
        s = args.settings
        # Only the hash reaches user-data; it is not the secret, so the user-data stays a readable,
        # diffable value in `pulumi preview --diff` instead of "[secret]".
        password_hash = pulumi.Output.unsecret(
            pulumi.Output.from_input(args.stats_password).apply(lambda p: stats_password_hash(s, p))
        )
        hosts = [h for h in lab_hosts(s) if h.name in {lb.name for lb in s.load_balancers}]
        self.machines = {
            h.name: _machine(self, args, h, password_hash.apply(lambda digest, h=h: render_host(s, h, digest)))
            for h in hosts
        }
        self.addresses = {name: vm.addresses for name, vm in self.machines.items()}
        self.vip = str(s.vip)
        self.register_outputs({"vip": self.vip, "loadBalancers": self.addresses})


class Lab(pulumi.ComponentResource):
    """The whole lab: networks, storage, web tier and the load balancer pair."""

    def __init__(self, name: str, settings: LabSettings, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TOKEN + "Lab", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s = settings
        self.networks = {
            plan.role: LabNetwork(plan.role, LabNetworkArgs(s.lab_name, plan, s.network_mode), child)
            for plan in (s.frontend, s.backend)
        }
        self.storage = LabStorage("storage", LabStorageArgs(s.lab_name, s.pool_path, s.base_image), child)

        if s.stats_password is not None:
            self.stats_password: pulumi.Output[str] = pulumi.Output.secret(s.stats_password)
        else:
            generated = random.RandomPassword(
                "stats-password", length=24, special=False, opts=child
            )
            self.stats_password = generated.result  # secret in state; stable across updates

        tier = TierArgs(s, self.storage, self.networks)
        self.web_tier = WebTier("web", tier, child)
        self.load_balancers = LoadBalancerPair(
            "lb", LoadBalancerPairArgs(s, self.storage, self.networks, self.stats_password), child
        )

        vip = str(s.vip)
        self.outputs: dict[str, object] = {
            "vip": vip,
            "httpUrl": _url("http", vip, s.http_port, 80, "/"),
            "httpsUrl": _url("https", vip, s.https_port, 443, "/"),
            "statsUrl": _url("http", vip, s.stats_port, 80, s.stats_path),
            "statsUser": s.stats_user,
            "statsPassword": pulumi.Output.secret(self.stats_password),
            "loadBalancers": self.load_balancers.addresses,
            "webServers": self.web_tier.addresses,
        }
        self.register_outputs(self.outputs)


def _url(scheme: str, host: str, port: int, default_port: int, path: str) -> str:
    return f"{scheme}://{host}{'' if port == default_port else f':{port}'}{path}"
