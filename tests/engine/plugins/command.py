"""Model of the pulumi-command 1.2.1 provider plugin: `command:local:Command` and `command:remote:Command`.

Run as `python -m tests.engine.plugins.command [engine flags] ENGINE_ADDRESS` (tests/engine/plugins/__init__.py
installs a launcher). Sources (github.com/pulumi/pulumi-command tag v1.2.1, provider/pkg/provider/...; the
infer framework github.com/pulumi/pulumi-go-provider v1.3.0, the version its go.mod requires):

- common/inputs.go ResourceInputs: triggers (replaceOnChanges), create, update, delete.
- local/base.go BaseInputs: stdin, logging, interpreter, dir, environment, assetPaths, archivePaths,
  addPreviousOutputInEnv; BaseOutputs: stdout, stderr (+ assets, archive: not supported here).
- remote/command.go CommandInputs: stdin, logging, connection (required, provider:"secret"), environment,
  addPreviousOutputInEnv. remote/connection.go Connection / connectionBase and Annotate (defaults: user root,
  port 22, dialErrorLimit 10, perDialTimeout 15), proxy (remote/proxyConnection.go).
- local/commandController.go and remote/commandController.go Create / Update / Delete.
- local/commandOutputs.go run and remote/commandOutputs.go CommandOutputs.run: how a command runs, its
  environment, the error text, stdout/stderr without one trailing newline.
- remote/connection.go Dial / dialWithRetry / reachedDialingErrorLimit with pulumi sdk
  go/common/util/retry/until.go Until (v3.224.0): the dial retry schedule.
- pulumi-go-provider infer/resource.go derivedResourceController Check / Diff / Create / Update / Delete and
  fieldGenerator MarkMap (markComputed, markSecret), infer/apply_secrets.go, infer/apply_defaults.go; the
  decoding errors of pulumi sdk go/common/util/mapper (errors.go, mapper_decode.go).

Remote commands run with the OpenSSH client (the original uses golang.org/x/crypto/ssh): one `ssh -M -N`
control master per run is the "dial" (TCP, key exchange and authentication, retried exactly like
dialWithRetry), then one `ssh -S` session sends the command string as the exec request (session.Run: the
server's login shell runs it with -c). What the model cannot do as the original does fails with an error:
password, keyboard-interactive and agent authentication, proxy (bastion) connections, encrypted private
keys, RSA host keys, SSH environment requests (the OpenSSH client cannot tell whether the server refused
them, and the original errors or warns on refusal), assetPaths/archivePaths, customTimeouts.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, Optional

from .server import (
    UNKNOWN, AS_REPLACE, CallContext, CheckFailure, DiffResult, ModelError, ResourceModel, Secret, Unsupported,
    contains_unknowns, deep_equals, go_quote, is_unknown, make_secret, object_diff, plugin_version, serve, unsecret,
)

PACKAGE = "command"
VERSION = plugin_version("pulumi_command")

# util/util.go
PULUMI_COMMAND_STDOUT = "PULUMI_COMMAND_STDOUT"
PULUMI_COMMAND_STDERR = "PULUMI_COMMAND_STDERR"

LOGGING_VALUES = ("stdout", "stderr", "stdoutAndStderr", "none")  # local/logging.go Logging.Values

# remote/connection.go: dialErrorDefault, dialErrorUnlimited and the Annotate defaults
DIAL_ERROR_DEFAULT = 10
DIAL_ERROR_UNLIMITED = -1
CONNECTION_DEFAULTS = {"user": "root", "port": 22, "dialErrorLimit": DIAL_ERROR_DEFAULT, "perDialTimeout": 15}

# retry/until.go: DefaultDelay, DefaultBackoff, DefaultMaxDelay (dialWithRetry sets none of them)
RETRY_FIRST_DELAY, RETRY_BACKOFF, RETRY_MAX_DELAY = 0.1, 1.5, 5.0


# ----------------------------------------------------------------------------------------------------------
# Input shapes, checked the way ende.Decode + mapper.Decode do (infer/resource.go decodeCheckingMapErrors)

STRING, BOOL, FLOAT, INT, ANY = "string", "bool", "float64", "int", "interface {}"


def _list(elem: Any) -> tuple:
    return ("list", elem)


def _map(elem: Any) -> tuple:
    return ("map", elem)


def _object(type_name: str, fields: dict, required: frozenset = frozenset(), secret: frozenset = frozenset(),
            defaults: Optional[dict] = None) -> tuple:
    return ("object", type_name, fields, required, secret, defaults or {})


def _connection_fields(with_proxy: bool) -> dict:
    # remote/connection.go connectionBase (+ Connection.Proxy)
    fields = {"user": STRING, "password": STRING, "host": STRING, "port": FLOAT, "privateKey": STRING,
              "privateKeyPassword": STRING, "agentSocketPath": STRING, "dialErrorLimit": INT,
              "perDialTimeout": INT, "hostKey": STRING}
    if with_proxy:
        fields["proxy"] = _object("remote.ProxyConnection", _connection_fields(False), frozenset({"host"}),
                                  frozenset({"password", "privateKey", "privateKeyPassword"}), CONNECTION_DEFAULTS)
    return fields


RESOURCE_INPUTS = {"triggers": _list(ANY), "create": STRING, "update": STRING, "delete": STRING}
LOCAL_INPUTS = _object("local.CommandInputs", {
    **RESOURCE_INPUTS, "stdin": STRING, "logging": ("enum", LOGGING_VALUES), "interpreter": _list(STRING),
    "dir": STRING, "environment": _map(STRING), "assetPaths": _list(STRING), "archivePaths": _list(STRING),
    "addPreviousOutputInEnv": BOOL})
CONNECTION = _object("remote.Connection", _connection_fields(True), frozenset({"host"}),
                     frozenset({"password", "privateKey", "privateKeyPassword"}), CONNECTION_DEFAULTS)
REMOTE_INPUTS = _object("remote.CommandInputs", {
    **RESOURCE_INPUTS, "stdin": STRING, "logging": ("enum", LOGGING_VALUES), "connection": CONNECTION,
    "environment": _map(STRING), "addPreviousOutputInEnv": BOOL},
    required=frozenset({"connection"}), secret=frozenset({"connection"}))


def _type_of(value: Any) -> str:  # reflect type names as the mapper prints them
    return {bool: "bool", float: "float64", str: "string", list: "[]interface {}",
            dict: "map[string]interface {}"}.get(type(value), type(value).__name__)


def _check_value(shape: Any, value: Any, owner: str, key: str, failures: list[CheckFailure]) -> Any:
    """Validates `value` against `shape`; returns it with defaults and secrets applied (markers kept)."""
    if is_unknown(value):
        return value  # ende tracks computed values: they decode as zero values
    if isinstance(value, Secret):
        return Secret(_check_value(shape, value.value, owner, key, failures))

    def wrong(expect: str) -> Any:
        # mapper/errors.go NewWrongTypeError
        failures.append(CheckFailure(key, f"Field '{key}' on '{owner}' must be a '{expect}'; "
                                          f"got '{_type_of(value)}' instead"))
        return value

    if shape == ANY:
        return value
    if shape == STRING:
        return value if isinstance(value, str) else wrong("string")
    if shape == BOOL:
        return value if isinstance(value, bool) else wrong("bool")
    if shape == FLOAT:
        return value if isinstance(value, float) else wrong("float64")
    if shape == INT:
        if not isinstance(value, float):
            return wrong("int")
        if value != int(value):  # the mapper would truncate; the model refuses
            failures.append(CheckFailure(key, f"Field '{key}' on '{owner}' must be a whole number; got {value}"))
        return value
    kind = shape[0]
    if kind == "enum":
        if not isinstance(value, str):
            return wrong("string")
        if value not in shape[1]:
            failures.append(CheckFailure(key, f"Field '{key}' on '{owner}' must be one of {list(shape[1])}; "
                                              f"got {value!r}"))
        return value
    if kind == "list":
        if not isinstance(value, list):
            return wrong("[]" + (shape[1] if isinstance(shape[1], str) else "struct"))
        return [_check_value(shape[1], v, owner, key, failures) for v in value]
    if kind == "map":
        if not isinstance(value, dict):
            return wrong("map[string]" + shape[1])
        return {k: _check_value(shape[1], v, owner, key, failures) for k, v in value.items()}
    if kind == "object":
        if not isinstance(value, dict):
            return wrong(shape[1])
        return _check_object(shape, value, failures)
    raise ModelError(f"internal error: unknown shape {shape!r}")


def _check_object(shape: tuple, value: dict, failures: list[CheckFailure]) -> dict:
    _, type_name, fields, required, secret_fields, defaults = shape
    out = {}
    for key, v in value.items():
        if key not in fields:
            failures.append(CheckFailure(key, f"Unrecognized field '{key}' on '{type_name}'"))  # mapper_decode.go
            out[key] = v
            continue
        checked = _check_value(fields[key], v, type_name, key, failures)
        out[key] = make_secret(checked) if key in secret_fields else checked  # apply_secrets.go secretsWalker
    for key in required:
        if key not in value:
            failures.append(CheckFailure(key, f"Missing required field '{key}' on '{type_name}'"))
    for key, default in defaults.items():  # apply_defaults.go: Annotator.SetDefault values for unset fields
        if key not in out:
            out[key] = default
    return out


# ----------------------------------------------------------------------------------------------------------
# Output capture shared by local and remote runs (util.LogOutput, util.ConcurrentWriter)


class _Capture:
    """stdout, stderr and their interleaving (stdouterrbuf, for error messages); logs each line as the
    original does (InfoStatus lines via util.LogOutput) when `logging` asks for that stream."""

    def __init__(self, ctx: CallContext, logging: Optional[str]):
        self.ctx = ctx
        self.stdout, self.stderr, self.both = bytearray(), bytearray(), bytearray()
        self.lock = threading.Lock()
        self.log_stdout = logging is None or logging in ("stdout", "stdoutAndStderr")  # Logging.ShouldLogStdout
        self.log_stderr = logging is None or logging in ("stderr", "stdoutAndStderr")  # Logging.ShouldLogStderr
        self.pending = bytearray()

    def _pump(self, stream, own: bytearray, log: bool) -> None:
        while True:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            with self.lock:
                own.extend(chunk)
                self.both.extend(chunk)
                if log:
                    self.pending.extend(chunk)
                    while b"\n" in self.pending:
                        line, _, rest = bytes(self.pending).partition(b"\n")
                        self.pending = bytearray(rest)
                        self.ctx.info_status(line.rstrip(b"\r").decode("utf-8", "replace"))

    def start(self, proc: subprocess.Popen) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._pump, args=(proc.stdout, self.stdout, self.log_stdout), daemon=True),
                   threading.Thread(target=self._pump, args=(proc.stderr, self.stderr, self.log_stderr), daemon=True)]
        for t in threads:
            t.start()
        return threads

    def finish(self, threads: list[threading.Thread]) -> None:
        for t in threads:
            t.join()
        if self.pending:
            self.ctx.info_status(bytes(self.pending).rstrip(b"\r").decode("utf-8", "replace"))
            self.pending = bytearray()

    @staticmethod
    def _text(data: bytearray, what: str) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            # A Go string that is not UTF-8 cannot go into the gRPC Struct (structpb): the original fails too.
            raise ModelError(f"the command's {what} is not valid UTF-8; it cannot be returned as a property")

    def outputs(self) -> tuple[str, str]:
        out, err = self._text(self.stdout, "stdout"), self._text(self.stderr, "stderr")
        # commandOutputs.go: strings.TrimSuffix(buf.String(), "\n")
        return out[:-1] if out.endswith("\n") else out, err[:-1] if err.endswith("\n") else err

    def combined(self) -> str:
        return self.both.decode("utf-8", "replace")


def _go_signal_name(signum: int) -> str:
    """Go's syscall.Signal.String (lower-case names, the same words as strsignal(3) on Linux)."""
    try:
        return (signal.strsignal(signum) or f"signal {signum}").lower()
    except ValueError:
        return f"signal {signum}"


