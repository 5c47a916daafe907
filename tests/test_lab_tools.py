"""The status view and the failover drill (issue #11) off the VMs: reading a stack through the Pulumi CLI, the
guest-side probe run against the real notify script's file and HAProxy's `show stat` format, the health
verdicts and exit codes, and the drill's refusal. The VM end-to-end test runs both against real VMs."""

from __future__ import annotations

import json
import os
import pathlib
import stat
import subprocess
import sys
import textwrap

import pytest

from components import drill, lab_access, status
from components.lab_access import LabAccessError, lab_from_stack, raw_config_from_cli
from components.render import LOAD_BALANCER, PATHS, WEB_SERVER, lab_hosts
from components.settings import load_settings
from tests.keys import key_config
from tests.test_metrics_live import run_notify_script

CONFIG = {**key_config(), "vip": "192.168.10.3"}
# `show stat` as HAProxy 2.6.12 (Debian 12) answers it, captured from a real process (lines cut after field 39):
# web01 failing its checks; web02 without checks; web03 UP until its server stopped, one failed check since
# (going down); web04 not checked yet since HAProxy started; web05 the same, its first check running (its
# server accepts and never answers: "* "); the BACKEND line is not a server. Field 17 is `status`, 36
# `check_status`.
SHOW_STAT = """\
# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck
web-prod-http,web01,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,3,3,,1,2,1,,0,,2,0,,0,L4CON,,0,0
web-prod-http,web02,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1,1,0,,,3,,,1,2,2,,0,,2,0,,0,,,,0
web-prod-http,web03,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/2,1,1,0,1,0,3,0,,1,2,3,,0,,2,0,,0,L4CON,,0,0
web-prod-http,web04,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/2,1,1,0,0,0,3,0,,1,2,4,,0,,2,0,,0,INI,,,0
web-prod-http,web05,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/2,1,1,0,0,0,1,0,,1,2,1,,0,,2,0,,0,* INI,,,0
web-prod-http,BACKEND,0,0,0,0,1,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,3,0,,1,2,0,,0,,1,0,,0,,,,0
"""


def settings():
    return load_settings(CONFIG, stack="dev")


def host(name: str):
    return next(h for h in lab_hosts(settings()) if h.name == name)


# -- reading a stack -------------------------------------------------------------------------------------------


def test_the_cli_config_reaches_the_settings_as_the_program_reads_it():
    entries = {
        "ha-lb:vip": {"value": "192.168.10.3", "secret": False},
        "ha-lb:vrrp": {"value": '{"profile":"fast"}', "objectValue": {"profile": "fast"}, "secret": False},
        "ha-lb:statsPassword": {"value": "s3cret-pass", "secret": True},
        "libvirt:uri": {"value": "qemu:///system", "secret": False},
    }
    raw = raw_config_from_cli(entries)
    assert raw == {"vip": "192.168.10.3", "vrrp": '{"profile": "fast"}', "statsPassword": "s3cret-pass"}
    parsed = load_settings({**raw, **key_config()}, stack="dev")
    assert parsed.vrrp.profile == "fast" and parsed.stats_password == "s3cret-pass"


def fake_pulumi(tmp_path: pathlib.Path, config: dict, outputs: dict, stacks=None) -> str:
    """A `pulumi` that answers `config`, `stack output` and `stack ls` (each with --json) from files, and
    records its arguments."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    (tmp_path / "stacks.json").write_text(json.dumps(stacks or [{"name": "dev", "current": True}]))
    script = tmp_path / "pulumi"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "$*" >>{tmp_path}/calls
        case "$1 $2" in
            "config "*) cat {tmp_path}/config.json ;;
            "stack output") cat {tmp_path}/outputs.json ;;
            "stack ls") cat {tmp_path}/stacks.json ;;
            *) echo "unexpected: $*" >&2; exit 1 ;;
        esac
        """))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def cli_config(config: dict) -> dict:
    return {f"ha-lb:{k}": ({"value": json.dumps(v), "objectValue": v} if isinstance(v, (dict, list)) else {"value": v})
            for k, v in config.items()}


