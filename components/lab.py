"""The lab's ComponentResources: Lab > LabNetwork x2, LabStorage, WebTier, LoadBalancerPair > VirtualMachine.

Every child is parented to its component; no resource is created inside an apply.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import pulumi
import pulumi_random as random
import pulumi_tls as tls

from . import commands, libvirt
from .guest_scripts import load_balancer_rollout_script, readiness_script, rebuild_key
from .render import (
    CloudInit,
    Host,
    Nic,
    load_balancer_host,
    render_host,
    scrape_targets,
    stats_password_hash,
    web_server_host,
)
from .settings import LabNetworkPlan, LabSettings, LibvirtHost, LoadBalancer

PROJECT_DIR = pathlib.Path(__file__).resolve().parent.parent

TOKEN = "ha-lb:index:"


@dataclass(frozen=True)
class LabNetworkArgs:
    lab_name: str
    plan: LabNetworkPlan
    mode: str


class LabNetwork(pulumi.ComponentResource):
    """One libvirt network (frontend or backend) of the lab, on one host (networkMode nat or isolated)."""

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
                               "hostAddress": str(args.plan.host_address)})


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
        # One resource per source (its logical and libvirt names carry a digest of it): a new image is a
        # new resource created beside the old one, which is deleted only after every VM moved over. A
        # changed source on the same resource would be a replacement, and with an explicit `name` the
        # provider makes every replacement delete-before-replace (pulumi-libvirt's autonaming): the old
        # image, and with it every disk and domain layered on it, would go first, all at once.
        source_digest = hashlib.sha256(args.base_image.encode()).hexdigest()[:12]
        self.base_image = libvirt.base_image(
            f"{name}-base-image-{source_digest}",
            name=f"{args.lab_name}-base-{source_digest}.qcow2",
            pool_name=self.pool.name,
            source=args.base_image,
            opts=child,
        )
        self.register_outputs({"pool": self.pool.name, "baseImageId": self.base_image.id})


@dataclass(frozen=True)
class Hypervisor:
    """What one libvirt host holds for the VMs placed on it: the provider that reaches it, the lab's storage there
    and the networks libvirt makes there (none on a bridged LAN, where NICs plug into the user's bridges)."""

    provider: pulumi.ProviderResource
    storage: LabStorage
    networks: Mapping[str, LabNetwork]

    def attach(self, nic: Nic) -> libvirt.NicAttachment:
        if nic.bridge is not None:
            return libvirt.NicAttachment(nic.mac, bridge=nic.bridge)
        return libvirt.NicAttachment(nic.mac, network_id=self.networks[nic.network_role].network_id)


@dataclass(frozen=True)
class VirtualMachineArgs:
    settings: LabSettings
    host: Host
    cloud_init: pulumi.Input[CloudInit]
    hypervisor: Hypervisor
    ssh_private_key: pulumi.Input[str]
    # Resources this VM waits for, also when it is replaced: the previous VM of its tier being ready,
    # so a rebuild never takes two of a tier down at once.
    after: Sequence[pulumi.Resource] = ()


class VirtualMachine(pulumi.ComponentResource):
    """A disk layered on the base image, its cloud-init seed, the domain booting them and, with the
    readiness gate on, the SSH check that it came up working."""

    def __init__(self, name: str, args: VirtualMachineArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TOKEN + "VirtualMachine", name, None, opts)
        s, host = args.settings, args.host
        full_name = s.domain_name(host.name)
        cloud_init = pulumi.Output.from_input(args.cloud_init)
        build = rebuild_key(s, host)
        # Fixed libvirt names: a replacement must delete the old object before creating the new one.
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.after), delete_before_replace=True)

        # The disk's name carries the rebuild key: a change only a rebuild can apply replaces the disk, and
        # with it the domain (its disk is ForceNew), so the VM boots a fresh copy of the base image and
        # cloud-init runs again. Replacing only the domain would boot the old disk, where cloud-init (same
        # instance) does nothing. To rebuild a VM by hand, replace its disk:
        # `pulumi up --replace <the disk's URN>`.
        self.disk = libvirt.overlay_disk(
            f"{name}-disk",
            name=f"{full_name}-{build}.qcow2",
            pool_name=args.hypervisor.storage.pool_name,
            base_volume_id=args.hypervisor.storage.base_image.id,
            size_gib=s.machine.disk_gib,
            opts=child,
        )
        # Replaced (deleted, then written anew under the same name: its contents are ForceNew) whenever the
        # config changes, so a rebuilt VM boots with the current one. The running domain keeps the old ISO
        # open and ignores the new id.
        self.cloud_init_disk = libvirt.cloud_init_disk(
            f"{name}-cloud-init",
            name=f"{full_name}-cloud-init.iso",
            pool_name=args.hypervisor.storage.pool_name,
            user_data=cloud_init.apply(lambda c: c.user_data),
            meta_data=cloud_init.apply(lambda c: c.meta_data),
            network_config=cloud_init.apply(lambda c: c.network_config),
            opts=child,
        )
        self.domain = libvirt.domain(
            f"{name}-domain",
            name=full_name,
            # The rebuild key changes only with what a running VM cannot take in place; the seed disk's
            # id is ignored, so a config the rollout applies does not replace the VM.
            description=f"{host.name} ({host.role}) of {s.lab_name}; build {build}",
            domain_type=s.domain_type,
            vcpus=s.machine.vcpus,
            memory_mib=s.machine.memory_mib,
            disk_id=self.disk.id,
            cloud_init_id=self.cloud_init_disk.id,
            nics=[args.hypervisor.attach(nic) for nic in host.nics],
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["cloudinit"])),
        )
        self.addresses = {nic.network_role: str(nic.address) for nic in host.nics}
        self.address = str(host.address)

        # What "this VM is up" means to whoever waits for it: the SSH check, or just the domain.
        self.ready: pulumi.Resource = self.domain
        if s.wait_for_ready:
            self.ready = commands.on_guest(
                f"{name}-ready",
                settings=s,
                address=self.address,
                private_key=args.ssh_private_key,
                script=readiness_script(s, host),
                triggers=[self.domain.id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.domain]),
            )
        self.register_outputs({"domainId": self.domain.id, "addresses": self.addresses})


