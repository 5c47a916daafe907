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
