"""The model provider plugins (tests/engine/plugins) over the real plugin protocol.

Each plugin is started the way the engine starts one (its launcher from install_models, engine flags, the
engine's address last), its port read from stdout, and driven with the Pulumi gRPC stubs. The "engine"
address points at a small Engine service here that records the plugins' log messages. The remote Command
runs against a real OpenSSH server on 127.0.0.1, started for the test and stopped by its pid.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import hashlib
import os
import pathlib
import pwd
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import engine_pb2_grpc, provider_pb2, provider_pb2_grpc

from tests.conftest import require, require_tools
from tests.sshd_server import SSHD, SshServer, free_port
from tests.engine.plugins import MODELS, install_models
from tests.engine.plugins.server import (
    SECRET_SIG, SIG_KEY, UNKNOWN, UNKNOWN_STRING, Secret, decode_struct, encode_struct, plugin_version,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCAL = "command:local:Command"
REMOTE = "command:remote:Command"
KEY = "tls:index/privateKey:PrivateKey"
PASSWORD = "random:index/randomPassword:RandomPassword"


def urn(token: str, name: str) -> str:
    return f"urn:pulumi:test::ha-lb::{token}::{name}"


# ----------------------------------------------------------------------------------------------------------
# A stand-in for the engine's Engine service: the address plugins get, and where their logs arrive


class _Engine(engine_pb2_grpc.EngineServicer):
    def __init__(self):
        self.logs: list[tuple[int, str, str, bool]] = []
        self.lock = threading.Lock()

    def Log(self, request, context):  # noqa: N802
        with self.lock:
            self.logs.append((request.severity, request.urn, request.message, request.ephemeral))
        return empty_pb2.Empty()

    def messages(self, urn_: str) -> list[str]:
        with self.lock:
            return [m for _, u, m, _ in self.logs if u == urn_]


@pytest.fixture(scope="module")
def engine():
    servicer = _Engine()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8))
    engine_pb2_grpc.add_EngineServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    servicer.address = f"127.0.0.1:{port}"
    yield servicer
    server.stop(0)


class Plugin:
    """One plugin process, started like the engine starts it."""

    def __init__(self, launcher: pathlib.Path, engine_address: str, cwd: pathlib.Path):
        self.proc = subprocess.Popen([str(launcher), "--logtostderr", "-v=3", "--tracing", "", engine_address],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, text=True)
        line = self.proc.stdout.readline()  # newPlugin: one line, the port
        if not line.strip().isdigit():
            self.proc.kill()
            raise AssertionError(f"plugin wrote {line!r}; stderr: {self.proc.stderr.read()}")
        self.port = int(line)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        self.stub.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True, acceptResources=True,
                                                          sends_old_inputs=True, sends_old_inputs_to_delete=True))

    def stop(self):
        self.channel.close()
        self.proc.kill()  # the engine kills plugins too
        self.proc.wait()

    # -- resource calls; values are plain Python with Secret / UNKNOWN
    def check(self, token, name, news, olds=None):
        r = self.stub.Check(provider_pb2.CheckRequest(urn=urn(token, name), type=token, name=name,
                                                      olds=encode_struct(olds or {}), news=encode_struct(news)))
        return decode_struct(r.inputs), [(f.property, f.reason) for f in r.failures]

    def diff(self, token, name, olds, news, old_inputs, id_="id"):
        return self.stub.Diff(provider_pb2.DiffRequest(urn=urn(token, name), type=token, name=name, id=id_,
                                                       olds=encode_struct(olds), news=encode_struct(news),
                                                       old_inputs=encode_struct(old_inputs)))

    def create(self, token, name, props, preview=False):
        r = self.stub.Create(provider_pb2.CreateRequest(urn=urn(token, name), type=token, name=name,
                                                        properties=encode_struct(props), preview=preview))
        return r.id, decode_struct(r.properties)

    def update(self, token, name, olds, news, preview=False, id_="id"):
        r = self.stub.Update(provider_pb2.UpdateRequest(urn=urn(token, name), type=token, name=name, id=id_,
                                                        olds=encode_struct(olds), news=encode_struct(news),
                                                        old_inputs=encode_struct(news), preview=preview))
        return decode_struct(r.properties)

    def delete(self, token, name, props, id_="id"):
        self.stub.Delete(provider_pb2.DeleteRequest(urn=urn(token, name), type=token, name=name, id=id_,
                                                    properties=encode_struct(props), old_inputs=encode_struct(props)))


@pytest.fixture(scope="module")
def launchers(tmp_path_factory):
    installed = install_models(tmp_path_factory.mktemp("home") / "plugins")
    return {path.name.removeprefix("pulumi-resource-"): path for path in installed}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def command(launchers, engine, workdir):
    plugin = Plugin(launchers["command"], engine.address, workdir)
    yield plugin
    plugin.stop()


@pytest.fixture(scope="module")
def tls(launchers, engine, workdir):
    require_tools("openssl", "ssh-keygen")
    plugin = Plugin(launchers["tls"], engine.address, workdir)
    yield plugin
    plugin.stop()


@pytest.fixture(scope="module")
def random_(launchers, engine, workdir):
    plugin = Plugin(launchers["random"], engine.address, workdir)
    yield plugin
    plugin.stop()


def error_of(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


# ----------------------------------------------------------------------------------------------------------
# Plugin protocol


def test_install_layout_and_handshake(launchers, engine, workdir):
    """The plugin cache layout the CLI looks up (resource-<name>-v<version>/pulumi-resource-<name>, no
    .partial), versions from the SDKs' pulumi-plugin.json, the protocol answers the engine relies on."""
    for name, (module, sdk) in MODELS.items():
        launcher = launchers[name]
        assert launcher.parent.name == f"resource-{name}-v{plugin_version(sdk)}"
        assert os.access(launcher, os.X_OK)
        assert not launcher.parent.with_name(launcher.parent.name + ".partial").exists()
        plugin = Plugin(launcher, engine.address, workdir)
        try:
            assert plugin.stub.GetPluginInfo(empty_pb2.Empty()).version == plugin_version(sdk)
            err = error_of(lambda: plugin.stub.Handshake(provider_pb2.ProviderHandshakeRequest()))
            assert err.code() == grpc.StatusCode.UNIMPLEMENTED  # the engine falls back to Configure
            conf = plugin.stub.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True, sends_old_inputs=True,
                                                                       sends_old_inputs_to_delete=True))
            assert (conf.acceptSecrets, conf.supportsPreview, conf.acceptResources) == (True, True, True)
            assert f'"version": "{plugin_version(sdk)}"' in plugin.stub.GetSchema(provider_pb2.GetSchemaRequest()).schema
            err = error_of(lambda: plugin.stub.Configure(provider_pb2.ConfigureRequest(
                args=encode_struct({"proxy": {"url": "http://x"}}))))
            assert "supports no configuration keys" in err.details()
        finally:
            plugin.stop()
    assert {"command", "tls", "random"} == set(launchers)


