"""Plumbing shared by the model provider plugins: the plugin process protocol, the ResourceProvider gRPC
service, Pulumi's property values (secrets, unknowns) and Pulumi's property diff.

Sources read (pulumi/pulumi v3.259.0 unless said otherwise, the newest tag of the snapshot here; the
engine built for the tests is 3.276):
- sdk/go/common/resource/plugin/plugin.go buildPluginArguments, newPlugin, parsePort: the engine starts a
  plugin with `--logtostderr`, `-v=N`, `--tracing ENDPOINT` (each only when set) followed by the engine's
  gRPC address, then reads one line from stdout: the port the plugin's gRPC server listens on (127.0.0.1).
- sdk/go/common/resource/plugin/provider_plugin.go handshake: a provider answering Handshake with
  UNIMPLEMENTED is fine ("we'll fall back to existing behaviour"); the protocol (accept secrets, resources,
  outputs, preview) then comes from the Configure response (provider_plugin.go Configure).
- sdk/go/common/resource/properties_diff.go PropertyMap.diff, PropertyValue.diff and DeepEquals, and
  sdk/go/common/resource/plugin/provider.go objectDiffToDetailedDiff / arrayDiffToDetailedDiff /
  valueDiffToDetailedDiff (v3.224.0, the SDK pulumi-command 1.2.1 is built with): `object_diff` below.
- sdk/go/common/resource/properties_path.go PropertyPath.String: `format_path` below.
- sdk/go/common/resource/plugin/rpc.go (MarshalPropertyValue): the signature keys of secrets, assets,
  archives, resource references and output values in a Struct, and the unknown string sentinel.

Anything the models do not understand fails (a gRPC error with a clear message): never silently ignored.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import signal
import sys
import threading
import traceback
from typing import Any, Callable, Iterable, Mapping, Optional

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, plugin_pb2, provider_pb2, provider_pb2_grpc

# sdk/go/common/resource/sig/sig.go and sdk/go/common/resource/plugin/rpc.go (UnknownStringValue)
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"
RESOURCE_REFERENCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
OUTPUT_VALUE_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

# set by the launcher (tests/engine/plugins/__init__.py launcher_script)
_PARENT_PYTHONPATH = "HA_LB_MODEL_PARENT_PYTHONPATH"
_PYTHONPATH_UNSET = "HA_LB_MODEL_PYTHONPATH_UNSET"


class ModelError(Exception):
    """A failed operation: reported to the engine as a gRPC UNKNOWN status with this message, the way
    grpc-go reports a plain Go error returned by a provider method."""


class Unsupported(ModelError):
    """Something the original supports but this model does not: always an error, never ignored."""


# ----------------------------------------------------------------------------------------------------------
# Property values


@dataclasses.dataclass(frozen=True)
class Secret:
    value: Any


class _Unknown:
    _instance: Optional["_Unknown"] = None

    def __new__(cls) -> "_Unknown":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN


def contains_unknowns(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, Secret):
        return contains_unknowns(value.value)
    if isinstance(value, list):
        return any(contains_unknowns(v) for v in value)
    if isinstance(value, dict):
        return any(contains_unknowns(v) for v in value.values())
    return False


def contains_secrets(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, list):
        return any(contains_secrets(v) for v in value)
    if isinstance(value, dict):
        return any(contains_secrets(v) for v in value.values())
    return False


def unsecret(value: Any) -> Any:
    """The value with every secret marker removed (the way ende.simplify hands values to the Go code)."""
    if isinstance(value, Secret):
        return unsecret(value.value)
    if isinstance(value, list):
        return [unsecret(v) for v in value]
    if isinstance(value, dict):
        return {k: unsecret(v) for k, v in value.items()}
    return value


def make_secret(value: Any) -> Any:
    return value if isinstance(value, Secret) else Secret(value)


def _decode_value(v: struct_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "null_value" or kind is None:
        return None
    if kind == "number_value":
        return v.number_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "string_value":
        return UNKNOWN if v.string_value == UNKNOWN_STRING else v.string_value
    if kind == "list_value":
        return [_decode_value(e) for e in v.list_value.values]
    fields = v.struct_value.fields
    if SIG_KEY in fields:
        sig = fields[SIG_KEY].string_value
        if sig == SECRET_SIG:
            return Secret(_decode_value(fields["value"]))
        names = {ASSET_SIG: "an asset", ARCHIVE_SIG: "an archive", RESOURCE_REFERENCE_SIG: "a resource reference",
                 OUTPUT_VALUE_SIG: "an output value"}
        raise Unsupported(f"the model providers do not accept {names.get(sig, 'a value with signature ' + sig)} "
                          "as a property value")
    return {k: _decode_value(e) for k, e in fields.items()}


def decode_struct(s: Optional[struct_pb2.Struct]) -> dict[str, Any]:
    """A Struct from the engine as plain Python values; nulls dropped at the top level (SkipNulls, as
    pulumi-go-provider's getMap and the bridge unmarshal them)."""
    if s is None:
        return {}
    out = {}
    for k, v in s.fields.items():
        decoded = _decode_value(v)
        if decoded is not None:
            out[k] = decoded
    return out


def _encode_value(value: Any, out: struct_pb2.Value) -> None:
    if value is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif value is UNKNOWN:
        out.string_value = UNKNOWN_STRING
    elif isinstance(value, Secret):
        out.struct_value.fields[SIG_KEY].string_value = SECRET_SIG
        _encode_value(value.value, out.struct_value.fields["value"])
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, (int, float)):
        out.number_value = float(value)
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, list):
        out.list_value.SetInParent()
        for item in value:
            _encode_value(item, out.list_value.values.add())
    elif isinstance(value, dict):
        out.struct_value.SetInParent()
        for k, item in value.items():
            _encode_value(item, out.struct_value.fields[k])
    else:
        raise ModelError(f"internal error: cannot encode {type(value).__name__} as a property value")


