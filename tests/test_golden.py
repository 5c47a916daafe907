"""Every file each VM receives, for the stacks of tests/golden/stacks.py, compared whole with tests/golden/.

A failure prints a unified diff per file. If the change is intended: `python3 -m tests.golden --update`,
and the diff of tests/golden/ is reviewed in the pull request.
"""

from __future__ import annotations

import subprocess

import pytest

from tests import golden
from tests.golden.stacks import stacks


def _report(found: list[str]) -> str:
    return ("\n" + "".join(found) + f"\n{len(found)} difference(s). If intended: python3 -m tests.golden --update, "
            "and review the diff of tests/golden/")


@pytest.mark.parametrize("name", list(stacks()))
def test_rendered_files_match_the_golden_tree(name):
    found = golden.differences(name, golden.render(name), golden.stored(name))
    assert not found, _report(found)


def test_no_golden_tree_without_a_stack():
    assert not golden.unknown_directories(), (
        f"tests/golden/ holds {golden.unknown_directories()}, which no stack in tests/golden/stacks.py renders")


def test_every_vm_has_its_whole_tree():
    """The golden trees hold, per VM, its three cloud-init documents and its write_files entries, and the
    three summaries (so a stack whose render lost a VM or a file cannot be regenerated unnoticed)."""
    for name in stacks():
        tree = golden.stored(name) or {}
        assert {"plan.json", "resources.txt", "outputs.json"} <= set(tree), name
        vms = {path.split("/", 1)[0] for path in tree if "/" in path}
        assert {"lb01", "lb02"} <= vms, (name, vms)
        for vm in vms:
            assert {f"{vm}/user-data", f"{vm}/meta-data", f"{vm}/network-config",
                    f"{vm}/files/usr/local/sbin/ha-lb-activate", f"{vm}/files/etc/nftables.conf"} <= set(tree), (name, vm)
    assert len({p for p in golden.stored("many-webs") or {} if p.endswith("nginx/conf.d/ha-lb.conf")}) == 8


def test_the_render_is_the_same_twice():
    for name in stacks():
        assert golden.render(name) == golden.render(name), name


def test_the_render_does_not_depend_on_the_machine(tmp_path, monkeypatch):
    """A HOME with its own SSH key, a LIBVIRT_DEFAULT_URI and PULUMI_CONFIG variables (all read by the
    program) change nothing in the golden render."""
    (tmp_path / ".ssh").mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "somebody", "-f",
                    str(tmp_path / ".ssh/id_ed25519")], check=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "qemu+ssh://somebody@elsewhere/system")
    monkeypatch.setenv("PULUMI_CONFIG", '{"ha-lb:vip": "192.168.10.9"}')
    monkeypatch.setenv("PULUMI_CONFIG_HA_LB_HTTPPORT", "8000")
    for name in stacks():
        found = golden.differences(name, golden.render(name), golden.stored(name))
        assert not found, _report(found)


def test_a_difference_is_reported_as_a_unified_diff_and_missing_or_extra_files_are_named():
    stored = {"lb01/user-data": "a\nb\nc\n", "plan.json": "{}\n"}
    rendered = {"lb01/user-data": "a\nB\nc\n", "outputs.json": "{}\n"}
    found = "".join(golden.differences("demo", rendered, stored))
    assert "--- a/tests/golden/demo/lb01/user-data\n+++ b/tests/golden/demo/lb01/user-data\n" in found
    assert "\n-b\n+B\n" in found
    assert "tests/golden/demo/plan.json: in the golden tree but no longer rendered" in found
    assert "tests/golden/demo/outputs.json: rendered but not in the golden tree" in found
    assert golden.differences("demo", stored, dict(stored)) == []
    # A file that differs only in its final newline or line endings is still a difference.
    assert golden.differences("demo", {"f": "x\r\n"}, {"f": "x\n"})
    assert golden.differences("demo", {"f": "x"}, {"f": "x\n"})
    assert golden.differences("demo", {}, None)
