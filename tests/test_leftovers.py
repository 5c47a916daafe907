"""`python -m components.leftovers`: what it takes for a leftover, and that it never touches what the state
holds. (The e2e test runs it against a real failed `pulumi destroy`.)"""

from __future__ import annotations

import pathlib

from components import leftovers

LAB = "ha-lb-dev"


class FakeLibvirt:
    """Answers the virsh calls leftovers makes, from a dict of objects; records the changes."""

    def __init__(self, domains, networks, pools, pool_path, active=()):
        self.domains, self.networks, self.pools, self.pool_path = list(domains), list(networks), list(pools), pool_path
        self.active = list(active)
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, uri, *args):
        self.calls.append(args)
        command = args[0]
        if command == "list":
            return self.domains
        if command == "net-list":
            return self.networks
        if command == "pool-list":
            return self.pools if "--all" in args else self.active
        if command == "vol-list":  # as virsh prints it, blank lines dropped
            return ["Name   Path", "-----------"] + [f"{f.name}   {f}" for f in sorted(self.pool_path.iterdir())]
        if command == "vol-delete":
            (self.pool_path / args[-1]).unlink()
        if command == "pool-dumpxml":
            return [f"<pool type='dir'><target><path>{self.pool_path}</path></target></pool>"]
        if command == "destroy":
            raise RuntimeError("virsh destroy: Requested operation is not valid: domain is not running")
        return []


def state(pool_path: pathlib.Path, *names: str) -> dict:
    resources = [{"type": "libvirt:index/pool:Pool", "outputs": {"name": LAB, "target": {"path": str(pool_path)}}}]
    resources += [{"type": "libvirt:index/volume:Volume", "outputs": {"name": n}} for n in names]
    resources.append({"type": "libvirt:index/domain:Domain", "outputs": {"name": f"{LAB}-web01"}})
    resources.append({"type": "command:remote:Command", "outputs": {"name": f"{LAB}-web02"}})  # not libvirt's
    return {"resources": resources}


def test_only_what_the_state_does_not_hold_is_a_leftover(tmp_path):
    for name in (f"{LAB}-base.qcow2", f"{LAB}-web01-1.qcow2", f"{LAB}-web02-cloud-init.iso"):
        (tmp_path / name).write_bytes(b"x")
    owned, pool, pool_path = leftovers.owned_names(state(tmp_path, f"{LAB}-base.qcow2", f"{LAB}-web01-1.qcow2"))
    assert pool == LAB and pool_path == str(tmp_path)
    virsh = FakeLibvirt(domains=[f"{LAB}-web01", f"{LAB}-web02", "someone-elses-vm"],
                        networks=[f"{LAB}-frontend", "default"], pools=[LAB, "default"], pool_path=tmp_path)
    found = leftovers.find(LAB, owned, pool, pool_path, "qemu:///system", virsh=virsh)
    assert [str(f) for f in found] == [f"domain {LAB}-web02", f"network {LAB}-frontend",
                                       f"file {tmp_path / f'{LAB}-web02-cloud-init.iso'}"]
    leftovers.delete(found, "qemu:///system", virsh=virsh)
    assert (tmp_path / f"{LAB}-base.qcow2").exists() and (tmp_path / f"{LAB}-web01-1.qcow2").exists()
    assert not (tmp_path / f"{LAB}-web02-cloud-init.iso").exists()
    changes = [c for c in virsh.calls if c[0] not in ("list", "net-list", "pool-list", "pool-dumpxml")]
    assert changes == [("destroy", f"{LAB}-web02"), ("undefine", f"{LAB}-web02"),
                       ("net-destroy", f"{LAB}-frontend"), ("net-undefine", f"{LAB}-frontend")]


