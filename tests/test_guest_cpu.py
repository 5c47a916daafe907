"""The e2e's CPU sampler (tests/e2e/guest_cpu.py) against processes whose CPU use is known: a stand-in for a
QEMU process (its command line names the guest as libvirt's does, its busy thread is named as QEMU names a
vCPU thread) spinning alone on a core, then sharing that core with another spinning process."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import require_tools
from tests.e2e.guest_cpu import GuestCpu, format_intervals, qemu_processes

SPIN_SECONDS = 4
# The main thread takes QEMU's vCPU thread name and spins; a second thread, named as QEMU's I/O thread, only sleeps.
FAKE_QEMU = """
import pathlib, sys, threading, time
pathlib.Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text("CPU 0/TCG")
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
"""
SPINNER = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end:\n    pass\n"


def _on_core(*argv: str, core: int = 0) -> subprocess.Popen:
    return subprocess.Popen(["taskset", "-c", str(core), *argv])


def _stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(timeout=10)


def _fake_qemu(domain: str) -> subprocess.Popen:
    """The stand-in QEMU process for `domain`, on core 0, once it can be found by its guest name."""
    process = _on_core(sys.executable, "-c", FAKE_QEMU, str(SPIN_SECONDS), "-name", f"guest={domain},debug-threads=on")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            qemu_processes([domain])
            break
        except RuntimeError:
            time.sleep(0.05)
    return process


@pytest.fixture
def fake_guest():
    require_tools("taskset")
    process = _fake_qemu("ha-lb-fake-lb01")
    yield process
    _stop(process)


def _sampled_beside_a_spinner(core: int) -> GuestCpu:
    """Two seconds of samples of the fake guest while another process spins on `core`."""
    spinner = _on_core(sys.executable, "-c", SPINNER, core=core)
    try:
        time.sleep(0.3)
        with GuestCpu({"lb01": "ha-lb-fake-lb01"}, limit=10) as cpu:
            time.sleep(2)
    finally:
        _stop(spinner)
    return cpu


def test_a_vcpu_alone_on_its_core_runs_and_does_not_wait(fake_guest):
    cpu = _sampled_beside_a_spinner(core=1)
    share = cpu.share(cpu.samples[1].at, cpu.samples[-1].at)
    assert share is not None
    print(format_intervals(cpu.intervals(cpu.samples[0].at, cpu.samples[-1].at), cpu.samples[0].at))
    assert share.ran["lb01"] >= 0.8 and share.waited["lb01"] <= 0.15, share
    assert share.host_busy >= 0.9, share  # both cores spinning, the other one for another process


def test_a_vcpu_sharing_its_core_is_seen_waiting_for_it(fake_guest):
    cpu = _sampled_beside_a_spinner(core=0)
    share = cpu.share(cpu.samples[1].at, cpu.samples[-1].at)
    assert share is not None
    assert 0.3 <= share.ran["lb01"] <= 0.7 and share.waited["lb01"] >= 0.3, share
    # Each 0.1 s interval says the same, within the scheduler's slices.
    intervals = cpu.intervals(cpu.samples[1].at, cpu.samples[-1].at)
    assert len(intervals) >= 15
    assert sum(1 for i in intervals if i.waited["lb01"] >= 0.2) >= len(intervals) // 2, format_intervals(intervals, 0)


def test_a_process_without_the_guest_name_is_not_taken_for_it(fake_guest):
    with pytest.raises(RuntimeError, match="no QEMU process found for ha-lb-fake-lb02"):
        qemu_processes(["ha-lb-fake-lb01", "ha-lb-fake-lb02"])


def test_a_guest_whose_qemu_exits_drops_out_and_the_others_stay_sampled(fake_guest):
    second = _fake_qemu("ha-lb-fake-lb02")
    try:
        with GuestCpu({"lb01": "ha-lb-fake-lb01", "lb02": "ha-lb-fake-lb02"}, limit=10) as cpu:
            time.sleep(0.5)
            _stop(second)
            time.sleep(0.5)
    finally:
        _stop(second)
    assert set(cpu.samples[0].guests) == {"lb01", "lb02"}
    assert set(cpu.samples[-1].guests) == {"lb01"}, cpu.samples[-1]
