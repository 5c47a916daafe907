"""What the real libvirt provider does with the inputs the program chose to avoid or relies on, run by the
real engine (tests/engine) against the real libvirt. Small programs of their own, no guest OS: each takes
seconds. These are the provider's behaviours behind the program's choices in components/libvirt.py."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree

import pulumi
import pulumi_libvirt as libvirt
from pulumi import automation as auto
import pytest

from tests.conftest import require_root, require_tools
from components import leftovers
from components.libvirt_uri import ssh_config_problems, uri_problems
from tests.e2e import host_guard, libvirt_daemon
from tests.e2e.image_server import ImageServer
from tests.engine import build
from tests.engine.stack import EngineStack
from tests.sshd_server import SshServer

URI = libvirt_daemon.URI
PREFIX = "ha-lb-provider-test"
CIDR = "10.213.77.0/24"
GUARD = "ha_lb_provider_test_guard"


@pytest.fixture(scope="module")
def engine():
    require_root()
    require_tools("go", "virsh", "libvirtd", "qemu-system-x86_64", "qemu-img", "nft", "dnsmasq")
    built = build.ensure_engine(log=lambda m: print(f"[engine] {m}", flush=True))
    daemons = libvirt_daemon.ensure_running()
    host_guard.install([CIDR], table=GUARD)
    try:
        yield built
    finally:
        host_guard.remove(GUARD)
        daemons.stop()


def _stack(engine, tmp_path: pathlib.Path, program) -> EngineStack:
    return EngineStack(engine, tmp_path / "pulumi", "provider", {}, program=program)


def _provider() -> libvirt.Provider:
    return libvirt.Provider("libvirt", uri=URI)


def test_dns_enabled_false_is_dropped_so_libvirt_serves_dns(engine, tmp_path):
    """0.8.1 resource_libvirt_network.go: a <dns> element is written only when enabled is true."""
    def program():
        libvirt.Network("net", name=f"{PREFIX}-net", mode="nat", addresses=[CIDR], dhcp={"enabled": False},
                        dns={"enabled": False}, opts=pulumi.ResourceOptions(provider=_provider()))

    stack = _stack(engine, tmp_path, program)
    try:
        stack.up()
        xml = ElementTree.fromstring(libvirt_daemon.virsh("net-dumpxml", f"{PREFIX}-net").stdout)
        assert xml.find("dns") is None or xml.find("dns").get("enable") != "no"
        dnsmasq = pathlib.Path(f"/var/lib/libvirt/dnsmasq/{PREFIX}-net.conf").read_text()
        assert "port=0" not in dnsmasq  # dnsmasq answers DNS on the network (port=0 would disable it)
    finally:
        stack.destroy()


def test_qemu_agent_true_fails_the_create_while_the_guest_has_no_agent(engine, tmp_path):
    """0.8.1 domain.go domainGetIfacesInfo: Create ends with Read, which asks the guest agent and fails
    ("guest agent is not connected") while the guest boots: why the program keeps qemu_agent off."""
    def program():
        provider = _provider()
        libvirt.Domain("vm", name=f"{PREFIX}-agent", type="qemu", memory=64, vcpu=1, qemu_agent=True,
                       opts=pulumi.ResourceOptions(provider=provider))

    stack = _stack(engine, tmp_path, program)
    try:
        with pytest.raises(auto.CommandError) as failed:
            stack.up()
        message = str(failed.value)
        assert "error retrieving interface addresses" in message, message[-1500:]
        assert "agent" in message.lower(), message[-1500:]
    finally:
        stack.destroy()
        libvirt_daemon.virsh("destroy", f"{PREFIX}-agent", check=False)
        libvirt_daemon.virsh("undefine", f"{PREFIX}-agent", check=False)


def test_a_url_image_needs_a_server_that_answers_byte_ranges(engine, tmp_path):
    """0.8.1 volume_image.go httpImage.IsQCOW2: `Range: bytes=0-7` must answer 206 with the qcow2 magic."""
    images = tmp_path / "images"
    images.mkdir()
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(images / "tiny.qcow2"), "16M"], check=True,
                   capture_output=True)
    pool_dir = tmp_path / "pool"

    def program_for(url: str):
        def program():
            provider = _provider()
            pool = libvirt.Pool("pool", name=f"{PREFIX}-pool", type="dir", target={"path": str(pool_dir)},
                                opts=pulumi.ResourceOptions(provider=provider))
            libvirt.Volume("image", name=f"{PREFIX}-image.qcow2", pool=pool.name, source=url, format="qcow2",
                           opts=pulumi.ResourceOptions(provider=provider))
        return program

    with ImageServer(images) as server:
        stack = _stack(engine, tmp_path, program_for(server.url("tiny.qcow2")))
        try:
            stack.up()
            assert any(r.startswith("HEAD /tiny.qcow2") for r in server.requests), server.requests
            assert "GET /tiny.qcow2 bytes=0-7" in server.requests, server.requests
            info = libvirt_daemon.virsh("vol-dumpxml", "--pool", f"{PREFIX}-pool", f"{PREFIX}-image.qcow2").stdout
            assert "<format type='qcow2'/>" in info
        finally:
            stack.destroy()
    # A server that ignores Range (plenty of simple ones and some proxies): 0.8.1 refuses the image.
    with ImageServer(images, ranges=False) as server:
        stack = EngineStack(engine, tmp_path / "pulumi-no-ranges", "provider", {},
                            program=program_for(server.url("tiny.qcow2")))
        try:
            with pytest.raises(auto.CommandError) as failed:
                stack.up()
            assert "can't retrieve partial header of resource to determine file type" in str(failed.value)
        finally:
            stack.destroy()


def test_a_seed_iso_left_by_an_interrupted_run_fails_the_create_until_leftovers_removes_it(engine, tmp_path):
    """0.8.1 cloudinit_def.go UploadIso: StorageVolCreateXML of an existing name is an error (only
    resource_libvirt_volume.go tolerates it). An interrupted run leaves exactly that: the object in libvirt,
    not in the state. `components.leftovers` finds it from the state and deletes it; then `up` succeeds."""
    pool_dir = tmp_path / "pool"
    seed = f"{PREFIX}-cloud-init.iso"
    with_seed = {"on": False}

    def program():
        provider = _provider()
        pool = libvirt.Pool("pool", name=f"{PREFIX}-pool", type="dir", target={"path": str(pool_dir)},
                            opts=pulumi.ResourceOptions(provider=provider))
        if with_seed["on"]:
            libvirt.CloudInitDisk("seed", name=seed, pool=pool.name, user_data="#cloud-config\n",
                                  meta_data="instance-id: x\n", opts=pulumi.ResourceOptions(provider=provider))

    stack = _stack(engine, tmp_path, program)
    try:
        stack.up()
        libvirt_daemon.virsh("vol-create-as", f"{PREFIX}-pool", seed, "1M", "--format", "raw")
        with_seed["on"] = True
        with pytest.raises(auto.CommandError) as failed:
            stack.up()
        assert f"error creating libvirt volume for cloudinit device {seed}" in str(failed.value), \
            str(failed.value)[-1500:]
        owned, pool, pool_path = leftovers.owned_names(stack.stack.export_stack().deployment)
        found = leftovers.find(PREFIX, owned, pool, pool_path, URI)
        assert [str(f) for f in found] == [f"volume {seed} (pool {PREFIX}-pool)"]
        leftovers.delete(found, URI)
        stack.up()
        assert leftovers.find(PREFIX, leftovers.owned_names(stack.stack.export_stack().deployment)[0],
                              pool, pool_path, URI) == []
    finally:
        stack.destroy()


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (children before their own children)."""
    children: dict[int, list[int]] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        found.append(child)
        queue.extend(children.get(child, []))
    return found


