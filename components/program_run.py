"""Runs the real Pulumi program (__main__.py) under Pulumi mocks and captures what it registers.

Used by the offline render (components/offline.py) and by the tests.

No Pulumi CLI and no libvirt are needed: every resource's type, name, parent, options and resolved
inputs are recorded, and the stack outputs are resolved (with their secret-ness).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import runpy
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
PROGRAM = PROJECT_ROOT / "__main__.py"

# What the mocks answer for a generated password and SSH key, so offline renders are stable and obviously fake.
MOCK_GENERATED_PASSWORD = "generated-at-deploy-time"
MOCK_GENERATED_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVuZXJhdGVkLWF0LWRlcGxveS10aW1lLWtleQ"
MOCK_GENERATED_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\ngenerated-at-deploy-time\n-----END OPENSSH PRIVATE KEY-----\n"


_SIG_KEY, _SECRET_SIG = rpc._special_sig_key, rpc._special_secret_sig


@dataclass
class CapturedResource:
    type: str
    name: str
    id: Optional[str]
    inputs: dict[str, Any]
    parent: Optional[str] = None  # the parent's logical name (None for the stack)
    parent_type: Optional[str] = None
    custom: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    secret_inputs: set[str] = field(default_factory=set)  # dotted paths of inputs passed as secrets
    provider: Optional[str] = None  # the explicit provider's reference ("URN::id"), None for a default one

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "id": self.id, "inputs": self.inputs}


@dataclass
class ProgramRun:
    resources: list[CapturedResource]
    outputs: dict[str, Any]
    secret_outputs: set[str]

    def of_type(self, type_token: str) -> list[CapturedResource]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> CapturedResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]


# How the mocks name a resource's id:
# "by-name": stable, f"{name}-id", whatever the inputs.
# "by-replacement": a new id exactly when the real provider would replace the resource, so tests can see
#   what re-runs: pulumi-command (provider/pkg/provider/{local,remote}/*.go) replaces a Command only when its
#   `triggers` change (a changed `create` is an update that keeps the id); the libvirt, tls and random
#   resources the program uses replace on any input change (their inputs are ForceNew: v0.8.1
#   libvirt/resource_libvirt_{volume,cloud_init,domain}.go), except inputs under ignore_changes.
ID_MODES = ("by-name", "by-replacement")


class _CapturingMocks(pulumi.runtime.Mocks):
    def __init__(self, ids: str = "by-name", unknown_outputs: Optional[Mapping[str, set[str]]] = None,
                 options: Optional[Mapping[str, dict[str, Any]]] = None) -> None:
        if ids not in ID_MODES:
            raise ValueError(f"ids: {ids!r} is not one of {ID_MODES}")
        self.registered: dict[str, dict[str, Any]] = {}
        self.ids = ids
        self.unknown_outputs = unknown_outputs or {}
        self.options = options if options is not None else {}

    def _id(self, args: pulumi.runtime.MockResourceArgs, inputs: dict[str, Any]) -> str:
        if self.ids == "by-name":
            return f"{args.name}-id"
        if args.typ.startswith("command:"):
            deciding: Any = inputs.get("triggers")
        else:
            ignored = set(self.options.get(args.name, {}).get("options", {}).get("ignore_changes", []))
            deciding = {k: v for k, v in inputs.items() if k not in ignored}
        digest = hashlib.sha256(json.dumps(deciding, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return f"{args.name}-{digest}"

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[Optional[str], dict]:
        secret_paths: set[str] = set()
        inputs = _unwrap_secrets(dict(args.inputs), "", secret_paths)
        outputs = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = MOCK_GENERATED_PASSWORD
        if args.typ == "tls:index/privateKey:PrivateKey":
            outputs["publicKeyOpenssh"] = MOCK_GENERATED_PUBLIC_KEY + "\n"
            outputs["privateKeyOpenssh"] = MOCK_GENERATED_PRIVATE_KEY
        if args.typ.startswith("command:"):
            outputs["stdout"] = f"{args.name}: ok"
        for key in self.unknown_outputs.get(args.name, ()):
            outputs[key] = rpc.UNKNOWN  # as in a preview, before the resource exists
        resource_id = self._id(args, inputs) if args.custom else None
        self.registered[args.name] = {"type": args.typ, "inputs": inputs, "id": resource_id,
                                      "custom": args.custom, "secret_inputs": secret_paths,
                                      "provider": args.provider or None}
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, Optional[list[tuple[str, str]]]]:
        return {}, None


def _config_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run_program(config: Mapping[str, Any], stack: str = "test", preview: bool = False,
                secret_keys: tuple[str, ...] = ("statsPassword",),
                other_config: Optional[Mapping[str, str]] = None, ids: str = "by-name",
                unknown_outputs: Optional[Mapping[str, set[str]]] = None) -> ProgramRun:
    """Run __main__.py for a stack config (camelCase keys without the `ha-lb:` prefix); other_config holds
    other namespaces' keys, e.g. {"libvirt:uri": ...}. `ids`: see ID_MODES; unknown_outputs: resource name
    -> output names the mocks answer as unknown."""
    structure: dict[str, dict[str, Any]] = {}
    mocks = _CapturingMocks(ids, unknown_outputs, structure)
    runtime_settings.ROOT.set(None)  # a fresh stack resource for every run
    pulumi.runtime.set_mocks(mocks, project="ha-lb", stack=stack, preview=preview)
    pulumi.runtime.set_all_config(
        {**{f"ha-lb:{key}": _config_value(value) for key, value in config.items()}, **(other_config or {})},
        [f"ha-lb:{key}" for key in secret_keys if key in config],
    )

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        opts = args.opts or pulumi.ResourceOptions()
        parent = opts.parent
        structure[args.name] = {
            "parent": getattr(parent, "_name", None),
            "parent_type": getattr(parent, "_type", None),
            "options": {
                "ignore_changes": list(opts.ignore_changes or []),
                "delete_before_replace": opts.delete_before_replace,
                "replace_on_changes": list(opts.replace_on_changes or []),
                "depends_on": [getattr(d, "_name", None) for d in (opts.depends_on or [])]
                if isinstance(opts.depends_on, list) else opts.depends_on,
                "additional_secret_outputs": list(opts.additional_secret_outputs or []),
            },
        }
        return None

    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        pulumi.runtime.register_stack_transformation(record)
        runpy.run_path(str(PROGRAM), run_name="__pulumi_program__")
        exported: dict[str, pulumi.Output[Any]] = runtime_settings.get_root_resource().outputs  # type: ignore[union-attr]

        def collect(name: str, output: pulumi.Output[Any]) -> pulumi.Output[None]:
            async def secret() -> bool:
                return await output.is_secret()

            def store(pair: list[Any]) -> None:
                outputs[name] = pair[0]
                if pair[1]:
                    secret_outputs.add(name)

            return pulumi.Output.all(output, pulumi.Output.from_input(secret())).apply(store)

        return pulumi.Output.all(*[collect(n, pulumi.Output.from_input(o)) for n, o in exported.items()])

    program()

    resources = []
    for name, info in mocks.registered.items():
        shape = structure.get(name, {})
        resources.append(CapturedResource(
            type=info["type"], name=name, id=info["id"], inputs=info["inputs"], custom=info["custom"],
            parent=shape.get("parent"), parent_type=shape.get("parent_type"), options=shape.get("options", {}),
            secret_inputs=info["secret_inputs"], provider=info["provider"],
        ))
    return ProgramRun(resources=resources, outputs=outputs, secret_outputs=secret_outputs)



def _unwrap_secrets(value: Any, path: str, found: set[str]) -> Any:
    """Mocks see secrets as {SECRET_SIG: ..., "value": v} on the wire: unwrap them, noting where they were."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            found.add(path)
            return _unwrap_secrets(value["value"], path, set())
        return {k: _unwrap_secrets(v, f"{path}.{k}" if path else k, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(v, f"{path}.{i}", found) for i, v in enumerate(value)]
    return value
