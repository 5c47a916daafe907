"""The real program under Pulumi mocks: resource graph, outputs, secrets, validation, determinism."""

from __future__ import annotations

import pulumi
import pytest
import yaml

from tests.keys import key_config
from tests.program_run import (
    MOCK_GENERATED_PASSWORD,
    MOCK_GENERATED_PRIVATE_KEY,
    MOCK_GENERATED_PUBLIC_KEY,
    run_program,
)

DOMAIN = "libvirt:index/domain:Domain"
VOLUME = "libvirt:index/volume:Volume"
CLOUD_INIT = "libvirt:index/cloudInitDisk:CloudInitDisk"
NETWORK = "libvirt:index/network:Network"
POOL = "libvirt:index/pool:Pool"
PASSWORD = "correct-horse-battery"


def base_image(run):
    [image] = [r for r in run.of_type(VOLUME) if "source" in r.inputs]
    return image


def config(**overrides):
    return {"statsPassword": PASSWORD, **key_config(), **overrides}


@pytest.fixture(scope="module")
def lab():
    return run_program(config(), stack="dev")


def test_four_vms_each_with_disk_seed_and_domain_parented_to_their_component(lab):
    assert len(lab.of_type(DOMAIN)) == 4 and len(lab.of_type(CLOUD_INIT)) == 4
    assert len(lab.of_type(NETWORK)) == 2 and len(lab.of_type(POOL)) == 1
    assert len(lab.of_type(VOLUME)) == 5  # one base image + one copy-on-write disk per VM
    for vm in ("lb01", "lb02", "web01", "web02"):
        component = lab.named(vm)
        assert component.type == "ha-lb:index:VirtualMachine"
        assert component.parent == ("lb" if vm.startswith("lb") else "web")
        for child in (f"{vm}-disk", f"{vm}-cloud-init", f"{vm}-domain"):
            assert lab.named(child).parent == vm
    assert lab.named("lb").type == "ha-lb:index:LoadBalancerPair" and lab.named("lb").parent == "lab"
    assert lab.named("web").type == "ha-lb:index:WebTier"
    assert lab.named("frontend").type == "ha-lb:index:LabNetwork"
    assert lab.named("lab").type == "ha-lb:index:Lab" and lab.named("lab").parent is None
    assert all(r.parent is not None for r in lab.resources if r.name != "lab")


def test_domains_are_wired_to_their_own_disk_seed_and_networks(lab):
    lb01 = lab.named("lb01-domain").inputs
    # qemu_agent true fails every create while the guest boots (0.8.1 domain.go domainGetIfacesInfo).
    assert lb01["name"] == "ha-lb-dev-lb01" and lb01["type"] == "kvm" and lb01["qemuAgent"] is False
    assert lb01["disks"] == [{"volumeId": lab.named("lb01-disk").id}]
    assert lb01["cloudinit"] == lab.named("lb01-cloud-init").id
    assert [n["networkId"] for n in lb01["networkInterfaces"]] == [
        lab.named("frontend-network").id, lab.named("backend-network").id]
    assert all("waitForLease" not in n or n["waitForLease"] is False for n in lb01["networkInterfaces"])
    assert lb01["consoles"] == [{"type": "pty", "targetPort": "0", "targetType": "serial"}]
    web01 = lab.named("web01-domain").inputs
    assert [n["networkId"] for n in web01["networkInterfaces"]] == [lab.named("backend-network").id]
    disk = lab.named("web01-disk").inputs
    assert disk["baseVolumeId"] == base_image(lab).id and disk["size"] == 10 * 1024**3


def test_every_libvirt_resource_uses_the_labs_own_provider_with_a_uri(lab):
    [provider] = lab.of_type("pulumi:providers:libvirt")
    # The provider's `uri` is required and has no default (0.8.1 libvirt/provider.go): always passed.
    assert provider.inputs["uri"] == "qemu:///system" and provider.parent == "lab"
    reference = f"{'urn:pulumi:dev::ha-lb::ha-lb:index:Lab$pulumi:providers:libvirt::libvirt'}::{provider.id}"
    libvirt_resources = [r for r in lab.resources if r.type.startswith("libvirt:")]
    assert len(libvirt_resources) == 16
    assert {r.provider for r in libvirt_resources} == {reference}