class _Processes:
    """Children of running operations, so Cancel can kill them (exec.CommandContext on a cancelled ctx)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: set[subprocess.Popen] = set()

    def add(self, proc: subprocess.Popen) -> None:
        with self.lock:
            self.running.add(proc)

    def discard(self, proc: subprocess.Popen) -> None:
        with self.lock:
            self.running.discard(proc)

    def kill_all(self) -> None:
        with self.lock:
            for proc in list(self.running):
                if proc.poll() is None:
                    proc.kill()


# ----------------------------------------------------------------------------------------------------------
# local:Command


def _feed_and_wait(proc: subprocess.Popen, procs: _Processes, capture: "_Capture", stdin: Optional[str]) -> int:
    """Streams the command's output into `capture`, writes its stdin (if any) and waits for its exit code."""
    procs.add(proc)
    try:
        threads = capture.start(proc)
        if stdin:
            try:
                proc.stdin.write(stdin.encode("utf-8"))
            except BrokenPipeError:
                pass
            finally:
                proc.stdin.close()
        rc = proc.wait()
        capture.finish(threads)
    finally:
        procs.discard(proc)
    return rc


def _run_local(ctx: CallContext, procs: _Processes, command: str, inputs: dict, prev_stdout: str,
               prev_stderr: str) -> tuple[str, str]:
    """local/commandOutputs.go run."""
    interpreter = inputs.get("interpreter")
    # "if in.Interpreter != nil && len(*in.Interpreter) > 0": else /bin/sh -c (not Windows)
    args = list(interpreter) + [command] if interpreter else ["/bin/sh", "-c", command]
    cwd = inputs.get("dir") if inputs.get("dir") is not None else os.getcwd()
    env = dict(os.environ)  # cmd.Env = os.Environ()
    env.update(inputs.get("environment") or {})
    add_prev = inputs.get("addPreviousOutputInEnv")
    if add_prev is None or add_prev:  # default true
        if prev_stdout != "":
            env[PULUMI_COMMAND_STDOUT] = prev_stdout
        if prev_stderr != "":
            env[PULUMI_COMMAND_STDERR] = prev_stderr
    stdin = inputs.get("stdin")
    capture = _Capture(ctx, inputs.get("logging"))
    if ctx.cancelled.is_set():
        raise ModelError("context canceled")
    program = args[0]
    if "/" not in program:
        # exec.Command resolves the program with LookPath on the provider's own PATH, not cmd.Env's;
        # argv[0] stays as given
        program = shutil.which(args[0], path=os.environ.get("PATH", ""))
        if program is None:
            raise ModelError(f'exec: "{args[0]}": executable file not found in $PATH: running {go_quote(command)}:\n')
    try:
        proc = subprocess.Popen(args, executable=program, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
    except FileNotFoundError as e:
        # Go: exec: "prog": executable file not found in $PATH / chdir DIR: no such file or directory
        if cwd is not None and not os.path.isdir(cwd):
            err = f"chdir {cwd}: no such file or directory"
        else:
            err = f"fork/exec {program}: no such file or directory"
        raise ModelError(f"{err}: running {go_quote(command)}:\n") from e
    except OSError as e:
        raise ModelError(f"{e.strerror or e}: running {go_quote(command)}:\n") from e
    rc = _feed_and_wait(proc, procs, capture, stdin)
    if rc != 0:
        err = f"exit status {rc}" if rc > 0 else f"signal: {_go_signal_name(-rc)}"  # os.ProcessState.String
        raise ModelError(f"{err}: running {go_quote(command)}:\n{capture.combined()}")
    return capture.outputs()


# ----------------------------------------------------------------------------------------------------------
# remote:Command over OpenSSH

_SSH_BASE = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
_HOST_KEY_TYPES = {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"}


class _Dialed:
    """A live control master: the dialled and authenticated SSH connection (ssh.Client)."""

    def __init__(self, workdir: str, master: subprocess.Popen, common: list[str], destination: list[str]):
        self.workdir, self.master, self.common, self.destination = workdir, master, common, destination

    def close(self) -> None:
        if self.master.poll() is None:
            self.master.terminate()
            try:
                self.master.wait(5)
            except subprocess.TimeoutExpired:
                self.master.kill()
                self.master.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _parse_host_key(text: str) -> str:
    """remote/connection.go SSHConfig: ssh.ParseAuthorizedKey, error "failed to parse host key: ..."."""
    fields = text.strip().split()
    if len(fields) < 2:
        raise ModelError("failed to parse host key: ssh: no key found")
    key_type, blob = fields[0], fields[1]
    try:
        raw = base64.b64decode(blob, validate=True)
        inner_len = int.from_bytes(raw[:4], "big")
        inner_type = raw[4:4 + inner_len].decode("ascii")
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"failed to parse host key: {e}") from e
    if inner_type != key_type:
        raise ModelError("failed to parse host key: ssh: no key found")
    if key_type not in _HOST_KEY_TYPES:
        # HostKeyAlgorithms = [publicKey.Type()]: for RSA that is "ssh-rsa" (SHA-1), which OpenSSH servers
        # refuse by default; the model cannot tell what the original's negotiation would do.
        raise Unsupported(f"hostKey of type {key_type} is not supported by the pulumi-command model "
                          f"(supported: {', '.join(sorted(_HOST_KEY_TYPES))})")
    return f"{key_type} {blob}"


def _ssh_options(conn: dict, workdir: str) -> tuple[list[str], list[str]]:
    """remote/connection.go connectionBase.SSHConfig as OpenSSH options, and the destination arguments."""
    if conn.get("proxy") is not None:
        raise Unsupported("connection.proxy (bastion hosts) is not supported by the pulumi-command model")
    if conn.get("password") is not None:
        raise Unsupported("connection.password (password and keyboard-interactive authentication) is not "
                          "supported by the pulumi-command model: use privateKey")
    if conn.get("agentSocketPath") is not None:
        raise Unsupported("connection.agentSocketPath (SSH agent authentication) is not supported by the "
                          "pulumi-command model: use privateKey")
    if conn.get("privateKeyPassword") is not None:
        raise Unsupported("connection.privateKeyPassword (encrypted private keys) is not supported by the "
                          "pulumi-command model")
    # connection_unix.go tryGetDefaultAgentSocket: with SSH_AUTH_SOCK set the original dials the agent and
    # fails when it cannot; it then offers the agent's keys too. The model checks the socket the same way,
    # but authenticates with privateKey only (never more forgiving than the original).
    agent = os.environ.get("SSH_AUTH_SOCK", "")
    if agent:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(agent)
        except OSError as e:
            raise ModelError(f"dial unix {agent}: connect: {e.strerror or e}") from e
    if conn.get("privateKey") is None:
        raise Unsupported("the pulumi-command model authenticates with connection.privateKey only, and none "
                          "was given")
    key_path = os.path.join(workdir, "id")
    key = conn["privateKey"]
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key if key.endswith("\n") else key + "\n")
    options = [*_SSH_BASE, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", f"IdentityFile={key_path}",
               "-o", "PreferredAuthentications=publickey", "-o", "PasswordAuthentication=no",
               "-o", "KbdInteractiveAuthentication=no", "-o", "GlobalKnownHostsFile=/dev/null"]
    if conn.get("hostKey") is not None:
        # ssh.FixedHostKey(publicKey) with HostKeyAlgorithms [publicKey.Type()]
        line = _parse_host_key(conn["hostKey"])
        known = os.path.join(workdir, "known_hosts")
        with open(known, "w", encoding="utf-8") as f:
            f.write(f"pulumi-command-model-host {line}\n")
        options += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
                    "-o", "HostKeyAlias=pulumi-command-model-host", "-o", f"HostKeyAlgorithms={line.split()[0]}"]
    else:
        options += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]  # InsecureIgnoreHostKey
    timeout = int(conn["perDialTimeout"])
    if timeout < 0:
        raise Unsupported(f"connection.perDialTimeout {timeout}: negative timeouts are not supported by the model")
    if timeout > 0:  # ClientConfig.Timeout; 0 means no limit
        options += ["-o", f"ConnectTimeout={timeout}"]
    port = conn["port"]
    if port != int(port) or not 0 < port < 65536:
        raise ModelError(f"connection.port {port} is not a TCP port")
    destination = ["-p", str(int(port)), "-l", conn["user"], conn["host"]]
    return options, destination


