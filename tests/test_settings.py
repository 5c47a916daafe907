"""Settings: defaults follow the reference plan; bad input is reported completely and clearly."""

from __future__ import annotations

import re
from ipaddress import IPv4Address

import pytest

from components.settings import PackageMirror, SettingsError, load_settings
from tests.conftest import reference_priority_load_balancers

KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1e+MvWg3P+0mXZlq7y0tq3T1m8bYd2Yb8bLr8t7QF test@lab")


# The readiness gate needs an SSH key; most cases here are about other settings.
NO_GATE = {"waitForReady": False}


def problems_for(raw: dict) -> tuple[str, ...]:
    with pytest.raises(SettingsError) as info:
        load_settings({**NO_GATE, **raw}, stack="test")
    return info.value.problems


def assert_problem(raw: dict, key: str, *fragments: str) -> None:
    problems = problems_for(raw)
    matching = [p for p in problems if p.startswith(key + ":")]
    assert matching, f"no problem reported for {key}; got {problems}"
    for fragment in fragments:
        assert any(fragment in p for p in matching), f"{fragment!r} not in {matching}"


def test_defaults_reproduce_the_reference_plan_where_libvirt_allows():
    s = load_settings(NO_GATE, stack="dev")
    assert s.vip == IPv4Address("192.168.10.3")
    assert [(lb.name, str(lb.address), lb.priority) for lb in s.load_balancers] == [
        ("lb01", "192.168.10.4", 254), ("lb02", "192.168.10.2", 253)]
    assert [(w.name, str(w.address)) for w in s.web_servers] == [("web01", "192.168.80.3"), ("web02", "192.168.80.2")]
    assert (s.http_port, s.https_port, s.stats_port, s.web_http_port, s.web_https_port) == (80, 443, 9000, 8080, 8443)
    assert s.vrrp.virtual_router_id == 1 and s.vrrp.advert_interval == 1 and s.vrrp.unicast
    assert (s.vrrp.check_interval, s.vrrp.check_weight, s.vrrp.preempt, s.vrrp.version) == (2, 0, True, 2)
    assert s.vrrp.track_process and s.vrrp.preempt_delay == 10  # 5 checks of 2 s
    assert s.frontend.host_address == s.frontend.router == IPv4Address("192.168.10.1")  # libvirt NAT gateway
    assert s.lab_name == "ha-lb-dev" and s.pool_path == "/var/lib/libvirt/images/ha-lb-dev"


def test_structured_values_arrive_as_json_text_from_pulumi():
    s = load_settings({**NO_GATE, "webServers": '[{"name": "w1", "address": "192.168.80.20"}]', "httpPort": "8000",
                       "installPackages": "false", "networkMode": "isolated"}, stack="dev")
    assert [w.name for w in s.web_servers] == ["w1"] and s.http_port == 8000 and s.install_packages is False


def test_the_base_image_defaults_to_debian_13_and_takes_short_names():
    assert load_settings(NO_GATE, stack="dev").base_image == \
        "https://cloud.debian.org/images/cloud/trixie/latest/debian-13-generic-amd64.qcow2"
    assert load_settings({**NO_GATE, "baseImage": "debian-12"}, stack="dev").base_image == \
        "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2"
    assert load_settings({**NO_GATE, "baseImage": "/srv/golden.qcow2"}, stack="dev").base_image == "/srv/golden.qcow2"


def test_the_readiness_wait_defaults_to_longer_under_software_emulation():
    assert load_settings(NO_GATE, stack="dev").ready_timeout == 900
    assert load_settings({**NO_GATE, "domainType": "qemu"}, stack="dev").ready_timeout == 1800
    assert load_settings({**NO_GATE, "domainType": "qemu", "readyTimeout": 600}, stack="dev").ready_timeout == 600


def test_a_package_mirror_serves_an_isolated_lab_from_the_host():
    s = load_settings({**NO_GATE, "networkMode": "isolated", "packageMirror": "http://192.168.80.1:8080/debian/"},
                      stack="dev")
    assert s.install_packages and s.package_mirror == PackageMirror(
        archive="http://192.168.80.1:8080/debian", security="http://192.168.80.1:8080/debian-security")
    s = load_settings({**NO_GATE, "packageMirror": {"archive": "https://mirror.example/debian",
                                                    "security": "https://security.example/debian-security"}},
                      stack="dev")
    assert s.package_mirror == PackageMirror("https://mirror.example/debian", "https://security.example/debian-security")
    # As Pulumi hands an object over: JSON text.
    s = load_settings({**NO_GATE, "packageMirror": '{"archive": "http://m.example/debian", '
                                                   '"security": "http://m.example/security"}'}, stack="dev")
    assert s.package_mirror == PackageMirror("http://m.example/debian", "http://m.example/security")
    assert load_settings(NO_GATE, stack="dev").package_mirror is None


