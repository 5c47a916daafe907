"""Shared test helpers: prerequisites that skip on a bare machine but fail in CI."""

from __future__ import annotations

import os
import shutil
import sys
import pathlib

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is missing; in CI (CI=true) that is a failure, not a skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI: {reason}")
    pytest.skip(reason)


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    require(not missing, f"needs {', '.join(missing)} (installed by .ci/run)")


def require_root() -> None:
    require(os.geteuid() == 0, "needs root (network namespaces)")


def reference_priority_load_balancers() -> list[dict]:
    """The default load balancers with the reference plan's priorities (100 and 99): a check weight needs
    headroom below 254, which the default priorities leave none of."""
    from components.settings import DEFAULTS

    return [{**lb, "priority": priority} for lb, priority in zip(DEFAULTS["loadBalancers"], (100, 99))]
