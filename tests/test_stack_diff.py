"""The pull-request review (`python -m components.offline diff`), against a temporary git repository holding
a copy of the program, with real commits, and secrets set by the real Pulumi CLI (passphrase provider)."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from components.offline import PLACEHOLDER_PRIVATE_KEY
from components.render import stats_password_hash
from components.review import COMMENT_MARKER, Block, fit_comment, mask
from components.settings import load_settings
from tests.conftest import require, require_tools
from tests.engine import build
from tests.engine.stack import PROJECT_ROOT
from tests.keys import key_config

PROGRAM = ("components", "cloud-init", "__main__.py", "Pulumi.yaml")
PASSPHRASE = "ha-lb-review-test-passphrase"
OLD_PASSWORD, NEW_PASSWORD = "first-stats-password", "second-stats-password"
WEB03 = {"name": "web03", "address": "192.168.80.4"}
NO_CHANGES, CHANGES, ERROR = 0, 2, 1


class Repo:
    def __init__(self, root: pathlib.Path, engine: build.Engine):
        self.root, self.engine = root, engine
        self.stack_file = root / "Pulumi.dev.yaml"

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True, text=True,
                              env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                                   "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}).stdout

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def pulumi(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.engine.cli), *args], cwd=self.root, capture_output=True, text=True, timeout=120,
            env={**os.environ, "PULUMI_HOME": str(self.engine.home), "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
                 "PULUMI_BACKEND_URL": f"file://{self.root.parent / 'state'}", "PULUMI_SKIP_UPDATE_CHECK": "true"})
        assert result.returncode == 0, result.stderr
        return result.stdout

    def set_config(self, key: str, value: object) -> None:
        """A plain setting, written into the stack file as a user would."""
        document = yaml.safe_load(self.stack_file.read_text())
        document["config"][f"ha-lb:{key}"] = value
        self.stack_file.write_text(yaml.safe_dump(document, sort_keys=False))

    def config(self) -> dict:
        return yaml.safe_load(self.stack_file.read_text())["config"]

    def diff(self, *args: str) -> tuple[int, str, str]:
        result = subprocess.run([sys.executable, "-m", "components.offline", "diff", *args], cwd=self.root,
                                capture_output=True, text=True, timeout=300)
        return result.returncode, result.stdout, result.stderr


@pytest.fixture(scope="module")
def engine():
    require_tools("go", "git")
    return build.ensure_engine(log=lambda m: print(f"[engine] {m}", flush=True))


@pytest.fixture
def repo(tmp_path, engine) -> Repo:
    """A project with a dev stack whose statsPassword and sshPrivateKey are real secrets, committed."""
    root = tmp_path / "project"
    root.mkdir()
    for name in PROGRAM:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    (tmp_path / "state").mkdir()
    repo = Repo(root, engine)
    repo.git("init", "-q")
    repo.pulumi("stack", "init", "dev", "--secrets-provider", "passphrase")
    repo.pulumi("config", "set", "--secret", "statsPassword", OLD_PASSWORD)
    keys = key_config()
    repo.pulumi("config", "set", "--secret", "sshPrivateKey", "--", keys["sshPrivateKey"])
    repo.set_config("sshPublicKeys", keys["sshPublicKeys"])
    assert "secure" in str(repo.config()["ha-lb:statsPassword"])  # a real encrypted value
    repo.commit("a lab")
    return repo


def section(text: str, title: str) -> str:
    match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^### |\Z)", text, re.S | re.M)
    assert match, f"no section {title!r} in:\n{text}"
    return match.group(1)


def plan_items(text: str) -> dict[str, str]:
    """VM name -> its line in the plan."""
    plan = section(text, "What `pulumi up` will do")
    return {m.group(1): m.group(0) for m in re.finditer(r"^   - \*\*(\w+)\*\*: .*$", plan, re.M)}


def summary(text: str) -> str:
    return re.search(r"^\*\*Summary:\*\* (.*)$", text, re.M).group(1)


def secret_values(repo: Repo) -> list[str]:
    settings = load_settings({"statsPassword": OLD_PASSWORD, **key_config()}, stack="dev")
    key_lines = [line for line in key_config()["sshPrivateKey"].splitlines()[1:-1] if line]
    return [OLD_PASSWORD, NEW_PASSWORD, stats_password_hash(settings, OLD_PASSWORD),
            stats_password_hash(settings, NEW_PASSWORD), *key_lines]


def assert_no_secret(repo: Repo, *texts: str) -> None:
    for text in texts:
        for secret in secret_values(repo):
            assert secret not in text
        assert not re.search(r"\$6\$", text)


def test_nothing_changed_exits_0(repo):
    code, out, err = repo.diff("--base", "HEAD")
    assert code == NO_CHANGES, err
    assert summary(out) == "stack `dev`: no changes."
    assert "What each VM receives" not in out


def test_a_web_server_added_is_new_and_the_load_balancers_roll_out(repo):
    webs = [{"name": "web01", "address": "192.168.80.3"}, {"name": "web02", "address": "192.168.80.2"}, WEB03]
    repo.set_config("webServers", webs)
    code, out, err = repo.diff("--base", "HEAD")
    assert code == CHANGES, err
    items = plan_items(out)
    assert set(items) == {"web03", "lb01", "lb02"}
    assert "new VM" in items["web03"]
    for lb in ("lb01", "lb02"):
        assert "rolled out in place" in items[lb] and "haproxy reloaded" in items[lb]
        assert "keepalived" not in items[lb] and "nftables" not in items[lb]
    # In up's order: the new web server before the rollout that sends it traffic, lb01 before lb02.
    plan = section(out, "What `pulumi up` will do")
    assert plan.index("**web03**") < plan.index("**lb01**") < plan.index("**lb02**")
    received = section(out, "What each VM receives")
    assert "+    server web03 192.168.80.4:8080" in received
    assert "#### web03 (new)" in received and "+++ b/web03/etc/nginx/conf.d/ha-lb.conf" in received
    assert summary(out) == "stack `dev`: 1 new, 2 rolled out, 2 unchanged."
    assert "The final VIP check runs again" in plan
    assert_no_secret(repo, out)


def test_a_web_server_removed_leaves_the_load_balancers_first_and_is_deleted_last(repo):
    repo.set_config("webServers", [{"name": "web01", "address": "192.168.80.3"}])
    code, out, _ = repo.diff("--base", "HEAD")
    assert code == CHANGES
    items = plan_items(out)
    assert "removed" in items["web02"] and "haproxy reloaded" in items["lb01"]
    plan = section(out, "What `pulumi up` will do")
    assert plan.index("**lb02**") < plan.index("**web02**")
    assert "-    server web02 192.168.80.2:8080" in section(out, "What each VM receives")
    assert summary(out) == "stack `dev`: 1 removed, 2 rolled out, 1 unchanged."


def test_a_port_change_rolls_out_firewall_and_haproxy_only_on_the_load_balancers(repo):
    repo.set_config("httpPort", 8081)
    code, out, _ = repo.diff("--base", "HEAD")
    assert code == CHANGES
    items = plan_items(out)
    assert set(items) == {"lb01", "lb02"}
    assert "nftables restarted; haproxy reloaded" in items["lb01"]
    received = section(out, "What each VM receives")
    assert re.search(r"^-\s+bind 192\.168\.10\.3:80\b", received, re.M)
    assert re.search(r"^\+\s+bind 192\.168\.10\.3:8081\b", received, re.M)
    assert "web01" not in received
    assert "do not hear each other" not in out


def test_a_switch_to_multicast_says_the_pair_is_deaf_between_the_two_rollouts(repo):
    """keepalived drops an advert of the other transport: between lb01's and lb02's rollout both hold the VIP."""
    repo.set_config("vrrp", {"unicast": False})
    code, out, _ = repo.diff("--base", "HEAD")
    assert code == CHANGES
    assert ('> VRRP changes how the load balancers speak (transport "unicast" → "multicast"): keepalived drops '
            "the other's adverts until both have it, so from lb01's rollout until lb02's the two do not hear each "
            "other and both hold the VIP.") in out
    assert "keepalived reloaded" in plan_items(out)["lb02"]
    # What both keep hearing through: a hold-down change is no such change.
    repo.commit("multicast")
    repo.set_config("vrrp", {"unicast": False, "preemptDelay": 8})
    code, out, _ = repo.diff("--base", "HEAD")
    assert code == CHANGES and "do not hear each other" not in out


def test_a_new_base_image_rebuilds_every_vm_and_says_why(repo):
    repo.set_config("baseImage", "https://images.example.invalid/debian-13-generic-amd64.qcow2")
    code, out, _ = repo.diff("--base", "HEAD")  # from the default, debian-13: the official image's URL
    assert code == CHANGES
    items = plan_items(out)
    assert set(items) == {"web01", "web02", "lb01", "lb02"}
    for line in items.values():
        assert "rebuilt" in line and "debian-13-generic-amd64.qcow2 → https://images.example.invalid/debian-13" in line
    plan = section(out, "What `pulumi up` will do")
    assert plan.index("**web01**") < plan.index("**web02**") and plan.index("**lb01**") < plan.index("**lb02**")
    # The new image first, the old one deleted last.
    assert plan.index("storage-base-image-") < plan.index("**web01**")
    assert re.search(r"`storage-base-image-\w+` \(libvirt:index/volume:Volume\): deleted once nothing uses it", plan)
    assert summary(out).startswith("stack `dev`: 4 rebuilt")


def test_a_new_stats_password_rolls_out_without_showing_it(repo):
    repo.pulumi("config", "set", "--secret", "statsPassword", NEW_PASSWORD)
    code, out, err = repo.diff("--base", "HEAD", "--comment", str(repo.root.parent / "comment.md"))
    assert code == CHANGES, err
    items = plan_items(out)
    assert set(items) == {"lb01", "lb02"}
    for lb in ("lb01", "lb02"):
        assert "haproxy reloaded" in items[lb] and "a secret changed (not shown)" in items[lb]
    comment = (repo.root.parent / "comment.md").read_text()
    assert_no_secret(repo, out, err, comment)
    # The same with the password in plain text in the stack file (a mistake, but never shown either).
    repo.set_config("statsPassword", NEW_PASSWORD)
    repo.set_config("sshPrivateKey", key_config()["sshPrivateKey"])
    code, out, err = repo.diff("--base", "HEAD")
    assert code == CHANGES, err
    assert_no_secret(repo, out, err)


def test_a_program_change_at_the_base_ref_is_reviewed_with_each_side_s_own_program(repo):
    template = repo.root / "cloud-init" / "haproxy.cfg.j2"
    template.write_text(template.read_text().replace("timeout connect", "timeout  connect"))
    code, out, _ = repo.diff("--base", "HEAD")
    assert code == CHANGES
    received = section(out, "What each VM receives")
    assert re.search(r"^\+\s+timeout  connect", received, re.M)
    repo.commit("a wider timeout line")
    assert repo.diff("--base", "HEAD")[0] == NO_CHANGES
    assert repo.diff("--base", "HEAD~1")[0] == CHANGES


def test_with_the_readiness_gate_off_a_config_change_is_not_applied_and_the_review_says_so(repo):
    repo.set_config("waitForReady", False)
    repo.commit("gate off")
    repo.set_config("statsPort", 9001)
    code, out, _ = repo.diff("--base", "HEAD")
    assert code == CHANGES
    items = plan_items(out)
    assert set(items) == {"lb01", "lb02"}
    for line in items.values():
        assert "seed disk rewritten only" in line and "nothing applies it to the running VM" in line
        assert "rolled out" not in line
    assert "VIP check" not in out  # there is none with the gate off


def test_two_stack_files(repo, tmp_path):
    old, new = tmp_path / "old" / "Pulumi.dev.yaml", tmp_path / "new" / "Pulumi.dev.yaml"
    for path in (old, new):
        path.parent.mkdir()
        shutil.copy(repo.stack_file, path)
    document = yaml.safe_load(new.read_text())
    document["config"]["ha-lb:vcpus"] = 2
    new.write_text(yaml.safe_dump(document))
    code, out, _ = repo.diff(str(old), str(new))
    assert code == CHANGES
    items = plan_items(out)
    assert set(items) == {"web01", "web02", "lb01", "lb02"}
    assert all("recreated on its own disk" in line and "vCPUs 1 → 2" in line for line in items.values())
    assert repo.diff(str(old), str(old))[0] == NO_CHANGES


def test_bad_input_exits_1_with_the_setting_named(repo, tmp_path):
    repo.set_config("httpPort", 70000)
    code, out, err = repo.diff("--base", "HEAD")
    assert code == ERROR and out == ""
    assert "httpPort" in err and "70000" in err
    code, _, err = repo.diff("--base", "no-such-ref")
    assert code == ERROR and "no-such-ref" in err


def test_a_comment_keeps_the_plan_and_cuts_diffs_to_fit_the_limit():
    blocks = [Block("## head\n"), Block("x" * 500 + "\n", essential=False), Block("### plan\n- lb01\n"),
              Block("y" * 50 + "\n", essential=False)]
    comment = fit_comment(blocks, limit=400)
    assert len(comment) <= 400 and comment.startswith(COMMENT_MARKER)
    assert "### plan" in comment and "y" * 50 in comment and "x" * 500 not in comment
    assert "Cut to fit a comment" in comment
    whole = fit_comment(blocks, limit=2000)
    assert "x" * 500 in whole and "Cut to fit" not in whole


def test_the_example_stack_file_review_of_a_big_change_fits_one_comment(repo):
    repo.set_config("webServers", [{"name": f"web{n:02}", "address": f"192.168.80.{n + 20}"} for n in range(1, 30)])
    comment = repo.root.parent / "comment.md"
    code, out, _ = repo.diff("--base", "HEAD", "--comment", str(comment), "--comment-limit", "65536")
    assert code == CHANGES
    assert len(out) > 65536  # the whole review does not fit
    text = comment.read_text()
    assert len(text) <= 65536 and "Cut to fit a comment" in text and summary(text) == summary(out)


def test_masking_hides_hashes_and_given_secrets():
    text = "user admin password $6$salt$abcdefghijkl\nkey: hunter2-secret\n"
    shown = mask(text, ["hunter2-secret"])
    assert "$6$" not in shown and "hunter2-secret" not in shown
    assert PLACEHOLDER_PRIVATE_KEY not in shown
