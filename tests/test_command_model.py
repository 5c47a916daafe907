"""The pulumi-command model (tests/engine/models/command.py), spoken to over the plugin protocol as the engine
does, against a real OpenSSH server on 127.0.0.1: what the original does is what the model must do."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from tests.conftest import require, require_root, require_tools
from tests.engine.models.server import SECRET_SIG, SIG, UNKNOWN, from_struct, to_struct

REMOTE_URN = "urn:pulumi:test::ha-lb::command:remote:Command::probe"
LOCAL_URN = "urn:pulumi:test::ha-lb::command:local:Command::probe"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def plugin():
    """The model started as the engine starts a plugin: flags, the engine's address last, the port on stdout."""
    process = subprocess.Popen([sys.executable, "-m", "tests.engine.models.command", "-v=9", "127.0.0.1:1"],
                               stdout=subprocess.PIPE, cwd=pathlib.Path(__file__).resolve().parent.parent, text=True)
    try:
        port = int(process.stdout.readline())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield provider_pb2_grpc.ResourceProviderStub(channel)
        channel.close()
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on a free loopback port accepting a throwaway key for root; stopped by pid."""
    require_root()
    require_tools("ssh", "ssh-keygen")
    require(pathlib.Path("/usr/sbin/sshd").exists(), "needs openssh-server (installed by .ci/run)")
    work = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "host")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "client")], check=True)
    shutil.copy(work / "client.pub", work / "authorized_keys")
    port = _free_port()
    (work / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {work / 'host'}\nAuthorizedKeysFile {work / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"StrictModes no\nUsePAM no\nPidFile {work / 'sshd.pid'}\nAcceptEnv LANG\n")
    pathlib.Path("/run/sshd").mkdir(exist_ok=True)
    process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(work / "sshd_config")],
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    try:
        yield {"host": "127.0.0.1", "port": port, "user": "root", "privateKey": (work / "client").read_text()}
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def secret(value):
    return {SIG: SECRET_SIG, "value": value}


def check(plugin, urn, inputs):
    response = plugin.Check(provider_pb2.CheckRequest(urn=urn, olds=to_struct({}), news=to_struct(inputs)))
    return from_struct(response.inputs), [f.reason for f in response.failures]


def create(plugin, urn, inputs, preview=False):
    checked, failures = check(plugin, urn, inputs)
    assert not failures, failures
    response = plugin.Create(provider_pb2.CreateRequest(urn=urn, properties=to_struct(checked), preview=preview))
    return response.id, from_struct(response.properties)


def test_a_remote_command_runs_as_one_command_string_of_the_login_shell(plugin, sshd):
    # session.Run(cmd): the server runs the string with the user's shell; no `sh -s`, no stdin script.
    _, outputs = create(plugin, REMOTE_URN, {"connection": secret(sshd),
                                             "create": 'echo "$0 $1"; echo to-stderr >&2; echo two\n'})
    assert outputs["stdout"] in ("bash \ntwo", "-bash \ntwo", "sh \ntwo"), outputs["stdout"]
    assert outputs["stderr"] == "to-stderr"
    assert outputs["connection"].value["port"] == sshd["port"]  # still a secret, with its defaults applied


def test_the_connection_gets_the_originals_defaults_and_stays_secret(plugin):
    checked, failures = check(plugin, REMOTE_URN, {"connection": {"host": "10.0.0.1", "privateKey": "k"}})
    assert not failures
    connection = checked["connection"]
    assert type(connection).__name__ == "Secret"
    assert {k: connection.value[k] for k in ("user", "port", "dialErrorLimit", "perDialTimeout")} == \
        {"user": "root", "port": 22, "dialErrorLimit": 10, "perDialTimeout": 15}


def test_what_the_model_does_not_implement_fails_the_check(plugin):
    _, failures = check(plugin, REMOTE_URN, {"connection": {"host": "h", "password": "p"}})
    assert failures and "password" in failures[0]
    _, failures = check(plugin, REMOTE_URN, {"connection": {"host": "h", "privateKey": "k"}, "bogus": 1})
    assert failures and "bogus" in failures[0]


def test_a_failing_command_fails_the_create_with_its_output(plugin, sshd):
    with pytest.raises(grpc.RpcError) as error:
        create(plugin, REMOTE_URN, {"connection": secret(sshd), "create": "echo the-reason; exit 3"})
    message = error.value.details()
    assert "Process exited with status 3" in message and "the-reason" in message, message


def test_a_host_that_never_answers_fails_after_dial_error_limit_retries(plugin):
    closed = {"host": "127.0.0.1", "port": _free_port(), "user": "root", "privateKey": "unused",
              "dialErrorLimit": 2, "perDialTimeout": 2}
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as error:
        create(plugin, REMOTE_URN, {"connection": secret(closed), "create": "true"})
    assert "after 2 failed attempts" in error.value.details(), error.value.details()
    assert time.monotonic() - started < 10  # three refused dials and two short pauses


def test_triggers_replace_and_a_new_script_updates(plugin):
    olds = {"create": "echo a", "triggers": ["id-1"], "stdout": "a", "stderr": ""}
    def diff(news):
        response = plugin.Diff(provider_pb2.DiffRequest(urn=LOCAL_URN, id="x", olds=to_struct(olds),
                                                        news=to_struct(news)))
        return list(response.replaces), list(response.diffs)
    assert diff({"create": "echo a", "triggers": ["id-2"]}) == (["triggers"], ["triggers"])
    assert diff({"create": "echo b", "triggers": ["id-1"]}) == ([], ["create"])
    assert diff({"create": "echo a", "triggers": ["id-1"]}) == ([], [])


def test_an_update_runs_create_again_and_a_preview_runs_nothing(plugin, tmp_path):
    marker = tmp_path / "ran"
    _, preview = create(plugin, LOCAL_URN, {"create": f"touch {marker}"}, preview=True)
    assert not marker.exists() and preview["stdout"] == UNKNOWN
    news, _ = check(plugin, LOCAL_URN, {"create": f"touch {marker}; echo updated"})
    response = plugin.Update(provider_pb2.UpdateRequest(urn=LOCAL_URN, id="x", olds=to_struct({"stdout": "old"}),
                                                        news=to_struct(news)))
    assert marker.exists() and from_struct(response.properties)["stdout"] == "updated"
