"""Offline render and review: run the real program under mocks for a stack file, no Pulumi CLI, no libvirt.

    python -m components.offline Pulumi.example.yaml --out rendered/
    python -m components.offline diff OLD_STACK_FILE NEW_STACK_FILE
    python -m components.offline diff --base GIT_REF [STACK_FILE]

The render writes, per VM, user-data, meta-data and network-config (exactly the CloudInitDisk inputs), the
service files they carry under files/, plan.json (what decides how `pulumi up` treats each VM),
resources.txt and outputs.json. Encrypted (`secure:`) values cannot be read offline: they are rendered as
if unset. `diff` prints a Markdown review of two versions (components/review.py); see `diff --help`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pathlib
import re
import sys
from typing import Any

import yaml

from .guest_scripts import ROLLOUT_ACTIONS, ROLLOUT_SERVICES
from .program_run import ProgramRun, run_program
from .review import OUTPUTS_FILE, PLAN_FILE
from .settings import default_ssh_public_keys

CLOUD_INIT_TYPE = "libvirt:index/cloudInitDisk:CloudInitDisk"
MACHINE_TYPE = "ha-lb:index:VirtualMachine"
# Stands in for an SSH key the offline render cannot (or need not) read: keys only ever reach the
# SSH connections of the readiness commands, never a rendered file.
PLACEHOLDER_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\n(offline render placeholder)\n-----END OPENSSH PRIVATE KEY-----\n"
# Stands in for sshPublicKeys when neither the stack file nor ~/.ssh has one (a fresh machine): a
# well-formed ed25519 key of zeros that nobody holds, named so that no reader mistakes it for a real one.
_ED25519 = b"ssh-ed25519"
PLACEHOLDER_PUBLIC_KEY = "ssh-ed25519 " + base64.b64encode(
    len(_ED25519).to_bytes(4, "big") + _ED25519 + (32).to_bytes(4, "big") + bytes(32)).decode() + " offline-render-placeholder"
STACK_FILE_PATTERN = re.compile(r"^Pulumi\.(?P<stack>[^.]+)\.ya?ml$")


def read_stack_file(path: pathlib.Path) -> tuple[str, dict[str, Any]]:
    """(stack name, config without the `ha-lb:` prefix) from a Pulumi.<stack>.yaml file."""
    match = STACK_FILE_PATTERN.match(path.name)
    if not match:
        raise SystemExit(f"{path}: expected a stack file named Pulumi.<stack>.yaml")
    document = yaml.safe_load(path.read_text()) or {}
    config = {}
    for key, value in (document.get("config") or {}).items():
        if not key.startswith("ha-lb:"):
            continue  # provider settings such as libvirt:uri
        if isinstance(value, dict) and set(value) == {"secure"}:
            continue
        config[key[len("ha-lb:"):]] = value
    return match.group("stack"), config


def _summary_line(resource: Any) -> str:
    shown = {k: v for k, v in resource.inputs.items() if k not in ("userData", "metaData", "networkConfig")}
    parent = resource.parent or "(stack)"
    return f"{resource.type}  {resource.name}  parent={parent}  {json.dumps(shown, sort_keys=True)}"


def _whole(value: Any) -> Any:
    """Numbers cross the Pulumi wire as floats: show 2, not 2.0."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def machine_plan(run: ProgramRun) -> dict[str, Any]:
    """What decides how `pulumi up` treats each VM: its disk (a change replaces it: a rebuild), its domain
    (a change recreates it on the same disk), the files a rollout applies in place, and the VM it waits for.
    The lab's other libvirt objects are listed with their inputs."""
    by_name = {r.name: r for r in run.resources}
    by_id = {r.id: r for r in run.resources if r.id}
    machines = {}
    for vm in run.of_type(MACHINE_TYPE):
        disk, domain = by_name[f"{vm.name}-disk"], by_name[f"{vm.name}-domain"]
        base = by_id.get(disk.inputs.get("baseVolumeId"))
        after = [by_name[d].parent for d in disk.options.get("depends_on") or [] if d in by_name]
        rolled_out = f"{vm.name}-config-rollout" in by_name
        machines[vm.name] = {
            "tier": vm.parent,
            "after": after[0] if after else None,
            "disk": {"name": disk.inputs["name"], "size": _whole(disk.inputs.get("size")),
                     "baseImage": base.inputs.get("source") if base else None},
            "domain": {key: _whole(domain.inputs.get(key)) for key in ("vcpu", "memory", "type")},
            "rolledOut": dict(ROLLOUT_SERVICES) if rolled_out else {},
            "actions": [[action.service, action.done] for action in ROLLOUT_ACTIONS] if rolled_out else [],
        }
    vm_names = set(machines)
    resources = {
        r.name: {"type": r.type, "inputs": r.inputs}
        for r in run.resources
        if (r.type.startswith("libvirt:") or r.type == "pulumi:providers:libvirt") and r.parent not in vm_names
    }
    return {"machines": machines, "resources": resources}


def write_render(run: ProgramRun, out: pathlib.Path) -> list[pathlib.Path]:
    written = []

    def write(path: pathlib.Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)

    for disk in run.of_type(CLOUD_INIT_TYPE):
        vm = disk.parent or disk.name
        write(out / vm / "user-data", disk.inputs["userData"])
        write(out / vm / "meta-data", disk.inputs["metaData"])
        write(out / vm / "network-config", disk.inputs["networkConfig"])
        for item in yaml.safe_load(disk.inputs["userData"]).get("write_files", []):
            path = out / vm / "files" / item["path"].lstrip("/")
            write(path, item["content"])
            path.chmod(int(item["permissions"], 8))  # as cloud-init's write_files sets it
    write(out / PLAN_FILE, json.dumps(machine_plan(run), indent=2, sort_keys=True) + "\n")
    # Registration order is concurrent: sort so the summary diffs cleanly.
    ordered = sorted(run.resources, key=lambda r: (r.type, r.name))
    write(out / "resources.txt", "\n".join(_summary_line(r) for r in ordered) + "\n")
    shown_outputs = {k: ("[secret]" if k in run.secret_outputs else v) for k, v in run.outputs.items()}
    write(out / OUTPUTS_FILE, json.dumps(shown_outputs, indent=2, sort_keys=True) + "\n")
    return written


def render_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.offline", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack_file", type=pathlib.Path, help="a Pulumi.<stack>.yaml file")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("rendered"), help="output directory")
    args = parser.parse_args(argv)
    stack, config = read_stack_file(args.stack_file)
    config.setdefault("sshPrivateKey", PLACEHOLDER_PRIVATE_KEY)
    if not config.get("sshPublicKeys") and not default_ssh_public_keys(os.path.expanduser("~")):
        config["sshPublicKeys"] = [PLACEHOLDER_PUBLIC_KEY]
    try:
        run = run_program(config, stack=stack)
    except Exception as error:  # the program's own validation message is the useful part
        print(str(error).strip(), file=sys.stderr)
        return 1
    written = write_render(run, args.out)
    print(f"rendered stack {stack!r}: {len(run.resources)} resources, {len(written)} files in {args.out}/")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["diff"]:
        from .stack_diff import diff_main  # git and subprocesses: only for the review
        return diff_main(argv[1:])
    return render_main(argv)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Pulumi SDK's mock event loop prints a spurious traceback when the interpreter tears it down.
    os._exit(code)
