"""Turns the libvirt resources the program registers (captured under Pulumi mocks) into real libvirt
objects, the way terraform-provider-libvirt 0.8.1 (pulumi-libvirt 0.5.4) does, with `virsh`.

Strict on purpose: a resource type, input key or value it does not understand raises `Unsupported`
before anything is created, so the e2e test can never silently test less than the program declares.
"""

from __future__ import annotations

import ipaddress
import pathlib
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

from tests.program_run import CapturedResource

from .libvirt_daemon import virsh

NETWORK = "libvirt:index/network:Network"
POOL = "libvirt:index/pool:Pool"
VOLUME = "libvirt:index/volume:Volume"
CLOUD_INIT = "libvirt:index/cloudInitDisk:CloudInitDisk"
DOMAIN = "libvirt:index/domain:Domain"
COMPONENT_PREFIX = "ha-lb:index:"  # the program's own ComponentResources: structure only, nothing to create

ORDER = (NETWORK, POOL, VOLUME, CLOUD_INIT, DOMAIN)


class Unsupported(Exception):
    """The program declared something this realizer does not know how to create faithfully."""


# ---------------------------------------------------------------------------------------------
# Checking the captured inputs


def _refuse(resource: CapturedResource, what: str) -> None:
    raise Unsupported(f"{resource.type} {resource.name!r}: {what}; the e2e realizer does not understand it")


def _keys(resource: CapturedResource, given: Mapping[str, Any], required: set[str], where: str = "") -> None:
    if set(given) != required:
        _refuse(resource, f"input keys {where}{sorted(given)} differ from the understood {sorted(required)}")