def encode_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    """Plain values to a Struct; None entries are skipped (SkipNulls)."""
    s = struct_pb2.Struct()
    for k, v in props.items():
        if v is None:
            continue
        _encode_value(v, s.fields[k])
    return s


# ----------------------------------------------------------------------------------------------------------
# Pulumi's property diff (sdk/go/common/resource/properties_diff.go, plugin/provider.go)

ADD, ADD_REPLACE, DELETE, DELETE_REPLACE, UPDATE, UPDATE_REPLACE = (
    provider_pb2.PropertyDiff.ADD, provider_pb2.PropertyDiff.ADD_REPLACE, provider_pb2.PropertyDiff.DELETE,
    provider_pb2.PropertyDiff.DELETE_REPLACE, provider_pb2.PropertyDiff.UPDATE,
    provider_pb2.PropertyDiff.UPDATE_REPLACE)
AS_REPLACE = {ADD: ADD_REPLACE, DELETE: DELETE_REPLACE, UPDATE: UPDATE_REPLACE,
              ADD_REPLACE: ADD_REPLACE, DELETE_REPLACE: DELETE_REPLACE, UPDATE_REPLACE: UPDATE_REPLACE}


def _has_value(v: Any) -> bool:  # PropertyValue.HasValue: anything but null
    return v is not None