@pytest.mark.parametrize("other, given, expected", [
    ({"libvirt:uri": "qemu+ssh://root@kvm1/system"}, {}, "qemu+ssh://root@kvm1/system"),
    ({"libvirt:uri": "qemu+ssh://root@kvm1/system"}, {"libvirtUri": "qemu:///session"}, "qemu:///session"),
])
def test_the_libvirt_uri_comes_from_libvirt_uri_or_ha_lb_libvirt_uri(other, given, expected):
    run = run_program(config(**given), stack="dev", other_config=other)
    assert run.of_type("pulumi:providers:libvirt")[0].inputs["uri"] == expected


def test_a_malformed_libvirt_uri_is_refused_before_any_resource():
    with pytest.raises(pulumi.RunError, match="libvirtUri: 'kvm-host' is not valid; expected a libvirt connection URI"):
        run_program(config(libvirtUri="kvm-host"), stack="dev")


def test_lab_networks_declare_the_dns_libvirt_really_serves(lab):
    # enabled=false would be dropped by the provider (no <dns> element: libvirt serves DNS anyway), on an
    # isolated network too.
    isolated = run_program(config(networkMode="isolated", installPackages=False), stack="dev")
    for run in (lab, isolated):
        assert [n.inputs["dns"] for n in run.of_type(NETWORK)] == [{"enabled": True}] * 2


def test_network_config_matches_the_macs_the_domain_declares(lab):
    for vm in ("lb01", "web02"):
        macs = [n["mac"] for n in lab.named(f"{vm}-domain").inputs["networkInterfaces"]]
        config = yaml.safe_load(lab.named(f"{vm}-cloud-init").inputs["networkConfig"])
        assert [nic["match"]["macaddress"] for nic in config["ethernets"].values()] == macs


def test_outputs(lab):
    assert lab.outputs["vip"] == "192.168.10.3"
    assert lab.outputs["httpUrl"] == "http://192.168.10.3/"
    assert lab.outputs["httpsUrl"] == "https://192.168.10.3/"
    assert lab.outputs["statsUrl"] == "http://192.168.10.3:9000/haproxy_stats"
    assert lab.outputs["statsUser"] == "admin"
    assert lab.outputs["loadBalancers"] == {"lb01": {"frontend": "192.168.10.4", "backend": "192.168.80.11"},
                                            "lb02": {"frontend": "192.168.10.2", "backend": "192.168.80.12"}}
    assert lab.outputs["webServers"] == {"web01": {"backend": "192.168.80.3"}, "web02": {"backend": "192.168.80.2"}}
    assert lab.outputs["statsPassword"] == PASSWORD and lab.secret_outputs == {"statsPassword"}


def test_the_password_never_appears_in_any_resource_input(lab):
    for resource in lab.resources:
        assert PASSWORD not in repr(resource.inputs), resource.name
    assert "user admin password $6$" in lab.named("lb01-cloud-init").inputs["userData"]


def test_a_generated_password_is_a_secret_output_and_only_its_hash_is_rendered():
    run = run_program({**key_config()}, stack="dev")
    generator = run.named("stats-password")
    assert generator.type == "random:index/randomPassword:RandomPassword" and generator.parent == "lab"
    assert run.outputs["statsPassword"] == MOCK_GENERATED_PASSWORD and "statsPassword" in run.secret_outputs
    user_data = run.named("lb01-cloud-init").inputs["userData"]
    assert MOCK_GENERATED_PASSWORD not in user_data and "password $6$" in user_data


