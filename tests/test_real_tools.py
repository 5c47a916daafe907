"""The rendered artifacts, checked by the real tools that will read them on the VMs, with each suite's own
versions: "bookworm" is the host's tools (Debian 12, as CI's machine), "trixie" Debian 13's, run in a cached
trixie root directory (tests/suite_tools.py) so each file is read as on a Debian 13 VM."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import uuid

import pytest

from components.offline import read_stack_file, write_render
from components.render import PATHS
from tests.conftest import require, require_root, require_tools
from tests.keys import key_config
from tests.program_run import run_program
from tests.suite_tools import in_root, trixie_root

ROOT = pathlib.Path(__file__).resolve().parent.parent
VARIANTS = {
    "example": read_stack_file(ROOT / "Pulumi.example.yaml")[1],
    "unicast-generated-password": {},
    "fast-multicast-no-preempt": {"vrrp": {"profile": "fast", "unicast": False, "preempt": False},
                                  "statsPassword": "correct-horse-battery"},
    # Packages from a mirror on the host: cloud-init's `apt:` section, read by both suites' cloud-init.
    "isolated-mirror-three-webs": {"networkMode": "isolated", "packageMirror": "http://192.168.80.1:3142/debian",
                                   "statsPassword": "correct-horse-battery",
                                   "webServers": [{"name": f"web{i:02}", "address": f"192.168.80.{20 + i}"} for i in (1, 2, 3)]},
    # Two hosts on the user's LAN: its gateways and DNS servers in network-config, the LAN in the firewall.
    "two-hosts-bridged": {"networkMode": "bridge", "frontendBridge": "br-lan", "backendBridge": "br-web",
                          "backendGateway": "192.168.80.254", "dnsServers": ["192.168.10.53", "192.168.10.54"],
                          "statsPassword": "correct-horse-battery",
                          "hosts": {"hv1": "qemu+ssh://root@hv1/system", "hv2": "qemu+ssh://root@hv2/system"}},
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def rendered(request, tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp(request.param)
    write_render(run_program({**key_config(), **VARIANTS[request.param]}, stack="tools"), out)
    return out


# The major.minor of each tool as the suite ships it, the versions its VMs run: a check that ran another
# version (a wrong root, a host that is not Debian 12) would say nothing about that suite.
VERSIONS = {
    "bookworm": {"haproxy": "2.6", "keepalived": "2.2", "nft": "1.0", "cloud-init": "22.4", "nginx": "1.22",
                 "systemd-analyze": "252"},
    "trixie": {"haproxy": "3.0", "keepalived": "2.3", "nft": "1.1", "cloud-init": "25.1", "nginx": "1.26",
               "systemd-analyze": "257"},
}
VERSION_COMMANDS = {"haproxy": ("haproxy", "-v"), "keepalived": ("keepalived", "--version"),
                    "nft": ("nft", "--version"), "cloud-init": ("cloud-init", "--version"), "nginx": ("nginx", "-v"),
                    "systemd-analyze": ("systemd-analyze", "--version")}


class Tools:
    """One suite's tools: the host's (root None) or those in a trixie root."""

    def __init__(self, suite: str, root: pathlib.Path | None):
        self.suite, self.root = suite, root

    def run(self, *command: str, binds=(), netns: str | None = None) -> subprocess.CompletedProcess:
        """Run a tool; binds are the host directories it reads (bind-mounted at the same path in the root)."""
        if self.root is None:
            return run(*(("ip", "netns", "exec", netns) if netns else ()), *command)
        return in_root(self.root, *command, binds=binds, netns=netns)

    def version(self, tool: str) -> str:
        result = self.run(*VERSION_COMMANDS[tool])
        # systemd counts its releases in whole numbers ("systemd 252 (252.39-1~deb12u2)").
        pattern = r"^systemd (\d+) " if tool == "systemd-analyze" else r"(\d+\.\d+)\.\d+"
        found = re.search(pattern, result.stdout + result.stderr, re.M)
        assert result.returncode == 0 and found, (self.suite, tool, result.stdout, result.stderr)
        return found.group(1)

    def expect_version(self, tool: str) -> None:
        """In the trixie root, the tool must be trixie's (the host's are checked by test_each_suite_...)."""
        if self.root is not None:
            found = self.version(tool)
            assert found == VERSIONS[self.suite][tool], \
                f"{tool} in {self.root} is {found}, not {self.suite}'s {VERSIONS[self.suite][tool]}"


@pytest.fixture(scope="module", params=sorted(VERSIONS))
def tools(request) -> Tools:
    if request.param == "bookworm":
        return Tools("bookworm", None)
    return _trixie_tools()


@pytest.fixture(scope="module")
def trixie_tools() -> Tools:
    """Debian 13's tools alone, for checks Debian 12's have no equivalent of."""
    return _trixie_tools()


def _trixie_tools() -> Tools:
    # mmdebstrap builds the root once (then cached); unshare, mount and chroot run each tool in it.
    require_tools("mmdebstrap", "unshare", "mount", "chroot", "ip")
    require_root()  # mmdebstrap's root mode, unshare --mount
    try:
        root = trixie_root()
    except RuntimeError as error:  # mmdebstrap failed (e.g. no network to deb.debian.org)
        require(False, f"needs a Debian 13 root built by mmdebstrap: {error}")
    return Tools("trixie", root)


@contextlib.contextmanager
def network_namespace(*links: str):
    """A fresh network namespace holding a veth for each name (the guest's interface names)."""
    namespace = f"halb-kt-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        for name in links:
            subprocess.run(["ip", "-n", namespace, "link", "add", name, "type", "veth", "peer", "name", f"{name}-p"],
                           check=True)
        yield namespace
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)