def deep_equals(a: Any, b: Any) -> bool:
    """properties_diff.go PropertyValue.DeepEquals (v3.224.0)."""
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(deep_equals(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if not isinstance(b, dict):
            return False
        for k, v in a.items():
            if k in b:
                if not deep_equals(v, b[k]):
                    return False
            elif _has_value(v):
                return False
        return not any(k not in a and _has_value(v) for k, v in b.items())
    if isinstance(a, Secret):
        return isinstance(b, Secret) and deep_equals(a.value, b.value)
    if a is UNKNOWN:  # computed values compare their (always empty-string) elements: equal
        return b is UNKNOWN
    if b is UNKNOWN or isinstance(b, (Secret, list, dict)):
        return False
    return type(a) is type(b) and a == b  # `v.V == other.V` on interface values: same dynamic type


def _requires_quote(c: str) -> bool:  # properties_path.go requiresQuote
    return not (("A" <= c <= "Z") or ("a" <= c <= "z") or ("0" <= c <= "9") or c == "_")


def format_path(path: Iterable[Any]) -> str:
    """properties_path.go PropertyPath.String."""
    out = []
    for i, k in enumerate(path):
        if isinstance(k, int):
            out.append(f"[{k}]")
            continue
        quoted = any(_requires_quote(c) for c in k)
        if quoted:
            out.append('["' + k.replace('"', '\\"') + '"]')
        else:
            out.append(k if i == 0 else "." + k)
    return "".join(out)


def _value_diff(old: Any, new: Any, prefix: list, acc: dict[str, int]) -> bool:
    """PropertyValue.diff + valueDiffToDetailedDiff: records leaf changes under `prefix`; False if equal."""
    if isinstance(old, list) and isinstance(new, list):
        changed = False
        for i in range(len(old), len(new)):
            acc[format_path(prefix + [i])] = ADD
            changed = True
        for i in range(len(new), len(old)):
            acc[format_path(prefix + [i])] = DELETE
            changed = True
        for i in range(min(len(old), len(new))):
            changed |= _value_diff(old[i], new[i], prefix + [i], acc)
        return changed
    if isinstance(old, dict) and isinstance(new, dict):
        return _object_diff(old, new, prefix, acc)
    if deep_equals(old, new):
        return False
    if old is None and new is not None:
        acc[format_path(prefix)] = ADD
    elif old is not None and new is None:
        acc[format_path(prefix)] = DELETE
    else:
        acc[format_path(prefix)] = UPDATE
    return True


def _object_diff(olds: Mapping[str, Any], news: Mapping[str, Any], prefix: list, acc: dict[str, int]) -> bool:
    """PropertyMap.diff + objectDiffToDetailedDiff."""
    changed = False
    for k, old in olds.items():
        if k in news:
            new = news[k]
            sub: dict[str, int] = {}
            if _value_diff(old, new, prefix + [k], sub):
                changed = True
                if not _has_value(old):
                    acc[format_path(prefix + [k])] = ADD
                elif not _has_value(new):
                    acc[format_path(prefix + [k])] = DELETE
                else:
                    acc.update(sub)
        elif _has_value(old):
            acc[format_path(prefix + [k])] = DELETE
            changed = True
    for k, new in news.items():
        if k not in olds and _has_value(new):
            acc[format_path(prefix + [k])] = ADD
            changed = True
    return changed


def object_diff(olds: Mapping[str, Any], news: Mapping[str, Any]) -> tuple[bool, dict[str, int]]:
    """(any changes, detailed diff path -> PropertyDiff kind), as NewDetailedDiffFromObjectDiff."""
    acc: dict[str, int] = {}
    changed = _object_diff(olds, news, [], acc)
    return changed, acc


def path_head(path: str) -> str:
    """The top-level property of a detailed diff path (pulumi-go-provider provider.go DiffResponse.rpc)."""
    if path.startswith('["'):
        end = path.index('"]')
        return path[2:end].replace('\\"', '"')
    for i, c in enumerate(path):
        if c in ".[":
            return path[:i]
    return path


@dataclasses.dataclass
class DiffResult:
    changes: bool
    detailed: dict[str, int]  # path -> kind
    delete_before_replace: bool = False

    def to_rpc(self) -> provider_pb2.DiffResponse:
        """pulumi-go-provider provider.go DiffResponse.rpc: replaces/diffs are the heads of the paths."""
        replaces, diffs = set(), set()
        for path, kind in self.detailed.items():
            head = path_head(path)
            diffs.add(head)
            if kind in (ADD_REPLACE, DELETE_REPLACE, UPDATE_REPLACE):
                replaces.add(head)
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if self.changes else provider_pb2.DiffResponse.DIFF_NONE,
            replaces=sorted(replaces), diffs=sorted(diffs), deleteBeforeReplace=self.delete_before_replace,
            detailedDiff={p: provider_pb2.PropertyDiff(kind=k, inputDiff=False) for p, k in self.detailed.items()},
            hasDetailedDiff=True)


# ----------------------------------------------------------------------------------------------------------
# Go formatting helpers


def go_quote(s: str) -> str:
    """Go's strconv.Quote (the `%q` verb) for a valid UTF-8 string."""
    out = ['"']
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
               "\\": "\\\\", '"': '\\"'}
    for c in s:
        if c in escapes:
            out.append(escapes[c])
        elif c == " " or c.isprintable():
            out.append(c)
        elif ord(c) < 0x80:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


