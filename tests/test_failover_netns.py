"""The rendered keepalived and HAProxy configs, running, in network namespaces (tests/netns/harness.py).

Each lab variant is built once (about 6 s) and restored to health before every scenario. Outages are
measured by a client in its own namespace sending one request every 20 ms.
"""

from __future__ import annotations

import os
import pathlib
import time

import pytest

from tests import figures, promises
from tests.conftest import reference_priority_load_balancers, require_root, require_tools
from tests.netns.harness import (
    NAMESPACE_PREFIX,
    STATS_PASSWORD,
    NetnsLab,
    VipWatch,
    harness_config,
    outage_after,
    run,
    server_of,
)
from tests.program_run import run_program

VARIANTS = {
    "classic-unicast": {},
    "classic-multicast": {"unicast": False},
    "classic-unicast-no-preempt": {"preempt": False},
    "fast-unicast": {"profile": "fast"},
    "fast-multicast-no-preempt": {"profile": "fast", "unicast": False, "preempt": False},
    "classic-weight": {"checkWeight": 2},  # the reference's weight mode: the VIP moves by preemption
    "rollout": {},  # changed by the rollout tests, so it is a lab of its own
    "rollout-to-multicast": {},  # moved to multicast VRRP by its test
}
FAILOVER_VARIANTS = ["classic-unicast", "classic-multicast", "fast-unicast", "fast-multicast-no-preempt", "classic-weight"]
PROBE_TIMEOUT = 0.25  # a request not answered by then counts as failed: the outage resolution


def lab_config(variant: str, vrrp: dict | None = None, **overrides: object) -> dict:
    if variant == "classic-weight":  # a weight needs priorities with headroom below 254: the reference's
        overrides = {"loadBalancers": reference_priority_load_balancers(), **overrides}
    return harness_config({**VARIANTS[variant], **(vrrp or {})}, **overrides)


def takeover_bound(lab: NetnsLab) -> float:
    """The README's promise for a silent or resigning master (the same for a lost link or node). A silent
    master is replaced after 3 adverts and the backup's skew time, which the weight mode's lower priorities
    make longer."""
    if lab.settings.vrrp.check_weight:
        return promises.WEIGHT_MODE_LINK_OR_NODE_LOST_SECONDS[lab.settings.vrrp.profile]
    return promises.FAILOVER_SECONDS["link or node lost"][lab.settings.vrrp.profile]


def haproxy_death_bound(lab: NetnsLab) -> float:
    """The polled path (the namespace cannot use the event-driven one), with or without a weight."""
    path = "haproxy dies, weighted check" if lab.settings.vrrp.check_weight else "haproxy dies, polled check"
    return promises.FAILOVER_SECONDS[path][lab.settings.vrrp.profile]


@pytest.fixture(scope="module")
def labs():
    """One lab at a time; pytest groups the tests by variant, so each variant is built once."""
    require_root()
    require_tools("ip", "unshare", "nsenter", "haproxy", "keepalived", "nft", "openssl", "sudo")
    current: dict[str, NetnsLab] = {}

    def get(variant: str) -> NetnsLab:
        if variant not in current:
            for lab in current.values():
                lab.down()
            current.clear()
            current[variant] = NetnsLab(lab_config(variant)).__enter__()
        return current[variant]

    yield get
    for lab in current.values():
        lab.down()


@pytest.fixture
def lab(labs, request) -> NetnsLab:
    """The variant's lab (built once per variant: `variants` gives the parameter module scope)."""
    return labs(request.param)


@pytest.fixture(autouse=True)
def healthy(request) -> None:
    """Before every scenario the lab is healthy again (services, links, VIP on the primary)."""
    if "lab" in request.fixturenames:
        request.getfixturevalue("lab").heal()


def variants(*names: str):
    return pytest.mark.parametrize("lab", names, indirect=True, scope="module")


def servers(results: list[dict]) -> list[str]:
    return [server_of(r) for r in results if r["ok"]]


# -- 1. the healthy pair ---------------------------------------------------------------------------

@variants("classic-unicast", "classic-multicast")
def test_vip_on_primary_alone_serving_round_robin(lab):
    assert lab.vip_holders() == [lab.primary]
    answers = [lab.get(lab.http_url) for _ in range(6)]
    assert all(a["status"] == 200 for a in answers), answers
    names = [server_of(a) for a in answers]
    assert names[0] != names[1] and names == names[:2] * 3, names  # strict alternation over both
    assert set(names) == set(lab.web_names)