def test_fast_profile_uses_vrrpv3_with_sub_second_adverts():
    s = load_settings({**NO_GATE, "vrrp": {"profile": "fast"}}, stack="dev")
    assert (s.vrrp.version, s.vrrp.advert_interval, s.vrrp.check_interval) == (3, 0.1, 1)
    assert s.vrrp.master_down_interval < 1
    assert s.vrrp.preempt_delay == 5  # 5 checks of 1 s


def test_a_hold_down_can_be_set_or_turned_off_and_is_none_without_preemption():
    assert load_settings({**NO_GATE, "vrrp": {"preemptDelay": 2.5}}, stack="dev").vrrp.preempt_delay == 2.5
    assert load_settings({**NO_GATE, "vrrp": {"preemptDelay": 0}}, stack="dev").vrrp.preempt_delay == 0
    assert load_settings({**NO_GATE, "vrrp": {"preempt": False}}, stack="dev").vrrp.preempt_delay == 0
    weighted = {**NO_GATE, "loadBalancers": reference_priority_load_balancers(), "vrrp": {"checkWeight": 2}}
    assert load_settings(weighted, stack="dev").vrrp.preempt_delay == 0


@pytest.mark.parametrize("raw, key, fragments", [
    ({"vip": "192.168.20.3"}, "vip", ["inside frontendCidr 192.168.10.0/24"]),
    ({"vip": "192.168.10.0"}, "vip", ["network address"]),
    ({"vip": "192.168.10.255"}, "vip", ["broadcast address"]),
    ({"vip": "192.168.10.1"}, "vip", ["gateway"]),
    ({"vip": "192.168.10.4"}, "loadBalancers[0].address", ["already used by vip"]),
    ({"vip": "not-an-ip"}, "vip", ["'not-an-ip'", "IPv4 address"]),
    ({"frontendCidr": "192.168.10.1/24"}, "frontendCidr", ["host bits zero"]),
    ({"frontendCidr": "banana"}, "frontendCidr", ["CIDR"]),
    ({"backendCidr": "192.168.10.0/25"}, "backendCidr", ["overlap"]),
    ({"webServers": [{"name": "web01", "address": "192.168.10.50"}]}, "webServers[0].address", ["inside backendCidr"]),
    ({"webServers": [{"name": "a", "address": "192.168.80.5"}, {"name": "b", "address": "192.168.80.5"}]},
     "webServers[1].address", ["already used by webServers[0].address"]),
    ({"webServers": [{"name": "web01", "address": "192.168.80.5"}, {"name": "web01", "address": "192.168.80.6"}]},
     "webServers[1].name", ["unique"]),
    ({"webServers": [{"name": "Web_01", "address": "192.168.80.5"}]}, "webServers[0].name", ["host name"]),
    ({"webServers": []}, "webServers", ["at least one web server"]),
    ({"loadBalancers": [{"name": "lb01", "address": "192.168.10.4", "backendAddress": "192.168.80.11", "priority": 100},
                        {"name": "lb02", "address": "192.168.10.2", "backendAddress": "192.168.80.12", "priority": 100}]},
     "loadBalancers[1].priority", ["different from lb01"]),
    ({"loadBalancers": [{"name": "lb01", "address": "192.168.10.4", "backendAddress": "192.168.80.11", "priority": 100}]},
     "loadBalancers", ["exactly two"]),
    ({"vrrp": {"virtualRouterId": 256}}, "vrrp.virtualRouterId", ["256", "1 to 255"]),
    ({"vrrp": {"virtualRouterId": 0}}, "vrrp.virtualRouterId", ["1 to 255"]),
    ({"vrrp": {"advertInterval": 0.5}}, "vrrp.advertInterval", ["whole seconds", "fast"]),
    ({"vrrp": {"profile": "fast", "advertInterval": 50}}, "vrrp.advertInterval", ["0.01 to 40.95"]),
    ({"vrrp": {"profile": "turbo"}}, "vrrp.profile", ["classic, fast"]),
    ({"vrrp": {"checkInterval": 0}}, "vrrp.checkInterval", ["1 to 3600"]),
    ({"vrrp": {"checkWeight": 1}}, "vrrp.checkWeight", ["priority gap"]),
    ({"vrrp": {"checkWeight": 2}}, "vrrp.checkWeight", ["expected at most 0", "lb01's priority 254", "within 254"]),
    ({"vrrp": {"checkWeight": 2, "preempt": False}}, "vrrp.checkWeight", ["expected 0 when vrrp.preempt is false"]),
    ({"vrrp": {"trackProcess": "yes"}}, "vrrp.trackProcess", ["true or false"]),
    ({"vrrp": {"preemptDelay": 1001}}, "vrrp.preemptDelay", ["1001", "0 to 1000"]),
    ({"vrrp": {"preemptDelay": "soon"}}, "vrrp.preemptDelay", ["soon", "0 to 1000"]),
    ({"vrrp": {"preemptDelay": 5, "preempt": False}}, "vrrp.preemptDelay", ["expected 0 (or unset) when vrrp.preempt is false"]),
    ({"vrrp": {"preemptDelay": 5, "checkWeight": 2}, "loadBalancers": reference_priority_load_balancers()},
     "vrrp.preemptDelay", ["with vrrp.checkWeight", "delay every failover"]),
    ({"vrrp": {"unicats": True}}, "vrrp.unicats", ["unknown setting"]),
    ({"httpPort": 70000}, "httpPort", ["1 to 65535"]),
    ({"httpPort": 0}, "httpPort", ["1 to 65535"]),
    ({"statsPort": 80}, "statsPort", ["different from httpPort"]),
    ({"webHttpsPort": 8080}, "webHttpsPort", ["different from webHttpPort"]),
    ({"httpsPort": 22}, "httpsPort", ["SSH"]),
    ({"metricsPort": 70000}, "metricsPort", ["70000", "1 to 65535"]),
    ({"metricsPort": "8405x"}, "metricsPort", ["8405x", "whole number"]),
    ({"metricsPort": 9000}, "metricsPort", ["9000", "different from statsPort"]),
    ({"metricsPort": 9100}, "metricsPort", ["9100", "prometheus-node-exporter listens there"]),
    ({"statsPort": 9100}, "statsPort", ["9100", "prometheus-node-exporter listens there"]),
    ({"webHttpPort": 9100}, "webHttpPort", ["9100", "prometheus-node-exporter", "web server"]),
    ({"networkMode": "routed"}, "networkMode", ["nat, isolated, bridge"]),
    ({"networkMode": "isolated"}, "installPackages", ["isolated", "packageMirror", "192.168.80.1"]),
    ({"vip": "192.168.10.1"}, "vip", ["it is the libvirt host/gateway address of 192.168.10.0/24"]),
    ({"domainType": "xen"}, "domainType", ["kvm, qemu"]),
    ({"memoryMiB": 64}, "memoryMiB", ["512 to"]),
    ({"vcpus": "two"}, "vcpus", ["whole number"]),
    ({"diskGiB": 1}, "diskGiB", ["4 to"]),
    ({"sshPublicKeys": ["ssh-ed25519 notbase64!"]}, "sshPublicKeys[0]", ["OpenSSH public key"]),
    ({"sshPublicKeys": ["ssh-rsa " + KEY.split()[1]]}, "sshPublicKeys[0]", ["OpenSSH public key"]),
    ({"statsUser": "a b"}, "statsUser", ["letters"]),
    ({"statsPassword": "short"}, "statsPassword", ["at least 8"]),
    ({"baseImage": "debian.qcow2"}, "baseImage", ["'debian.qcow2'", "debian-13, debian-12, an absolute path or an http(s) URL"]),
    ({"baseImage": "debian-14"}, "baseImage", ["'debian-14'", "debian-13, debian-12"]),
    ({"packageMirror": "ftp://mirror.example/debian"}, "packageMirror", ["'ftp://mirror.example/debian'", "http:// or https://"]),
    ({"packageMirror": "http://user@mirror.example/debian"}, "packageMirror", ["without spaces, query or user"]),
    ({"packageMirror": "http://mirror.example:99999/debian"}, "packageMirror", ["port from 1 to 65535"]),
    ({"packageMirror": 3142}, "packageMirror", ["3142", "{archive: URL, security: URL}"]),
    ({"packageMirror": {"archive": "http://m.example/debian"}}, "packageMirror.security", ["null", "http://"]),
    ({"packageMirror": {"archive": "http://m.example/debian", "security": "x", "updates": "y"}},
     "packageMirror.updates", ["unknown setting"]),
    ({"networkMode": "isolated", "packageMirror": "http://deb.debian.org/debian"}, "packageMirror",
     ["'http://deb.debian.org/debian'", "isolated", "the host's backend address 192.168.80.1"]),
    ({"networkMode": "isolated", "packageMirror": {"archive": "http://192.168.80.1/debian",
                                                    "security": "http://192.168.10.1/debian-security"}},
     "packageMirror.security", ["'http://192.168.10.1/debian-security'", "192.168.80.1"]),
    ({"pool": "relative/dir"}, "pool", ["absolute directory"]),
    ({"vipp": "192.168.10.3"}, "vipp", ["unknown setting", "vip"]),
    ({"sshPrivateKey": "/nonexistent/key"}, "sshPrivateKey", ["'/nonexistent/key'", "cannot be read"]),
    ({"readyTimeout": 5}, "readyTimeout", ["60 to 7200"]),
    ({"sshUser": "Root User"}, "sshUser", ["Linux user name"]),
])
def test_each_bad_setting_is_named_with_its_value_and_what_is_allowed(raw, key, fragments):
    assert_problem(raw, key, *fragments)