@dataclass(frozen=True)
class TierArgs:
    settings: LabSettings
    hypervisors: Mapping[str, Hypervisor]  # by host name
    # What the guests are rendered from: the settings, plus a generated key's public half when there is one.
    render_settings: pulumi.Input[LabSettings]
    ssh_private_key: pulumi.Input[str]


def _rolling_machines(parent: pulumi.ComponentResource, args: TierArgs, hosts: Sequence[Host],
                      cloud_init_of: Callable[[Host], pulumi.Input[CloudInit]]) -> dict[str, VirtualMachine]:
    """One VM per host, each waiting for the previous one to be ready."""
    machines: dict[str, VirtualMachine] = {}
    previous: Optional[VirtualMachine] = None
    for host in hosts:
        hypervisor = args.hypervisors[host.placement]
        vm = VirtualMachine(
            host.name,
            VirtualMachineArgs(args.settings, host, cloud_init_of(host), hypervisor, args.ssh_private_key,
                               after=[previous.ready] if previous else []),
            pulumi.ResourceOptions(parent=parent, providers=[hypervisor.provider]),
        )
        machines[host.name] = previous = vm
    return machines


class WebTier(pulumi.ComponentResource):
    """The web servers behind the load balancers."""

    def __init__(self, name: str, args: TierArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TOKEN + "WebTier", name, None, opts)
        s = args.settings
        hosts = [web_server_host(s, web) for web in s.web_servers]
        rendering = pulumi.Output.from_input(args.render_settings)
        self.machines = _rolling_machines(self, args, hosts, lambda h: rendering.apply(lambda rs: render_host(rs, h, None)))
        self.addresses = {name: vm.addresses for name, vm in self.machines.items()}
        self.ready = [vm.ready for vm in self.machines.values()]
        self.register_outputs({"webServers": self.addresses})


@dataclass(frozen=True)
class LoadBalancerPairArgs(TierArgs):
    stats_password: pulumi.Input[str]
    web_servers_ready: Sequence[pulumi.Resource] = ()