@variants("classic-unicast", "classic-multicast")
def test_https_through_the_vip_is_tls_passthrough_to_each_web_server(lab):
    sessions = [lab.tls(lab.settings.https_port) for _ in range(4)]
    certificates = {lab.web_certificate_sha256(web): web for web in lab.web_names}
    seen = [certificates.get(s["cert_sha256"]) for s in sessions]
    assert None not in seen, "a TLS session ended somewhere other than a web server (not passthrough)"
    assert set(seen) == set(lab.web_names)
    for session, web in zip(sessions, seen):
        assert f"served by {web} " in session["response"], session["response"]


@variants("classic-unicast")
def test_stats_page_requires_the_password(lab):
    user = lab.settings.stats_user
    assert lab.get(lab.stats_url)["status"] == 401
    assert lab.get(lab.stats_url, user=user, password="wrong")["status"] == 401
    answer = lab.get(lab.stats_url, user=user, password=STATS_PASSWORD)
    assert answer["status"] == 200 and "web01" in answer["body"]


# -- 2. backend loss ------------------------------------------------------------------------------

@variants("classic-unicast")
def test_backend_loss_fails_no_client_request_and_the_server_returns(lab):
    # A request every 20 ms, each staying 200 ms at its server: web01 dies with about five requests in flight.
    url = lab.url(lab.settings.http_port, "/?delay=0.2")
    loads = [lab.load(url, duration=14, interval=0.02, timeout=2)]
    time.sleep(2)
    killed_at = time.time()
    lab.kill_web("web01")
    time.sleep(4)
    restarted_at = time.time()
    lab.start_web("web01")
    time.sleep(4)
    results = [result for load in loads for result in load.stop()]
    failed = [r for r in results if not r["ok"]]
    assert len(failed) == promises.WEB_SERVER_DEATH_FAILED_REQUESTS, f"{len(failed)} failed requests, first: {failed[0]}"
    # Nor a hang: a request caught by the death is served by the other server after HAProxy's turn-around
    # pause before a retry (at most a second) plus its own 0.2 s.
    slowest = max(r["elapsed"] for r in results)
    assert slowest <= 0.2 + promises.WEB_SERVER_DEATH_EXTRA_WAIT, f"a request took {slowest:.2f} s"
    during = [r for r in results if killed_at + 1.5 < r["t"] < restarted_at]
    assert during and set(servers(during)) == {"web02"}
    back = [r for r in results if r["t"] > restarted_at + 2]
    assert "web01" in servers(back), "web01 gets no traffic after it returned"


# -- 3 and 5. a failing load balancer; never two VIP holders --------------------------------------