def test_in_an_active_pool_a_leftover_is_a_volume_deleted_through_libvirt(tmp_path):
    # libvirt keeps its own list of an active pool's volumes: deleting the file alone would leave the
    # name taken ("storage volume ... exists already" on the next create).
    for name in (f"{LAB}-base.qcow2", f"{LAB}-web02-cloud-init.iso"):
        (tmp_path / name).write_bytes(b"x")
    owned, pool, pool_path = leftovers.owned_names(state(tmp_path, f"{LAB}-base.qcow2"))
    virsh = FakeLibvirt(domains=[], networks=[], pools=[LAB], pool_path=tmp_path, active=[LAB])
    found = leftovers.find(LAB, owned, pool, pool_path, "qemu:///system", virsh=virsh)
    assert [str(f) for f in found] == [f"volume {LAB}-web02-cloud-init.iso (pool {LAB})"]
    leftovers.delete(found, "qemu:///system", virsh=virsh)
    assert ("pool-refresh", LAB) in virsh.calls and ("vol-delete", "--pool", LAB, f"{LAB}-web02-cloud-init.iso") in virsh.calls
    assert (tmp_path / f"{LAB}-base.qcow2").exists()


def test_a_pool_outside_the_state_goes_with_its_files_after_its_domains(tmp_path):
    (tmp_path / "stray.iso").write_bytes(b"x")
    virsh = FakeLibvirt(domains=[f"{LAB}-lb01"], networks=[], pools=[LAB], pool_path=tmp_path)
    found = leftovers.find(LAB, set(), None, None, "qemu:///system", virsh=virsh)
    assert [f.kind for f in found] == ["domain", "pool", "file"]
    leftovers.delete(found, "qemu:///system", virsh=virsh)
    changes = [c[0] for c in virsh.calls if c[0] not in ("list", "net-list", "pool-list", "pool-dumpxml")]
    assert changes == ["destroy", "undefine", "pool-destroy", "pool-delete", "pool-undefine"]
    assert not (tmp_path / "stray.iso").exists()


def test_a_stack_on_two_hosts_is_checked_per_host_with_what_the_state_holds_there():
    """The pool has the same name on each host: owned on one host says nothing about the other."""
    def provider(name, uri):
        return {"type": "pulumi:providers:libvirt", "urn": f"urn:pulumi:dev::ha-lb::pulumi:providers:libvirt::{name}",
                "id": f"{name}-id", "inputs": {"uri": uri}}

    def on(name, resource):
        return {**resource, "provider": f"urn:pulumi:dev::ha-lb::pulumi:providers:libvirt::{name}::{name}-id"}

    deployment = {"resources": [
        provider("libvirt-hv1", "qemu:///system"), provider("libvirt-hv2", "qemu+ssh://root@hv2/system"),
        on("libvirt-hv1", {"type": "libvirt:index/pool:Pool", "outputs": {"name": LAB, "target": {"path": "/p1"}}}),
        on("libvirt-hv1", {"type": "libvirt:index/domain:Domain", "outputs": {"name": f"{LAB}-lb01"}}),
        on("libvirt-hv2", {"type": "libvirt:index/domain:Domain", "outputs": {"name": f"{LAB}-lb02"}}),
    ]}
    by_host = leftovers.owned_by_host(deployment)
    assert by_host["qemu:///system"] == leftovers.Owned(frozenset({LAB, f"{LAB}-lb01"}), LAB, "/p1")
    assert by_host["qemu+ssh://root@hv2/system"] == leftovers.Owned(frozenset({f"{LAB}-lb02"}), None, None)
    # hv2's pool is not in the state: a leftover there, though a pool of that name is owned on hv1.
    virsh = FakeLibvirt(domains=[f"{LAB}-lb02"], networks=[], pools=[LAB], pool_path=pathlib.Path("/nonexistent"))
    owned = by_host["qemu+ssh://root@hv2/system"]
    found = leftovers.find(LAB, set(owned.names), owned.pool, owned.pool_path, "qemu+ssh://root@hv2/system",
                           virsh=virsh)
    assert [str(f) for f in found] == [f"pool {LAB}"]
    assert leftovers.is_local("qemu:///system") and not leftovers.is_local("qemu+ssh://root@hv2/system")