class LoadBalancerPair(pulumi.ComponentResource):
    """lb01 and lb02: HAProxy behind a keepalived VIP, with their configuration rolled out in place."""

    def __init__(self, name: str, args: LoadBalancerPairArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TOKEN + "LoadBalancerPair", name, None, opts)
        s = args.settings
        # Only the hash reaches user-data; it is not the secret, so the user-data stays a readable,
        # diffable value in `pulumi preview --diff` instead of "[secret]".
        password_hash = pulumi.Output.unsecret(
            pulumi.Output.from_input(args.stats_password).apply(lambda p: stats_password_hash(s, p))
        )
        # The higher priority (the usual master) first: lb02 changes only after lb01 succeeded.
        ordered = sorted(s.load_balancers, key=lambda lb: -lb.priority)
        hosts = [load_balancer_host(s, lb) for lb in ordered]
        rendering = pulumi.Output.from_input(args.render_settings)
        self.machines = _rolling_machines(
            self, args, hosts,
            lambda h: pulumi.Output.all(rendering, password_hash).apply(lambda a: render_host(a[0], h, a[1])))
        self.addresses = {name: vm.addresses for name, vm in self.machines.items()}
        self.vip = str(s.vip)

        self.ready: list[pulumi.Resource] = [vm.ready for vm in self.machines.values()]
        # What the final VIP check re-runs for: a new LB, or a config rolled out in place (a rollout that
        # ran again keeps its id, so the ids alone would not show it).
        self.rollout_digests: list[pulumi.Output[str]] = []
        if s.wait_for_ready:
            self.ready = self._rollout(s, ordered, password_hash, list(args.web_servers_ready), args.ssh_private_key)
        self.register_outputs({"vip": self.vip, "loadBalancers": self.addresses})

    def _rollout(self, s: LabSettings, ordered: Sequence[LoadBalancer], password_hash: pulumi.Output[str],
                 web_servers_ready: list[pulumi.Resource], private_key: pulumi.Input[str]) -> list[pulumi.Resource]:
        """Validate the config on every LB, then activate it one LB at a time.

        A config rejected anywhere is activated nowhere. Web servers are ready before any LB sends them
        traffic. The scripts carry the files as text, so `pulumi preview --diff` shows the change.
        """
        validations = [
            commands.on_guest(
                f"{lb.name}-config-check",
                settings=s,
                address=str(lb.address),
                private_key=private_key,
                script=password_hash.apply(
                    lambda digest, lb=lb: load_balancer_rollout_script(s, lb, digest, activate=False)),
                triggers=[self.machines[lb.name].domain.id],
                opts=pulumi.ResourceOptions(parent=self.machines[lb.name], depends_on=[self.machines[lb.name].ready]),
            )
            for lb in ordered
        ]
        activations: list[pulumi.Resource] = []
        for lb in ordered:
            vm = self.machines[lb.name]
            script = password_hash.apply(
                lambda digest, lb=lb: load_balancer_rollout_script(s, lb, digest, activate=True))
            self.rollout_digests.append(script.apply(lambda text: hashlib.sha256(text.encode()).hexdigest()))
            activations.append(commands.on_guest(
                f"{lb.name}-config-rollout",
                settings=s,
                address=str(lb.address),
                private_key=private_key,
                script=script,
                triggers=[vm.domain.id],
                opts=pulumi.ResourceOptions(
                    parent=vm, depends_on=[*validations, *activations[-1:], *web_servers_ready]),
            ))
        return activations