# ----------------------------------------------------------------------------------------------------------
# The engine's log service (pulumirpc.Engine/Log): how a provider's diagnostics reach the user


class EngineLog:
    def __init__(self, address: Optional[str]):
        self._address = address
        self._stub: Optional[engine_pb2_grpc.EngineStub] = None
        self._lock = threading.Lock()

    def attach(self, address: str) -> None:
        with self._lock:
            self._address, self._stub = address, None

    def log(self, severity: str, message: str, urn: str = "", ephemeral: bool = False) -> None:
        """Sends to the engine; if it cannot be reached (a test with a dummy address), the message goes to
        stderr, which the engine logs too (plugin.go newPlugin's stderr tracer)."""
        level = getattr(engine_pb2, severity.upper())
        try:
            with self._lock:
                if self._stub is None and self._address:
                    channel = grpc.insecure_channel(self._address)
                    self._stub = engine_pb2_grpc.EngineStub(channel)
                stub = self._stub
            if stub is None:
                raise RuntimeError("no engine address")
            stub.Log(engine_pb2.LogRequest(severity=level, message=message, urn=urn, ephemeral=ephemeral),
                     timeout=5)
        except Exception:  # noqa: BLE001 - logging must never fail the operation
            print(f"[{severity}] {urn} {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class CallContext:
    """What a resource operation gets besides its properties."""
    urn: str
    name: str
    log: EngineLog
    cancelled: threading.Event
    timeout: float = 0.0

    def info_status(self, message: str) -> None:  # pulumi-go-provider Logger.InfoStatus: ephemeral info
        self.log.log("info", message, self.urn, ephemeral=True)

    def warning(self, message: str) -> None:
        self.log.log("warning", message, self.urn)

    def error(self, message: str) -> None:
        self.log.log("error", message, self.urn)


@dataclasses.dataclass
class CheckFailure:
    property: str
    reason: str


class ResourceModel:
    """One resource type of a model provider. Values are plain Python (see decode_struct) with Secret and
    UNKNOWN markers."""
    token: str = ""

    def check(self, ctx: CallContext, olds: dict, news: dict) -> tuple[dict, list[CheckFailure]]:
        raise NotImplementedError

    def diff(self, ctx: CallContext, id_: str, olds: dict, news: dict, old_inputs: dict,
             ignore_changes: list[str]) -> DiffResult:
        raise NotImplementedError

    def create(self, ctx: CallContext, inputs: dict, preview: bool) -> tuple[str, dict]:
        raise NotImplementedError

    def read(self, ctx: CallContext, id_: str, props: dict, inputs: dict) -> tuple[str, dict, dict]:
        raise NotImplementedError

    def update(self, ctx: CallContext, id_: str, olds: dict, news: dict, old_inputs: dict,
               preview: bool) -> dict:
        raise NotImplementedError

    def delete(self, ctx: CallContext, id_: str, props: dict, old_inputs: dict) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        """Stops whatever this resource type runs (the Cancel RPC)."""


def urn_name(urn: str) -> str:
    # urn:pulumi:stack::project::qualified$type::name
    parts = urn.split("::")
    if len(parts) < 4 or not urn.startswith("urn:pulumi:"):
        raise ModelError(f"invalid URN {urn!r}")
    return parts[-1]


def urn_type(urn: str) -> str:
    parts = urn.split("::")
    if len(parts) < 4:
        raise ModelError(f"invalid URN {urn!r}")
    return parts[2].split("$")[-1]


# ----------------------------------------------------------------------------------------------------------
# The ResourceProvider service


class Provider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, package: str, version: str, resources: Iterable[ResourceModel],
                 engine_address: Optional[str], config_keys: frozenset[str] = frozenset({"version"})):
        self.package = package
        self.version = version
        self.resources = {r.token: r for r in resources}
        self.log = EngineLog(engine_address)
        self.config_keys = config_keys
        self.cancelled = threading.Event()
        self.sends_old_inputs = False

    # -- helpers
    def _run(self, context: grpc.ServicerContext, method: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ModelError as e:
            context.abort(grpc.StatusCode.UNKNOWN, str(e))
        except grpc.RpcError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug in the model: say so
            traceback.print_exc(file=sys.stderr)
            context.abort(grpc.StatusCode.INTERNAL, f"model provider {self.package} {method} failed: {e!r}")

    def _resource(self, urn: str, typ: str = "") -> ResourceModel:
        token = typ or urn_type(urn)
        model = self.resources.get(token)
        if model is None:
            raise Unsupported(f"the {self.package} model provider has no resource type {token!r} "
                              f"(it models {', '.join(sorted(self.resources))})")
        return model

    def _ctx(self, urn: str, timeout: float = 0.0) -> CallContext:
        return CallContext(urn=urn, name=urn_name(urn) if urn else "", log=self.log, cancelled=self.cancelled,
                           timeout=timeout)

    @staticmethod
    def _no_timeout(timeout: float) -> None:
        if timeout:
            raise Unsupported("customTimeouts are not supported by the model providers")

    # -- plugin level
    def Handshake(self, request, context):  # noqa: N802
        # provider_plugin.go handshake: UNIMPLEMENTED makes the engine fall back to Configure's answer.
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Handshake is not implemented by the model provider")

    def GetPluginInfo(self, request, context):  # noqa: N802
        return plugin_pb2.PluginInfo(version=self.version)

    def GetSchema(self, request, context):  # noqa: N802
        return provider_pb2.GetSchemaResponse(schema=json.dumps({"name": self.package, "version": self.version}))

    def Attach(self, request, context):  # noqa: N802
        self.log.attach(request.address)
        return empty_pb2.Empty()

    def GetMapping(self, request, context):  # noqa: N802
        return provider_pb2.GetMappingResponse(provider="", data=b"")

    def GetMappings(self, request, context):  # noqa: N802
        return provider_pb2.GetMappingsResponse(providers=[])

    def Cancel(self, request, context):  # noqa: N802
        self.cancelled.set()
        for r in self.resources.values():
            r.cancel()
        return empty_pb2.Empty()

    # -- provider configuration
    def _check_config_keys(self, news: dict) -> list[provider_pb2.CheckFailure]:
        return [provider_pb2.CheckFailure(property=k, reason=f"the {self.package} model provider supports no "
                                          f"configuration key {k!r}") for k in news if k not in self.config_keys]

    def CheckConfig(self, request, context):  # noqa: N802
        def go():
            news = decode_struct(request.news)
            return provider_pb2.CheckResponse(inputs=encode_struct(news), failures=self._check_config_keys(news))
        return self._run(context, "CheckConfig", go)

    def DiffConfig(self, request, context):  # noqa: N802
        def go():
            olds, news = decode_struct(request.old_inputs or request.olds), decode_struct(request.news)
            changed, detailed = object_diff(olds, news)
            return DiffResult(changed, detailed).to_rpc()
        return self._run(context, "DiffConfig", go)

    def Configure(self, request, context):  # noqa: N802
        def go():
            args = decode_struct(request.args)
            bad = [k for k in args if k not in self.config_keys]
            bad += [k for k in request.variables if k.split(":config:")[-1] not in self.config_keys]
            if bad:
                raise Unsupported(f"the {self.package} model provider supports no configuration keys "
                                  f"{sorted(set(bad))}")
            self.sends_old_inputs = request.sends_old_inputs and request.sends_old_inputs_to_delete
            # pulumi-go-provider provider.go Configure and the SDK's providerServer.Configure (bridge): all true.
            return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True,
                                                  acceptOutputs=True)
        return self._run(context, "Configure", go)

    # -- resources
    def Check(self, request, context):  # noqa: N802
        def go():
            model = self._resource(request.urn, request.type)
            inputs, failures = model.check(self._ctx(request.urn), decode_struct(request.olds),
                                           decode_struct(request.news))
            return provider_pb2.CheckResponse(
                inputs=encode_struct(inputs),
                failures=[provider_pb2.CheckFailure(property=f.property, reason=f.reason) for f in failures])
        return self._run(context, "Check", go)

    def Diff(self, request, context):  # noqa: N802
        def go():
            model = self._resource(request.urn, request.type)
            if not self.sends_old_inputs:
                raise Unsupported("the engine did not promise old inputs (ConfigureRequest.sends_old_inputs): "
                                  "the model providers need an engine of 3.89 or later")
            result = model.diff(self._ctx(request.urn), request.id, decode_struct(request.olds),
                                decode_struct(request.news), decode_struct(request.old_inputs),
                                list(request.ignoreChanges))
            return result.to_rpc()
        return self._run(context, "Diff", go)

    def Create(self, request, context):  # noqa: N802
        def go():
            model = self._resource(request.urn, request.type)
            self._no_timeout(request.timeout)
            id_, outputs = model.create(self._ctx(request.urn, request.timeout), decode_struct(request.properties),
                                        request.preview)
            return provider_pb2.CreateResponse(id=id_, properties=encode_struct(outputs))
        return self._run(context, "Create", go)

    def Read(self, request, context):  # noqa: N802
        def go():
            model = self._resource(request.urn, request.type)
            id_, props, inputs = model.read(self._ctx(request.urn), request.id, decode_struct(request.properties),
                                            decode_struct(request.inputs))
            return provider_pb2.ReadResponse(id=id_, properties=encode_struct(props), inputs=encode_struct(inputs))
        return self._run(context, "Read", go)

    def Update(self, request, context):  # noqa: N802
        def go():
            model = self._resource(request.urn, request.type)
            self._no_timeout(request.timeout)
            if request.ignoreChanges:
                raise Unsupported("ignoreChanges on Update is not supported by the model providers")
            outputs = model.update(self._ctx(request.urn, request.timeout), request.id, decode_struct(request.olds),
                                   decode_struct(request.news), decode_struct(request.old_inputs), request.preview)
            return provider_pb2.UpdateResponse(properties=encode_struct(outputs))
        return self._run(context, "Update", go)

    def Delete(self, request, context):  # noqa: N802
        def go():
            model = self._resource(request.urn, request.type)
            self._no_timeout(request.timeout)
            model.delete(self._ctx(request.urn, request.timeout), request.id, decode_struct(request.properties),
                         decode_struct(request.old_inputs))
            return empty_pb2.Empty()
        return self._run(context, "Delete", go)


