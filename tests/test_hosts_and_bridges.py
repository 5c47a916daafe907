"""Several libvirt hosts and bridged networks: placement, the refusals that keep a lab possible, the URIs the provider
(terraform-provider-libvirt 0.8.1) cannot use, and what a VM on a bridged LAN is rendered with."""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Address

import pytest

from components.libvirt_uri import ssh_config_problems, uri_problems
from components.render import lab_hosts, render_host
from components.settings import SettingsError, load_settings

NO_GATE = {"waitForReady": False}
TWO_HOSTS = {"hosts": {"hv1": "qemu+ssh://root@hv1.example.net/system", "hv2": "qemu+ssh://root@hv2.example.net/system"}}
BRIDGED = {"networkMode": "bridge", "frontendBridge": "br-lan", "backendBridge": "br-back",
           "packageMirror": "http://192.168.80.250/debian"}


def problems_for(raw: dict) -> tuple[str, ...]:
    with pytest.raises(SettingsError) as info:
        load_settings({**NO_GATE, **raw}, stack="test")
    return info.value.problems


def problem(raw: dict, key: str) -> str:
    found = [p for p in problems_for(raw) if p.startswith(key + ":")]
    assert len(found) == 1, problems_for(raw)
    return found[0]


def test_one_host_by_default_named_after_nothing_the_user_wrote():
    s = load_settings({**NO_GATE, "libvirtUri": "qemu+ssh://root@kvm1/system"}, stack="dev")
    assert [(h.name, h.uri) for h in s.hosts] == [("default", "qemu+ssh://root@kvm1/system")]
    assert {vm.host for vm in (*s.load_balancers, *s.web_servers)} == {"default"}


def test_two_hosts_spread_each_tier_and_keep_the_pair_apart():
    s = load_settings({**NO_GATE, **TWO_HOSTS, **BRIDGED}, stack="dev")
    assert [(lb.name, lb.host) for lb in s.load_balancers] == [("lb01", "hv1"), ("lb02", "hv2")]
    assert [(web.name, web.host) for web in s.web_servers] == [("web01", "hv1"), ("web02", "hv2")]
    assert s.machines_on("hv2") == ("lb02", "web02")


def test_an_explicit_placement_is_kept():
    s = load_settings({**NO_GATE, **TWO_HOSTS, **BRIDGED, "webServers": [
        {"name": "web01", "address": "192.168.80.3", "host": "hv2"},
        {"name": "web02", "address": "192.168.80.2", "host": "hv2"}]}, stack="dev")
    assert s.machines_on("hv1") == ("lb01",) and s.machines_on("hv2") == ("lb02", "web01", "web02")


def test_both_load_balancers_on_one_of_several_hosts_is_refused_with_the_reason():
    message = problem({**TWO_HOSTS, **BRIDGED, "loadBalancers": [
        {"name": "lb01", "address": "192.168.10.4", "backendAddress": "192.168.80.11", "priority": 254, "host": "hv1"},
        {"name": "lb02", "address": "192.168.10.2", "backendAddress": "192.168.80.12", "priority": 253, "host": "hv1"},
    ]}, "loadBalancers[1].host")
    assert "'hv1'" in message and "lb01's" in message and "losing one hypervisor" in message


def test_vms_on_several_hosts_need_bridged_networks():
    message = problem({**TWO_HOSTS}, "networkMode")
    assert "'nat'" in message and "expected 'bridge'" in message
    assert "hv1: lb01, web01; hv2: lb02, web02" in message and "do not span hosts" in message


def test_a_placement_on_an_unknown_host_and_an_unused_host_are_refused():
    raw = {**TWO_HOSTS, **BRIDGED, "webServers": [{"name": "web01", "address": "192.168.80.3", "host": "hv3"}]}
    assert "expected one of the hosts: hv1, hv2" in problem(raw, "webServers[0].host")
    unused = {"hosts": {**TWO_HOSTS["hosts"], "hv3": "qemu+ssh://root@hv3/system"}, **BRIDGED}
    assert "carries a VM" in problem(unused, "hosts.hv3")


def test_hosts_and_libvirt_uri_together_are_refused_and_so_is_one_host_listed_twice():
    assert "unset when hosts is set" in problem({**TWO_HOSTS, **BRIDGED, "libvirtUri": "qemu:///system"}, "libvirtUri")
    twice = {"hosts": {"hv1": "qemu:///system", "hv2": "qemu:///system"}, **BRIDGED}
    assert "other than hosts.hv1's" in problem(twice, "hosts.hv2")


