"""Finds, and with --delete removes, the lab's libvirt objects that the Pulumi state does not own.

    python -m components.leftovers --stack dev [--delete] [--uri URI ...]

After an interrupted `pulumi up` (Ctrl-C twice, a killed process, a lost host) the provider may have
created an object whose creation never reached the state. Every libvirt host of the stack is checked: the ones
its state's providers reach and the ones its configuration names (or only those given with --uri). It is not idempotent about it: the next create of
the same name fails ("storage volume ... exists already"), and `pulumi destroy` fails to delete the pool
because its directory is not empty. This command lists every object named after the lab (domains,
networks, the pool and the volumes in it, files in the pool's directory) that the stack's state
(`pulumi stack export`) does not hold, and deletes exactly those. Objects the state holds are never
touched: `pulumi up` or `pulumi destroy` then succeeds.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional
from urllib.parse import urlsplit

from .lab_access import LabAccessError, stack_settings
from .settings import PROJECT

LIBVIRT_TYPES = ("libvirt:index/domain:Domain", "libvirt:index/network:Network", "libvirt:index/pool:Pool",
                 "libvirt:index/volume:Volume", "libvirt:index/cloudInitDisk:CloudInitDisk")


@dataclass(frozen=True)
class Leftover:
    kind: str  # domain, network, pool, volume (of the lab's active pool), file (in an inactive pool's directory)
    name: str
    pool: Optional[str] = None  # for volumes

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" + (f" (pool {self.pool})" if self.pool else "")


@dataclass(frozen=True)
class Owned:
    """What the state holds on one libvirt host: object names, the lab's pool and its directory."""

    names: frozenset[str]
    pool: Optional[str]
    pool_path: Optional[str]


PROVIDER_TYPE = "pulumi:providers:libvirt"


def _owned(resources: Iterable[dict[str, Any]]) -> Owned:
    names: set[str] = set()
    pool, pool_path = None, None
    for resource in resources:
        if resource.get("type") not in LIBVIRT_TYPES:
            continue
        outputs = resource.get("outputs") or {}
        if outputs.get("name"):
            names.add(outputs["name"])
        if resource["type"] == "libvirt:index/pool:Pool":
            pool, pool_path = outputs.get("name"), (outputs.get("target") or {}).get("path")
    return Owned(frozenset(names), pool, pool_path)


def owned_by_host(deployment: dict[str, Any]) -> dict[str, Owned]:
    """Per libvirt URI (each resource's provider), what `pulumi stack export` holds there. A stack with several
    hosts has a pool of the same name on each: which one is owned depends on the host."""
    resources = deployment.get("resources", [])
    uris = {f"{r['urn']}::{r.get('id', '')}": (r.get("inputs") or {}).get("uri")
            for r in resources if r.get("type") == PROVIDER_TYPE and r.get("urn")}
    return {uri: _owned(r for r in resources if uris.get(r.get("provider", "")) == uri)
            for uri in dict.fromkeys(u for u in uris.values() if u)}


def owned_names(deployment: dict[str, Any]) -> tuple[set[str], Optional[str], Optional[str]]:
    """(libvirt object names in state, the pool's name, its directory) from `pulumi stack export`, whatever
    the host."""
    owned = _owned(deployment.get("resources", []))
    return set(owned.names), owned.pool, owned.pool_path


def is_local(uri: str) -> bool:
    """A URI to this machine's libvirt: its pool directories are this machine's directories."""
    return not urlsplit(uri).hostname


def _virsh(uri: str, *args: str) -> list[str]:
    result = subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(args)}: {result.stderr.strip()}")
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _pool_path(uri: str, pool: str, virsh: Callable[..., list[str]]) -> Optional[str]:
    xml = "\n".join(virsh(uri, "pool-dumpxml", pool))
    start = xml.find("<path>")
    return xml[start + len("<path>"):xml.find("</path>", start)] if start >= 0 else None


