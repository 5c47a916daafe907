"""Offline render: run the real program under mocks for a stack file and write what each VM would get.

    python -m components.offline Pulumi.example.yaml --out rendered/

Writes, per VM, user-data, meta-data and network-config (exactly the CloudInitDisk inputs), the service
files they carry under files/, and resources.txt / outputs.json for the whole stack. No Pulumi CLI,
no libvirt. Encrypted (`secure:`) values cannot be read offline: they are rendered as if unset.
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

from .program_run import ProgramRun, run_program
from .settings import default_ssh_public_keys

CLOUD_INIT_TYPE = "libvirt:index/cloudInitDisk:CloudInitDisk"
# Stands in for an SSH key the offline render cannot (or need not) read: keys only ever reach the
# SSH connections of the readiness commands, never a rendered file.
PLACEHOLDER_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\n(offline render placeholder)\n-----END OPENSSH PRIVATE KEY-----\n"
# Stands in for sshPublicKeys when neither the stack file nor ~/.ssh has one (a fresh machine): a
# well-formed ed25519 key of zeros that nobody holds, named so that no reader mistakes it for a real one.
_ED25519 = b"ssh-ed25519"
PLACEHOLDER_PUBLIC_KEY = "ssh-ed25519 " + base64.b64encode(
    len(_ED25519).to_bytes(4, "big") + _ED25519 + (32).to_bytes(4, "big") + bytes(32)).decode() + " offline-render-placeholder"
_STACK_FILE = re.compile(r"^Pulumi\.(?P<stack>[^.]+)\.ya?ml$")


def read_stack_file(path: pathlib.Path) -> tuple[str, dict[str, Any]]:
    """(stack name, config without the `ha-lb:` prefix) from a Pulumi.<stack>.yaml file."""
    match = _STACK_FILE.match(path.name)
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
            write(out / vm / "files" / item["path"].lstrip("/"), item["content"])
    # Registration order is concurrent: sort so the summary diffs cleanly.
    ordered = sorted(run.resources, key=lambda r: (r.type, r.name))
    write(out / "resources.txt", "\n".join(_summary_line(r) for r in ordered) + "\n")
    shown_outputs = {k: ("[secret]" if k in run.secret_outputs else v) for k, v in run.outputs.items()}
    write(out / "outputs.json", json.dumps(shown_outputs, indent=2, sort_keys=True) + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Pulumi SDK's mock event loop prints a spurious traceback when the interpreter tears it down.
    os._exit(code)