def test_without_any_ssh_key_the_stack_generates_one_for_the_gate(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh keys
    run = run_program({"statsPassword": PASSWORD}, stack="dev")
    [key] = run.of_type("tls:index/privateKey:PrivateKey")
    assert key.inputs == {"algorithm": "ED25519"} and key.parent == "lab"
    for vm in ("lb01", "lb02", "web01", "web02"):
        assert MOCK_GENERATED_PUBLIC_KEY in run.named(f"{vm}-cloud-init").inputs["userData"]
        ready = run.named(f"{vm}-ready")
        assert ready.inputs["connection"]["privateKey"] == MOCK_GENERATED_PRIVATE_KEY
        assert "connection" in ready.secret_inputs
    assert run.outputs["sshPrivateKey"] == MOCK_GENERATED_PRIVATE_KEY and "sshPrivateKey" in run.secret_outputs


def test_a_given_key_wins_over_generating_one(lab):
    assert not lab.of_type("tls:index/privateKey:PrivateKey") and "sshPrivateKey" not in lab.outputs


def test_more_web_servers_more_vms_and_haproxy_lines():
    webs = [{"name": f"web{i:02}", "address": f"192.168.80.{20 + i}"} for i in range(1, 4)]
    run = run_program(config(webServers=webs), stack="dev")
    assert len(run.of_type(DOMAIN)) == 5
    user_data = run.named("lb02-cloud-init").inputs["userData"]
    assert all(f"server web{i:02} 192.168.80.{20 + i}:8080 check" in user_data for i in range(1, 4))


def test_isolated_qemu_lab_for_air_gapped_hosts():
    run = run_program(config(networkMode="isolated", installPackages=False, domainType="qemu",
                             baseImage="/srv/images/debian.qcow2"), stack="e2e")
    assert {n.inputs["mode"] for n in run.of_type(NETWORK)} == {"none"}
    assert {d.inputs["type"] for d in run.of_type(DOMAIN)} == {"qemu"}
    assert base_image(run).inputs["source"] == "/srv/images/debian.qcow2"
    assert "packages:" not in run.named("web01-cloud-init").inputs["userData"]


def test_invalid_settings_fail_before_any_resource_with_every_problem():
    # Pulumi shows a RunError without a traceback.
    with pytest.raises(pulumi.RunError) as info:
        run_program(config(vip="10.1.1.1", httpPort=99999), stack="dev")
    message = str(info.value)
    assert "vip: '10.1.1.1' is not valid" in message and "httpPort: 99999 is not valid" in message


def test_invalid_settings_register_nothing():
    from components import program_run

    registered = {}

    class Spy(program_run._CapturingMocks):
        def new_resource(self, args):
            registered[args.name] = args.typ
            return super().new_resource(args)

    original = program_run._CapturingMocks
    program_run._CapturingMocks = Spy
    try:
        with pytest.raises(pulumi.RunError, match="webServers"):
            program_run.run_program(config(webServers=[]), stack="dev")
    finally:
        program_run._CapturingMocks = original
    assert registered == {}


def test_two_runs_register_identical_inputs():
    first = run_program(config(), stack="dev")
    second = run_program(config(), stack="dev")
    as_map = lambda run: {r.name: (r.type, r.inputs) for r in run.resources}  # noqa: E731
    assert as_map(first) == as_map(second)


def test_offline_render_command_writes_what_each_vm_gets(tmp_path):
    import json
    import subprocess
    import sys

    from tests.program_run import PROJECT_ROOT

    stack_file = tmp_path / "Pulumi.review.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {
        "libvirt:uri": "qemu:///system", "ha-lb:statsPassword": {"secure": "AAABAKx..."},
        **{f"ha-lb:{k}": v for k, v in config(webServers=[{"name": "app1", "address": "192.168.80.50"}]).items()
           if k != "statsPassword"}}}))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "components.offline", str(stack_file), "--out", str(out)]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "rendered stack 'review'" in done.stdout and "Traceback" not in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["app1", "lb01", "lb02", "outputs.json", "plan.json", "resources.txt"]
    assert (out / "lb01/files/etc/haproxy/haproxy.cfg").read_text().count("server app1 192.168.80.50") == 2
    assert yaml.safe_load((out / "app1/meta-data").read_text())["instance-id"] == "ha-lb-review-app1"
    assert json.loads((out / "outputs.json").read_text())["statsPassword"] == "[secret]"

    stack_file.write_text(yaml.safe_dump({"config": {"ha-lb:vip": "10.9.9.9", "ha-lb:waitForReady": False}}))
    failed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "vip: '10.9.9.9' is not valid" in failed.stderr


def test_offline_render_of_the_example_works_without_any_ssh_key(tmp_path):
    """The README's review command on a fresh machine: no ~/.ssh, no keys in the stack file."""
    import os
    import subprocess
    import sys

    from components.offline import PLACEHOLDER_PUBLIC_KEY
    from tests.program_run import PROJECT_ROOT

    out = tmp_path / "rendered"
    done = subprocess.run([sys.executable, "-m", "components.offline", "Pulumi.example.yaml", "--out", str(out)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    user_data = yaml.safe_load((out / "lb01/user-data").read_text().split("\n", 1)[1])
    assert user_data["ssh_authorized_keys"] == [PLACEHOLDER_PUBLIC_KEY]