def test_each_suite_runs_its_own_versions(tools):
    """The trixie root's tools are trixie's; the host's are bookworm's (CI's machine is Debian 12: elsewhere
    the "bookworm" checks still run, with whatever the host has, and this test is skipped)."""
    if tools.suite == "bookworm":
        require_tools(*VERSIONS["bookworm"])
    found = {tool: tools.version(tool) for tool in VERSIONS[tools.suite]}
    if tools.root is None:
        require(found == VERSIONS["bookworm"], f"the host's tools are not Debian 12's: {found}")
    assert found == VERSIONS[tools.suite], f"{tools.root}: {found}"


def vms(rendered: pathlib.Path, prefix: str = "") -> list[pathlib.Path]:
    found = sorted(p for p in rendered.iterdir() if p.is_dir() and p.name.startswith(prefix))
    assert found, f"nothing rendered under {rendered}"
    return found


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_cloud_init_schema_accepts_every_user_data(rendered, tools):
    if tools.root is None:
        require_tools("cloud-init")
    tools.expect_version("cloud-init")
    for vm in vms(rendered):
        result = tools.run("cloud-init", "schema", "--config-file", str(vm / "user-data"), binds=[rendered])
        assert result.returncode == 0 and "Valid" in result.stdout, (tools.suite, vm.name, result.stdout, result.stderr)


def test_cloud_init_schema_accepts_every_network_config(rendered, trixie_tools):
    """Debian 13's cloud-init checks network-config (v2) against its schema (Debian 12's 22.4 has no such check)."""
    tools = trixie_tools
    tools.expect_version("cloud-init")
    for vm in vms(rendered):
        result = tools.run("cloud-init", "schema", "--schema-type", "network-config", "--config-file",
                           str(vm / "network-config"), binds=[rendered])
        assert result.returncode == 0 and "Valid" in result.stdout, (tools.suite, vm.name, result.stdout, result.stderr)


def test_haproxy_accepts_the_config(rendered, tools):
    if tools.root is None:
        require_tools("haproxy")
    tools.expect_version("haproxy")
    for vm in vms(rendered, "lb"):
        config = vm / "files/etc/haproxy/haproxy.cfg"
        assert config.is_file()
        result = tools.run("haproxy", "-c", "-f", str(config), binds=[rendered])
        assert result.returncode == 0, (tools.suite, result.stdout + result.stderr)
        assert "ALERT" not in result.stdout + result.stderr, (tools.suite, result.stdout + result.stderr)


def test_keepalived_accepts_the_config_on_a_host_with_the_named_interfaces(rendered, tools):
    if tools.root is None:
        require_tools("keepalived", "ip")
    require_root()
    tools.expect_version("keepalived")
    # keepalived refuses a config naming an interface that does not exist: give it the guest's names.
    with network_namespace("frontend", "backend") as namespace:
        for vm in vms(rendered, "lb"):
            config = vm / "files/etc/keepalived/keepalived.conf"
            assert config.is_file()  # keepalived -t passes on a missing file
            result = tools.run("keepalived", "--config-test", "-f", str(config), binds=[rendered], netns=namespace)
            assert result.returncode == 0, (tools.suite, result.stdout + result.stderr)
            # ... and, in the root, the file must be there too (seen through the bind mount)
            assert "Config files missing" not in result.stderr, (tools.suite, result.stderr)


def test_nft_accepts_every_ruleset(rendered, tools):
    if tools.root is None:
        require_tools("nft")
    require_root()  # nft -c needs netlink access
    tools.expect_version("nft")
    for vm in vms(rendered):
        ruleset = vm / "files/etc/nftables.conf"
        result = tools.run("nft", "-c", "-f", str(ruleset), binds=[rendered])
        assert result.returncode == 0, (tools.suite, vm.name, result.stderr)


def test_the_activation_scripts_are_valid_shell(rendered, tools):
    for vm in vms(rendered):
        result = tools.run("sh", "-n", str(vm / "files/usr/local/sbin/ha-lb-activate"), binds=[rendered])
        assert result.returncode == 0, (tools.suite, result.stderr)