def test_an_up_killed_mid_create_is_recovered_by_leftovers_then_up(engine, tmp_path):
    """`pulumi up` SIGKILLed (the CLI and its plugins) while the provider uploads a base image: the stack
    stays locked (`pulumi cancel` releases it) and the half-made volume is in libvirt but not in the state;
    `components.leftovers` removes it and the next `up` completes the stack."""
    import os
    import signal
    import threading
    import time

    images = tmp_path / "images"
    images.mkdir()
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(images / "slow.qcow2"), "16M"], check=True,
                   capture_output=True)
    pool_dir = tmp_path / "pool"
    with ImageServer(images, chunk_pause=2.0) as server:
        def program():
            provider = _provider()
            pool = libvirt.Pool("pool", name=f"{PREFIX}-pool", type="dir", target={"path": str(pool_dir)},
                                opts=pulumi.ResourceOptions(provider=provider))
            libvirt.Volume("image", name=f"{PREFIX}-slow.qcow2", pool=pool.name, source=server.url("slow.qcow2"),
                           format="qcow2", opts=pulumi.ResourceOptions(provider=provider))

        stack = _stack(engine, tmp_path, program)
        outcome: dict[str, object] = {}
        runner = threading.Thread(target=lambda: outcome.setdefault("error", _raises(stack.up)), daemon=True)
        runner.start()
        deadline = time.monotonic() + 60
        while "GET /slow.qcow2" not in server.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "GET /slow.qcow2" in server.requests, server.requests  # the upload has begun
        time.sleep(1)
        cli = [pid for pid in _descendants(os.getpid())
               if pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == bytes(engine.cli)]
        assert len(cli) == 1, cli
        killed = cli + _descendants(cli[0])  # the CLI and the plugins it started, by pid
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        runner.join(timeout=60)
        assert outcome.get("error") is not None, "the killed `up` reported success"
        try:
            # The killed update still holds the stack's lock: the next one is refused until `pulumi cancel`.
            with pytest.raises(auto.ConcurrentUpdateError):
                stack.up()
            stack.stack.cancel()
            owned, pool, pool_path = leftovers.owned_names(stack.stack.export_stack().deployment)
            found = leftovers.find(PREFIX, owned, pool, pool_path, URI)
            print(f"[engine] killed {len(killed)} processes; not in the state afterwards: {[str(f) for f in found]}")
            leftovers.delete(found, URI)
            server.chunk_pause = 0.0
            stack.up()  # completes the stack: the interrupted create is retried
            owned, pool, pool_path = leftovers.owned_names(stack.stack.export_stack().deployment)
            assert f"{PREFIX}-slow.qcow2" in owned
            assert leftovers.find(PREFIX, owned, pool, pool_path, URI) == []
        finally:
            stack.destroy()
    assert not pool_dir.exists() or not any(pool_dir.iterdir())


