"""The pull-request workflow: valid for GitHub (actionlint, with shellcheck on its scripts), free of zizmor's
findings, pinned, least-privilege, and wired to what the review command writes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import yaml

from components.review import COMMENT_MARKER
from tests.conftest import require_tools
from tests.engine.stack import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "lab-review.yml"


def load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_actionlint_accepts_the_workflow_and_shellcheck_its_scripts():
    require_tools("actionlint", "shellcheck")
    # The config names the self-hosted runner's label; given explicitly, so a copy without .git finds it too.
    config = PROJECT_ROOT / ".github" / "actionlint.yaml"
    result = subprocess.run(["actionlint", "-config-file", str(config), "-shellcheck", shutil.which("shellcheck"),
                             str(WORKFLOW)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_but_the_documented_self_hosted_runner():
    require_tools("zizmor")
    regular = subprocess.run(["zizmor", "--offline", "--color", "never", "--format", "plain", str(WORKFLOW)],
                             capture_output=True, text=True, timeout=120)
    assert regular.returncode == 0, regular.stdout + regular.stderr
    # The strictest persona too: its only finding is the self-hosted runner the libvirt job needs.
    auditor = subprocess.run(["zizmor", "--offline", "--color", "never", "--persona", "auditor", "--format", "plain", str(WORKFLOW)],
                             capture_output=True, text=True, timeout=120)
    findings = re.findall(r"^(?:error|warning|help|info|note)\[([\w-]+)\]", auditor.stdout, re.M)
    assert findings == ["self-hosted-runner"], auditor.stdout


def test_every_action_is_pinned_by_commit_and_permissions_are_least():
    workflow = load()
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert job["permissions"] == {"contents": "read", "pull-requests": "write"}, name
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_the_review_job_runs_the_readme_command_and_posts_its_comment_file():
    steps = load()["jobs"]["offline-review"]["steps"]
    run = next(s["run"] for s in steps if s.get("id") == "review")
    assert 'python -m components.offline diff --base "$BASE_SHA" --out review.md --comment comment.md' in run
    assert "${{" not in run  # no expression expanded into a shell script
    script = next(s["with"]["script"] for s in steps if s.get("uses", "").startswith("actions/github-script@"))
    assert "readFileSync('comment.md'" in script and "updateComment" in script
    # The script finds its earlier comment by the first line the command writes.
    assert "body.split('\\n', 1)[0]" in script and COMMENT_MARKER.startswith("<!--")


def test_the_libvirt_job_never_runs_for_forks_and_keeps_its_secret_in_an_environment():
    job = load()["jobs"]["libvirt-preview"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
    assert job["runs-on"] == ["self-hosted", "ha-lb-libvirt"] and job["environment"] == "ha-lb-libvirt"
    preview = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert preview["with"]["command"] == "preview" and preview["with"]["diff"] is True


_HARNESS = """
const calls = [];
const existing = JSON.parse(process.env.EXISTING_COMMENTS);
const github = {
  paginate: async (method, params) => { calls.push(['list', params]); return existing; },
  rest: { issues: {
    listComments: 'listComments',
    updateComment: async (params) => { calls.push(['update', params]); },
    createComment: async (params) => { calls.push(['create', params]); },
  } },
};
const context = { repo: { owner: 'o', repo: 'r' }, issue: { number: 7 } };
(async () => {
%s
})().then(() => console.log(JSON.stringify(calls)), (e) => { console.error(e); process.exit(1); });
"""


def _run_comment_script(tmp_path, existing: list[dict]) -> list:
    require_tools("node")
    steps = load()["jobs"]["offline-review"]["steps"]
    script = next(s["with"]["script"] for s in steps if s.get("uses", "").startswith("actions/github-script@"))
    (tmp_path / "comment.md").write_text(COMMENT_MARKER + "\n## ha-lb review\n")
    (tmp_path / "harness.js").write_text(_HARNESS % script)
    result = subprocess.run(["node", "harness.js"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={"EXISTING_COMMENTS": json.dumps(existing), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_comment_script_creates_one_comment_then_updates_it(tmp_path):
    calls = _run_comment_script(tmp_path, [])
    assert [c[0] for c in calls] == ["list", "create"]
    assert calls[1][1] == {"owner": "o", "repo": "r", "issue_number": 7, "body": COMMENT_MARKER + "\n## ha-lb review\n"}
    earlier = [{"id": 1, "user": {"type": "User"}, "body": COMMENT_MARKER + "\nquoted by a person"},
               {"id": 2, "user": {"type": "Bot"}, "body": COMMENT_MARKER + "\nthe previous review"}]
    calls = _run_comment_script(tmp_path, earlier)
    assert [c[0] for c in calls] == ["list", "update"] and calls[1][1]["comment_id"] == 2