def test_systemd_accepts_the_boot_gate_unit(rendered, tools, tmp_path):
    """Each load balancer's boot gate unit as systemd reads it (systemd-analyze verify, in a root holding the suite's
    own units and the rendered unit and script): no setting it ignores, its command there and executable."""
    # Both releases have merged /usr (/lib a link to usr/lib); systemd 257 looks for units under /usr/lib only.
    system_units = (tools.root or pathlib.Path("/")) / "usr/lib/systemd/system"
    for vm in vms(rendered, prefix="lb"):
        root = tmp_path / vm.name
        shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
        (root / "lib").symlink_to("usr/lib")
        for path in (PATHS.boot_finished_unit, PATHS.boot_finished_script):
            (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(vm / "files" / path.lstrip("/"), root / path.lstrip("/"))
        (root / PATHS.boot_finished_script.lstrip("/")).chmod(0o755)  # as write_files gives it (the golden files say)
        result = tools.run("systemd-analyze", "verify", f"--root={root}", PATHS.boot_finished_unit, binds=[tmp_path])
        assert result.returncode == 0 and result.stderr == "", (tools.suite, vm.name, result.stderr)


def _certificate_block(activate: str) -> tuple[str, str, str]:
    """(the activation script's block that makes the TLS pair on first boot, key path, certificate path)."""
    block = re.search(r"^if \[ ! -s (\S+) \]; then\n.*?^fi\n", activate, re.M | re.S)
    assert block, "the web server's activation script no longer makes its TLS pair in an `if [ ! -s KEY ]` block"
    key = re.search(r" -keyout (\S+)", block.group(0))
    certificate = re.search(r" -out (\S+)", block.group(0))
    assert key and certificate and key.group(1) == block.group(1), block.group(0)
    return block.group(0), key.group(1), certificate.group(1)


def test_nginx_accepts_the_web_server_site(rendered, tools, tmp_path):
    """The rendered site, byte for byte, under a main nginx.conf that includes conf.d/*.conf inside http as
    Debian's does, with the TLS pair made by the activation script's own commands at the paths it uses.

    It runs in private mount and network namespaces: the key and certificate directories are temporary
    directories bind-mounted there (the host's /etc/ssl, or the trixie root's, is untouched and unseen), and
    the listen ports nginx binds while testing are the namespace's. `-T` is `-t` that also prints the files it
    read, which shows the site was included at all; pid, logs and temp paths stay in the temporary prefix.
    In the trixie root, the TLS pair is made by trixie's openssl and read by trixie's nginx.
    """
    if tools.root is None:
        require_tools("nginx", "openssl", "unshare", "mount")
    require_root()  # unshare --mount
    tools.expect_version("nginx")
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
        tls = []  # (a temporary directory, the key's or certificate's directory it stands in for)
        for index, directory in enumerate(sorted({os.path.dirname(key), os.path.dirname(certificate)})):
            if tools.root is None:
                require(os.path.isdir(directory), f"needs {directory} on this host (a bind-mount target)")
            else:  # the root is built here: a missing directory is the recipe's fault, not a prerequisite
                assert (tools.root / directory.lstrip("/")).is_dir(), f"{directory} is not in {tools.root}"
            (prefix / f"tls{index}").mkdir()
            tls.append((prefix / f"tls{index}", directory))
        checks = (f"sh {shlex.quote(str(prefix / 'make-tls-pair.sh'))}\n"
                  f"test -s {shlex.quote(key)} && test -s {shlex.quote(certificate)}\n"
                  f"exec nginx -T -e stderr -p {shlex.quote(str(prefix))}/ -c {shlex.quote(str(prefix / 'nginx.conf'))}"
                  f" -g {shlex.quote(f'pid {prefix}/nginx.pid; error_log stderr;')}\n")
        if tools.root is None:
            mounts = "".join(f"mount --bind {shlex.quote(str(source))} {shlex.quote(directory)}\n"
                             for source, directory in tls)
            result = run("unshare", "--mount", "--net", "--propagation", "private", "sh", "-c",
                         f"set -eu\n{mounts}{checks}")
        else:
            with network_namespace() as namespace:
                result = tools.run("sh", "-c", f"set -eu\n{checks}", binds=[prefix, *tls], netns=namespace)
        assert result.returncode == 0 and "test is successful" in result.stderr, \
            f"{tools.suite} {vm.name}: nginx -t rejects the site (exit {result.returncode}):\n{result.stderr}\n{site}"
        # The site was read, whole: nginx -T prints each file it included after this line.
        assert f"# configuration file {prefix}/conf.d/ha-lb.conf:\n{site}" in result.stdout, \
            f"{tools.suite} {vm.name}: nginx did not read the site:\n{result.stdout}"
        assert (prefix / "conf.d/ha-lb.conf").read_bytes() == site_file.read_bytes()