def test_secret_and_unknown_sentinels_round_trip():
    s = encode_struct({"a": Secret("x"), "b": UNKNOWN, "c": [1.0, Secret({"d": True})]})
    assert s.fields["a"].struct_value.fields[SIG_KEY].string_value == SECRET_SIG
    assert s.fields["b"].string_value == UNKNOWN_STRING
    assert decode_struct(s) == {"a": Secret("x"), "b": UNKNOWN, "c": [1.0, Secret({"d": True})]}


# ----------------------------------------------------------------------------------------------------------
# command:local:Command


def test_local_check_refuses_unknown_and_unsupported_inputs(command):
    _, failures = command.check(LOCAL, "c", {"create": "true", "bogus": 1.0})
    assert ("bogus", "Unrecognized field 'bogus' on 'local.CommandInputs'") in failures
    _, failures = command.check(LOCAL, "c", {"create": 3.0, "logging": "loud"})
    assert ("create", "Field 'create' on 'local.CommandInputs' must be a 'string'; got 'float64' instead") in failures
    assert any(p == "logging" for p, _ in failures)
    err = error_of(lambda: command.check(LOCAL, "c", {"create": "true", "assetPaths": ["*"]}))
    assert "assetPaths is not supported" in err.details()


def test_local_diff_triggers_replace_create_text_updates(command):
    """infer diff: only a change of the whole `triggers` property is a provider-side replace; an element
    change is reported at its path and the SDK's replace_on_changes ["triggers[*]"] makes the engine
    replace; a change of `create` is an update."""
    olds = {"create": "echo a", "triggers": ["x"]}
    state = {**olds, "stdout": "a", "stderr": ""}
    d = command.diff(LOCAL, "c", state, {"create": "echo b", "triggers": ["x"]}, olds)
    assert d.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert list(d.replaces) == [] and dict(d.detailedDiff)["create"].kind == provider_pb2.PropertyDiff.UPDATE
    d = command.diff(LOCAL, "c", state, {"create": "echo a", "triggers": ["y"]}, olds)
    assert dict(d.detailedDiff)["triggers[0]"].kind == provider_pb2.PropertyDiff.UPDATE and list(d.diffs) == ["triggers"]
    sdk = (pathlib.Path(__import__("pulumi_command").__file__).parent / "local" / "command.py").read_text()
    assert 'replace_on_changes=["triggers[*]"]' in sdk
    d = command.diff(LOCAL, "c", {"create": "echo a", "stdout": "a", "stderr": ""}, {"create": "echo a",
                                                                                      "triggers": ["y"]},
                     {"create": "echo a"})
    assert list(d.replaces) == ["triggers"]
    assert dict(d.detailedDiff)["triggers"].kind == provider_pb2.PropertyDiff.ADD_REPLACE
    d = command.diff(LOCAL, "c", state, dict(olds), olds)
    assert d.changes == provider_pb2.DiffResponse.DIFF_NONE


