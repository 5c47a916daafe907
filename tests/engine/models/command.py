"""A model of pulumi-command 1.2.1's provider plugin (`command:remote:Command`, `command:local:Command`).

Its provider module is not served by the Go module proxy here, so the tests run this instead. Written from
pulumi/pulumi-command v1.2.1 `provider/pkg/provider` (files cited at each behaviour) and at least as strict:
inputs it does not model fail the operation with a message that says so, instead of being ignored.

    python -m tests.engine.models.command ENGINE_ADDRESS     # as the engine starts a plugin
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import subprocess
import tempfile
import time
from typing import Any, Optional

from pulumi.runtime.proto import provider_pb2

from .server import UNKNOWN, Model, ModelError, Secret, from_struct, has_unknowns, reveal, serve, to_struct

VERSION = "1.2.1"
REMOTE = "command:remote:Command"
LOCAL = "command:local:Command"

# common/inputs.go ResourceInputs; remote/command.go and local/command.go add their own.
COMMON_INPUTS = {"triggers", "create", "update", "delete"}
REMOTE_INPUTS = COMMON_INPUTS | {"stdin", "logging", "connection", "environment", "addPreviousOutputInEnv"}
LOCAL_INPUTS = COMMON_INPUTS | {"stdin", "logging", "dir", "environment", "interpreter", "addPreviousOutputInEnv",
                                "assetPaths", "archivePaths"}
CONNECTION_KEYS = {"user", "password", "host", "port", "privateKey", "privateKeyPassword", "agentSocketPath",
                   "dialErrorLimit", "perDialTimeout", "hostKey", "proxy"}
# remote/connection.go Connection.Annotate: the defaults infer applies in Check.
CONNECTION_DEFAULTS = {"user": "root", "port": 22, "dialErrorLimit": 10, "perDialTimeout": 15}
# Modelled only as far as the program needs; the rest fails loudly.
UNMODELLED_CONNECTION = ("password", "privateKeyPassword", "agentSocketPath", "hostKey", "proxy")
# The SDK's retry.Until defaults (sdk/go/common/util/retry/until.go), used by remote/connection.go dialWithRetry.
FIRST_PAUSE, PAUSE_GROWTH, LONGEST_PAUSE = 0.1, 1.5, 5.0


class CommandModel(Model):
    name = "command"
    version = VERSION

    # -- check ------------------------------------------------------------------------------------

    def Check(self, request, context):  # noqa: N802
        try:
            inputs = self._check(request.urn, from_struct(request.news))
        except ModelError as error:
            return provider_pb2.CheckResponse(failures=[provider_pb2.CheckFailure(property="", reason=str(error))])
        return provider_pb2.CheckResponse(inputs=to_struct(inputs))

    def _check(self, urn: str, news: dict[str, Any]) -> dict[str, Any]:
        kind = _type_of(urn)
        allowed = REMOTE_INPUTS if kind == REMOTE else LOCAL_INPUTS
        unknown = sorted(set(news) - allowed)
        if unknown:
            raise ModelError(f"{kind}: unknown inputs {unknown}")
        if kind == REMOTE:
            if "connection" not in news:
                raise ModelError("missing required property 'connection'")
            connection = reveal(news["connection"])
            if not has_unknowns(connection):
                extra = sorted(set(connection) - CONNECTION_KEYS)
                if extra:
                    raise ModelError(f"connection: unknown keys {extra}")
                if "host" not in connection:
                    raise ModelError("connection: missing required property 'host'")
                for key in UNMODELLED_CONNECTION:
                    if connection.get(key) is not None:
                        raise ModelError(f"connection.{key}: not modelled by the test double of pulumi-command; "
                                         "use privateKey")
                if connection.get("privateKey") is None:
                    raise ModelError("connection: the test double of pulumi-command needs privateKey (agent and "
                                     "password authentication are not modelled)")
                merged = {**CONNECTION_DEFAULTS, **{k: v for k, v in connection.items() if v is not None}}
                # The connection is a secret input as a whole (remote/command.go: provider:"secret").
                news = {**news, "connection": Secret(merged)}
            if news.get("environment"):
                # remote/commandOutputs.go run: a refused Setenv is an error; the OpenSSH client cannot tell.
                raise ModelError("environment: not modelled for remote commands by the test double")
        else:
            for key in ("interpreter", "assetPaths", "archivePaths"):
                if news.get(key) is not None:
                    raise ModelError(f"{key}: not modelled for local commands by the test double")
        return news

    # -- diff (pulumi-go-provider infer: changed inputs update; replaceOnChanges inputs replace) ------

    def Diff(self, request, context):  # noqa: N802
        olds = from_struct(request.olds)
        news = from_struct(request.news)
        kind = _type_of(request.urn)
        keys = REMOTE_INPUTS if kind == REMOTE else LOCAL_INPUTS
        changed = sorted(k for k in keys if reveal(olds.get(k)) != reveal(news.get(k)))
        # common/inputs.go: `triggers` carries provider:"replaceOnChanges".
        replaces = [k for k in changed if k == "triggers"]
        detailed = {
            k: provider_pb2.PropertyDiff(
                kind=(provider_pb2.PropertyDiff.UPDATE_REPLACE if k in replaces else provider_pb2.PropertyDiff.UPDATE)
                if k in olds and k in news else
                (provider_pb2.PropertyDiff.ADD_REPLACE if k in replaces else provider_pb2.PropertyDiff.ADD)
                if k in news else
                (provider_pb2.PropertyDiff.DELETE_REPLACE if k in replaces else provider_pb2.PropertyDiff.DELETE),
                inputDiff=True)
            for k in changed
        }
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE,
            replaces=replaces, diffs=changed, detailedDiff=detailed, hasDetailedDiff=True,
        )

    # -- create / update / delete / read (remote/commandController.go, local/commandController.go) --

    def Create(self, request, context):  # noqa: N802
        props = from_struct(request.properties)
        # resource.NewUniqueHex(name, 8, 0): the name and 8 random hex digits.
        resource_id = request.urn.rsplit("::", 1)[-1] + secrets.token_hex(4)
        if request.preview:
            return provider_pb2.CreateResponse(id=resource_id, properties=to_struct(
                {**props, "stdout": UNKNOWN, "stderr": UNKNOWN}))
        outputs = dict(props)
        if props.get("create") is not None:
            try:
                outputs.update(self._run(request.urn, props, props["create"], previous=None))
            except ModelError as error:
                self._fail(context, error)
        return provider_pb2.CreateResponse(id=resource_id, properties=to_struct(outputs))

    def Update(self, request, context):  # noqa: N802
        olds = from_struct(request.olds)
        news = from_struct(request.news)
        previous = {"stdout": olds.get("stdout", ""), "stderr": olds.get("stderr", "")}
        outputs = {**news, **previous}
        if request.preview:
            return provider_pb2.UpdateResponse(properties=to_struct(outputs))
        command = news.get("update") if news.get("update") is not None else news.get("create")
        if command is not None:
            try:
                outputs.update(self._run(request.urn, news, command, previous=previous))
            except ModelError as error:
                self._fail(context, error)
        return provider_pb2.UpdateResponse(properties=to_struct(outputs))

    def Delete(self, request, context):  # noqa: N802
        props = from_struct(request.properties)
        if props.get("delete") is not None:
            try:
                self._run(request.urn, props, props["delete"],
                          previous={"stdout": props.get("stdout", ""), "stderr": props.get("stderr", "")})
            except ModelError as error:
                self._fail(context, error)
        from google.protobuf import empty_pb2
        return empty_pb2.Empty()

    def Read(self, request, context):  # noqa: N802
        return provider_pb2.ReadResponse(id=request.id, properties=request.properties, inputs=request.inputs)

    def _run(self, urn: str, props: dict[str, Any], command: str, previous: Optional[dict[str, str]]) -> dict[str, str]:
        env_previous = previous if props.get("addPreviousOutputInEnv", True) is not False else None
        if _type_of(urn) == REMOTE:
            return run_remote(reveal(props["connection"]), command, props.get("stdin"), env_previous)
        return run_local(command, props.get("dir"), reveal(props.get("environment") or {}), props.get("stdin"),
                         env_previous)


def _type_of(urn: str) -> str:
    kind = urn.split("::")[-2].split("$")[-1]
    if kind not in (REMOTE, LOCAL):
        raise ModelError(f"{kind}: not a resource of the pulumi-command model")
    return kind


def _failure(error: str, command: str, output: str) -> ModelError:
    # remote/commandOutputs.go run: fmt.Errorf("%w: running %q:\n%s", err, cmd, stdout and stderr)
    return ModelError(f"{error}: running {json.dumps(command)}:\n{output}")


def _outputs(stdout: str, stderr: str) -> dict[str, str]:
    # Both trimmed of one trailing newline (strings.TrimSuffix(..., "\n")).
    return {"stdout": stdout[:-1] if stdout.endswith("\n") else stdout,
            "stderr": stderr[:-1] if stderr.endswith("\n") else stderr}


def run_local(command: str, directory: Optional[str], environment: dict[str, str], stdin: Optional[str],
              previous: Optional[dict[str, str]]) -> dict[str, str]:
    """local/commandOutputs.go run: `/bin/sh -c COMMAND` in `dir`, the provider's environment plus the
    given one (and the previous outputs as PULUMI_COMMAND_STDOUT/STDERR)."""
    env = {**os.environ, **environment}
    if previous:
        env.update({k: v for k, v in (("PULUMI_COMMAND_STDOUT", previous.get("stdout", "")),
                                      ("PULUMI_COMMAND_STDERR", previous.get("stderr", ""))) if v})
    result = subprocess.run(["/bin/sh", "-c", command], cwd=directory or None, env=env, input=stdin or None,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise _failure(f"exit status {result.returncode}", command, result.stdout + result.stderr)
    return _outputs(result.stdout, result.stderr)


def dial_pauses(limit: int) -> list[float]:
    """The pauses between dials: retry.Until starts at 100 ms, grows 1.5x, at most 5 s."""
    pauses, pause = [], FIRST_PAUSE
    for _ in range(max(limit, 0)):
        pauses.append(min(pause, LONGEST_PAUSE))
        pause *= PAUSE_GROWTH
    return pauses


def run_remote(connection: dict[str, Any], command: str, stdin: Optional[str],
               previous: Optional[dict[str, str]]) -> dict[str, str]:
    """remote/connection.go Dial (ssh.Dial with retries) then commandOutputs.go run (session.Run of the
    command string: the login shell runs it), with the OpenSSH client over one master connection."""
    host, user = connection["host"], connection["user"]
    port, limit, per_dial = int(connection["port"]), int(connection["dialErrorLimit"]), int(connection["perDialTimeout"])
    with tempfile.TemporaryDirectory(prefix="ha-lb-command-model-") as scratch:
        key = pathlib.Path(scratch, "key")
        key.write_text(connection["privateKey"])
        key.chmod(0o600)
        socket = pathlib.Path(scratch, "control")
        base = ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", f"ControlPath={socket}"]
        if per_dial > 0:
            base += ["-o", f"ConnectTimeout={per_dial}"]
        # dialWithRetry: a failed dial (connect or authentication) is retried until the failures exceed
        # dialErrorLimit (-1: forever), then "after N failed attempts: ERR".
        pauses, failures = dial_pauses(limit if limit >= 0 else 10**9), 0
        while True:
            dial = subprocess.run(base + ["-M", "-N", "-f", f"{user}@{host}"], capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL)
            if dial.returncode == 0:
                break
            failures += 1
            if limit >= 0 and failures > limit:
                raise ModelError(f"after {failures - 1} failed attempts: {dial.stderr.strip() or 'dial failed'}")
            time.sleep(pauses[failures - 1])
        try:
            options = []
            if previous:
                # Sent optimistically; the original only warns when the server refuses them.
                for name, value in (("PULUMI_COMMAND_STDOUT", previous.get("stdout", "")),
                                    ("PULUMI_COMMAND_STDERR", previous.get("stderr", ""))):
                    if value:
                        options += ["-o", f"SetEnv={name}={json.dumps(value)}"]
            result = subprocess.run(base + options + [f"{user}@{host}", command], input=stdin or "",
                                    capture_output=True, text=True)
        finally:
            subprocess.run(base + ["-O", "exit", f"{user}@{host}"], capture_output=True, text=True)
        if result.returncode != 0:
            status = "Process exited with status" if result.returncode != 255 else "wait: remote command exited without exit status or exit signal"
            raise _failure(f"{status} {result.returncode}" if result.returncode != 255 else status, command,
                           result.stdout + result.stderr)
        return _outputs(result.stdout, result.stderr)


if __name__ == "__main__":
    serve(CommandModel())