def _dial_once(conn_options: list[str], destination: list[str], workdir: str, attempt: int,
               ctx: CallContext, procs: _Processes) -> tuple[Optional[_Dialed], str]:
    """ssh.Dial: one TCP connection, key exchange and authentication (a control master)."""
    control = os.path.join(workdir, f"c{attempt}")
    common = [*conn_options, "-S", control]
    master = subprocess.Popen(["ssh", *common, "-M", "-N", "-o", "ControlPersist=no", *destination],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    procs.add(master)
    try:
        while True:
            if master.poll() is not None:
                err = master.stderr.read().decode("utf-8", "replace").strip()
                return None, err or f"ssh exited with status {master.returncode}"
            if ctx.cancelled.is_set():
                master.kill()
                master.wait()
                raise ModelError("context canceled")
            if os.path.exists(control):
                check = subprocess.run(["ssh", *common, "-O", "check", *destination], capture_output=True)
                if check.returncode == 0:
                    return _Dialed(workdir, master, common, destination), ""
            time.sleep(0.02)
    finally:
        procs.discard(master)


def _dial(ctx: CallContext, procs: _Processes, conn: dict) -> _Dialed:
    """remote/connection.go Connection.Dial (no proxy) with dialWithRetry and retry.Until."""
    workdir = tempfile.mkdtemp(prefix="pulumi-command-model-")
    try:
        options, destination = _ssh_options(conn, workdir)
        max_attempts = int(conn["dialErrorLimit"])  # getDialErrorLimit
        delay, attempt = RETRY_FIRST_DELAY, 0
        while True:
            delay = min(delay, RETRY_MAX_DELAY)  # "if delay > maxDelay { delay = maxDelay }"
            dialed, err = _dial_once(options, destination, workdir, attempt, ctx, procs)
            if dialed is not None:
                return dialed
            dials = attempt + 1
            if max_attempts > DIAL_ERROR_UNLIMITED and dials > max_attempts:  # reachedDialingErrorLimit
                raise ModelError(f"after {attempt} failed attempts: {err}")
            limit = "inf" if max_attempts == -1 else str(max_attempts)
            ctx.info_status(f"Dial {dials}/{limit} failed: retrying")
            if ctx.cancelled.wait(delay):
                raise ModelError("context canceled")  # ctx.Err()
            delay *= RETRY_BACKOFF
            attempt += 1
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _run_remote(ctx: CallContext, procs: _Processes, command: str, inputs: dict, prev_stdout: str,
                prev_stderr: str) -> tuple[str, str]:
    """remote/commandOutputs.go CommandOutputs.run."""
    conn = unsecret(inputs["connection"])
    if not command:
        raise Unsupported("an empty command string is not supported by the pulumi-command model (the OpenSSH "
                          "client would request a shell instead of an exec)")
    # Checked before dialling: the original would dial first, then fail or warn on the env requests.
    environment = inputs.get("environment") or {}
    if environment:
        raise Unsupported("environment on a remote Command is not supported by the pulumi-command model: the "
                          "original sends SSH env requests and fails when the server refuses them (AcceptEnv), "
                          "which the OpenSSH client cannot detect")
    add_prev = inputs.get("addPreviousOutputInEnv")
    if (add_prev is None or add_prev) and (prev_stdout != "" or prev_stderr != ""):
        raise Unsupported("addPreviousOutputInEnv (default true) with a previous stdout/stderr is not supported "
                          "by the pulumi-command model: the original sends PULUMI_COMMAND_STDOUT/STDERR as SSH env "
                          "requests and warns when the server refuses them, which the OpenSSH client cannot "
                          "detect; set addPreviousOutputInEnv to false")
    dialed = _dial(ctx, procs, conn)
    try:
        stdin = inputs.get("stdin")
        capture = _Capture(ctx, inputs.get("logging"))
        # session.Run(cmd): one exec request with the command string; no pty; stdin empty unless given.
        args = ["ssh", *dialed.common, "-o", "ControlMaster=no", "-T", *([] if stdin else ["-n"]),
                *dialed.destination, "--", command]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        rc = _feed_and_wait(proc, procs, capture, stdin)
        if rc != 0:
            # ssh.ExitError: Waitmsg.String "Process exited with status N" (ssh's own failures are 255 too)
            raise ModelError(f"Process exited with status {rc}: running {go_quote(command)}:\n{capture.combined()}")
        return capture.outputs()
    finally:
        dialed.close()


# ----------------------------------------------------------------------------------------------------------
# The resources (infer.Resource over local.Command / remote.Command)


class _Command(ResourceModel):
    inputs_shape: tuple = ()
    runner: Callable[..., tuple[str, str]]

    def __init__(self) -> None:
        self.procs = _Processes()

    def cancel(self) -> None:
        self.procs.kill_all()

    @property
    def input_keys(self) -> list[str]:
        return list(self.inputs_shape[2])

    def check(self, ctx: CallContext, olds: dict, news: dict) -> tuple[dict, list[CheckFailure]]:
        """infer/resource.go derivedResourceController.Check (no custom Check): decode, defaults, secrets."""
        failures: list[CheckFailure] = []
        inputs = _check_object(self.inputs_shape, news, failures)
        if failures:
            # "If we failed to decode, we apply secrets pro-actively": the inputs with secrets applied.
            return inputs, failures
        for key in ("assetPaths", "archivePaths"):
            if key in inputs:
                raise Unsupported(f"{key} is not supported by the pulumi-command model")
        return inputs, []

    def diff(self, ctx: CallContext, id_: str, olds: dict, news: dict, old_inputs: dict,
             ignore_changes: list[str]) -> DiffResult:
        """infer/resource.go diff: old inputs against new inputs; only a change whose whole path is a
        replaceOnChanges property (`triggers`) is forced to a replace (forceReplace looks the path up in the
        schema's InputProperties). Element changes (`triggers[0]`) stay updates here: the SDK's
        replace_on_changes=["triggers[*]"] makes the engine replace for them."""
        news = dict(news)
        for path in ignore_changes:
            if path not in self.input_keys:
                raise Unsupported(f"ignoreChanges path {path!r}: only top-level input names are supported")
            if path in olds:
                news[path] = olds[path]
        news = {k: v for k, v in news.items() if k != "version" and not k.startswith("__")}
        changed, detailed = object_diff(old_inputs, news)
        detailed = {path: (AS_REPLACE[kind] if path == "triggers" else kind) for path, kind in detailed.items()}
        return DiffResult(changed, detailed)

    def _run(self, ctx: CallContext, command: str, inputs: dict, prev_stdout: str, prev_stderr: str):
        if contains_unknowns(inputs):
            raise ModelError("internal error: unknown input values outside of a preview")
        return type(self).runner(ctx, self.procs, command, unsecret(inputs), prev_stdout, prev_stderr)

    def create(self, ctx: CallContext, inputs: dict, preview: bool) -> tuple[str, dict]:
        """commandController.go Create: the id is resource.NewUniqueHex(name, 8, 0); a failed run returns
        the error alone (infer Create returns no partial state), so nothing is left in the stack."""
        id_ = ctx.name + secrets.token_hex(4)
        state = dict(inputs)
        if preview:
            # markComputed on create: outputs that mirror an input stay, the others are unknown.
            return id_, {**state, "stdout": UNKNOWN, "stderr": UNKNOWN}
        stdout = stderr = ""
        if inputs.get("create") is not None:
            stdout, stderr = self._run(ctx, inputs["create"], inputs, "", "")
        return id_, {**state, "stdout": stdout, "stderr": stderr}

    def read(self, ctx: CallContext, id_: str, props: dict, inputs: dict) -> tuple[str, dict, dict]:
        """No custom Read: infer returns the state and inputs as they are."""
        return id_, props, inputs

    def _split_state(self, olds: dict) -> tuple[str, str]:
        extra = set(olds) - set(self.input_keys) - {"stdout", "stderr"}
        if extra:
            # hydrateFromState decodes with mapper: unrecognized fields are errors
            raise ModelError(f"cannot decode the state: unrecognized fields {sorted(extra)}")
        return unsecret(olds.get("stdout", "")), unsecret(olds.get("stderr", ""))

    def update(self, ctx: CallContext, id_: str, olds: dict, news: dict, old_inputs: dict,
               preview: bool) -> dict:
        """commandController.go Update: runs `update`, else `create`, else nothing; keeps the old
        stdout/stderr unless a command ran."""
        prev_stdout, prev_stderr = self._split_state(olds)
        if preview:
            # markComputed (not create): outputs depending on an input that is unknown or differs from the
            # old state become unknown; every output depends on every input by default.
            changed = any(is_unknown(news.get(k)) or (k in olds and not deep_equals(news.get(k), olds[k]))
                          for k in self.input_keys)
            if changed:
                return {**news, "stdout": UNKNOWN, "stderr": UNKNOWN}
            return {**news, "stdout": olds.get("stdout", ""), "stderr": olds.get("stderr", "")}
        command = news.get("update") if news.get("update") is not None else news.get("create")
        if command is None:
            return {**news, "stdout": olds.get("stdout", ""), "stderr": olds.get("stderr", "")}
        stdout, stderr = self._run(ctx, command, news, prev_stdout, prev_stderr)
        return {**news, "stdout": stdout, "stderr": stderr}

    def delete(self, ctx: CallContext, id_: str, props: dict, old_inputs: dict) -> None:
        """commandController.go Delete: runs `delete` from the state, if set."""
        prev_stdout, prev_stderr = self._split_state(props)
        if props.get("delete") is None:
            return
        inputs = {k: v for k, v in props.items() if k not in ("stdout", "stderr")}
        self._run(ctx, props["delete"], inputs, prev_stdout, prev_stderr)


class LocalCommand(_Command):
    token = "command:local:Command"
    inputs_shape = LOCAL_INPUTS
    runner = staticmethod(_run_local)


class RemoteCommand(_Command):
    token = "command:remote:Command"
    inputs_shape = REMOTE_INPUTS
    runner = staticmethod(_run_remote)


def main() -> None:
    serve(PACKAGE, VERSION, [LocalCommand(), RemoteCommand()])


if __name__ == "__main__":
    main()
