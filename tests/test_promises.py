"""The README (with docs/) states exactly the numbers tests/promises.py holds (and the tests bound themselves by)."""

from __future__ import annotations

import re

from tests import promises
from tests.engine.stack import PROJECT_ROOT

# The README and its pages under docs/ (the failover promises live in docs/failover.md).
README = "".join(path.read_text() for path in [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))])


def failover_table() -> dict[str, list[str]]:
    """The README's failover promise table: first cell (the fault) -> the other cells."""
    section = README[README.index("## Failover: what to expect"):README.index("### Measured: the failover benchmark")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| fault")]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in row.strip("|").split("|")] for row in rows)}


def seconds(value: float) -> str:
    return f"{value:g} s"


def row(prefix: str) -> list[str]:
    [cells] = [cells for fault, cells in failover_table().items() if fault.startswith(prefix)]
    return cells


def test_the_failover_table_states_the_promised_seconds():
    figures = promises.FAILOVER_SECONDS
    for prefix, fault in (("keepalived stops on the master", "keepalived stops on the master"),
                          ("the master's link or the whole node is lost", "link or node lost")):
        assert row(prefix)[1:] == [seconds(figures[fault]["classic"]), seconds(figures[fault]["fast"])]
    event, polled = figures["haproxy dies, event-driven track"], figures["haproxy dies, polled check"]
    weighted = figures["haproxy dies, weighted check"]
    assert row("HAProxy dies on the master")[1:] == [
        f"{seconds(event[p])}, polled {seconds(polled[p])}, weighted {seconds(weighted[p])}" for p in ("classic", "fast")]


def test_the_other_promises_are_the_same_numbers():
    web = row("a web server dies")
    assert web[1:] == [f"{promises.WEB_SERVER_DEATH_FAILED_REQUESTS} failed"] * 2
    assert promises.WEB_SERVER_DEATH_EXTRA_WAIT == 1.0 and "waits at most HAProxy's one-second turn-around" in web[0]
    repaired = row("the master is repaired")
    assert f"at most {promises.FAILBACK_FAILED_REQUESTS} failed requests" in repaired[0]
    assert f"the VIP moves at most {promises.VIP_MOVES_AFTER_A_RESTARTED_HAPROXY:g} times in all" \
        .replace("2 times", "twice") in repaired[0]
    assert repaired[1:] == [seconds(promises.FAILBACK_SECONDS["classic"]), seconds(promises.FAILBACK_SECONDS["fast"])]
    assert promises.NO_PREEMPT_FAILED_REQUESTS == 0 and "`preempt: false`: nothing moves, no failed request" in repaired[0]
    all_down = row("every web server is down")[0]
    assert (f"within {seconds(promises.ALL_DOWN_FIRST_503_SECONDS)}, every later one within "
            f"{seconds(promises.ALL_DOWN_503_SECONDS)}") in all_down
    prose = README.replace("\n", " ")
    assert f"The tests bound every handover to {promises.HANDOVER_OVERLAP * 1000:g} ms" in prose
    assert f"stamps them on arrival, to {seconds(promises.DOUBLE_HOLD_BY_ARRIVAL_STAMPS)}." in prose
    assert f"drops the VIP and its peer takes it within {seconds(promises.RESIGN_TO_TAKEOVER_SECONDS)}" in prose
    assert f"no VIP movement in a {promises.FAST_PROFILE_SOAK_SECONDS // 60:g}-minute soak under the test's client" in prose
    assert f"a lost node (powered off) costs up to {seconds(promises.REBUILD_LONGEST_OUTAGE)}" in prose
    assert f"a lost link up to {seconds(promises.VM_FAST_LINK_LOSS_OUTAGE)} with the fast profile" in prose
    assert f"a killed HAProxy or a stopped keepalived up to {seconds(promises.VM_RESIGNATION_OUTAGE)} (measured" in prose
    assert f"a failback costs up to {seconds(promises.VM_FAILBACK_OUTAGE)} (measured" in prose


def test_the_table_s_formulas_give_its_figures():
    """The formulas in the table, for each profile's timing as the README gives it."""
    timings = {"classic": (1, 2), "fast": (0.1, 1)}
    for profile, (advert, check) in timings.items():
        assert re.search(rf"{profile} \(A {advert:g} s, C {check:g} s\)", failover_table_header())
        skew = (256 - 253) / 256 * advert
        # Resigning: the skew plus a gratuitous ARP and one request, well inside 0.2 s.
        assert promises.FAILOVER_SECONDS["keepalived stops on the master"][profile] == 0.2 > skew
        lost = promises.FAILOVER_SECONDS["link or node lost"][profile]
        assert lost == (round(3 * advert + 0.1, 3) if profile == "classic" else 0.5) >= 3 * advert + skew
        assert promises.FAILOVER_SECONDS["haproxy dies, polled check"][profile] == round(2 * check + 0.5, 3)
        assert promises.FAILOVER_SECONDS["haproxy dies, weighted check"][profile] == round(2 * check + 4 * advert + 0.5, 3)
        assert promises.FAILBACK_SECONDS[profile] == round(7 * check + 2 * advert + 1, 3)
    weighted_lost = promises.WEIGHT_MODE_LINK_OR_NODE_LOST_SECONDS["classic"]
    assert weighted_lost == 3.7 >= 3 * 1 + (256 - 101) / 256 * 1
    assert f"waits a skew of 0.61 A: classic {seconds(weighted_lost)}" in row("the master's link or the whole node")[0]


def failover_table_header() -> str:
    section = README[README.index("## Failover: what to expect"):]
    return next(line for line in section.splitlines() if line.startswith("| fault"))