def test_local_lifecycle(command, workdir, engine):
    """Create runs `create` with /bin/sh -c in dir; Update runs `update` (else `create`) with the previous
    output in PULUMI_COMMAND_STDOUT; Delete runs `delete`; a preview runs nothing."""
    marker = workdir / "ran"
    props = {"create": f"echo created > {marker}; pwd; echo err >&2; echo", "dir": str(workdir),
             "update": 'echo "prev=$PULUMI_COMMAND_STDOUT|$PULUMI_COMMAND_STDERR"',
             "delete": f"rm {marker}; echo \"$PULUMI_COMMAND_STDOUT\" > {workdir / 'deleted'}"}
    id_, out = command.create(LOCAL, "life", props, preview=True)
    assert not marker.exists() and out["stdout"] is UNKNOWN and out["create"] == props["create"]
    id_, out = command.create(LOCAL, "life", props)
    assert id_.startswith("life") and len(id_) == len("life") + 8
    assert marker.read_text() == "created\n"
    assert out["stdout"] == f"{workdir}\n" and out["stderr"] == "err"  # one trailing newline removed
    assert f"{workdir}" in engine.messages(urn(LOCAL, "life"))  # lines logged (ephemeral info)
    news = {**props, "environment": {"X": "1"}}
    # markComputed compares each input with the old state: an input absent from it does not count
    assert command.update(LOCAL, "life", out, news, preview=True)["stdout"] == out["stdout"]
    news["update"] += " "
    assert command.update(LOCAL, "life", out, news, preview=True)["stdout"] is UNKNOWN
    out2 = command.update(LOCAL, "life", out, news)
    assert out2["stdout"] == f"prev={workdir}\n|err"
    no_update = {k: v for k, v in news.items() if k != "update"}
    out3 = command.update(LOCAL, "life", out2, {**no_update, "create": "echo again"})
    assert out3["stdout"] == "again"
    command.delete(LOCAL, "life", out3)
    assert not marker.exists() and (workdir / "deleted").read_text() == "again\n"


