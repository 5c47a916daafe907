"""The rendered artifacts, checked by the real tools that will read them on the VMs."""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import uuid

import pytest

from components.offline import read_stack_file, write_render
from tests.conftest import require, require_root, require_tools
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


def _certificate_block(activate: str) -> tuple[str, str, str]:
    """(the activation script's block that makes the TLS pair on first boot, key path, certificate path)."""
    block = re.search(r"^if \[ ! -s (\S+) \]; then\n.*?^fi\n", activate, re.M | re.S)
    assert block, "the web server's activation script no longer makes its TLS pair in an `if [ ! -s KEY ]` block"
    key = re.search(r" -keyout (\S+)", block.group(0))
    certificate = re.search(r" -out (\S+)", block.group(0))
    assert key and certificate and key.group(1) == block.group(1), block.group(0)
    return block.group(0), key.group(1), certificate.group(1)


def test_nginx_accepts_the_web_server_site(rendered, tmp_path):
    """The rendered site, byte for byte, under a main nginx.conf that includes conf.d/*.conf inside http as
    Debian's does, with the TLS pair made by the activation script's own commands at the paths it uses.

    It runs in private mount and network namespaces: the key and certificate directories are temporary
    directories bind-mounted there (the host's /etc/ssl is untouched and unseen), and the listen ports
    nginx binds while testing are the namespace's. `-T` is `-t` that also prints the files it read, which
    shows the site was included at all; pid, logs and temp paths stay in the temporary prefix.
    """
    require_tools("nginx", "openssl", "unshare", "mount")
    require_root()  # unshare --mount
    webs = [vm for vm in vms(rendered) if (vm / "files/etc/nginx/conf.d/ha-lb.conf").is_file()]
    assert webs, f"no web server site rendered under {rendered}"
    for vm in webs:
        site_file = vm / "files/etc/nginx/conf.d/ha-lb.conf"
        site = site_file.read_text()
        block, key, certificate = _certificate_block((vm / "files/usr/local/sbin/ha-lb-activate").read_text())
        # The site reads the pair where the activation script writes it.
        assert re.findall(r"^\s*ssl_certificate\s+([^\s;]+)", site, re.M) == [certificate], \
            f"{vm.name}: the site's ssl_certificate is not {certificate}, which the activation script writes:\n{site}"
        assert re.findall(r"^\s*ssl_certificate_key\s+([^\s;]+)", site, re.M) == [key], \
            f"{vm.name}: the site's ssl_certificate_key is not {key}, which the activation script writes:\n{site}"

        prefix = tmp_path / vm.name
        (prefix / "conf.d").mkdir(parents=True)
        shutil.copyfile(site_file, prefix / "conf.d/ha-lb.conf")
        (prefix / "nginx.conf").write_text(
            "# The shape of Debian's /etc/nginx/nginx.conf: the sites included inside http.\n"
            "events {\n}\n"
            "http {\n"
            f"    access_log {prefix}/access.log;\n"
            + "".join(f"    {kind}_temp_path {prefix}/{kind}_temp;\n"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
            + "    include conf.d/*.conf;\n"
            "}\n")
        (prefix / "make-tls-pair.sh").write_text("set -eu\n" + block)
        mounts = ""
        for index, directory in enumerate(sorted({os.path.dirname(key), os.path.dirname(certificate)})):
            require(os.path.isdir(directory), f"needs {directory} on this host (a bind-mount target)")
            (prefix / f"tls{index}").mkdir()
            mounts += f"mount --bind {shlex.quote(str(prefix / f'tls{index}'))} {shlex.quote(directory)}\n"
        script = (f"set -eu\n{mounts}"
                  f"sh {shlex.quote(str(prefix / 'make-tls-pair.sh'))}\n"
                  f"test -s {shlex.quote(key)} && test -s {shlex.quote(certificate)}\n"
                  f"exec nginx -T -e stderr -p {shlex.quote(str(prefix))}/ -c {shlex.quote(str(prefix / 'nginx.conf'))}"
                  f" -g {shlex.quote(f'pid {prefix}/nginx.pid; error_log stderr;')}\n")
        result = run("unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", script)
        assert result.returncode == 0 and "test is successful" in result.stderr, \
            f"{vm.name}: nginx -t rejects the site (exit {result.returncode}):\n{result.stderr}\n{site}"
        # The site was read, whole: nginx -T prints each file it included after this line.
        assert f"# configuration file {prefix}/conf.d/ha-lb.conf:\n{site}" in result.stdout, \
            f"{vm.name}: nginx did not read the site:\n{result.stdout}"
        assert (prefix / "conf.d/ha-lb.conf").read_bytes() == site_file.read_bytes()
