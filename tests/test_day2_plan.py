"""Readiness gate and day-2 changes, under mocks: which commands exist, what they wait for, and which
inputs a config change touches (and which it must not, so no VM is replaced for a config change)."""

from __future__ import annotations

import pytest

from tests.keys import key_config
from tests.program_run import run_program

PASSWORD = "correct-horse-battery"
DOMAIN = "libvirt:index/domain:Domain"
REMOTE = "command:remote:Command"
WEBS = [{"name": "web01", "address": "192.168.80.3"}, {"name": "web02", "address": "192.168.80.2"}]


def config(**overrides):
    return {"statsPassword": PASSWORD, **key_config(), **overrides}


@pytest.fixture(scope="module")
def lab():
    return run_program(config(), stack="dev")


def inputs_by_name(run, type_prefix=""):
    return {r.name: r.inputs for r in run.resources if r.type.startswith(type_prefix)}


def test_every_vm_has_a_readiness_check_that_reports_cloud_init_and_services(lab):
    for vm in ("lb01", "lb02", "web01", "web02"):
        ready = lab.named(f"{vm}-ready")
        assert ready.type == REMOTE and ready.parent == vm
        assert ready.inputs["connection"]["host"] == lab.outputs[
            "loadBalancers" if vm.startswith("lb") else "webServers"][vm]["frontend" if vm.startswith("lb") else "backend"]
        assert ready.inputs["connection"]["user"] == "debian"
        assert ready.inputs["connection"]["dialErrorLimit"] > 10  # keeps dialing while the VM boots
        script = ready.inputs["create"]
        assert "cloud-init status --wait" in script and "cloud-init status --long" in script
        assert "journalctl --unit" in script and f"{vm}: ready" in script
    assert "for unit in haproxy keepalived" in lab.named("lb01-ready").inputs["create"]
    assert "https://127.0.0.1:8443/" in lab.named("web01-ready").inputs["create"]


def test_no_command_sends_its_previous_output_as_ssh_environment(lab):
    # pulumi-command's default (addPreviousOutputInEnv true) sets PULUMI_COMMAND_STDOUT/STDERR with SSH
    # Setenv on every re-run; sshd refuses them (AcceptEnv) and the provider warns each time.
    commands = [r for r in lab.resources if r.type.startswith("command:")]
    assert len(commands) == 9
    assert all(r.inputs.get("addPreviousOutputInEnv") is False for r in commands)


def test_ssh_key_is_only_ever_a_secret_input(lab):
    private_key = key_config()["sshPrivateKey"]
    for resource in lab.resources:
        if resource.type.startswith("command:remote"):
            assert "connection" in resource.secret_inputs, resource.name
        else:
            assert private_key.strip().splitlines()[1] not in repr(resource.inputs), resource.name


def test_the_lb_rollout_validates_everywhere_then_goes_one_lb_at_a_time_after_the_webs(lab):
    assert lab.named("lb01-config-check").options["depends_on"] == ["lb01-ready"]
    lb01 = set(lab.named("lb01-config-rollout").options["depends_on"])
    lb02 = set(lab.named("lb02-config-rollout").options["depends_on"])
    assert {"lb01-config-check", "lb02-config-check", "web01-ready", "web02-ready"} <= lb01
    assert "lb02-config-rollout" not in lb01
    assert lb02 >= lb01 | {"lb01-config-rollout"}
    check = lab.named("lb01-config-check").inputs["create"]
    assert "haproxy -c -f" in check and "keepalived --config-test" in check and "nft --check" in check
    assert "systemctl reload" not in check  # the check activates nothing
    rollout = lab.named("lb02-config-rollout").inputs["create"]
    assert "systemctl reload haproxy.service" in rollout and "nothing was activated" in rollout


def test_outputs_wait_for_the_vip_check_from_the_pulumi_host(lab):
    check = lab.named("vip-check")
    assert check.type == "command:local:Command"
    assert "components.vip_check http://192.168.10.3/" in check.inputs["create"]
    assert set(check.options["depends_on"]) == {"lb01-config-rollout", "lb02-config-rollout"}
    assert lab.outputs["vip"] == "192.168.10.3" and "statsPassword" in lab.secret_outputs


def test_vms_are_replaced_one_at_a_time_per_tier(lab):
    for first, second in (("lb01", "lb02"), ("web01", "web02")):
        for part in ("disk", "cloud-init", "domain"):
            assert lab.named(f"{second}-{part}").options["depends_on"] == [f"{first}-ready"]
            assert lab.named(f"{first}-{part}").options["depends_on"] == []
            # Fixed libvirt names: the old object must go before its replacement is created.
            assert lab.named(f"{second}-{part}").options["delete_before_replace"] is True
        assert lab.named(f"{first}-domain").options["ignore_changes"] == ["cloudinit"]