def find(lab_name: str, owned: set[str], pool: Optional[str], pool_path: Optional[str], uri: str,
         virsh: Callable[..., list[str]] = _virsh) -> list[Leftover]:
    """Objects named after the lab that are not in `owned`: domains, networks, the pool, and the volumes in
    it (or, while the pool is inactive, as a failed pool delete leaves it, the files in its directory)."""
    prefix = f"{lab_name}-"
    found = [Leftover("domain", d) for d in virsh(uri, "list", "--all", "--name")
             if d.startswith(prefix) and d not in owned]
    found += [Leftover("network", n) for n in virsh(uri, "net-list", "--all", "--name")
              if n.startswith(prefix) and n not in owned]
    lab_pool = pool or lab_name
    if lab_pool in virsh(uri, "pool-list", "--all", "--name"):
        pool_path = pool_path or _pool_path(uri, lab_pool, virsh)
        if lab_pool not in owned:
            found.append(Leftover("pool", lab_pool))
        if lab_pool in virsh(uri, "pool-list", "--name"):  # active: libvirt keeps a list of its volumes
            virsh(uri, "pool-refresh", lab_pool)  # files written behind its back show up too
            lines = virsh(uri, "vol-list", "--pool", lab_pool)[2:]  # below the header and its rule
            volumes = [line.split()[0] for line in lines if line.split()]
            return found + [Leftover("volume", v, lab_pool) for v in volumes if v not in owned]
    if pool_path and is_local(uri) and pathlib.Path(pool_path).is_dir():
        found += [Leftover("file", str(p)) for p in sorted(pathlib.Path(pool_path).iterdir()) if p.name not in owned]
    return found


def delete(leftovers: Iterable[Leftover], uri: str, virsh: Callable[..., list[str]] = _virsh) -> None:
    """Domains first (they hold the disks), then volumes and files, the pool, the networks."""
    order = {"domain": 0, "volume": 1, "file": 1, "pool": 2, "network": 3}
    for item in sorted(leftovers, key=lambda i: order[i.kind]):
        if item.kind == "domain":
            _tolerating("not running", virsh, uri, "destroy", item.name)
            virsh(uri, "undefine", item.name)
        elif item.kind == "volume":
            virsh(uri, "vol-delete", "--pool", str(item.pool), item.name)
        elif item.kind == "file":
            pathlib.Path(item.name).unlink(missing_ok=True)
        elif item.kind == "pool":
            _tolerating("not active", virsh, uri, "pool-destroy", item.name)
            virsh(uri, "pool-delete", item.name)
            virsh(uri, "pool-undefine", item.name)
        elif item.kind == "network":
            _tolerating("not active", virsh, uri, "net-destroy", item.name)
            virsh(uri, "net-undefine", item.name)


def _tolerating(expected: str, virsh: Callable[..., list[str]], uri: str, *args: str) -> None:
    try:
        virsh(uri, *args)
    except RuntimeError as error:
        if expected not in str(error):
            raise


def export_state(stack: str, pulumi: str = "pulumi") -> dict[str, Any]:
    result = subprocess.run([pulumi, "stack", "export", "--stack", stack], capture_output=True, text=True,
                            timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"pulumi stack export --stack {stack}: {result.stderr.strip()}")
    return json.loads(result.stdout).get("deployment") or {}


def configured_uris(stack: str, pulumi: str) -> list[str]:
    """The libvirt hosts the stack's configuration names (`hosts`, else `libvirtUri`, else `libvirt:uri`, the
    default ones), read as the program reads them."""
    try:
        return [host.uri for host in stack_settings(stack, pulumi).hosts]
    except LabAccessError:
        return []  # then the state's providers say where the lab is


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="the stack whose lab to check (names: ha-lb-STACK-*)")
    parser.add_argument("--uri", action="append", help="a libvirt connection to check (repeatable; default: every "
                        "host of the stack, from its state and its configuration)")
    parser.add_argument("--delete", action="store_true", help="delete what is found")
    parser.add_argument("--pulumi", default="pulumi", help="the Pulumi CLI to read the state with")
    args = parser.parse_args(argv)
    by_host = owned_by_host(export_state(args.stack, args.pulumi))
    uris = args.uri or list(dict.fromkeys([*by_host, *configured_uris(args.stack, args.pulumi)]))
    lab = f"{PROJECT}-{args.stack.split('/')[-1]}"
    total = 0
    for uri in uris:
        owned = by_host.get(uri, Owned(frozenset(), None, None))
        found = find(lab, set(owned.names), owned.pool, owned.pool_path, uri)
        for item in found:
            print(f"{'deleting' if args.delete else 'not in the state'}: {item}" + (f" on {uri}" if len(uris) > 1 else ""))
        if args.delete:
            delete(found, uri)
        total += len(found)
    if not total:
        print(f"nothing of {lab} outside the state" + (f" on {', '.join(uris)}" if len(uris) > 1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