FAULTS = {
    "haproxy-killed": (lambda lab: lab.kill_haproxy(lab.primary), haproxy_death_bound),
    "keepalived-stopped": (lambda lab: lab.systemctl(lab.primary, "stop", "keepalived"), takeover_bound),
    "frontend-link-cut": (lambda lab: lab.cut_link(lab.primary), takeover_bound),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@variants(*FAILOVER_VARIANTS)
def test_load_balancer_failure_moves_the_vip_within_the_bound(lab, fault):
    inject, bound = FAULTS[fault]
    with VipWatch(lab) as watch:
        load = lab.load(duration=4 + 2 * bound(lab), interval=0.02, timeout=PROBE_TIMEOUT)
        time.sleep(1)
        fault_at = time.time()
        inject(lab)
        lab.wait_for_vip_on(lab.secondary, timeout=2 * bound(lab))
        time.sleep(1)
        results = load.stop()
    outage = outage_after(results, fault_at)
    print(f"{lab.settings.vrrp.profile} {fault}: outage {outage.seconds:.2f} s, {outage.failed} failed requests")
    figures.record("outage", outage.seconds)
    assert watch.intervals()[lab.secondary], "the watch never saw the VIP arrive on the backup"
    assert outage.answered_after, "the service never answered again"
    assert outage.seconds <= bound(lab), f"outage {outage.seconds:.2f} s exceeds the promised {bound(lab):.2f} s"
    if fault == "frontend-link-cut":
        assert not watch.overlaps(), f"both load balancers held the VIP: {watch.overlaps()}"
    else:
        # A resigning master (or, in weight mode, a preempting peer) hands over: with the backup's skew time
        # down to a millisecond (fast profile), it may add the VIP while the master is still removing it.
        assert handover_overlaps(lab, watch) == watch.overlaps()
    if fault != "frontend-link-cut" and not lab.settings.vrrp.check_weight:
        # The master resigned (a priority 0 advert): the backup waits only its skew time.
        gap = watch.handover_gap(lab.primary, lab.secondary)
        print(f"{lab.settings.vrrp.profile} {fault}: resign to takeover {gap}")
        figures.record("resign to takeover", gap if gap is not None else float("nan"))
        assert gap is not None and gap <= promises.RESIGN_TO_TAKEOVER_SECONDS, f"resign to takeover took {gap} s"


def handover_overlaps(lab: NetnsLab, watch: VipWatch) -> list[tuple[float, float]]:
    """Preemption is VRRP's own handover: the new master adds the VIP and announces itself, the old one
    drops it on hearing that, a few milliseconds later; a resignation (priority 0 advert, then the VIP
    removed) can overlap the same way when the backup's skew time is shorter than that removal. Longer than
    that would be two masters."""
    overlaps = watch.overlaps()
    assert all(end - start <= promises.HANDOVER_OVERLAP for start, end in overlaps), overlaps
    return overlaps


# -- 4. failback follows preempt ------------------------------------------------------------------

@variants("classic-unicast", "fast-unicast")
def test_with_preempt_the_vip_returns_to_the_healthy_primary(lab):
    lab.kill_haproxy(lab.primary)
    lab.wait_for_vip_on(lab.secondary, timeout=2 * haproxy_death_bound(lab))
    with VipWatch(lab) as watch:
        load = lab.load(duration=4 + promises.FAILBACK_SECONDS[lab.settings.vrrp.profile], interval=0.02,
                        timeout=PROBE_TIMEOUT)
        repaired_at = time.time()
        lab.systemctl(lab.primary, "start", "haproxy")
        lab.wait_for_vip_on(lab.primary, timeout=promises.FAILBACK_SECONDS[lab.settings.vrrp.profile])
        back_after = time.time() - repaired_at
        time.sleep(1)
        results = load.stop()
    outage = outage_after(results, repaired_at)
    print(f"{lab.settings.vrrp.profile} failback: VIP back after {back_after:.1f} s, {outage.failed} failed requests, handover overlap "
          f"{[round(end - start, 4) for start, end in watch.overlaps()]}")
    figures.record("VIP back after the repair", back_after)
    figures.record("failback failed requests", outage.failed, unit="requests")
    assert outage.answered_after
    assert outage.failed <= promises.FAILBACK_FAILED_REQUESTS, f"failback cost {outage.failed} requests"
    handover_overlaps(lab, watch)
    the_new_master_announced_itself_last(lab)


def the_new_master_announced_itself_last(lab: NetnsLab) -> None:
    """After a preemptive handover the stepping-down master's last advert (higher_prio_send_advert) reached the new
    master, which then sent its gratuitous ARPs again (garp_lower_prio_repeat): whatever the old master announced
    last (its refresh), the new master's ARPs came after it."""
    log = lab.keepalived_log(lab.primary)
    taken = log[log.rindex("(web-prod) Entering MASTER STATE"):]
    heard = f"(web-prod) Received advert from {lab.hosts[lab.secondary].address} with lower priority"
    assert heard in taken, taken[-3000:]
    assert "Sending gratuitous ARP" in taken[taken.index(heard):], taken[-3000:]


@variants("classic-unicast-no-preempt", "fast-multicast-no-preempt")
def test_without_preempt_the_vip_stays_and_nothing_is_interrupted_again(lab):
    lab.kill_haproxy(lab.primary)
    lab.wait_for_vip_on(lab.secondary, timeout=2 * haproxy_death_bound(lab))
    with VipWatch(lab) as watch:
        load = lab.load(duration=3 * haproxy_death_bound(lab) + 2, interval=0.02, timeout=PROBE_TIMEOUT)
        lab.systemctl(lab.primary, "start", "haproxy")
        results = load.wait(timeout=3 * haproxy_death_bound(lab) + 10)
    assert lab.vip_holders() == [lab.secondary]
    assert watch.moves() == 0 and not watch.overlaps()
    failed = [r for r in results if not r["ok"]]
    assert len(failed) == promises.NO_PREEMPT_FAILED_REQUESTS, f"{len(failed)} requests failed after the primary recovered"


# -- 6. every web server down ---------------------------------------------------------------------

@variants("classic-unicast")
def test_all_web_servers_down_answers_503_promptly(lab):
    for web in lab.web_names:
        lab.kill_web(web)
    first = lab.get(lab.http_url, timeout=5)
    # Retries end quickly on refused connects.
    assert first["status"] == 503 and first["elapsed"] <= promises.ALL_DOWN_FIRST_503_SECONDS, first
    time.sleep(1.5)  # health checks have marked every server down
    answers = [lab.get(lab.http_url, timeout=5) for _ in range(5)]
    assert all(a["status"] == 503 and a["elapsed"] <= promises.ALL_DOWN_503_SECONDS for a in answers), answers


# -- fast profile: sub-second whole-node loss, no false failover ----------------------------------

@variants("fast-unicast")
def test_fast_profile_link_cut_outage_within_the_promise(lab):
    load = lab.load(duration=6, interval=0.02, timeout=PROBE_TIMEOUT)
    time.sleep(1)
    cut_at = time.time()
    lab.cut_link(lab.primary)
    lab.wait_for_vip_on(lab.secondary, timeout=3)
    time.sleep(1)
    outage = outage_after(load.stop(), cut_at)
    print(f"fast link cut: outage {outage.seconds:.2f} s, {outage.failed} failed requests")
    figures.record("outage", outage.seconds)
    assert outage.answered_after and outage.seconds <= promises.FAILOVER_SECONDS["link or node lost"]["fast"]


@variants("fast-unicast")
def test_fast_profile_idle_soak_has_no_false_failover(lab):
    with VipWatch(lab) as watch:
        time.sleep(60)
    assert lab.vip_holders() == [lab.primary]
    assert watch.moves() == 0, f"the VIP moved {watch.moves()} times in a one-minute idle soak"


# -- issue 4, for real: the rollout scripts `pulumi up` runs over SSH -----------------------------

def rollout_scripts(config: dict) -> dict[str, str]:
    """The program's own commands for a stack config: their `create` scripts by resource name."""
    program = run_program(config, stack="netns")
    return {r.name: r.inputs["create"] for r in program.of_type("command:remote:Command")
            if r.name.endswith(("-config-check", "-config-rollout"))}


def roll_out(lab: NetnsLab, scripts: dict[str, str], order: list[str]) -> None:
    """`pulumi up`'s rollout commands as it runs them: validated on every load balancer first, then activated one
    at a time, in `order`; each must succeed."""
    for step in ("config-check", "config-rollout"):
        for lb in order:
            result = lab.as_login_user(lb, scripts[f"{lb}-{step}"])
            assert result.returncode == 0, f"{lb}-{step} failed:\n{result.stdout}{result.stderr}"
            print(result.stdout.strip())


def installed_haproxy_cfg(lab: NetnsLab, lb: str) -> str:
    return lab.host(lb).exec(["cat", "/etc/haproxy/haproxy.cfg"]).stdout


@variants("rollout")
def test_rollout_applies_a_valid_change_one_lb_at_a_time_with_zero_failed_requests(lab):
    # web02 leaves the pool and VRRP checks slow down: HAProxy and keepalived both change.
    changed = lab_config("rollout", webServers=[{"name": "web01", "address": lab.web_address("web01")}],
                         vrrp={"checkInterval": 3})
    scripts = rollout_scripts(changed)
    order = sorted(lab.load_balancer_names, key=lambda lb: lb != lab.primary)
    with VipWatch(lab) as watch:
        load = lab.load(duration=20, interval=0.02, timeout=2)
        time.sleep(1)
        roll_out(lab, scripts, order)
        applied_at = time.time()
        time.sleep(2)
        results = load.stop()
    failed = [r for r in results if not r["ok"]]
    assert not failed, f"{len(failed)} requests failed during the rollout, first: {failed[0]}"
    assert set(servers([r for r in results if r["t"] > applied_at])) == {"web01"}
    for lb in order:
        config = installed_haproxy_cfg(lab, lb)
        assert "server web01" in config and "server web02" not in config
        keepalived = lab.host(lb).exec(["cat", "/etc/keepalived/keepalived.conf"]).stdout
        assert "interval 3" in keepalived
    assert watch.moves() == 0, "the VIP moved during a rollout"


@variants("rollout-to-multicast")
def test_a_rollout_from_unicast_to_multicast_vrrp_leaves_one_holder(lab):
    """`vrrp.unicast: false` (with the fast profile) rolled out as `pulumi up` orders it, the higher priority first
    (components/lab.py): while only the primary speaks multicast, its peer hears nothing and is a second master;
    once both speak it, the primary alone holds the VIP, within a lost node's promise, and the secondary never
    takes it again while watched (on the VMs a lapse came back every 13-15 s)."""
    changed = lab_config("rollout-to-multicast", vrrp={"unicast": False, "profile": "fast"})
    scripts = rollout_scripts(changed)
    with VipWatch(lab) as watch:
        roll_out(lab, scripts, [lab.primary, lab.secondary])
        rolled_out = time.time()
        bound = promises.FAILOVER_SECONDS["link or node lost"]["classic"]
        time.sleep(bound + 45)
    holders = {lb: [(start - rolled_out, end and end - rolled_out) for start, end in spans]
               for lb, spans in watch.intervals().items()}
    logs = (lab.keepalived_log(lab.primary)[-3000:], lab.keepalived_log(lab.secondary)[-3000:])
    assert lab.vip_holders() == [lab.primary], (holders, *logs)
    assert not [span for span in holders.get(lab.secondary, []) if span[0] > bound], (holders, *logs)


@variants("rollout")
def test_rollout_rejects_an_invalid_change_and_the_old_config_keeps_serving(lab):
    scripts = rollout_scripts(lab_config("rollout"))
    before = {lb: installed_haproxy_cfg(lab, lb) for lb in lab.load_balancer_names}
    # What the validators must stop: an algorithm HAProxy does not know.
    broken = {name: script.replace("balance roundrobin", "balance nonsense", 1) for name, script in scripts.items()}
    for lb in lab.load_balancer_names:
        for step in ("config-check", "config-rollout"):
            result = lab.as_login_user(lb, broken[f"{lb}-{step}"])
            assert result.returncode != 0
            # The validator's own message reaches the user (it fails `pulumi up`).
            assert "is rejected by 'haproxy -c" in result.stderr and "balance only supports" in result.stderr
        assert installed_haproxy_cfg(lab, lb) == before[lb]
        assert lab.systemctl(lb, "is-active", "haproxy", check=False).returncode == 0
    answers = [lab.get(lab.http_url) for _ in range(4)]
    assert all(a["ok"] for a in answers)


@variants("rollout")
def test_a_rollout_without_root_changes_nothing(lab):
    """The scripts run as the login user: a step that forgot `sudo` fails, as on the VM."""
    scripts = rollout_scripts(lab_config("rollout", httpPort=8081))
    lb = lab.primary
    before = installed_haproxy_cfg(lab, lb)
    without_sudo = scripts[f"{lb}-config-rollout"].replace("sudo -n install", "install")
    result = lab.as_login_user(lb, without_sudo)
    assert result.returncode != 0 and installed_haproxy_cfg(lab, lb) == before


# -- a reboot: what boot starts, without cloud-init's runcmd -------------------------------------

@variants("classic-unicast")
def test_a_rebooted_load_balancer_boots_its_firewall_and_services_and_takes_the_vip_back(lab):
    primary = lab.primary
    lab.reboot(primary)
    # The reboot is a lost node first: its peer takes the VIP once three adverts are missing. Only then does the
    # failback below begin (a load started before that would count the node loss as the failback's).
    lab.wait_for_vip_on(lab.secondary, timeout=takeover_bound(lab))
    # Only what the activate script enabled (or the packages did) starts at boot.
    for unit in ("nftables", "haproxy", "keepalived"):
        assert lab.systemctl(primary, "is-active", unit, check=False).returncode == 0, unit
    ruleset = lab.host(primary).exec(["nft", "list", "ruleset"]).stdout
    assert "table inet ha_lb" in ruleset and "policy drop" in ruleset
    # The README's classic promise for a repaired master (it waits out the hold-down first), and what the client
    # sees of the handover back: a failback's failed requests at most.
    failback = promises.FAILBACK_SECONDS["classic"]
    load = lab.load(duration=failback + 3, interval=0.02, timeout=PROBE_TIMEOUT)
    lab.wait_for_vip_on(primary, timeout=failback)
    back = time.time()
    time.sleep(1)
    failed = [r for r in load.stop() if not r["ok"]]
    figures.record("reboot failback failed requests", len(failed), unit="requests")
    assert len(failed) <= promises.FAILBACK_FAILED_REQUESTS, (
        f"the failback cost {len(failed)} requests, sent {failed[0]['t'] - back:+.2f} s to {failed[-1]['t'] - back:+.2f} s "
        f"from seeing the VIP back on {primary}: {failed[:3]}\n{lab.keepalived_log(primary)[-3000:]}"
        f"\n{lab.keepalived_log(lab.secondary)[-3000:]}")
    the_new_master_announced_itself_last(lab)
    assert lab.get(lab.http_url, timeout=1)["ok"]


@variants("classic-unicast")
def test_a_load_balancer_still_booting_stays_out_of_the_election_until_its_boot_has_finished(lab):
    """A rebooted master whose boot is still under way (under software emulation: minutes of a saturated node)
    leaves the VIP with its peer however long that lasts, then takes it back once booted, after the hold-down."""
    primary, secondary = lab.primary, lab.secondary
    failback = promises.FAILBACK_SECONDS["classic"]
    with VipWatch(lab) as watch:
        rebooted_at = time.time()
        lab.reboot(primary, boot_finishes=False)
        for unit in ("haproxy", "keepalived"):  # everything runs: only the boot is not over
            assert lab.systemctl(primary, "is-active", unit, check=False).returncode == 0, unit
        time.sleep(failback + 2)  # longer than a finished boot takes to get the VIP back
        assert lab.vip_holders() == [secondary]
        booted_at = time.time()
        lab.finish_boot(primary)
        lab.wait_for_vip_on(primary, timeout=failback)
    taken_back = [start for start, _ in watch.intervals()[primary] if start > rebooted_at]
    assert taken_back and min(taken_back) > booted_at, (taken_back, booted_at)
    # keepalived held the instance back on the boot gate's file (it never entered the election), not by chance,
    # and let it in when the file said so.
    log = lab.keepalived_log(primary)
    assert log.index("(web-prod): entering FAULT state (tracked file boot_finished") \
        < log.index("(web-prod): tracked file boot_finished leaving FAULT state") \
        < log.index("(web-prod) Entering BACKUP STATE"), log
    assert lab.get(lab.http_url, timeout=1)["ok"]


# -- the harness itself -------------------------------------------------------------------------

def our_namespaces() -> list[str]:
    return [line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines()
            if line.startswith(NAMESPACE_PREFIX)]


def test_harness_builds_twice_in_a_row_and_leaves_nothing(labs):
    labs("classic-unicast")  # the shared lab is up meanwhile: only this test's own namespaces must go
    shared = set(our_namespaces())
    for _ in range(2):
        with NetnsLab(lab_config("classic-unicast")) as lab:
            assert lab.get(lab.http_url)["ok"]
            pids = [host.init_pid for host in lab.namespace_hosts.values()]
            workdir = lab.workdir
        assert set(our_namespaces()) == shared
        assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)
        assert not workdir.exists()


def test_harness_tears_down_after_a_failed_setup(labs, monkeypatch):
    labs("classic-unicast")
    shared = set(our_namespaces())
    started: list[NetnsLab] = []

    def broken(self, name):
        started.append(self)
        raise RuntimeError(f"{name} failed to start")

    monkeypatch.setattr(NetnsLab, "_start_load_balancer", broken)
    with pytest.raises(RuntimeError, match="lb01 failed to start"):
        with NetnsLab(lab_config("classic-unicast")):
            pass
    lab = started[0]
    assert set(our_namespaces()) == shared
    assert not lab.workdir.exists()
    assert all(host.init_pid is None for host in lab.namespace_hosts.values())
    assert not pathlib.Path(f"/run/netns/{lab.netns('web01')}").exists()
