"""The mutation check (tests/mutation.py) in the suite: the fast tests kill every mutant."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import require_root, require_tools
from tests.engine.stack import PROJECT_ROOT
from tests.mutation import MUTANTS


def test_the_fast_tests_kill_every_mutant():
    require_root()  # the readiness tests among the fast ones use mount namespaces
    require_tools("go", "git", "haproxy", "keepalived", "nft", "nginx", "cloud-init", "unshare")
    result = subprocess.run([sys.executable, "-m", "tests.mutation"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=1800)
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"mutation score: {len(MUTANTS)}/{len(MUTANTS)} killed" in result.stdout
