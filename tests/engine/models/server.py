"""The plugin side of Pulumi's resource provider protocol, for the provider models in this package.

A plugin is started by the engine with its flags and, last, the engine's address; it serves gRPC on a
port of its own and prints that port on stdout (pulumi sdk/go/common/resource/plugin/plugin.go
execPlugin/newPlugin read it from there). Values cross the wire as protobuf Structs with Pulumi's sentinels
for secrets and unknowns (sdk/go/common/resource/plugin/rpc.go MarshalPropertyValue).
"""

from __future__ import annotations

import sys
from concurrent import futures
from typing import Any, Callable

import grpc
from google.protobuf import empty_pb2, struct_pb2
from google.protobuf import json_format
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


class Secret:
    """A value that arrived as a secret and must leave as one."""

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __repr__(self) -> str:
        return "Secret(...)"


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SIG) == SECRET_SIG:
            return Secret(decode(value.get("value")))
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def encode(value: Any) -> Any:
    if isinstance(value, Secret):
        return {SIG: SECRET_SIG, "value": encode(value.value)}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encode(v) for v in value]
    return value


def reveal(value: Any) -> Any:
    """The plain value, secrets unwrapped (for using it, never for returning it)."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def has_unknowns(value: Any) -> bool:
    value = reveal(value)
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(has_unknowns(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unknowns(v) for v in value)
    return False


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return decode(json_format.MessageToDict(struct)) if struct is not None else {}


def to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(encode(value))
    return struct


class ModelError(Exception):
    """A failure the original would report: its message goes back to the engine as the operation's error."""


class Model(provider_pb2_grpc.ResourceProviderServicer):
    """Base servicer: a name, a version and resource types, each with check/diff/create/update/delete."""

    name = ""
    version = ""

    def GetPluginInfo(self, request, context):  # noqa: N802 (gRPC method names)
        return plugin_pb2.PluginInfo(version=self.version)

    def GetSchema(self, request, context):  # noqa: N802
        return provider_pb2.GetSchemaResponse(schema=f'{{"name": "{self.name}", "version": "{self.version}"}}')

    def CheckConfig(self, request, context):  # noqa: N802
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request, context):  # noqa: N802
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    def Configure(self, request, context):  # noqa: N802
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True,
                                              acceptOutputs=False)

    def Cancel(self, request, context):  # noqa: N802
        return empty_pb2.Empty()

    def GetMapping(self, request, context):  # noqa: N802
        return provider_pb2.GetMappingResponse(provider="", data=b"")

    def GetMappings(self, request, context):  # noqa: N802
        return provider_pb2.GetMappingsResponse(providers=[])

    def Attach(self, request, context):  # noqa: N802
        return empty_pb2.Empty()

    def _fail(self, context, error: Exception) -> None:
        context.abort(grpc.StatusCode.UNKNOWN, str(error))


def serve(model: Model) -> None:
    """Start serving `model` and announce the port as the engine expects; serve until killed."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)])
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(model, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    server.wait_for_termination()


Handler = Callable[..., Any]