@pytest.mark.parametrize("value", [[], "qemu:///system", {"HV1": "qemu:///system"}])
def test_hosts_must_be_a_mapping_of_names_to_uris(value):
    assert problems_for({"hosts": value})[0].startswith("hosts:")


# ---------------------------------------------------------------------------------------------
# URIs: terraform-provider-libvirt 0.8.1 libvirt/uri (components/libvirt_uri.py cites the functions)


@pytest.mark.parametrize("uri", ["qemu:///system", "qemu+ssh://root@hv1/system", "qemu+tcp://hv1:16509/system",
                                 "qemu+tls://hv1:16514/system", "qemu+unix:///system?socket=/run/b/libvirt-sock",
                                 "qemu+ssh://root@hv1/system?keyfile=/root/.ssh/lab&no_verify=1"])
def test_uris_the_provider_can_use_pass(uri):
    assert uri_problems(uri) == []


def test_a_port_in_a_qemu_ssh_uri_is_refused_with_what_works_instead():
    [message] = uri_problems("qemu+ssh://root@hv1:2222/system")
    assert "'hv1:2222' as a host name" in message and "port 22" in message and "qemu+tls://" in message
    assert "hosts.hv1: 'qemu+ssh://root@hv1:2222/system' is not valid" in problem(
        {"hosts": {"hv1": "qemu+ssh://root@hv1:2222/system"}}, "hosts.hv1")


def test_a_qemu_ssh_uri_without_a_user_is_refused():
    [message] = uri_problems("qemu+ssh://hv1/system")
    assert "USER@host" in message and "never applies ssh_config's User" in message


@pytest.mark.parametrize("uri", ["qemu+libssh2://root@hv1/system", "qemu+ext:///system?command=/bin/x"])
def test_transports_the_provider_does_not_implement_are_refused(uri):
    [message] = uri_problems(uri)
    assert "implements the transports unix, tcp, tls, ssh" in message


def test_libvirt_uri_keeps_its_old_key_in_messages():
    assert "libvirtUri: 'kvm-host' is not valid" in problems_for({"libvirtUri": "kvm-host"})[0]


def _ssh_g(port: int):
    def run(command, **_):
        assert command[:2] == ["ssh", "-G"]
        return subprocess.CompletedProcess(command, 0, f"user root\nhostname {command[2]}\nport {port}\n", "")
    return run


def test_a_port_from_the_ssh_configuration_that_the_provider_ignores_is_refused():
    [message] = ssh_config_problems("qemu+ssh://root@hv1/system", run=_ssh_g(2222))
    assert "gives hv1 port 2222" in message and "never reads" in message
    assert ssh_config_problems("qemu+ssh://root@hv1/system", run=_ssh_g(22)) == []
    assert ssh_config_problems("qemu:///system", run=_ssh_g(2222)) == []


def test_the_check_finds_the_port_in_a_real_ssh_configuration(tmp_path):
    """The user's own ssh (`ssh -G`) reads it: a Host block with a Port is what the check refuses."""
    config = tmp_path / "config"
    config.write_text("Host hv1\n    HostName 10.0.0.7\n    Port 2200\n")
    [message] = ssh_config_problems("qemu+ssh://root@hv1/system", config=str(config))
    assert "gives hv1 port 2200" in message
    assert ssh_config_problems("qemu+ssh://root@hv2/system", config=str(config)) == []


# ---------------------------------------------------------------------------------------------
# Bridged networks


def test_bridged_networks_take_the_users_gateway_and_dns_and_no_libvirt_host_address():
    s = load_settings({**NO_GATE, **BRIDGED}, stack="dev")
    assert (s.frontend.bridge, s.backend.bridge) == ("br-lan", "br-back")
    assert s.frontend.router == IPv4Address("192.168.10.1") and s.frontend.dns_servers == (IPv4Address("192.168.10.1"),)
    assert s.backend.router is None and s.backend.dns_servers == ()
    assert s.frontend.host_address is None and s.frontend.metrics_source == "192.168.10.0/24"


def test_bridge_settings_outside_bridge_mode_are_refused():
    message = problem({"frontendBridge": "br0"}, "frontendBridge")
    assert "unless networkMode is 'bridge'" in message