def test_a_built_stack_is_read_with_its_generated_key(tmp_path):
    config = {k: v for k, v in CONFIG.items() if k != "sshPrivateKey"}
    entries = {**cli_config(config), "libvirt:uri": {"value": "qemu+ssh://root@vmhost/system", "secret": False}}
    pulumi = fake_pulumi(tmp_path, entries, {"vip": "192.168.10.3", "sshPrivateKey": "KEY FROM STATE"})
    lab = lab_from_stack(None, pulumi, cwd="/some/project")
    assert lab.private_key == "KEY FROM STATE" and lab.vip == "192.168.10.3"
    assert [h.uri for h in lab.settings.hosts] == ["qemu+ssh://root@vmhost/system"]  # the provider's key, as the program reads it
    assert lab.settings.stack == "dev" and set(lab.load_balancers) == {"lb01", "lb02"}
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["stack ls --json --cwd /some/project",
                     "config --show-secrets --stack dev --json --cwd /some/project",
                     "stack output --show-secrets --stack dev --json --cwd /some/project"]


@pytest.mark.parametrize("outputs, config, message", [
    ({}, CONFIG, "stack dev has no outputs: the lab is not built (run `pulumi up` first)"),
    ({"vip": "192.168.10.99"}, CONFIG, "its configuration says vip 192.168.10.3 but the lab was built with "
                                        "192.168.10.99"),
    ({"vip": "192.168.10.3"}, {**CONFIG, "vrrp": {"profile": "turbo"}}, "vrrp.profile"),
])
def test_a_stack_that_cannot_be_used_is_refused_with_the_reason(tmp_path, outputs, config, message):
    pulumi = fake_pulumi(tmp_path, cli_config(config), outputs)
    with pytest.raises(LabAccessError) as refused:
        lab_from_stack("dev", pulumi)
    assert message in str(refused.value)


def test_the_commands_exit_3_when_the_stack_cannot_be_read(tmp_path, capsys):
    pulumi = fake_pulumi(tmp_path, cli_config(CONFIG), {})
    assert status.main(["dev", "--pulumi", pulumi]) == status.UNKNOWN
    assert "the lab is not built" in capsys.readouterr().err
    assert drill.main(["dev", "--pulumi", pulumi, "--fault", "link"]) == status.UNKNOWN
    assert status.main(["dev", "--pulumi", str(tmp_path / "missing")]) == status.UNKNOWN
    assert "no such command" in capsys.readouterr().err


# -- the probe, against the real notify script's file and HAProxy's answer ---------------------------------


STUBS = {
    # systemctl is-system-running: $SYSTEM (its exit status 0 only for "running", as systemctl(1) says);
    # systemctl is-active UNIT: "active", except the units named in $INACTIVE.
    "systemctl": 'if [ "$1" = is-system-running ]; then echo "${SYSTEM:-running}"; [ "${SYSTEM:-running}" = running ]; '
                 'exit; fi; unit=${2%.service}; case " $INACTIVE " in *" $unit "*) echo inactive; exit 3 ;; esac; echo active',
    "ip": 'echo "2: frontend    inet 192.168.10.4/24 brd 192.168.10.255 scope global frontend"; '
          '[ -z "$HOLDS_VIP" ] || echo "2: frontend    inet 192.168.10.3/32 scope global frontend"',
    "sudo": '[ "$1" = -n ] || { echo "sudo without -n" >&2; exit 1; }; shift; exec "$@"',
}


def run_probe(tmp_path: pathlib.Path, name: str, notify_calls: list[list[str]], env: str = "") -> str:
    """probe_script run by `sh -s` as the status view runs it over SSH, in a private mount namespace where the
    notify script has written its real file and a socket at HAProxy's path answers `show stat`."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for command, body in STUBS.items():
        (stubs / command).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / command).chmod(0o755)
    server = tmp_path / "stat_server.py"
    server.write_text(textwrap.dedent(f"""\
        import os, socket
        listener = socket.socket(socket.AF_UNIX)
        listener.bind({PATHS.haproxy_socket!r})
        listener.listen(1)
        open({str(tmp_path / 'listening')!r}, "w").close()
        connection, _ = listener.accept()
        assert connection.recv(100) == b"show stat\\n"
        connection.sendall({SHOW_STAT.encode()!r})
        connection.close()
        """))
    (tmp_path / "probe.sh").write_text(status.probe_script(host(name), "192.168.10.3"))
    out = tmp_path / "probe.out"
    socket_dir = os.path.dirname(PATHS.haproxy_socket)
    result = run_notify_script(tmp_path, notify_calls, after=f"""
