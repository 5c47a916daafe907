"""Measured figures a test records beside its assertion (an outage, a count), for the flake finder
(`python3 -m tests.flakes`), which prints their spread over repeated runs: how a bound is set from a distribution
rather than from one run.

A figure goes to the file named by HA_LB_FIGURES (one JSON object a line), when set; otherwise nowhere. The test
that recorded it is pytest's current test (PYTEST_CURRENT_TEST)."""

from __future__ import annotations

import json
import os

FIGURES_FILE = "HA_LB_FIGURES"


def record(name: str, value: float, unit: str = "s") -> None:
    """One measured figure of the current test: `name` says what was measured, `value` in `unit`."""
    path = os.environ.get(FIGURES_FILE)
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    with open(path, "a") as figures:
        figures.write(json.dumps({"test": test, "name": name, "value": float(value), "unit": unit}) + "\n")