def test_bridge_mode_needs_both_bridges_with_valid_and_distinct_names():
    problems = problems_for({"networkMode": "bridge", "installPackages": False})
    assert {p.split(":")[0] for p in problems} == {"frontendBridge", "backendBridge"}
    assert "15 letters" in problem({**BRIDGED, "frontendBridge": "a-very-long-bridge-name"}, "frontendBridge")
    assert "other than frontendBridge" in problem({**BRIDGED, "backendBridge": "br-lan"}, "backendBridge")


def test_a_gateway_outside_its_network_or_taken_by_a_vm_is_refused():
    assert "inside frontendCidr 192.168.10.0/24" in problem({**BRIDGED, "frontendGateway": "10.0.0.1"},
                                                            "frontendGateway")
    assert "the frontend gateway" in problem({**BRIDGED, "frontendGateway": "192.168.10.4"},
                                             "loadBalancers[0].address")


def test_a_bridged_backend_without_a_way_out_needs_a_mirror_on_it():
    raw = {**BRIDGED, "packageMirror": None}
    assert "backendGateway" in problem(raw, "installPackages")
    assert "inside backendCidr" in problem({**BRIDGED, "packageMirror": "http://deb.debian.org/debian"},
                                           "packageMirror")
    load_settings({**NO_GATE, **BRIDGED, "packageMirror": None, "backendGateway": "192.168.80.1"}, stack="dev")


def test_a_vm_on_a_bridged_lan_routes_through_the_users_gateway():
    s = load_settings({**NO_GATE, **BRIDGED, "frontendGateway": "192.168.10.254",
                       "dnsServers": ["192.168.10.53", "192.168.10.54"]}, stack="dev")
    lb01, _, web01, _ = lab_hosts(s)
    lb = render_host(s, lb01, "$6$salt$hash")
    assert "via: 192.168.10.254" in lb.network_config
    assert "- 192.168.10.53\n        - 192.168.10.54" in lb.network_config
    web = render_host(s, web01, None)
    assert "routes:" not in web.network_config and "nameservers" not in web.network_config
    # Metrics from the bridged LAN, not from a libvirt host address nobody has there.
    assert 'iifname "frontend" ip saddr 192.168.10.0/24 tcp dport { 8405, 9100 } accept' in lb.user_data
    assert 'iifname "backend" ip saddr 192.168.80.0/24 tcp dport 9100 accept' in web.user_data


# ---------------------------------------------------------------------------------------------
# The program: one provider, pool and base image per host; NICs on the user's bridges


def _two_host_lab():
    from tests.keys import key_config
    from tests.program_run import run_program

    return run_program({"statsPassword": "correct-horse-battery", **key_config(), **TWO_HOSTS, **BRIDGED}, stack="dev")


def test_each_host_gets_its_own_provider_pool_and_base_image_and_each_vm_its_hosts_provider():
    lab = _two_host_lab()
    providers = {p.name: p for p in lab.of_type("pulumi:providers:libvirt")}
    assert {name: p.inputs["uri"] for name, p in providers.items()} == {
        "libvirt-hv1": "qemu+ssh://root@hv1.example.net/system", "libvirt-hv2": "qemu+ssh://root@hv2.example.net/system"}
    assert {p.name for p in lab.of_type("libvirt:index/pool:Pool")} == {"storage-hv1-pool", "storage-hv2-pool"}
    assert lab.of_type("libvirt:index/network:Network") == []  # the user's bridges, no libvirt network

    def provider_of(resource_name):
        return lab.named(resource_name).provider.split("::")[-2]

    for vm, host in (("lb01", "hv1"), ("web01", "hv1"), ("lb02", "hv2"), ("web02", "hv2")):
        for part in ("disk", "cloud-init", "domain"):
            assert provider_of(f"{vm}-{part}") == f"libvirt-{host}", (vm, part)
        disk = lab.named(f"{vm}-disk").inputs
        assert disk["pool"] == lab.named(f"storage-{host}-pool").inputs["name"]
        [base] = [r for r in lab.of_type("libvirt:index/volume:Volume")
                  if "source" in r.inputs and r.name.startswith(f"storage-{host}-")]
        assert disk["baseVolumeId"] == base.id
    nics = lab.named("lb02-domain").inputs["networkInterfaces"]
    assert [(n.get("bridge"), n.get("networkId")) for n in nics] == [("br-lan", None), ("br-back", None)]
    assert lab.outputs["hosts"] == {
        "hv1": {"uri": "qemu+ssh://root@hv1.example.net/system", "machines": ["lb01", "web01"]},
        "hv2": {"uri": "qemu+ssh://root@hv2.example.net/system", "machines": ["lb02", "web02"]}}