class Lab(pulumi.ComponentResource):
    """The whole lab: networks, storage, web tier and the load balancer pair."""

    def __init__(self, name: str, settings: LabSettings, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TOKEN + "Lab", name, None, opts)
        s = settings
        # An explicit provider per host: its URI always comes from the settings (the provider has no default).
        self.hypervisors = {host.name: self._hypervisor(s, host) for host in s.hosts}
        child = pulumi.ResourceOptions(parent=self)

        if s.stats_password is not None:
            self.stats_password: pulumi.Output[str] = pulumi.Output.secret(s.stats_password)
        else:
            generated = random.RandomPassword("stats-password", length=24, special=False, opts=child)
            self.stats_password = generated.result  # secret in state; stable across updates

        # The readiness gate's key: the one given (or found in ~/.ssh), else one the stack generates and keeps
        # in its state; its public half is installed on every VM and the private half exported as a secret.
        render_settings: pulumi.Input[LabSettings] = s
        private_key: pulumi.Input[str] = s.ssh_private_key or ""
        self.generated_ssh_key: Optional[tls.PrivateKey] = None
        if s.generates_ssh_key:
            self.generated_ssh_key = tls.PrivateKey("ssh-key", algorithm="ED25519", opts=child)
            private_key = self.generated_ssh_key.private_key_openssh
            render_settings = self.generated_ssh_key.public_key_openssh.apply(
                lambda public: dataclasses.replace(s, ssh_public_keys=(*s.ssh_public_keys, public.strip())))

        tier = TierArgs(s, self.hypervisors, render_settings, private_key)
        self.web_tier = WebTier("web", tier, child)
        self.load_balancers = LoadBalancerPair(
            "lb",
            LoadBalancerPairArgs(s, self.hypervisors, render_settings, private_key, self.stats_password,
                                 self.web_tier.ready),
            child,
        )

        vip = str(s.vip)
        http_url = _url("http", vip, s.http_port, 80, "/")
        outputs: dict[str, Any] = {
            "vip": vip,
            "httpUrl": http_url,
            "httpsUrl": _url("https", vip, s.https_port, 443, "/"),
            "statsUrl": _url("http", vip, s.stats_port, 80, s.stats_path),
            "statsUser": s.stats_user,
            "statsPassword": pulumi.Output.secret(self.stats_password),
            "loadBalancers": self.load_balancers.addresses,
            "webServers": self.web_tier.addresses,
            "metrics": scrape_targets(s),
            "vrrp": s.vrrp.wire_terms,
            "hosts": {host.name: {"uri": host.uri, "machines": list(s.machines_on(host.name))} for host in s.hosts},
        }
        if self.generated_ssh_key is not None:
            outputs["sshPrivateKey"] = pulumi.Output.secret(self.generated_ssh_key.private_key_openssh)
        if s.wait_for_ready:
            # The last gate, from where `pulumi up` runs: the VIP serves. Every output waits for it,
            # so a successful `up` means a working lab.
            check = commands.vip_check(
                "vip-check",
                url=http_url,
                timeout=120,
                project_dir=str(PROJECT_DIR),
                triggers=[*(r.id for r in self.load_balancers.ready), *self.load_balancers.rollout_digests],
                opts=pulumi.ResourceOptions(parent=self, depends_on=self.load_balancers.ready),
            )
            outputs = {key: pulumi.Output.all(check.stdout, value).apply(lambda pair: pair[1])
                       for key, value in outputs.items()}  # secret-ness carries over
        self.outputs = outputs
        self.register_outputs(self.outputs)

    def _hypervisor(self, s: LabSettings, host: LibvirtHost) -> Hypervisor:
        """A host's provider, storage and (in the libvirt modes) networks. With one host their names are the
        plain ones; with several, each carries its host's name."""
        suffix = f"-{host.name}" if len(s.hosts) > 1 else ""
        provider = libvirt.provider(f"libvirt{suffix}", uri=host.uri, opts=pulumi.ResourceOptions(parent=self))
        on_host = pulumi.ResourceOptions(parent=self, providers=[provider])
        networks = {} if s.bridged else {
            plan.role: LabNetwork(f"{plan.role}{suffix}", LabNetworkArgs(s.lab_name, plan, s.network_mode), on_host)
            for plan in (s.frontend, s.backend)
        }
        storage = LabStorage(f"storage{suffix}", LabStorageArgs(s.lab_name, s.pool_path, s.base_image), on_host)
        return Hypervisor(provider, storage, networks)


def _url(scheme: str, host: str, port: int, default_port: int, path: str) -> str:
    return f"{scheme}://{host}{'' if port == default_port else f':{port}'}{path}"