def test_local_failure_message_and_interpreter(command, workdir):
    err = error_of(lambda: command.create(LOCAL, "bad", {"create": "echo out; echo oops >&2; exit 3",
                                                          "dir": str(workdir)}))
    assert err.code() == grpc.StatusCode.UNKNOWN
    assert err.details().startswith('exit status 3: running "echo out; echo oops >&2; exit 3":\n')
    assert "out\n" in err.details() and "oops\n" in err.details()
    _, out = command.create(LOCAL, "py", {"create": "print(6*7)", "interpreter": [sys.executable, "-c"],
                                          "stdin": "ignored"})
    assert out["stdout"] == "42"
    err = error_of(lambda: command.create(LOCAL, "none", {"create": "x", "interpreter": ["no-such-program", "-c"]}))
    assert err.details() == 'exec: "no-such-program": executable file not found in $PATH: running "x":\n'
    _, out = command.create(LOCAL, "stdin", {"create": "cat", "stdin": "fed\n"})
    assert out["stdout"] == "fed"
    _, out = command.create(LOCAL, "env", {"create": 'echo "$PYTHONPATH"', "addPreviousOutputInEnv": False})
    assert out["stdout"] == os.environ.get("PYTHONPATH", "")  # the launcher's PYTHONPATH does not leak


# ----------------------------------------------------------------------------------------------------------
# command:remote:Command against a real sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    require(os.path.exists(SSHD), "needs /usr/sbin/sshd (apt package openssh-server, installed by .ci/run)")
    require_tools("ssh", "ssh-keygen")
    user = pwd.getpwuid(os.getuid())
    with SshServer(tmp_path_factory.mktemp("sshd")) as server:
        d = server.directory
        yield {"port": server.port, "user": user.pw_name, "shell": user.pw_shell, "key": (d / "client").read_text(),
               "stranger": (d / "stranger").read_text(), "host_pub": (d / "host.pub").read_text()}


def _conn(sshd, **extra):
    return {"host": "127.0.0.1", "port": float(sshd["port"]), "user": sshd["user"], "privateKey": Secret(sshd["key"]),
            "dialErrorLimit": 0.0, "perDialTimeout": 5.0, **extra}


def test_remote_check_defaults_and_secrets(command):
    inputs, failures = command.check(REMOTE, "r", {"create": "true", "connection": {"host": "h", "privateKey": "k"}})
    assert failures == []
    conn = inputs["connection"]
    assert isinstance(conn, Secret)  # provider:"secret"
    assert conn.value == {"host": "h", "privateKey": Secret("k"), "user": "root", "port": 22.0,
                          "dialErrorLimit": 10.0, "perDialTimeout": 15.0}
    _, failures = command.check(REMOTE, "r", {"create": "true"})
    assert ("connection", "Missing required field 'connection' on 'remote.CommandInputs'") in failures


def test_remote_runs_command_string_in_login_shell(command, sshd, engine):
    """session.Run(cmd): the server runs the string with the user's login shell and -c; stdin is the
    command's stdin (not the script); stdout/stderr captured without one trailing newline."""
    script = "for i in 1 2; do printf x$i; done; echo; tr '\\000' ' ' < /proc/$$/cmdline; echo; cat; echo e >&2"
    inputs, failures = command.check(REMOTE, "shell", {"create": script, "connection": _conn(sshd),
                                                        "stdin": "from-stdin"})
    assert failures == []
    _, out = command.create(REMOTE, "shell", inputs)
    lines = out["stdout"].split("\n")
    assert lines[0] == "x1x2"
    assert lines[1].split(" ")[:2] == [os.path.basename(sshd["shell"]), "-c"] and "for i in 1 2" in lines[1]
    assert lines[2] == "from-stdin" and out["stderr"] == "e"
    assert isinstance(out["connection"], Secret)
    assert "x1x2" in engine.messages(urn(REMOTE, "shell"))


