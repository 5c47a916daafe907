"""The flake finder: runs a chosen part of the test suite N times, one run after the other, and prints each test's
failures and the spread of every figure the tests measured (tests/figures.py).

    python3 -m tests.flakes --runs 10 [--out DIR] [--] PYTEST_ARGUMENTS...

e.g. `python3 -m tests.flakes --runs 10 -- tests/test_failover_netns.py` (the namespace harness) or
`python3 -m tests.flakes --runs 3 -- tests/test_e2e_vms.py` (every run of the VM module builds a fresh lab).
Each run is `python3 -m pytest -p no:cacheprovider --junitxml=DIR/run-K.xml PYTEST_ARGUMENTS` with
CI=true (a missing prerequisite fails); its output goes to DIR/run-K.log and its figures to DIR/figures-K.jsonl.
Exit status: 0 when every run passed, 1 otherwise, 2 for a usage error.

A bound in a test is set from such a spread (the README says which runs), never from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from dataclasses import dataclass, field

from tests.figures import FIGURES_FILE

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
OUTCOMES = ("passed", "failed", "error", "skipped")


@dataclass
class TestRecord:
    outcomes: list[str] = field(default_factory=list)  # one per run that ran it
    messages: list[str] = field(default_factory=list)  # the first line of each failure or error

    @property
    def failures(self) -> int:
        return sum(outcome in ("failed", "error") for outcome in self.outcomes)


def outcomes(junit_xml: pathlib.Path) -> dict[str, tuple[str, str]]:
    """Each test of a run's JUnit report: (outcome, the first line of its failure message)."""
    found: dict[str, tuple[str, str]] = {}
    for case in ElementTree.parse(junit_xml).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "failed" if child.tag == "failure" else child.tag
                message = (child.get("message") or child.text or "").strip().splitlines()[0][:200] \
                    if (child.get("message") or child.text) else ""
                break
        # A test that failed and also errored in teardown: the failure counts.
        if name not in found or found[name][0] == "passed":
            found[name] = (outcome, message)
    return found


def spread(values: list[float]) -> str:
    return (f"n={len(values)} min {min(values):.3f} median {statistics.median(values):.3f} max {max(values):.3f}: "
            + ", ".join(f"{value:.3f}" for value in values))


def run(runs: int, out: pathlib.Path, arguments: list[str], log=print) -> int:
    tests: dict[str, TestRecord] = defaultdict(TestRecord)
    figures: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    failed_runs = 0
    for index in range(1, runs + 1):
        report, figure_file, output = (out / f"run-{index}.xml", out / f"figures-{index}.jsonl", out / f"run-{index}.log")
        figure_file.write_text("")
        started = time.monotonic()
        with output.open("w") as stream:
            code = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}",
                                   *arguments], cwd=PROJECT_ROOT, stdout=stream, stderr=subprocess.STDOUT,
                                  env={**os.environ, "CI": "true", FIGURES_FILE: str(figure_file)}).returncode
        seen = outcomes(report) if report.exists() else {}
        for name, (outcome, message) in seen.items():
            tests[name].outcomes.append(outcome)
            if message and outcome in ("failed", "error"):
                tests[name].messages.append(f"run {index}: {message}")
        for line in figure_file.read_text().splitlines():
            figure = json.loads(line)
            figures[(figure["test"], figure["name"], figure["unit"])].append(figure["value"])
        counts = {outcome: sum(o == outcome for o, _ in seen.values()) for outcome in OUTCOMES}
        failed_runs += code != 0
        log(f"run {index}/{runs}: exit {code} in {time.monotonic() - started:.0f} s, "
            + ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n) + f" ({output})")
    log(f"\n{runs - failed_runs} of {runs} runs passed; tests that failed in any run:")
    flaky = {name: record for name, record in tests.items() if record.failures}
    for name, record in sorted(flaky.items()):
        log(f"  {record.failures} of {len(record.outcomes)} runs: {name}")
        for message in record.messages:
            log(f"      {message}")
    if not flaky:
        log("  none")
    log(f"{len(tests)} tests ran; figures (each run's value in order):")
    for (test, name, unit), values in sorted(figures.items()):
        log(f"  {test}: {name} ({unit}) {spread(values)}")
    return 0 if failed_runs == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.flakes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, required=True, help="how many times to run the tests (1 or more)")
    parser.add_argument("--out", type=pathlib.Path, help="where each run's log, report and figures go "
                                                           "(default: a new directory under /tmp)")
    parser.add_argument("pytest_arguments", nargs=argparse.REMAINDER, help="what pytest runs, after `--`")
    options = parser.parse_args(argv)
    arguments = options.pytest_arguments
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    if options.runs < 1:
        parser.error(f"--runs {options.runs}: give 1 or more")
    if not arguments:
        parser.error("name what to run after `--`, e.g. -- tests/test_failover_netns.py")
    out = options.out or pathlib.Path(tempfile.mkdtemp(prefix="ha-lb-flakes-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"{options.runs} runs of `pytest {' '.join(arguments)}`, one after the other; records in {out}", flush=True)
    return run(options.runs, out, arguments, log=lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(main())