def test_every_problem_is_reported_at_once():
    problems = problems_for({"vip": "10.0.0.1", "httpPort": 0, "vrrp": {"virtualRouterId": 300}, "domainType": "xen"})
    assert {p.split(":")[0] for p in problems} >= {"vip", "httpPort", "vrrp.virtualRouterId", "domainType"}


def test_error_message_is_short_and_readable():
    with pytest.raises(SettingsError) as info:
        load_settings({**NO_GATE, "vip": "192.168.20.3"}, stack="test")
    message = str(info.value)
    assert message.startswith("invalid ha-lb stack configuration (1 problem(s)):")
    assert "vip: '192.168.20.3' is not valid; expected an address inside frontendCidr 192.168.10.0/24" in message


def test_a_valid_ssh_key_and_password_are_kept_but_the_password_is_not_in_repr():
    s = load_settings({**NO_GATE, "sshPublicKeys": [KEY], "statsPassword": "correct-horse"}, stack="dev")
    assert s.ssh_public_keys == (KEY,)
    assert s.stats_password == "correct-horse" and "correct-horse" not in repr(s)


def test_invalid_stack_name_is_reported():
    with pytest.raises(SettingsError) as info:
        load_settings(NO_GATE, stack="Bad_Stack")
    assert any(re.match(r"stack name: 'Bad_Stack'", p) for p in info.value.problems)