def _whole(resource: CapturedResource, value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value <= 0:
        _refuse(resource, f"{key}={value!r} is not a positive whole number")
    return int(value)


def _check(resource: CapturedResource, by_id: Mapping[str, CapturedResource]) -> None:
    i = resource.inputs

    def ref(value: Any, typ: str, key: str) -> None:
        if by_id.get(value) is None or by_id[value].type != typ:
            _refuse(resource, f"{key}={value!r} is not the id of a captured {typ}")

    if resource.type == NETWORK:
        _keys(resource, i, {"name", "mode", "addresses", "autostart", "dhcp", "dns"})
        if i["mode"] != "none":
            _refuse(resource, f"mode={i['mode']!r} (only isolated networks, mode 'none', are realized)")
        if not isinstance(i["addresses"], list) or len(i["addresses"]) != 1:
            _refuse(resource, f"addresses={i['addresses']!r} (exactly one IPv4 CIDR understood)")
        ipaddress.IPv4Network(i["addresses"][0], strict=True)
        if i["dhcp"] != {"enabled": False} or i["dns"] != {"enabled": False}:
            _refuse(resource, f"dhcp={i['dhcp']!r} dns={i['dns']!r} (only both disabled understood)")
        if not isinstance(i["autostart"], bool):
            _refuse(resource, f"autostart={i['autostart']!r}")
    elif resource.type == POOL:
        _keys(resource, i, {"name", "type", "target"})
        if i["type"] != "dir" or set(i["target"]) != {"path"} or not str(i["target"]["path"]).startswith("/"):
            _refuse(resource, f"type={i['type']!r} target={i['target']!r} (a dir pool with an absolute path understood)")
    elif resource.type == VOLUME:
        if "source" in i:
            _keys(resource, i, {"name", "pool", "source", "format"})
            if not str(i["source"]).startswith("/") or not pathlib.Path(i["source"]).is_file():
                _refuse(resource, f"source={i['source']!r} (a local image file understood; guests have no internet)")
        else:
            _keys(resource, i, {"name", "pool", "baseVolumeId", "size", "format"})
            ref(i["baseVolumeId"], VOLUME, "baseVolumeId")
            _whole(resource, i["size"], "size")
        if i["format"] != "qcow2":
            _refuse(resource, f"format={i['format']!r}")
    elif resource.type == CLOUD_INIT:
        _keys(resource, i, {"name", "pool", "userData", "metaData", "networkConfig"})
        if not all(isinstance(i[k], str) for k in ("userData", "metaData", "networkConfig")):
            _refuse(resource, "userData/metaData/networkConfig are not all text")
    elif resource.type == DOMAIN:
        _keys(resource, i, {"name", "description", "type", "vcpu", "memory", "disks", "cloudinit",
                            "networkInterfaces", "consoles", "qemuAgent", "autostart"})
        if i["type"] not in ("qemu", "kvm"):
            _refuse(resource, f"type={i['type']!r}")
        _whole(resource, i["vcpu"], "vcpu")
        _whole(resource, i["memory"], "memory")
        for disk in i["disks"]:
            _keys(resource, disk, {"volumeId"}, "disks[]: ")
            ref(disk["volumeId"], VOLUME, "disks[].volumeId")
        ref(i["cloudinit"], CLOUD_INIT, "cloudinit")
        for nic in i["networkInterfaces"]:
            _keys(resource, nic, {"networkId", "mac"}, "networkInterfaces[]: ")
            ref(nic["networkId"], NETWORK, "networkInterfaces[].networkId")
        if i["consoles"] != [{"type": "pty", "targetPort": "0", "targetType": "serial"}]:
            _refuse(resource, f"consoles={i['consoles']!r} (one serial pty console understood)")
        if i["qemuAgent"] is not True or not isinstance(i["autostart"], bool):
            _refuse(resource, f"qemuAgent={i['qemuAgent']!r} autostart={i['autostart']!r}")
    else:
        _refuse(resource, "unknown resource type")
    if resource.type in (VOLUME, CLOUD_INIT) and not any(
            r.type == POOL and r.inputs["name"] == i["pool"] for r in by_id.values()):
        _refuse(resource, f"pool={i['pool']!r} names no captured Pool")


def libvirt_resources(resources: Sequence[CapturedResource]) -> list[CapturedResource]:
    """Every custom resource, checked, in creation order; the program's components are skipped."""
    custom = []
    for r in resources:
        if not r.custom:
            if not r.type.startswith(COMPONENT_PREFIX) or r.inputs:
                raise Unsupported(f"{r.type} {r.name!r}: a component resource that is not the program's own")
            continue
        if r.type not in ORDER:
            raise Unsupported(f"{r.type} {r.name!r}: unknown resource type; the e2e realizer does not understand it")
        custom.append(r)
    by_id = {r.id: r for r in custom}
    for r in custom:
        _check(r, by_id)
    # base images (source) before the overlays that name them
    return sorted(custom, key=lambda r: (ORDER.index(r.type), "baseVolumeId" in r.inputs))


# ---------------------------------------------------------------------------------------------
# Creating


def network_xml(name: str, cidr: str) -> str:
    """No <forward>: an isolated network. The host takes the first host address, like libvirt's gateway."""
    net = ipaddress.IPv4Network(cidr)
    return (f"<network><name>{escape(name)}</name><dns enable='no'/>"
            f"<ip family='ipv4' address='{net.network_address + 1}' prefix='{net.prefixlen}'/></network>")


def pool_xml(name: str, path: str) -> str:
    return f"<pool type='dir'><name>{escape(name)}</name><target><path>{escape(path)}</path></target></pool>"


def overlay_xml(name: str, size: int, base_path: str) -> str:
    return (f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{size}</capacity>"
            "<target><format type='qcow2'/></target>"
            f"<backingStore><path>{escape(base_path)}</path><format type='qcow2'/></backingStore></volume>")


def domain_xml(i: Mapping[str, Any], disk_paths: Sequence[str], seed_path: str, networks: Sequence[tuple[str, str]]) -> str:
    disks = "".join(
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file={quoteattr(p)}/>"
        f"<target dev='vd{chr(ord('a') + n)}' bus='virtio'/></disk>" for n, p in enumerate(disk_paths))
    nics = "".join(
        f"<interface type='network'><mac address='{mac}'/><source network={quoteattr(net)}/><model type='virtio'/></interface>"
        for net, mac in networks)
    return f"""<domain type='{i["type"]}'>
  <name>{escape(i["name"])}</name>
  <description>{escape(i["description"])}</description>
  <memory unit='MiB'>{int(i["memory"])}</memory>
  <currentMemory unit='MiB'>{int(i["memory"])}</currentMemory>
  <vcpu>{int(i["vcpu"])}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/><pae/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    {disks}
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file={quoteattr(seed_path)}/><target dev='hdd' bus='ide'/><readonly/></disk>
    {nics}
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
"""


def _define(command: str, xml: str, *args: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as file:
        file.write(xml)
        file.flush()
        virsh(command, *args, file.name)


@dataclass
class Lab:
    """What was created (recorded before each creation, so teardown finds half-made objects too)."""

    networks: list[str] = field(default_factory=list)
    pools: list[tuple[str, str]] = field(default_factory=list)  # (name, directory)
    volumes: list[tuple[str, str]] = field(default_factory=list)  # (pool, volume)
    domains: list[str] = field(default_factory=list)
    domain_names: dict[str, str] = field(default_factory=dict)  # captured resource name -> libvirt name


def _volume_path(pool: str, name: str) -> str:
    return virsh("vol-path", "--pool", pool, name).stdout.strip()


def realize(resources: Sequence[CapturedResource], lab: Lab, start: bool = True) -> Lab:
    ordered = libvirt_resources(resources)  # raises before anything exists
    paths: dict[str, str] = {}  # volume / seed mock id -> file
    network_names: dict[str, str] = {}
    for r in ordered:
        i = r.inputs
        if r.type == NETWORK:
            lab.networks.append(i["name"])
            _define("net-define", network_xml(i["name"], i["addresses"][0]))
            virsh("net-start", i["name"])
            if i["autostart"]:
                virsh("net-autostart", i["name"])
            network_names[r.id] = i["name"]
        elif r.type == POOL:
            lab.pools.append((i["name"], i["target"]["path"]))
            _define("pool-define", pool_xml(i["name"], i["target"]["path"]))
            virsh("pool-build", i["name"])
            virsh("pool-start", i["name"])
        elif r.type == VOLUME and "source" in i:
            lab.volumes.append((i["pool"], i["name"]))
            virsh("vol-create-as", i["pool"], i["name"], str(pathlib.Path(i["source"]).stat().st_size), "--format", "qcow2")
            virsh("vol-upload", "--pool", i["pool"], i["name"], i["source"], timeout=600)
            virsh("pool-refresh", i["pool"])
            paths[r.id] = _volume_path(i["pool"], i["name"])
        elif r.type == VOLUME:
            lab.volumes.append((i["pool"], i["name"]))
            _define("vol-create", overlay_xml(i["name"], int(i["size"]), paths[i["baseVolumeId"]]), "--pool", i["pool"])
            paths[r.id] = _volume_path(i["pool"], i["name"])
        elif r.type == CLOUD_INIT:
            lab.volumes.append((i["pool"], i["name"]))
            with tempfile.TemporaryDirectory() as tmp:
                for file, key in (("user-data", "userData"), ("meta-data", "metaData"), ("network-config", "networkConfig")):
                    pathlib.Path(tmp, file).write_text(i[key])
                iso = pathlib.Path(tmp, "seed.iso")
                subprocess.run(["genisoimage", "-quiet", "-output", str(iso), "-volid", "cidata", "-joliet", "-rock",
                                "user-data", "meta-data", "network-config"], cwd=tmp, check=True, capture_output=True)
                virsh("vol-create-as", i["pool"], i["name"], str(iso.stat().st_size), "--format", "raw")
                virsh("vol-upload", "--pool", i["pool"], i["name"], str(iso))
            paths[r.id] = _volume_path(i["pool"], i["name"])
        elif r.type == DOMAIN:
            lab.domains.append(i["name"])
            lab.domain_names[r.name] = i["name"]
            _define("define", domain_xml(i, [paths[d["volumeId"]] for d in i["disks"]], paths[i["cloudinit"]],
                                         [(network_names[n["networkId"]], n["mac"]) for n in i["networkInterfaces"]]))
            if i["autostart"]:
                virsh("autostart", i["name"])
    if start:
        for name in lab.domains:
            virsh("start", name)
    return lab


# ---------------------------------------------------------------------------------------------
# Teardown and the check that nothing is left


def planned(resources: Sequence[CapturedResource]) -> Lab:
    """The objects `realize` would create, for removing what an interrupted earlier run left behind."""
    lab = Lab()
    for r in libvirt_resources(resources):
        i = r.inputs
        if r.type == NETWORK:
            lab.networks.append(i["name"])
        elif r.type == POOL:
            lab.pools.append((i["name"], i["target"]["path"]))
        elif r.type in (VOLUME, CLOUD_INIT):
            lab.volumes.append((i["pool"], i["name"]))
        else:
            lab.domains.append(i["name"])
    return lab


def teardown(lab: Lab) -> list[str]:
    """Destroy, undefine, delete volumes, pool and networks. Returns the errors (best effort: keeps going)."""
    errors: list[str] = []

    def attempt(*args: str, ignore: str = "") -> None:
        result = virsh(*args, check=False)
        message = (result.stderr or result.stdout).strip()
        if result.returncode != 0 and not (ignore and ignore in message):
            errors.append(f"virsh {' '.join(args)}: {message}")

    for name in reversed(lab.domains):
        attempt("destroy", name, ignore="domain is not running")
        attempt("undefine", name)
    for pool, volume in reversed(lab.volumes):
        attempt("vol-delete", "--pool", pool, volume)
    for pool, path in reversed(lab.pools):
        attempt("pool-destroy", pool)
        attempt("pool-delete", pool)  # removes the (now empty) directory
        attempt("pool-undefine", pool)
    for network in reversed(lab.networks):
        attempt("net-destroy", network)
        attempt("net-undefine", network)
    return errors


def leftovers(lab: Lab) -> list[str]:
    """Anything of the lab still known to libvirt or on disk."""
    found = []
    listed = {
        "domain": virsh("list", "--all", "--name").stdout.split(),
        "network": virsh("net-list", "--all", "--name").stdout.split(),
        "pool": virsh("pool-list", "--all", "--name").stdout.split(),
    }
    found += [f"domain {d}" for d in lab.domains if d in listed["domain"]]
    found += [f"network {n}" for n in lab.networks if n in listed["network"]]
    for pool, path in lab.pools:
        if pool in listed["pool"]:
            found.append(f"pool {pool}")
        directory = pathlib.Path(path)
        if directory.exists():
            found.append(f"directory {path} (holding {sorted(p.name for p in directory.iterdir())})")
    return found
