"""Promises about the resource graph, under mocks that behave like the engine where a promise depends on it:
ids that change exactly when the real provider replaces a resource, and outputs unknown as in a preview."""

from __future__ import annotations

import pytest

from tests.keys import key_config
from tests.program_run import run_program

PASSWORD = "correct-horse-battery"
VMS = ("lb01", "lb02", "web01", "web02")
LB01_MOVED = [{"name": "lb01", "address": "192.168.10.5", "backendAddress": "192.168.80.11", "priority": 100},
              {"name": "lb02", "address": "192.168.10.2", "backendAddress": "192.168.80.12", "priority": 99}]


def config(**overrides):
    return {"statsPassword": PASSWORD, **key_config(), **overrides}


def run(**overrides):
    return run_program(config(**overrides), stack="dev", ids="by-replacement")


@pytest.fixture(scope="module")
def lab():
    return run()


def ids(program_run) -> dict[str, str]:
    return {r.name: r.id for r in program_run.resources if r.id}


@pytest.mark.parametrize("case", ["given secret password", "generated password", "generated ssh key"])
def test_user_data_of_every_vm_stays_a_plain_value_for_readable_diffs(case, tmp_path, monkeypatch):
    if case == "given secret password":
        program_run = run_program(config(), stack="dev")
    elif case == "generated password":  # RandomPassword's result is a secret output
        program_run = run_program(key_config(), stack="dev")
    else:  # no key anywhere: the stack generates one (its private half is a secret)
        monkeypatch.setenv("HOME", str(tmp_path))
        program_run = run_program({"statsPassword": PASSWORD}, stack="dev")
        assert program_run.of_type("tls:index/privateKey:PrivateKey")
    for vm in VMS:
        seed = program_run.named(f"{vm}-cloud-init")
        assert seed.secret_inputs == set(), (vm, seed.secret_inputs)
        assert seed.inputs["userData"].startswith("#cloud-config")
    for lb in ("lb01", "lb02"):  # the rollout scripts carry the same files: readable too
        for command in ("config-check", "config-rollout"):
            assert "create" not in program_run.named(f"{lb}-{command}").secret_inputs


def test_no_output_resolves_before_the_final_vip_check_has_run():
    # A preview of the first `up`: the VIP check has not run, so its stdout is unknown. Every output
    # must then be unknown too; an output that resolved would not have waited for the check.
    waiting = run_program(config(), stack="dev", preview=True, unknown_outputs={"vip-check": {"stdout"}})
    assert waiting.outputs == {}
    done = run_program(config(), stack="dev", preview=True)
    assert set(done.outputs) == {"vip", "httpUrl", "httpsUrl", "statsUrl", "statsUser", "statsPassword",
                                 "loadBalancers", "webServers", "metrics", "vrrp", "hosts"}


def test_a_rebuilt_vm_is_checked_again_and_the_others_are_not(lab):
    moved = run(loadBalancers=LB01_MOVED)
    before, after = ids(lab), ids(moved)
    # lb01 is rebuilt: disk, domain and every command on it are new, so each runs again.
    for name in ("lb01-disk", "lb01-domain", "lb01-ready", "lb01-config-check", "lb01-config-rollout"):
        assert before[name] != after[name], name
    # lb02 and the web servers are untouched: nothing of theirs runs again.
    for vm in ("lb02", "web01", "web02"):
        for part in ("disk", "domain", "ready"):
            assert before[f"{vm}-{part}"] == after[f"{vm}-{part}"], f"{vm}-{part}"
    # And the final check runs again, after lb01 is back.
    assert before["vip-check"] != after["vip-check"]


def test_a_config_rolled_out_in_place_reruns_the_rollout_and_the_vip_check_but_replaces_no_vm(lab):
    changed = run(statsPort=9001)
    before, after = ids(lab), ids(changed)
    for vm in VMS:
        for part in ("disk", "domain", "ready"):
            assert before[f"{vm}-{part}"] == after[f"{vm}-{part}"], f"{vm}-{part}"
    # The rollout is an update (same id) that runs the new script; the seed disk is written anew.
    for lb in ("lb01", "lb02"):
        assert before[f"{lb}-config-rollout"] == after[f"{lb}-config-rollout"]
        assert lab.named(f"{lb}-config-rollout").inputs["create"] != changed.named(f"{lb}-config-rollout").inputs["create"]
        assert before[f"{lb}-cloud-init"] != after[f"{lb}-cloud-init"]
    # With the rollouts' ids unchanged, only the scripts' digests can make the VIP check run again.
    assert before["vip-check"] != after["vip-check"]


def test_nothing_is_replaced_when_nothing_changed(lab):
    assert ids(run()) == ids(lab)