mkdir -p {socket_dir} && mount -t tmpfs ha-lb-run-haproxy {socket_dir}
python3 {server} &
for _ in $(seq 100); do [ -e {tmp_path}/listening ] && break; sleep 0.05; done
env -i PATH={stubs}:/usr/sbin:/usr/bin:/sbin:/bin {env} sh -s <{tmp_path}/probe.sh >{out}
""")
    assert result.returncode == 0, result.stderr
    return out.read_text()


def test_the_probe_reads_the_vrrp_state_the_vip_the_services_and_each_server(tmp_path):
    output = run_probe(tmp_path, "lb01", [["INSTANCE", "web-prod", "BACKUP", "254"],
                                          ["INSTANCE", "web-prod", "MASTER", "254"]], env="HOLDS_VIP=1")
    node = status.parse_probe(host("lb01"), output)
    assert node.reachable and node.holds_vip, output
    assert [(i.name, i.state) for i in node.vrrp] == [("web-prod", "MASTER")] and node.vrrp[0].since > 1e9
    assert node.services == {unit: "active" for unit in status.SERVICES[LOAD_BALANCER]}
    assert [(s.server, s.status, s.last_check, s.serving) for s in node.servers] == [
        ("web01", "DOWN", "L4CON", False), ("web02", "no check", "", True),
        ("web03", "UP 1/2", "L4CON", True), ("web04", "UP 1/2", "INI", True), ("web05", "UP 1/2", "INI", True)]
    (tmp_path / "lb02").mkdir()
    backup = status.parse_probe(host("lb02"), run_probe(tmp_path / "lb02", "lb02",
                                                        [["INSTANCE", "web-prod", "BACKUP", "253"]]))
    assert not backup.holds_vip and [i.state for i in backup.vrrp] == ["BACKUP"]
    level, problems = status.assess((node, backup))
    assert level == status.DEGRADED, problems
    assert problems == ("lb01: HAProxy sees web-prod-http/web01 DOWN", "lb02: HAProxy sees web-prod-http/web01 DOWN")
    lab = status.LabStatus("dev", "192.168.10.3", (node, backup), level, problems)
    assert lab.notes[:2] == (
        "lb01: HAProxy sees web-prod-http/web03 UP 1/2: its last check failed (L4CON); "
        "one more failure as `fall` counts takes it out",
        "lb01: HAProxy sees web-prod-http/web04 UP 1/2: not checked yet since HAProxy started")


def test_a_booting_load_balancer_is_named_booting_not_by_the_state_its_shutdown_left(tmp_path):
    # The notify script's file survives the reboot with STOP; systemd is still running boot jobs.
    output = run_probe(tmp_path, "lb01", [["INSTANCE", "web-prod", "MASTER", "254"],
                                          ["INSTANCE", "web-prod", "STOP", "254"]], env="SYSTEM=starting")
    node = status.parse_probe(host("lb01"), output)
    assert node.booting and node.system == "starting", output
    (tmp_path / "lb02").mkdir()
    peer = status.parse_probe(host("lb02"), run_probe(tmp_path / "lb02", "lb02",
                                                      [["INSTANCE", "web-prod", "MASTER", "253"]], env="HOLDS_VIP=1"))
    assert not peer.booting and peer.system == "running"
    level, problems = status.assess((node, peer))
    assert level == status.UNHEALTHY
    assert "lb01: booting (systemd: starting); keepalived keeps it out of the election until its boot has finished" \
        in problems and not any("is STOP" in problem for problem in problems), problems
    table = status.format_status(status.LabStatus("dev", "192.168.10.3", (node, peer), level, problems))
    assert table.splitlines()[3].split()[:4] == ["lb01", "192.168.10.4", "-", "booting"], table


def test_a_stopped_keepalived_and_an_inactive_service_show_in_the_probe(tmp_path):
    output = run_probe(tmp_path, "lb02", [["INSTANCE", "web-prod", "BACKUP", "253"],
                                          ["INSTANCE", "web-prod", "STOP", "253"]], env="INACTIVE=keepalived")
    node = status.parse_probe(host("lb02"), output)
    assert not node.holds_vip and [i.state for i in node.vrrp] == ["STOP"]
    assert node.services["keepalived"] == "inactive"


# -- verdicts --------------------------------------------------------------------------------------------------


def lb(name: str, state: str = "BACKUP", holds: bool = False, haproxy: str = "active",
       servers=(("web01", "UP"), ("web02", "UP")), system: str = "running") -> status.NodeStatus:
    units = {unit: "active" for unit in status.SERVICES[LOAD_BALANCER]}
    return status.NodeStatus(name, LOAD_BALANCER, "192.168.10.4", True, clock=2e9, system=system,
                             services={**units, "haproxy": haproxy}, holds_vip=holds,
                             vrrp=(status.VrrpInstance("web-prod", state, 2e9 - 10000),),
                             servers=tuple(status.BackendServer("web-prod-http", *server) for server in servers))


def web(name: str, nginx: str = "active", system: str = "running") -> status.NodeStatus:
    units = {unit: "active" for unit in status.SERVICES[WEB_SERVER]}
    return status.NodeStatus(name, WEB_SERVER, "192.168.80.3", True, clock=2e9, system=system,
                             services={**units, "nginx": nginx})


def unreachable(name: str, role: str = LOAD_BALANCER) -> status.NodeStatus:
    return status.NodeStatus(name, role, "192.168.10.2", False, error="Connection timed out")


HEALTHY = (lb("lb01", "MASTER", True), lb("lb02"), web("web01"), web("web02"))


@pytest.mark.parametrize("nodes, level, problem", [
    (HEALTHY, status.OK, None),
    ((lb("lb01"), lb("lb02"), web("web01")), status.UNHEALTHY, "no load balancer holds the VIP"),
    ((lb("lb01", "MASTER", True), lb("lb02", "MASTER", True)), status.UNHEALTHY,
     "split brain: lb01 and lb02 both hold the VIP"),
    ((lb("lb01", "FAULT"), lb("lb02", "MASTER", True)), status.UNHEALTHY, "lb01: VRRP instance web-prod is FAULT"),
    ((lb("lb01", "STOP"), lb("lb02", "MASTER", True)), status.UNHEALTHY, "lb01: VRRP instance web-prod is STOP"),
    # Booted but degraded (a unit failed): the VRRP state on file is current again.
    ((lb("lb01", "STOP", system="degraded"), lb("lb02", "MASTER", True)), status.UNHEALTHY,
     "lb01: VRRP instance web-prod is STOP"),
    ((lb("lb01", "MASTER", True), lb("lb02"), web("web01", system="starting")), status.DEGRADED,
     "web01: booting (systemd: starting)"),
    ((lb("lb01", "MASTER", True), unreachable("lb02")), status.UNHEALTHY, "lb02: out of reach (Connection timed out)"),
    ((lb("lb01", "MASTER", True, haproxy="failed"), lb("lb02")), status.UNHEALTHY,
     "lb01: holds the VIP but HAProxy is failed"),
    ((lb("lb01", "BACKUP", True), lb("lb02")), status.UNHEALTHY, "lb01: holds the VIP but is not MASTER"),
    ((lb("lb01", "MASTER", True, servers=(("web01", "DOWN"), ("web02", "UP"))), lb("lb02")), status.DEGRADED,
     "lb01: HAProxy sees web-prod-http/web01 DOWN"),
    ((lb("lb01", "MASTER", True, servers=(("web01", "DOWN 1/2"), ("web02", "UP"))), lb("lb02")), status.DEGRADED,
     "lb01: HAProxy sees web-prod-http/web01 DOWN 1/2"),
    # Still served from (HAProxy's `fall` absorbs one failed check): a note, not a problem.
    ((lb("lb01", "MASTER", True, servers=(("web01", "UP 1/2"), ("web02", "UP"))), lb("lb02")), status.OK, None),
    ((lb("lb01", "MASTER", True), lb("lb02"), web("web01", nginx="failed")), status.DEGRADED, "web01: nginx is failed"),
    ((lb("lb01", "MASTER", True), lb("lb02"), unreachable("web02", WEB_SERVER)), status.DEGRADED,
     "web02: out of reach (Connection timed out)"),
])
def test_the_verdict_names_what_is_wrong(nodes, level, problem):
    found, problems = status.assess(nodes)
    assert found == level, problems
    assert (problem in problems) if problem else problems == ()


def test_the_status_table_names_the_holder_states_and_servers():
    level, problems = status.assess(HEALTHY)
    text = status.format_status(status.LabStatus("dev", "192.168.10.3", HEALTHY, level, problems))
    lines = text.splitlines()
    assert lines[0] == "stack dev: VIP 192.168.10.3 held by lb01: healthy"
    assert lines[2].split()[:4] == ["load", "balancer", "address", "VIP"]
    assert lines[3].split()[:4] == ["lb01", "192.168.10.4", "held", "web-prod"]
    assert "MASTER" in lines[3] and "BACKUP" in lines[4] and "since 2033-05-18 00:46:40 UTC (2h 46m 40s ago)" in lines[3]
    assert any(line.split() == ["web-prod-http/web01", "UP", "UP"] for line in lines)
    assert "problems:" not in text and "notes:" not in text


def test_a_server_one_failed_check_from_going_down_shows_its_check_and_a_note_not_a_problem():
    going_down = (lb("lb01", "MASTER", True, servers=(("web01", "UP 1/2", "L4TOUT"), ("web02", "UP", "L7OK"))),
                  lb("lb02"), web("web01"), web("web02"))
    level, problems = status.assess(going_down)
    shown = status.LabStatus("dev", "192.168.10.3", going_down, level, problems)
    text = status.format_status(shown)
    assert text.splitlines()[0] == "stack dev: VIP 192.168.10.3 held by lb01: healthy", text
    assert any(line.split() == ["web-prod-http/web01", "UP", "1/2", "(L4TOUT)", "UP"] for line in text.splitlines())
    assert any(line.split() == ["web-prod-http/web02", "UP", "UP"] for line in text.splitlines())
    assert text.endswith("notes:\n  lb01: HAProxy sees web-prod-http/web01 UP 1/2: its last check failed (L4TOUT); "
                         "one more failure as `fall` counts takes it out"), text
    assert json.loads(status.status_json(shown))["notes"] == list(shown.notes)


# -- the drill -------------------------------------------------------------------------------------------------


class RecordingSsh:
    def __init__(self):
        self.commands: list[tuple[str, str]] = []

    def run(self, address, command, timeout=60, stdin=None):
        self.commands.append((address, command))
        raise AssertionError("the drill ran a command on a lab it should have refused")


def test_the_drill_refuses_an_unhealthy_lab_and_touches_nothing(monkeypatch):
    lab = lab_access.Lab(settings(), {"vip": "192.168.10.3"}, "KEY")
    unhealthy = (lb("lb01", "FAULT"), lb("lb02", "MASTER", True))
    level, problems = status.assess(unhealthy)
    monkeypatch.setattr(drill, "lab_status", lambda lab, ssh: status.LabStatus("dev", lab.vip, unhealthy, level, problems))
    said: list[str] = []
    ssh = RecordingSsh()
    for fault in drill.FAULTS:
        result, code = drill.run_drill(lab, ssh, fault, log=said.append)  # type: ignore[arg-type]
        assert (result, code) == (None, drill.REFUSED)
    assert ssh.commands == []
    assert "drill refused: the lab is UNHEALTHY, a drill needs it healthy first" in said
    assert any("lb01: VRRP instance web-prod is FAULT" in line for line in said)


def test_each_fault_is_a_command_run_through_sudo_and_the_link_comes_back_by_itself():
    assert drill.fault_command("haproxy", 5) == "sudo -n systemctl kill --signal=KILL haproxy.service"
    assert drill.fault_command("keepalived", 5) == "sudo -n systemctl stop keepalived.service"
    assert drill.fault_command("reboot", 5) == "sudo -n systemctl reboot"
    link = drill.fault_command("link", 7)
    assert link == ("sudo -n setsid -f sh -c 'ip link set frontend down; sleep 7; ip link set frontend up' "
                    ">/dev/null 2>&1")
    assert drill.repair_command("keepalived") == "sudo -n systemctl start keepalived.service"
    assert drill.repair_command("link") is None and drill.repair_command("reboot") is None
    with pytest.raises(ValueError, match="--fault power: expected one of haproxy, keepalived, link, reboot, host"):
        drill.fault_command("power", 5)


def _two_host_lab():
    from components.settings import load_settings

    config = {"waitForReady": False, "networkMode": "bridge", "frontendBridge": "br-lan", "backendBridge": "br-back",
              "installPackages": False, "hosts": {"hv1": "qemu:///system", "hv2": "qemu+ssh://root@hv2/system"}}
    return lab_access.Lab(load_settings(config, stack="dev"), {"vip": "192.168.10.3"}, "KEY")


def test_the_host_fault_powers_off_every_vm_on_the_masters_host_and_starts_them_again():
    lab = _two_host_lab()
    calls: list[tuple[str, ...]] = []

    def virsh(uri, *args):
        calls.append((uri, *args))
        return subprocess.CompletedProcess(["virsh"], 0, "", "")

    assert drill.host_fault(lab, "lb02", run=virsh) == ("hv2", ["ha-lb-dev-lb02", "ha-lb-dev-web02"])
    drill.host_repair(lab, "hv2", ["ha-lb-dev-lb02", "ha-lb-dev-web02"], run=virsh)
    uri = "qemu+ssh://root@hv2/system"
    assert calls == [(uri, "destroy", "ha-lb-dev-lb02"), (uri, "destroy", "ha-lb-dev-web02"),
                     (uri, "start", "ha-lb-dev-lb02"), (uri, "start", "ha-lb-dev-web02")]

    def failing(uri, *args):
        return subprocess.CompletedProcess(["virsh"], 1, "", "error: failed to get domain 'ha-lb-dev-lb01'")

    with pytest.raises(lab_access.LabAccessError, match="destroy ha-lb-dev-lb01` failed: error: failed to get domain"):
        drill.host_fault(lab, "lb01", run=failing)


def test_the_host_fault_is_refused_when_the_pair_shares_a_host(monkeypatch):
    lab = lab_access.Lab(settings(), {"vip": "192.168.10.3"}, "KEY")
    healthy = (lb("lb01", "MASTER", True), lb("lb02", "BACKUP"))
    level, problems = status.assess(healthy)
    monkeypatch.setattr(drill, "lab_status", lambda lab, ssh: status.LabStatus("dev", lab.vip, healthy, level, problems))
    said: list[str] = []
    result, code = drill.run_drill(lab, RecordingSsh(), "host", log=said.append,  # type: ignore[arg-type]
                                   run=lambda *a: pytest.fail(f"virsh ran: {a}"))
    assert (result, code) == (None, drill.REFUSED)
    assert any("share the libvirt host 'default'" in line for line in said), said


def test_bad_drill_arguments_are_refused_by_name(capsys):
    with pytest.raises(SystemExit) as exited:
        drill.main(["dev", "--fault", "link", "--link-down", "0.5"])
    assert exited.value.code == 2 and "--link-down 0.5: expected 1 to 60 seconds" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        drill.main(["dev", "--fault", "link", "--wait-healthy", "-1"])
    assert exited.value.code == 2 and "--wait-healthy -1: expected 0 to 3600 seconds" in capsys.readouterr().err
    for interval in ("0", "2"):
        with pytest.raises(SystemExit) as exited:
            drill.main(["dev", "--fault", "haproxy", "--request-interval", interval])
        assert exited.value.code == 2
        assert f"--request-interval {interval}: expected 0.01 to 1 seconds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        drill.main(["dev", "--fault", "power"])
    assert "invalid choice: 'power'" in capsys.readouterr().err


def test_the_drill_table_reads_as_a_report():
    result = drill.DrillResult("haproxy", "lb01", "lb02", 1.63, 0.36, 0.52, 9, 2100, 2, ("lb01", "lb02", "lb01"),
                               0.01, 31.5, 14.75)
    header, row = drill.format_result(result).splitlines()
    assert [c.strip() for c in row.split("|")] == ["haproxy", "lb01", "lb02", "1.63", "0.36", "0.52", "9 of 2100",
                                                   "lb01 -> lb02 -> lb01", "0.01", "31.50"]
    assert [c.strip() for c in header.split("|")][:3] == ["fault", "master", "took over"]
    assert result.moves == 2


# -- the drill's client ----------------------------------------------------------------------------------------


def test_a_request_in_flight_at_the_fault_that_fails_late_does_not_split_the_outage():
    poller = lab_access.VipPoller("192.0.2.1", 80, interval=0.02, timeout=0.25)
    # A slow request sent at 10.00 fails after the one sent at 10.02 was answered (it was in flight when the
    # fault struck); then an outage from 10.04 to 10.30; a second one 5 s later.
    answered = {10.02: True, 10.04: False, 10.06: False, 10.30: True, 10.32: True, 15.00: False, 15.02: True}
    poller._results = [lab_access.Sample(10.00, False, "RemoteDisconnected: Remote end closed connection")] + [
        lab_access.Sample(at, ok, "200 served by web01" if ok else "TimeoutError: timed out")
        for at, ok in answered.items()]
    runs = poller.failed_runs(9.0)
    assert [(run.started, run.ended, run.failed) for run in runs] == [(10.00, 10.30, 3), (15.00, 15.02, 1)]
    assert poller.outage(10.00) == pytest.approx(0.30) and poller.longest_outage(9.0) == pytest.approx(0.30)
    poller._results.append(lab_access.Sample(20.0, False, "TimeoutError: timed out"))
    assert poller.longest_outage(9.0) == float("inf")


def test_failures_with_no_good_answer_between_them_are_one_outage_however_far_apart():
    """A client that could not send for half a second (its host starved) between two failures saw no recovery: one
    outage, not one that never ended followed by another."""
    poller = lab_access.VipPoller.replayed([
        lab_access.Sample(at, ok, "200 served by web01" if ok else "TimeoutError: timed out")
        for at, ok in ((10.0, True), (10.1, False), (10.7, False), (10.8, True), (12.0, False), (12.1, True))],
        interval=0.1, timeout=0.25)
    assert [(run.started, run.ended, run.failed) for run in poller.failed_runs(9.0)] == [(10.1, 10.8, 2), (12.0, 12.1, 1)]
    assert poller.longest_outage(9.0) == pytest.approx(0.7)
    # A window: failures sent from its end on are left out; an answer after it still ends its last outage, and one
    # still going at its end (the next request failed too) has not ended.
    assert poller.longest_outage(9.0, until=11.0) == pytest.approx(0.7)
    assert [(run.started, run.ended) for run in poller.failed_runs(9.0, until=10.5)] == [(10.1, float("inf"))]
    assert poller.failed_runs(11.0, until=12.0) == []


CLIENT_IN_A_BLACKHOLE = """
import json, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from components.lab_access import VipPoller

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"served by web01"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
server = ThreadingHTTPServer(("127.0.0.1", 8080), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
nft = lambda rules: subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
nft("table inet blackhole { chain input { type filter hook input priority 0; }; }")
with VipPoller("127.0.0.1", 8080, interval=0.02, timeout=0.25, limit=4, body_prefix="served by") as poller:
    time.sleep(1.0)
    nft("add rule inet blackhole input tcp dport 8080 drop")  # SYNs to the server vanish, as to a lost VIP
    cut = time.monotonic()
    time.sleep(float(sys.argv[1]))
    nft("flush chain inet blackhole input")
    healed = time.monotonic()
    time.sleep(1.5)
print(json.dumps({"blackhole": healed - cut, "runs": [[r.started - cut, r.seconds, r.failed] for r in poller.failed_runs(0)]}))
"""


def test_the_drills_client_resolves_an_outage_to_its_interval_not_its_timeout(tmp_path):
    """A 0.1 s blackhole (packets to the server dropped, in a private network namespace): every request sent
    into it times out after 0.25 s, and the client, sending every 20 ms whether or not the earlier ones have
    answered, sees an outage of about 0.1 s. One that waited for its requests would see at least the timeout."""
    script = tmp_path / "blackhole.py"
    script.write_text(CLIENT_IN_A_BLACKHOLE)
    project = str(pathlib.Path(__file__).resolve().parent.parent)
    result = subprocess.run(["unshare", "--net", sys.executable, str(script), "0.1"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": project})
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    [(started, seconds, failed)] = measured["runs"]
    assert -0.02 <= started <= 0.04, measured  # the first request sent into the blackhole
    assert 0.08 <= seconds < 0.2 and failed >= 4, measured
