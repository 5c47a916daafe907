"""The throughput benchmark (tests/bench_throughput.py) still runs and prints every figure: a tiny run of it
(1 s per wrk run, one round) in the network-namespace harness. No timing bound here: the README's figures
come from a full run on a named machine, not from this test."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.bench_throughput import parse_wrk_report
from tests.conftest import require_root, require_tools
from tests.netns.harness import HarnessError

COLUMNS = ["traffic", "requests/s direct", "requests/s VIP", "ratio VIP/direct", "p50 direct (ms)", "p50 VIP (ms)",
           "p99 direct (ms)", "p99 VIP (ms)", "added p99 (ms)", "failed requests", "CPU busy direct (per core)",
           "CPU busy VIP (per core)"]
ROWS = ("HTTP (VIP :80 vs web01 :8080)", "TLS passthrough (VIP :443 vs web01 :8443)")
NUMBER = r"[+-]?\d+(?:\.\d+)?"
CPU_LOADS = r"\d+%(?: / \d+%)+"  # one figure per core


def test_parse_wrk_report_reads_the_done_hook_line():
    stdout = ("Running 1s test @ http://x/\n"
              'WRK-REPORT {"requests": 5000, "duration_us": 2000000, "p50_us": 1250, "p99_us": 7000, '
              '"socket_errors": 2, "bad_status": 1}\n')
    result = parse_wrk_report(stdout)
    assert (result.requests_per_second, result.p50_ms, result.p99_ms, result.failed) == (2500, 1.25, 7.0, 3)


def test_parse_wrk_report_fails_loudly_without_its_line():
    with pytest.raises(HarnessError, match="wrk printed 0 report lines"):
        parse_wrk_report("Running 1s test @ http://x/\n  Requests/sec: 100\n")


@pytest.fixture(scope="module")
def output() -> str:
    require_root()
    require_tools("wrk", "nginx", "haproxy", "keepalived", "taskset", "openssl", "nft")
    result = subprocess.run([sys.executable, "-m", "tests.bench_throughput", "--seconds", "1", "--rounds", "1",
                             "--connections", "4"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def table_cells(output: str, row: str) -> list[str]:
    lines = [line for line in output.splitlines() if line.startswith(f"| {row} |")]
    assert len(lines) == 1, output
    return [cell.strip() for cell in lines[0].strip("|").split("|")]


def test_the_table_has_every_column(output):
    header = next(line for line in output.splitlines() if line.startswith("| traffic |"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == COLUMNS


@pytest.mark.parametrize("row", ROWS)
def test_each_row_has_every_figure(output, row):
    cells = table_cells(output, row)
    assert len(cells) == len(COLUMNS), cells
    for column, cell in zip(COLUMNS[1:10], cells[1:10]):
        assert re.fullmatch(NUMBER, cell), (column, cell)
    direct, via_vip = float(cells[1]), float(cells[2])
    assert direct > 0 and via_vip > 0, cells
    assert cells[9] == "0", f"failed requests: {cells}"
    for cell in cells[10:]:
        assert re.fullmatch(CPU_LOADS, cell), cell


def test_it_prints_how_it_measured(output):
    assert re.search(r"^wrk command \(each run\): ip netns exec .*taskset --cpu-list 0 /usr/bin/wrk --threads=1 "
                     r"--connections=4 --duration=1s ", output, re.M), output
    assert re.search(r"^placement haproxy-own-core: wrk on CPU 0, nginx on CPU 0, haproxy on CPU 1$", output, re.M)
    # What ran, read from /proc: HAProxy with one thread on CPU 1, nginx (master and workers) on CPU 0.
    daemons = next(line for line in output.splitlines() if line.startswith("daemons: "))
    assert re.search(r"HAProxy on lb01 \(master, worker\): 1 threads on CPU 1; 1 threads on CPU 1\.", daemons)
    assert re.search(r"nginx on web01 \(master, workers\): (1 threads on CPU 0(; )?){2,}$", daemons)
    assert re.search(rf"^CPU busy per core with the lab idle.*: {CPU_LOADS}$", output, re.M), output