def test_remote_update_delete_and_failure(command, sshd, workdir):
    marker = workdir / "remote-marker"
    props = {"create": f"echo one > {marker}", "update": f"echo two >> {marker}; cat {marker}",
             "delete": f"rm {marker}", "connection": _conn(sshd), "addPreviousOutputInEnv": False}
    _, out = command.create(REMOTE, "u", props)
    out2 = command.update(REMOTE, "u", out, props)
    assert out2["stdout"] == "one\ntwo"
    command.delete(REMOTE, "u", out2)
    assert not marker.exists()
    err = error_of(lambda: command.create(REMOTE, "fail", {"create": "echo before; exit 7",
                                                           "connection": _conn(sshd)}))
    assert err.details() == 'Process exited with status 7: running "echo before; exit 7":\nbefore\n'
    # The original sends the previous stdout as an SSH env request and only warns when it is refused;
    # the OpenSSH client cannot tell, so the model refuses (addPreviousOutputInEnv defaults to true).
    err = error_of(lambda: command.update(REMOTE, "u", out2, {k: v for k, v in props.items()
                                                              if k != "addPreviousOutputInEnv"}))
    assert "addPreviousOutputInEnv" in err.details()
    err = error_of(lambda: command.create(REMOTE, "pw", {"create": "true", "connection": _conn(sshd, password="x")}))
    assert "password" in err.details() and "not supported" in err.details()


def test_remote_host_key_is_verified(command, sshd, tls):
    _, out = command.create(REMOTE, "hk", {"create": "echo ok", "connection": _conn(sshd, hostKey=sshd["host_pub"])})
    assert out["stdout"] == "ok"
    _, other = tls.create(KEY, "other", {"algorithm": "ED25519"})
    err = error_of(lambda: command.create(REMOTE, "hk2", {
        "create": "echo ok", "connection": _conn(sshd, hostKey=other["publicKeyOpenssh"])}))
    assert err.details().startswith("after 0 failed attempts: ") and "Host key verification failed" in err.details()


def test_remote_dial_retries_then_fails(command, sshd, engine):
    """dialWithRetry: dialErrorLimit 2 means 3 dials with pauses of 0.1 s and 0.15 s, then
    "after 2 failed attempts: <dial error>"; an authentication failure is a dial failure too."""
    closed = free_port()
    name = "dial"
    started = time.monotonic()
    err = error_of(lambda: command.create(REMOTE, name, {"create": "echo never", "connection": _conn(
        sshd, port=float(closed), dialErrorLimit=2.0)}))
    elapsed = time.monotonic() - started
    assert err.details().startswith("after 2 failed attempts: ")
    assert "Connection refused" in err.details()
    assert [m for m in engine.messages(urn(REMOTE, name)) if m.startswith("Dial")] == \
        ["Dial 1/2 failed: retrying", "Dial 2/2 failed: retrying"]
    assert 0.25 <= elapsed < 10
    err = error_of(lambda: command.create(REMOTE, "auth", {"create": "echo never", "connection": _conn(
        sshd, privateKey=Secret(sshd["stranger"]), dialErrorLimit=1.0)}))
    assert err.details().startswith("after 1 failed attempts: ") and "Permission denied" in err.details()


# ----------------------------------------------------------------------------------------------------------
# tls:index/privateKey:PrivateKey


def _ssh_keygen(args, data: str) -> str:
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write(data)
    try:
        os.chmod(f.name, 0o600)
        return subprocess.run(["ssh-keygen", *args, "-f", f.name], capture_output=True, text=True,
                              check=True).stdout
    finally:
        os.unlink(f.name)


def _openssl(args, data: str) -> bytes:
    return subprocess.run(["openssl", *args], input=data.encode(), capture_output=True, check=True).stdout


