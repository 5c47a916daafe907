"""Every pulumi_libvirt call of the program, and nothing else.

pulumi-libvirt 0.5.4 (terraform-provider-libvirt 0.8.1) is deprecated upstream; keeping it behind these
few functions means a move to another provider touches this file only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_libvirt as libvirt

GIB = 1024**3

# libvirt calls an isolated network (no <forward>) mode "none".
_LIBVIRT_NETWORK_MODE = {"nat": "nat", "isolated": "none"}


def provider(resource_name: str, *, uri: str, opts: pulumi.ResourceOptions) -> libvirt.Provider:
    """The lab's own provider: `uri` is required by the provider and has no default there."""
    return libvirt.Provider(resource_name, uri=uri, opts=opts)


def network(resource_name: str, *, name: str, cidr: str, mode: str, opts: pulumi.ResourceOptions) -> libvirt.Network:
    return libvirt.Network(
        resource_name,
        name=name,
        mode=_LIBVIRT_NETWORK_MODE[mode],
        addresses=[cidr],
        autostart=True,
        # Guests use static addresses from network-config: no DHCP, so nothing waits for a lease.
        dhcp=libvirt.NetworkDhcpArgs(enabled=False),
        # DNS is declared as it really is: the provider writes no <dns> element for `enabled = false`
        # (0.8.1 libvirt/resource_libvirt_network.go resourceLibvirtNetworkCreate only adds one when
        # enabled), so libvirt's default applies and dnsmasq serves DNS on every lab network (hence
        # dnsmasq-base on the host). Guests use it as their resolver; isolated ones resolve nothing outside.
        dns=libvirt.NetworkDnsArgs(enabled=True),
        opts=opts,
    )


def pool(resource_name: str, *, name: str, path: str, opts: pulumi.ResourceOptions) -> libvirt.Pool:
    return libvirt.Pool(resource_name, name=name, type="dir", target=libvirt.PoolTargetArgs(path=path), opts=opts)


def base_image(resource_name: str, *, name: str, pool_name: pulumi.Input[str], source: str,
               opts: pulumi.ResourceOptions) -> libvirt.Volume:
    """The cloud image, downloaded or copied once; every VM disk is a copy-on-write layer over it."""
    return libvirt.Volume(resource_name, name=name, pool=pool_name, source=source, format="qcow2", opts=opts)


def overlay_disk(resource_name: str, *, name: str, pool_name: pulumi.Input[str], base_volume_id: pulumi.Input[str],
                 size_gib: int, opts: pulumi.ResourceOptions) -> libvirt.Volume:
    return libvirt.Volume(
        resource_name,
        name=name,
        pool=pool_name,
        base_volume_id=base_volume_id,
        size=size_gib * GIB,
        format="qcow2",
        opts=opts,
    )


def cloud_init_disk(resource_name: str, *, name: str, pool_name: pulumi.Input[str], user_data: pulumi.Input[str],
                    meta_data: pulumi.Input[str], network_config: pulumi.Input[str],
                    opts: pulumi.ResourceOptions) -> libvirt.CloudInitDisk:
    return libvirt.CloudInitDisk(
        resource_name,
        name=name,
        pool=pool_name,
        user_data=user_data,
        meta_data=meta_data,
        network_config=network_config,
        opts=opts,
    )


@dataclass(frozen=True)
class NicAttachment:
    """Where a NIC plugs in: a libvirt network of the lab (its id), or an existing host bridge (its name)."""

    mac: str
    network_id: Optional[pulumi.Input[str]] = None
    bridge: Optional[str] = None

    def args(self) -> libvirt.DomainNetworkInterfaceArgs:
        if self.bridge is not None:
            return libvirt.DomainNetworkInterfaceArgs(bridge=self.bridge, mac=self.mac)
        return libvirt.DomainNetworkInterfaceArgs(network_id=self.network_id, mac=self.mac)


def domain(resource_name: str, *, name: str, description: str, domain_type: str, vcpus: int, memory_mib: int,
           disk_id: pulumi.Input[str], cloud_init_id: pulumi.Input[str],
           nics: Sequence[NicAttachment], opts: pulumi.ResourceOptions) -> libvirt.Domain:
    """nics in guest order; network-config finds each NIC by its MAC."""
    return libvirt.Domain(
        resource_name,
        name=name,
        description=description,
        type=domain_type,
        vcpu=vcpus,
        memory=memory_mib,
        disks=[libvirt.DomainDiskArgs(volume_id=disk_id)],
        cloudinit=cloud_init_id,
        network_interfaces=[nic.args() for nic in nics],
        # A serial console: `virsh console` shows boot and cloud-init output.
        consoles=[libvirt.DomainConsoleArgs(type="pty", target_port="0", target_type="serial")],
        # The guest-agent channel is always in the domain XML (0.8.1 libvirt/domain_def.go newDomainDef).
        # qemu_agent = true would make every Read ask the agent for addresses and fail the create while the
        # guest boots (0.8.1 libvirt/domain.go domainGetIfacesInfo), so it stays off: addresses are static.
        qemu_agent=False,
        autostart=True,
        opts=opts,
    )
