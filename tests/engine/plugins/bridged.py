"""What the two Terraform-bridged models share: a resource of terraform-plugin-framework served by
pulumi-terraform-bridge's PF bridge (pulumi-tls 5.6.2 and pulumi-random 4.21.4 both are).

Sources (github.com/pulumi/pulumi-terraform-bridge, the snapshot here: pkg/pf/tfbridge/...):
- provider_check.go CheckWithContext / validateResourceConfig: Check returns the inputs unchanged (no
  Pulumi-level defaults for these resources: the framework's schema defaults only apply in the plan);
  validation diagnostics on an attribute become CheckFailures (detect_check_failures.go detectCheckFailure,
  formatted by pkg/tfbridge/check_failures.go NewCheckFailure: "<summary>. <detail>. Examine values at
  '<name>.<property>'.", and missingRequiredKey for a missing required attribute).
- provider_diff.go DiffWithContext + checkRequiresReplace + calculateDetailedDiff (EnableAccurateBridgePreview
  is set by both providers' resources.go): the planned state (config, schema defaults, plan modifiers)
  against the prior state; the attributes whose RequiresReplace plan modifiers fire are replaced.
- provider_create.go CreateWithContext: a preview returns the planned state (computed attributes unknown);
  otherwise the resource's Create result, with the TF `id` attribute as the resource ID (extractID).
- provider_diagnostics.go processDiagnosticsWithContext: an error diagnostic (e.g. from a plan modifier)
  fails the operation with "<summary>: <detail>".
Terraform attribute names map to Pulumi's camelCase (TerraformToPulumiNameV2).

Not reproduced: the bridge's hidden state keys (`__meta` schema version, `__pulumi_raw_state_delta`), which
only the real provider reads back; the `diffs` list names changed input properties only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

from .server import (
    ADD_REPLACE, DELETE_REPLACE, UNKNOWN, UPDATE_REPLACE, UPDATE, ADD, DELETE, CallContext, CheckFailure, DiffResult,
    ModelError, ResourceModel, Secret, Unsupported, contains_unknowns, deep_equals, is_unknown, make_secret, unsecret,
)


@dataclasses.dataclass
class Attribute:
    tf_name: str
    kind: str  # "string", "int64", "bool", "map[string]string"
    required: bool = False
    optional: bool = False
    computed: bool = False
    sensitive: bool = False
    default: Any = None  # schema Default (framework: applied in the plan when the config is null)
    description: str = ""
    # (prior state value, planned value, config value) -> replace? ; None: never
    requires_replace: Optional[Callable[[Any, Any, Any], bool]] = None
    use_state_for_unknown: bool = False
    # validators: (config dict of Pulumi names -> value) -> list of (summary, detail)
    validators: list = dataclasses.field(default_factory=list)


def requires_replace(prior: Any, planned: Any, config: Any) -> bool:
    """stringplanmodifier/int64planmodifier/boolplanmodifier.RequiresReplace: replace when the planned
    value differs from the state (checkRequiresReplace: or is unknown)."""
    return True


class BridgedResource(ResourceModel):
    attributes: dict[str, Attribute] = {}  # Pulumi name -> attribute; "id" included

    # -- helpers
    def _type_ok(self, attr: Attribute, value: Any) -> bool:
        v = unsecret(value)
        if is_unknown(v):
            return True
        if attr.kind == "string":
            return isinstance(v, str)
        if attr.kind == "bool":
            return isinstance(v, bool)
        if attr.kind == "int64":
            return isinstance(v, float) and v == int(v)
        if attr.kind == "map[string]string":
            return isinstance(v, dict) and all(isinstance(unsecret(e), str) or is_unknown(unsecret(e))
                                               for e in v.values())
        raise ModelError(f"internal error: attribute kind {attr.kind}")

    def _inputs(self) -> dict[str, Attribute]:
        return {k: a for k, a in self.attributes.items() if a.required or a.optional}

    def validate_config(self, ctx: CallContext, config: dict) -> list[tuple[str, str, str]]:
        """(property, summary, detail) for each error diagnostic of ValidateResourceConfig."""
        out = []
        for name, attr in self._inputs().items():
            for validator in attr.validators:
                for summary, detail in validator(config):
                    out.append((name, summary, detail))
        return out

    def plan_extra(self, ctx: CallContext, config: dict, planned: dict) -> None:
        """Resource-specific plan modifiers that set values or fail (ModelError)."""

    def apply_create(self, ctx: CallContext, planned: dict) -> dict:
        """The resource's Create: returns the computed attributes (by Pulumi name), `id` included."""
        raise NotImplementedError

    # -- Check
    def check(self, ctx: CallContext, olds: dict, news: dict) -> tuple[dict, list[CheckFailure]]:
        inputs = self._inputs()
        for key, value in news.items():
            if key not in inputs:
                # convert.EncodePropertyMapToDynamic knows only the schema's attributes
                raise ModelError(f"{self.token} has no input property {key!r}")
            if not self._type_ok(inputs[key], value):
                raise ModelError(f"cannot encode resource inputs to call ValidateResourceConfig: property "
                                 f"{key!r} must be a {inputs[key].kind}, got {unsecret(value)!r}")
        failures = []
        for name, attr in inputs.items():
            if attr.required and name not in news:
                reason = f"Missing required property '{name}'"  # check_failures.go missingRequiredKey
                if attr.description:
                    reason += ": " + attr.description
                failures.append(CheckFailure("", reason))
        for name, summary, detail in self.validate_config(ctx, news):
            reason = summary + (". " + detail if detail else "")
            failures.append(CheckFailure("", f"{reason}. Examine values at '{ctx.name}.{name}'."))
        # The bridge's CheckFailure leaves Property empty ("changes the UX of how it displays in CLI").
        return dict(news), failures

    # -- plan
    def plan(self, ctx: CallContext, config: dict, prior: Optional[dict]) -> dict:
        """PlanResourceChange: config + schema defaults + plan modifiers; computed attributes unknown
        unless UseStateForUnknown keeps the prior value (framework MarkComputedNilsAsUnknown)."""
        planned: dict = {}
        for name, attr in self.attributes.items():
            if attr.required or attr.optional:
                if name in config:
                    planned[name] = config[name]
                elif attr.computed and attr.default is not None:
                    planned[name] = attr.default
                elif attr.computed:
                    planned[name] = UNKNOWN
                else:
                    planned[name] = None
        self.plan_extra(ctx, config, planned)
        changed = prior is None or any(not deep_equals(unsecret(planned.get(n)), unsecret(prior.get(n)))
                                       for n in self._inputs())
        for name, attr in self.attributes.items():
            if name in planned:
                continue
            if prior is not None and (attr.use_state_for_unknown or not changed):
                planned[name] = prior.get(name)
            else:
                planned[name] = UNKNOWN
        return planned

    def replace_keys(self, prior: dict, planned: dict, config: dict) -> list[str]:
        out = []
        for name, attr in self._inputs().items():
            if attr.requires_replace is None:
                continue
            p, q = unsecret(prior.get(name)), unsecret(planned.get(name))
            if deep_equals(p, q) and not contains_unknowns(q):
                continue
            if attr.requires_replace(p, q, unsecret(config.get(name))):
                out.append(name)
        return out

    # -- Diff
    def diff(self, ctx: CallContext, id_: str, olds: dict, news: dict, old_inputs: dict,
             ignore_changes: list[str]) -> DiffResult:
        news = dict(news)
        for path in ignore_changes:  # propertyvalue.ApplyIgnoreChanges (top-level paths only here)
            if path not in self._inputs():
                raise Unsupported(f"ignoreChanges path {path!r}: only top-level input names are supported")
            if path in olds:
                news[path] = olds[path]
            else:
                news.pop(path, None)
        planned = self.plan(ctx, news, olds)
        replace = set(self.replace_keys(olds, planned, news))
        detailed: dict[str, int] = {}
        for name in self._inputs():
            p, q = olds.get(name), planned.get(name)
            if deep_equals(unsecret(p), unsecret(q)) and not contains_unknowns(q):
                continue
            kind = ADD if p is None else DELETE if q is None else UPDATE
            if name in replace:
                kind = {ADD: ADD_REPLACE, DELETE: DELETE_REPLACE, UPDATE: UPDATE_REPLACE}[kind]
            detailed[name] = kind
        return DiffResult(bool(detailed), detailed)

    # -- outputs
    def _outputs(self, state: dict, inputs: dict) -> dict:
        out = {}
        for name, value in state.items():
            if value is None:
                continue
            attr = self.attributes[name]
            if isinstance(inputs.get(name), Secret) or attr.sensitive:
                value = make_secret(value)  # secret inputs stay secret; Sensitive attributes are secret
            out[name] = value
        return out

    def create(self, ctx: CallContext, inputs: dict, preview: bool) -> tuple[str, dict]:
        planned = self.plan(ctx, inputs, None)
        if preview:
            return "", self._outputs(planned, inputs)
        if contains_unknowns({k: planned[k] for k in self._inputs()}):
            raise ModelError("internal error: unknown input values outside of a preview")
        computed = self.apply_create(ctx, {k: unsecret(v) for k, v in planned.items()})
        state = {**planned, **computed}
        return str(state["id"]), self._outputs(state, inputs)

    def read(self, ctx: CallContext, id_: str, props: dict, inputs: dict) -> tuple[str, dict, dict]:
        """The resource's Read is a no-op: the state is returned as it is."""
        unknown = set(props) - set(self.attributes)
        if unknown:
            raise Unsupported(f"state keys the model does not know: {sorted(unknown)}")
        return id_, props, inputs

    def delete(self, ctx: CallContext, id_: str, props: dict, old_inputs: dict) -> None:
        """The resource's Delete is a no-op: removing it from the state is all."""