@pytest.mark.parametrize("inputs", [{"algorithm": "ED25519"}, {"algorithm": "ECDSA", "ecdsaCurve": "P256"},
                                    {"algorithm": "RSA"}])
def test_private_key_outputs(tls, inputs):
    _, preview = tls.create(KEY, "k", inputs, preview=True)
    assert preview["privateKeyPem"] == Secret(UNKNOWN) and preview["publicKeyOpenssh"] is UNKNOWN
    assert preview["rsaBits"] == 2048.0 and preview["ecdsaCurve"] == inputs.get("ecdsaCurve", "P224")  # defaults
    id_, out = tls.create(KEY, "k", inputs)
    for secret in ("privateKeyPem", "privateKeyOpenssh", "privateKeyPemPkcs8"):
        assert isinstance(out[secret], Secret)
    pub = out["publicKeyOpenssh"]
    assert pub.endswith("\n") and pub.count("\n") == 1  # ssh.MarshalAuthorizedKey
    derived = _ssh_keygen(["-y"], out["privateKeyOpenssh"].value)  # the OpenSSH private key is valid
    assert derived.split()[:2] == pub.split()[:2]
    listing = _ssh_keygen(["-l", "-E", "sha256"], pub)
    assert listing.split()[1] == out["publicKeyFingerprintSha256"]
    assert _ssh_keygen(["-l", "-E", "md5"], pub).split()[1] == "MD5:" + out["publicKeyFingerprintMd5"]
    for pem_key in ("privateKeyPem", "privateKeyPemPkcs8"):
        assert _openssl(["pkey", "-pubout"], out[pem_key].value).decode() == out["publicKeyPem"]
    der = _openssl(["pkey", "-pubin", "-outform", "DER"], out["publicKeyPem"])
    assert id_ == out["id"] == hashlib.sha1(der).hexdigest()
    expected = {"ED25519": "PRIVATE KEY", "ECDSA": "EC PRIVATE KEY", "RSA": "RSA PRIVATE KEY"}[inputs["algorithm"]]
    assert out["privateKeyPem"].value.startswith(f"-----BEGIN {expected}-----\n")
    assert all(len(line) <= 64 for line in out["privateKeyOpenssh"].value.splitlines())  # encoding/pem


def test_private_key_p224_has_no_openssh_forms(tls):
    _, out = tls.create(KEY, "p224", {"algorithm": "ECDSA"})
    assert out["ecdsaCurve"] == "P224" and out["publicKeyOpenssh"] == "" and out["privateKeyOpenssh"] == Secret("")
    assert out["publicKeyFingerprintMd5"] == "" and out["privateKeyPem"].value.startswith("-----BEGIN EC PRIVATE KEY")


def test_private_key_check_and_diff(tls):
    _, failures = tls.check(KEY, "k", {"algorithm": "DSA"})
    assert failures == [("", 'Invalid Attribute Value Match. Attribute algorithm value must be one of: '
                             '["RSA" "ECDSA" "ED25519"], got: "DSA". Examine values at \'k.algorithm\'.')]
    _, failures = tls.check(KEY, "k", {})
    assert failures[0][1].startswith("Missing required property 'algorithm'")
    err = error_of(lambda: tls.check(KEY, "k", {"algorithm": "RSA", "comment": "x"}))
    assert "no input property 'comment'" in err.details()
    state = {"algorithm": "RSA", "rsaBits": 2048.0, "ecdsaCurve": "P224", "privateKeyPem": Secret("x"), "id": "i"}
    d = tls.diff(KEY, "k", state, {"algorithm": "RSA"}, {"algorithm": "RSA"})
    assert d.changes == provider_pb2.DiffResponse.DIFF_NONE  # rsaBits unset = the default already in state
    d = tls.diff(KEY, "k", state, {"algorithm": "RSA", "rsaBits": 4096.0}, {"algorithm": "RSA"})
    assert list(d.replaces) == ["rsaBits"]
    d = tls.diff(KEY, "k", state, {"algorithm": "ED25519"}, {"algorithm": "RSA"})
    assert list(d.replaces) == ["algorithm"]
    assert dict(d.detailedDiff)["algorithm"].kind == provider_pb2.PropertyDiff.UPDATE_REPLACE
    err = error_of(lambda: tls.create(KEY, "k", {"algorithm": "RSA", "rsaBits": 512.0}))
    assert "512-bit keys are insecure" in err.details()