def test_the_readiness_gate_takes_a_key_as_text_or_path(tmp_path):
    from tests.keys import test_key_pair

    private, public = test_key_pair()
    s = load_settings({"sshPrivateKey": private, "sshPublicKeys": [public]}, stack="dev")
    assert s.wait_for_ready and s.ssh_private_key == private and private not in repr(s)
    path = tmp_path / "key"
    path.write_text(private)
    assert load_settings({"sshPrivateKey": str(path), "sshPublicKeys": [public]}, stack="dev").ssh_private_key == private
    (tmp_path / "not-a-key").write_text("hello")
    assert_problem({"waitForReady": True, "sshPrivateKey": str(tmp_path / "not-a-key"), "sshPublicKeys": [public]},
                   "sshPrivateKey", "does not hold a private key")


def test_the_gate_needs_someone_to_log_in():
    from tests.keys import test_key_pair

    assert_problem({"waitForReady": True, "sshPrivateKey": test_key_pair()[0], "sshPublicKeys": []},
                   "sshPublicKeys", "readiness gate")


def test_metrics_port_defaults_to_the_port_haproxys_documentation_uses():
    assert load_settings(NO_GATE, stack="dev").metrics_port == 8405
    assert load_settings({**NO_GATE, "metricsPort": 9405}, stack="dev").metrics_port == 9405