def test_a_config_only_change_touches_the_rollout_and_seed_but_replaces_no_vm(lab):
    changed = run_program(config(webServers=WEBS + [{"name": "web03", "address": "192.168.80.4"}],
                                 vrrp={"advertInterval": 2}, httpPort=8081), stack="dev")
    before, after = inputs_by_name(lab), inputs_by_name(changed)
    for lb in ("lb01", "lb02"):
        # Domain (apart from the ignored seed id) and disk are unchanged: no replacement.
        assert before[f"{lb}-domain"] == after[f"{lb}-domain"]
        assert before[f"{lb}-disk"] == after[f"{lb}-disk"]
        assert before[f"{lb}-ready"] == after[f"{lb}-ready"]
        # The new config travels in the rollout (and the seed disk, for a later rebuild).
        for command in ("config-check", "config-rollout"):
            script = after[f"{lb}-{command}"]["create"]
            assert script != before[f"{lb}-{command}"]["create"]
            assert "server web03 192.168.80.4:8080 check" in script and "advert_int 2" in script
            assert "tcp dport { 8081, 443 }" in script  # the firewall opens the new port too
        assert "server web03" in after[f"{lb}-cloud-init"]["userData"]
    assert before["web01-domain"] == after["web01-domain"]
    assert "web03-domain" in after and "web03-domain" not in before
    # The new web server is ready before any LB sends it traffic.
    assert "web03-ready" in changed.named("lb01-config-rollout").options["depends_on"]


def test_a_password_change_rolls_out_without_replacing_anything(lab):
    changed = run_program(config(statsPassword="another-password"), stack="dev")
    before, after = inputs_by_name(lab), inputs_by_name(changed)
    differing = {name for name in before if before[name] != after.get(name)}
    assert differing == {"lb01-cloud-init", "lb02-cloud-init", "lb01-config-check", "lb02-config-check",
                         "lb01-config-rollout", "lb02-config-rollout", "vip-check"}
    # The rollouts re-run in place (same ids); the final VIP check's triggers change, so it is replaced
    # and runs again: a successful `up` still means the VIP served after the new config went live.
    assert before["vip-check"]["create"] == after["vip-check"]["create"]
    assert before["vip-check"]["triggers"] != after["vip-check"]["triggers"]


def test_changes_a_running_vm_cannot_take_replace_it(lab):
    before = inputs_by_name(lab)
    moved = inputs_by_name(run_program(config(loadBalancers=[
        {"name": "lb01", "address": "192.168.10.5", "backendAddress": "192.168.80.11", "priority": 100},
        {"name": "lb02", "address": "192.168.10.2", "backendAddress": "192.168.80.12", "priority": 99}]), stack="dev"))
    # lb01's network-config changed: its build key changes, lb02's does not. The key is in the disk's
    # name (ForceNew): the disk is replaced, and with it the domain, so the rebuilt VM boots a fresh disk
    # and cloud-init applies the new address (a new domain on the old disk would keep the old one).
    assert moved["lb01-domain"]["description"] != before["lb01-domain"]["description"]
    assert moved["lb01-disk"]["name"] != before["lb01-disk"]["name"]
    assert moved["lb02-domain"]["description"] == before["lb02-domain"]["description"]
    assert moved["lb02-disk"] == before["lb02-disk"]
    bigger = inputs_by_name(run_program(config(diskGiB=20), stack="dev"))
    assert all(bigger[f"{vm}-disk"]["size"] == 20 * 1024**3 for vm in ("lb01", "lb02", "web01", "web02"))
    new_image = inputs_by_name(run_program(config(baseImage="/srv/images/other.qcow2"), stack="dev"))
    # A new base image is a new resource with a new name, created beside the old one (a replaced one would
    # be deleted first, with every VM on it): the old one is deleted only after every disk moved over.
    old_bases = {name for name, i in before.items() if "source" in i}
    new_bases = {name for name, i in new_image.items() if "source" in i}
    assert len(old_bases) == len(new_bases) == 1 and not old_bases & new_bases
    assert new_image[min(new_bases)]["name"] != before[min(old_bases)]["name"]


def test_without_the_gate_there_are_no_commands_and_no_key_is_needed():
    run = run_program({"statsPassword": PASSWORD, "waitForReady": False, "sshPublicKeys": []}, stack="dev")
    assert not [r for r in run.resources if r.type.startswith("command:")]
    assert len(run.of_type(DOMAIN)) == 4 and run.outputs["vip"] == "192.168.10.3"