# ----------------------------------------------------------------------------------------------------------
# The plugin process


def _parse_args(argv: list[str]) -> str:
    """plugin.go buildPluginArguments: [--logtostderr] [-v=N] [--tracing ENDPOINT] ENGINE_ADDRESS."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--logtostderr", action="store_true")
    parser.add_argument("--logflow", action="store_true")
    parser.add_argument("-v", dest="verbose")
    parser.add_argument("--tracing")
    parser.add_argument("engine_address")
    args, rest = parser.parse_known_args(argv)
    if rest:
        parser.error(f"unknown arguments {rest}")
    return args.engine_address


def serve(package: str, version: str, resources: Iterable[ResourceModel],
          argv: Optional[list[str]] = None) -> None:
    """Starts the gRPC server on 127.0.0.1, prints its port and a newline, serves until killed."""
    # The launcher had to set PYTHONPATH to find this package: give the commands we run the caller's value.
    if _PARENT_PYTHONPATH in os.environ:
        os.environ["PYTHONPATH"] = os.environ.pop(_PARENT_PYTHONPATH)
    elif os.environ.pop(_PYTHONPATH_UNSET, None) == "1":
        os.environ.pop("PYTHONPATH", None)
    engine_address = _parse_args(sys.argv[1:] if argv is None else argv)
    provider = Provider(package, version, resources, engine_address)
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=256),
                         options=[("grpc.max_receive_message_length", 400 * 1024 * 1024),
                                  ("grpc.max_send_message_length", 400 * 1024 * 1024)])
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(provider, server)
    port = server.add_insecure_port("127.0.0.1:0")
    if not port:
        print("could not bind a port on 127.0.0.1", file=sys.stderr)
        sys.exit(1)
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()

    def stop(signum, frame):  # noqa: ARG001
        provider.Cancel(None, None)
        server.stop(grace=0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.wait_for_termination()


def plugin_version(distribution: str) -> str:
    """The version in the installed SDK's pulumi-plugin.json (e.g. pulumi_command/pulumi-plugin.json)."""
    import importlib.util
    spec = importlib.util.find_spec(distribution)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"the {distribution} Python package is not installed (requirements.txt)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "pulumi-plugin.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)["version"]
