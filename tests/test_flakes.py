"""The flake finder (tests/flakes.py) run for real on a small test file whose outcome changes from run to run: it
counts each test's failures with their messages and prints every recorded figure's spread in run order."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.flakes import PROJECT_ROOT

FLAKY_TESTS = textwrap.dedent('''
    import pathlib
    from tests import figures

    COUNTER = pathlib.Path(__file__).with_name("runs")

    def test_steady():
        figures.record("outage", 0.25)

    def test_fails_on_the_second_run():
        runs = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
        COUNTER.write_text(str(runs))
        figures.record("outage", runs / 10)
        figures.record("failed requests", runs * 2, unit="requests")
        assert runs != 2, "the second run's outage was too long"
''')


def test_it_counts_failures_per_test_and_prints_each_figures_spread(tmp_path):
    (tmp_path / "test_sample.py").write_text(FLAKY_TESTS)
    out = tmp_path / "records"
    result = subprocess.run([sys.executable, "-m", "tests.flakes", "--runs", "3", "--out", str(out), "--",
                             str(tmp_path / "test_sample.py")], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120)
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert [line.split(":")[1].split(" in ")[0] for line in lines if line.startswith("run ")] == \
        [" exit 0", " exit 1", " exit 0"], result.stdout
    assert "2 of 3 runs passed; tests that failed in any run:" in lines
    flaky = [line for line in lines if line.startswith("  1 of 3 runs: ")]
    assert len(flaky) == 1 and flaky[0].endswith("test_fails_on_the_second_run"), result.stdout
    assert any("run 2: AssertionError: the second run's outage was too long" in line for line in lines), result.stdout
    assert "test_steady" not in "\n".join(flaky)
    for figure in ("test_fails_on_the_second_run: outage (s) n=3 min 0.100 median 0.200 max 0.300: 0.100, 0.200, 0.300",
                   "test_fails_on_the_second_run: failed requests (requests) n=3 min 2.000 median 4.000 max 6.000: "
                   "2.000, 4.000, 6.000",
                   "test_steady: outage (s) n=3 min 0.250 median 0.250 max 0.250: 0.250, 0.250, 0.250"):
        assert any(line.endswith(figure) for line in lines), (figure, result.stdout)
    assert (out / "run-2.log").exists() and (out / "figures-3.jsonl").exists()


def test_usage_errors_name_the_setting_and_exit_2():
    for arguments, expected in ((["--runs", "0", "--", "tests/test_flakes.py"], "--runs 0: give 1 or more"),
                                (["--runs", "2"], "name what to run after `--`")):
        result = subprocess.run([sys.executable, "-m", "tests.flakes", *arguments], cwd=PROJECT_ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
