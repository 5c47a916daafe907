"""The rendered artifacts, checked by the real tools that will read them on the VMs."""

from __future__ import annotations

import pathlib
import subprocess
import uuid

import pytest

from components.offline import read_stack_file, write_render
from tests.conftest import require_root, require_tools
from tests.keys import key_config
from tests.program_run import run_program

ROOT = pathlib.Path(__file__).resolve().parent.parent
VARIANTS = {
    "example": read_stack_file(ROOT / "Pulumi.example.yaml")[1],
    "unicast-generated-password": {},
    "fast-multicast-no-preempt": {"vrrp": {"profile": "fast", "unicast": False, "preempt": False},
                                  "statsPassword": "correct-horse-battery"},
    "isolated-three-webs": {"networkMode": "isolated", "installPackages": False, "statsPassword": "correct-horse-battery",
                            "webServers": [{"name": f"web{i:02}", "address": f"192.168.80.{20 + i}"} for i in (1, 2, 3)]},
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def rendered(request, tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp(request.param)
    write_render(run_program({**key_config(), **VARIANTS[request.param]}, stack="tools"), out)
    return out


def vms(rendered: pathlib.Path, prefix: str = "") -> list[pathlib.Path]:
    found = sorted(p for p in rendered.iterdir() if p.is_dir() and p.name.startswith(prefix))
    assert found, f"nothing rendered under {rendered}"
    return found


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_cloud_init_schema_accepts_every_user_data(rendered):
    require_tools("cloud-init")
    for vm in vms(rendered):
        result = run("cloud-init", "schema", "--config-file", str(vm / "user-data"))
        assert result.returncode == 0 and "Valid" in result.stdout, (vm.name, result.stdout, result.stderr)


def test_haproxy_accepts_the_config(rendered):
    require_tools("haproxy")
    for vm in vms(rendered, "lb"):
        config = vm / "files/etc/haproxy/haproxy.cfg"
        assert config.is_file()
        result = run("haproxy", "-c", "-f", str(config))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ALERT" not in result.stdout + result.stderr


def test_keepalived_accepts_the_config_on_a_host_with_the_named_interfaces(rendered):
    require_tools("keepalived", "ip")
    require_root()
    namespace = f"halb-kt-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        # keepalived refuses a config naming an interface that does not exist: give it the guest's names.
        for name in ("frontend", "backend"):
            subprocess.run(["ip", "-n", namespace, "link", "add", name, "type", "veth", "peer", "name", f"{name}-p"],
                           check=True)
        for vm in vms(rendered, "lb"):
            config = vm / "files/etc/keepalived/keepalived.conf"
            assert config.is_file()  # keepalived -t passes on a missing file
            result = run("ip", "netns", "exec", namespace, "keepalived", "--config-test", "-f", str(config))
            assert result.returncode == 0, result.stdout + result.stderr
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)


def test_nft_accepts_every_ruleset(rendered):
    require_tools("nft")
    require_root()  # nft -c needs netlink access
    for vm in vms(rendered):
        ruleset = vm / "files/etc/nftables.conf"
        result = run("nft", "-c", "-f", str(ruleset))
        assert result.returncode == 0, (vm.name, result.stderr)


def test_the_activation_scripts_are_valid_shell(rendered):
    for vm in vms(rendered):
        result = run("sh", "-n", str(vm / "files/usr/local/sbin/ha-lb-activate"))
        assert result.returncode == 0, result.stderr