# ----------------------------------------------------------------------------------------------------------
# random:index/randomPassword:RandomPassword


def _crypt(password: str, setting: str) -> str:
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib.crypt(password.encode(), setting.encode()).decode()


def test_random_password_create(random_):
    inputs, failures = random_.check(PASSWORD, "pw", {"length": 24.0, "special": False})
    assert failures == [] and inputs == {"length": 24.0, "special": False}
    _, preview = random_.create(PASSWORD, "pw", inputs, preview=True)
    assert preview["result"] == Secret(UNKNOWN) and preview["numeric"] is True and preview["upper"] is True
    id_, out = random_.create(PASSWORD, "pw", inputs)
    assert id_ == "none"
    result = out["result"].value
    assert isinstance(out["result"], Secret) and isinstance(out["bcryptHash"], Secret)
    assert len(result) == 24 and result.isalnum()
    bcrypt = out["bcryptHash"].value
    assert bcrypt.startswith("$2a$10$") and _crypt(result, bcrypt) == bcrypt
    _, out = random_.create(PASSWORD, "mins", {"length": 6.0, "minSpecial": 3.0, "minNumeric": 3.0, "special": False,
                                               "upper": False, "lower": False, "overrideSpecial": "#"})
    # the minimums are drawn from their own sets even when those are disabled
    assert out["result"].value.count("#") == 3 and sum(c.isdigit() for c in out["result"].value) == 3


def test_random_password_validation_and_diff(random_):
    _, failures = random_.check(PASSWORD, "pw", {"length": 0.0})
    assert ("", "Invalid Attribute Value. Attribute length value must be at least 1, got: 0. "
                "Examine values at 'pw.length'.") in failures
    _, failures = random_.check(PASSWORD, "pw", {"length": 3.0, "minUpper": 2.0, "minLower": 2.0})
    assert failures == [("", "Invalid Attribute Value. Attribute length value must be at least sum of min_upper + "
                             "min_lower + min_numeric + min_special, got: 3. Examine values at 'pw.length'.")]
    _, failures = random_.check(PASSWORD, "pw", {"length": 3.0, "numeric": False, "special": False, "upper": False,
                                                 "lower": False})
    assert failures == [("", "Invalid Attribute Combination. At least one attribute out of "
                             "[special,upper,lower,numeric] must be specified as true. Examine values at "
                             "'pw.numeric'.")]
    err = error_of(lambda: random_.create(PASSWORD, "pw", {"length": 3.0, "number": True, "numeric": False}))
    assert err.details() == ("Number and numeric are both configured with different values: "
                             "Number is deprecated, use numeric instead")
    _, state = random_.create(PASSWORD, "pw", {"length": 8.0, "overrideSpecial": ""})
    d = random_.diff(PASSWORD, "pw", state, {"length": 9.0, "overrideSpecial": ""}, {"length": 8.0})
    assert list(d.replaces) == ["length"]
    d = random_.diff(PASSWORD, "pw", state, {"length": 8.0}, {"length": 8.0, "overrideSpecial": ""})
    assert d.changes == provider_pb2.DiffResponse.DIFF_SOME and list(d.replaces) == []  # "" -> null: update
    updated = random_.update(PASSWORD, "pw", state, {"length": 8.0})
    assert updated["result"] == state["result"] and "overrideSpecial" not in updated
    d = random_.diff(PASSWORD, "pw", state, {"length": 8.0, "overrideSpecial": "", "keepers": {"k": "v"}},
                     {"length": 8.0})
    assert list(d.replaces) == ["keepers"]