def _raises(call) -> object:
    try:
        call()
    except Exception as error:  # noqa: BLE001 (the outcome is inspected by the test)
        return error
    return None


def test_qemu_ssh_reaches_port_22_only_whatever_the_uri_or_the_ssh_config_says(engine, tmp_path):
    """0.8.1 libvirt/uri/ssh.go dialHost dials net.JoinHostPort(host, port) with the URI's host:port as the host
    (a port in the URI never connects) and never reads ssh_config's Port (always 22). libvirt's own client and
    OpenSSH reach the same sshd with the same URI and the same ssh configuration; the program refuses both before
    any resource (components/libvirt_uri.py)."""
    require_tools("ssh", "ssh-keygen", "virt-ssh-helper")
    alias = "ha-lb-port-test"
    with SshServer(tmp_path / "sshd") as server:
        home = tmp_path / "home"
        (home / ".ssh").mkdir(parents=True)
        shutil.copy(server.client_key, home / ".ssh" / "id_ed25519")
        config = home / ".ssh" / "config"
        config.write_text(f"Host {alias}\n    HostName 127.0.0.1\n    Port {server.port}\n")
        with_port = f"qemu+ssh://root@127.0.0.1:{server.port}/system?no_verify=1"
        by_config = f"qemu+ssh://root@{alias}/system?no_verify=1"
        # What the user sees work: virsh through the URI with a port, ssh through the configured alias.
        virsh = subprocess.run(["virsh", "-c", f"{with_port}&keyfile={server.client_key}", "uri"], capture_output=True,
                               text=True, timeout=60)
        assert virsh.returncode == 0, virsh.stderr
        ssh = subprocess.run(["ssh", "-F", str(config), "-i", str(server.client_key), "-o", "BatchMode=yes", "-o",
                              "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", alias, "true"],
                             capture_output=True, text=True, timeout=60)
        assert ssh.returncode == 0, ssh.stderr

        dialed = {with_port: f"lookup 127.0.0.1:{server.port}", by_config: "127.0.0.1:22"}
        for uri, refusal in ((with_port, uri_problems(with_port)),
                             (by_config, ssh_config_problems(by_config, config=str(config)))):
            def program(uri=uri):
                provider = libvirt.Provider("libvirt", uri=uri)
                libvirt.Pool("pool", name=f"{PREFIX}-port", type="dir", target={"path": str(tmp_path / "pool")},
                             opts=pulumi.ResourceOptions(provider=provider))

            stack = EngineStack(engine, tmp_path / f"pulumi-{uri.count(':')}", "provider", {},
                                extra_env={"HOME": str(home)}, program=program)
            try:
                with pytest.raises(auto.CommandError) as failed:
                    stack.up()
            finally:
                stack.destroy()
            message = str(failed.value)
            assert "failed to connect to remote host" in message, message[-1500:]
            # The address v0.8.1 dials (or, with something answering on 22 here, the build says it cannot tell).
            assert dialed[uri] in message or "cannot reproduce v0.8.1" in message, message[-1500:]
            assert refusal and "never" in refusal[0], refusal  # refused by the program, with the reason
        assert not (tmp_path / "pool").exists()
