"""Mutation check: each mutant breaks one promise with one small change to a template, a component or a
guest script; the fast tests must fail for every one of them.

    python3 -m tests.mutation            # every mutant; exit 1 if any survives
    python3 -m tests.mutation -k rollout # the mutants whose id contains "rollout"

Each mutant runs in its own copy of the project (the working tree is never touched), against the fast
tests below with `-x`. tests/test_golden.py is left out on purpose: it fails on any change at all, so it
would kill every mutant without showing that a test guards the promise.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
# The fast tests: no VMs, no namespaces lab, no engine build (test_stack_diff uses the cached engine).
FAST_TESTS = (  # quickest first: with -x a mutant is reported at its first failing test
    "tests/test_settings.py", "tests/test_render.py", "tests/test_activate_script.py",
    "tests/test_rollout_privileges.py", "tests/test_haproxy_live.py", "tests/test_firewall_live.py",
    "tests/test_nginx_live.py", "tests/test_program.py", "tests/test_day2_plan.py", "tests/test_graph_promises.py",
    "tests/test_promises.py", "tests/test_review_workflow.py", "tests/test_real_tools.py", "tests/test_gate.py",
    "tests/test_readiness_wait.py", "tests/test_stack_diff.py", "tests/test_lab_tools.py",
)
COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "golden", "venv", "rendered")


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str  # relative to the project
    old: str  # must occur exactly once
    new: str
    promise: str  # what a user loses


MUTANTS = (
    # -- templates ---------------------------------------------------------------------------------------
    Mutant("keepalived-tracks-another-process", "cloud-init/keepalived.conf.j2",
           "    process haproxy\n", "    process haproxyd\n",
           "HAProxy's death is seen at once (event-driven track of the haproxy process)"),
    Mutant("keepalived-fall-once", "cloud-init/keepalived.conf.j2", "    fall 2\n    rise 2\n", "    fall 1\n    rise 2\n",
           "one slow check answer is not a failover"),
    Mutant("keepalived-no-garp-refresh", "cloud-init/keepalived.conf.j2", "    garp_master_refresh 1\n", "",
           "a host sent to the wrong node for a moment finds the master again within a second"),
    Mutant("keepalived-no-boot-gate", "cloud-init/keepalived.conf.j2", "        check_booted\n", "",
           "a load balancer back from a reboot takes the VIP only once its boot has finished"),
    Mutant("boot-check-passes-while-starting", "cloud-init/keepalived.conf.j2", "-e running -e degraded",
           "-e running -e degraded -e starting", "a load balancer still booting stays out of the election"),
    Mutant("keepalived-preempt-inverted", "cloud-init/keepalived.conf.j2", "{%- elif vrrp.preempt %}",
           "{%- elif not vrrp.preempt %}", "preempt: true hands the VIP back, false keeps it"),
    Mutant("keepalived-no-hold-down", "cloud-init/keepalived.conf.j2", "    preempt_delay {{ preempt_delay }}\n", "",
           "a repaired master takes the VIP back once, when it is stable"),
    Mutant("haproxy-stats-auth-inverted", "cloud-init/haproxy.cfg.j2", "unless { http_auth(stats_users) }",
           "if { http_auth(stats_users) }", "the stats page always asks for the password"),
    Mutant("haproxy-no-redispatch", "cloud-init/haproxy.cfg.j2", "    option redispatch\n", "",
           "a web server's death fails no request"),
    Mutant("haproxy-no-retries", "cloud-init/haproxy.cfg.j2", "retries 3", "retries 0",
           "a web server's death fails no request"),
    Mutant("haproxy-https-terminated", "cloud-init/haproxy.cfg.j2", "frontend web-prod-https\n    mode tcp\n",
           "frontend web-prod-https\n    mode http\n",
           "HTTPS is passed through to the web servers intact"),
    Mutant("haproxy-no-health-check", "cloud-init/haproxy.cfg.j2", ":{{ lab.web_http_port }} check", ":{{ lab.web_http_port }}",
           "dead web servers are taken out of the pool"),
    Mutant("nftables-vrrp-on-backend", "cloud-init/nftables.conf.j2", 'iifname "{{ lab.frontend.interface }}" ip saddr {{ peer.address }}',
           'iifname "{{ lab.backend.interface }}" ip saddr {{ peer.address }}', "VRRP reaches the peer on the frontend network"),
    Mutant("nftables-vrrp-from-anyone", "cloud-init/nftables.conf.j2", "ip saddr {{ peer.address }} ", "",
           "no stranger on the frontend network can talk the pair out of its VIP"),
    Mutant("nftables-rogue-vrrp-silent", "cloud-init/nftables.conf.j2", ' log prefix "ha-lb: VRRP dropped: " level warn', "",
           "a stranger's VRRP adverts do not go unnoticed (logged, naming the sender)"),
    Mutant("nftables-open-by-default", "cloud-init/nftables.conf.j2", "hook input priority filter; policy drop;", "hook input priority filter; policy accept;",
           "inbound traffic is denied unless allowed"),
    Mutant("sysctl-no-nonlocal-bind", "cloud-init/sysctl.conf.j2", "net.ipv4.ip_nonlocal_bind = 1",
           "net.ipv4.ip_nonlocal_bind = 0", "HAProxy on the backup can bind the VIP"),
    Mutant("user-data-files-not-deferred", "cloud-init/user-data.yaml.j2", "    defer: true\n", "",
           "no package install sees a half-written config"),
    Mutant("activate-firewall-not-enabled", "cloud-init/activate-load-balancer.sh.j2",
           "systemctl enable nftables.service haproxy.service keepalived.service",
           "systemctl enable haproxy.service keepalived.service", "the firewall survives a reboot"),
    Mutant("nginx-site-wrong-port", "cloud-init/nginx-site.conf.j2", "listen {{ web_http_port }};", "listen 8081;",
           "the web servers listen where HAProxy sends traffic"),
    # -- guest scripts -----------------------------------------------------------------------------------
    Mutant("ready-check-ignores-cloud-init-failure", "cloud-init/ready-check.sh.j2",
           "    exit 1\nfi\nfor unit in", "fi\nfor unit in",
           "`pulumi up` fails when cloud-init did not finish cleanly"),
    Mutant("ready-check-no-journal", "cloud-init/ready-check.sh.j2",
           '        sudo -n journalctl --unit "$unit" --lines 30 --no-pager >&2\n', "",
           "a failing unit's journal is in the error"),
    Mutant("ready-check-waits-full-timeout", "cloud-init/ready-check.sh.j2",
           "left=$(( {{ timeout }} - $(cut -d. -f1 /proc/uptime) ))", "left={{ timeout }}",
           "readyTimeout bounds the whole wait"),
    Mutant("rollout-skips-haproxy-check", "cloud-init/load-balancer-rollout.sh.j2",
           'check haproxy -c -f "$staging/haproxy.cfg"\n', "",
           "a config HAProxy rejects is activated nowhere"),
    Mutant("rollout-installs-without-sudo", "cloud-init/load-balancer-rollout.sh.j2",
           '    sudo -n install -o root', '    install -o root', "the rollout works as the login user"),
    Mutant("rollout-restarts-haproxy", "components/guest_scripts.py", '("haproxy", "reload")',
           '("haproxy", "restart")', "a rollout refuses no connection (hitless reload)"),
    # -- components --------------------------------------------------------------------------------------
    Mutant("apt-installs-recommends", "components/render.py", 'APT_CONF = \'APT::Install-Recommends "false";',
           'APT_CONF = \'APT::Install-Recommends "true";',
           "the VMs get the roles' packages without Recommends (no hardware collectors and their timers)"),
    Mutant("vip-check-accepts-errors", "components/vip_check.py", 'last = f"HTTP {error.code}"',
           'return True, f"HTTP {error.code}"', "a successful `up` means the VIP serves (an HTTP error is not)"),
    Mutant("vip-check-ignores-rollouts", "components/lab.py",
           "triggers=[*(r.id for r in self.load_balancers.ready), *self.load_balancers.rollout_digests],",
           "triggers=[*(r.id for r in self.load_balancers.ready)],",
           "the VIP check runs again after a rollout"),
    Mutant("outputs-before-vip-check", "components/lab.py",
           "outputs = {key: pulumi.Output.all(check.stdout, value).apply(lambda pair: pair[1])",
           "outputs = {key: pulumi.Output.from_input(value)",
           "no output before the lab serves"),
    Mutant("rebuilt-vm-not-checked", "components/lab.py", "triggers=[self.domain.id],\n                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.domain]),",
           "triggers=[],\n                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.domain]),",
           "a rebuilt VM's readiness is checked again"),
    Mutant("user-data-secret", "components/lab.py", "user_data=cloud_init.apply(lambda c: c.user_data),",
           "user_data=pulumi.Output.secret(cloud_init.apply(lambda c: c.user_data)),",
           "`pulumi preview --diff` shows config changes as text"),
    Mutant("lb-rollout-lowest-priority-first", "components/lab.py",
           "ordered = sorted(s.load_balancers, key=lambda lb: -lb.priority)",
           "ordered = sorted(s.load_balancers, key=lambda lb: lb.priority)",
           "the master changes first, the backup only after it succeeded"),
    Mutant("config-change-rebuilds-lbs", "components/guest_scripts.py",
           'GuestFile(f.path, f.mode, "(rolled out in place)\\n") if f.path in ROLLOUT_SERVICES else f', "f",
           "a config change (a web server added, a port) replaces no load balancer"),
    Mutant("replacements-create-before-delete", "components/lab.py", "delete_before_replace=True)",
           "delete_before_replace=False)", "fixed libvirt names: the old object goes first"),
    Mutant("dial-limit-outlasts-ready-timeout", "components/commands.py", "return limit", "return limit + 5",
           "the readiness wait is bounded by readyTimeout"),
    Mutant("port-range-unchecked", "components/settings.py", "given[key], 1, 65535)", "given[key], 1, 99999)",
           "a bad port is refused with the setting named"),
    Mutant("default-priorities-of-the-reference", "components/settings.py",
           '"backendAddress": "192.168.80.12", "priority": 253}', '"backendAddress": "192.168.80.12", "priority": 99}',
           "the backup takes over milliseconds after the master resigns (skew time)"),
    Mutant("status-blind-to-split-brain", "components/status.py", "elif len(holders) > 1:", "elif len(holders) > 2:",
           "two load balancers holding the VIP make the status view exit 2"),
    Mutant("drill-on-an-unhealthy-lab", "components/drill.py", "if before.level != OK or before.holder is None:",
           "if before.holder is None:", "the drill refuses to break a lab that is not healthy first"),
    Mutant("drill-client-waits-for-its-requests", "components/lab_access.py",
           "            worker = threading.Thread(target=self._request, args=(time.monotonic(),), daemon=True)",
           "            self._request(time.monotonic())\n            worker = threading.Thread(target=lambda: None)",
           "the drill's client resolves an outage to its 20 ms interval, not to its 0.25 s timeout"),
    Mutant("drill-outage-split-by-a-late-failure", "components/lab_access.py",
           "if runs and sample.at - runs[-1][1] < self.timeout:", "if runs and runs[-1][2] is None:",
           "a request that fails late (in flight at the fault) does not cut the failover's outage short"),
    Mutant("review-shows-hashes", "components/review.py", "    return _CRYPT_HASH.sub(HASH_MARKER, text)",
           "    return text", "no secret reaches a pull-request comment"),
    Mutant("review-misses-secret-changes", "components/stack_diff.py",
           '"encrypted-" + hashlib.sha256(str(value["secure"]).encode()).hexdigest()[:16]', '"encrypted-stand-in"',
           "a changed secret shows as a rollout in the review"),
)


def mutated(mutant: Mutant, root: pathlib.Path = PROJECT_ROOT) -> str:
    """The text of the mutant's file under `root` with the mutation applied (its text must occur once)."""
    text = (root / mutant.path).read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(f"mutant {mutant.id}: expected its text once in {mutant.path}, found it {count} times")
    return text.replace(mutant.old, mutant.new)


def apply(mutant: Mutant, root: pathlib.Path) -> None:
    (root / mutant.path).write_text(mutated(mutant, root))


def run_mutant(mutant: Mutant) -> tuple[Mutant, bool, float, str]:
    """(mutant, killed, seconds, the first failing test or the reason)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"ha-lb-mutant-{mutant.id}-") as temp:
        root = pathlib.Path(temp) / "project"
        shutil.copytree(PROJECT_ROOT, root, ignore=COPY_IGNORE, symlinks=True)
        apply(mutant, root)
        result = subprocess.run(
            # Debian 13's run of the real-tools checks (each has a Debian 12 twin here) would double every
            # mutant's time: it is left to the suite itself.
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-rf",
             "-k", "not trixie", *FAST_TESTS],
            cwd=root, capture_output=True, text=True, timeout=900,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    seconds = time.monotonic() - started
    failed = [line[len("FAILED "):].split(" - ")[0] for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    if result.returncode == 0:
        return mutant, False, seconds, "every fast test passed"
    reason = failed[0] if failed else (result.stdout.strip().splitlines() or ["pytest exit %d" % result.returncode])[-1]
    return mutant, True, seconds, reason


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="pattern", default="", help="only mutants whose id contains this")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if args.pattern in m.id]
    for mutant in chosen:  # every mutant applies cleanly before anything runs
        mutated(mutant)
    started = time.monotonic()
    survivors = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for mutant, killed, seconds, detail in pool.map(run_mutant, chosen):
            print(f"{'killed  ' if killed else 'SURVIVED'} {mutant.id:42} {seconds:5.0f} s  {detail}", flush=True)
            if not killed:
                survivors.append(mutant)
    print(f"mutation score: {len(chosen) - len(survivors)}/{len(chosen)} killed in {time.monotonic() - started:.0f} s")
    for mutant in survivors:
        print(f"  survived: {mutant.id} ({mutant.path}): nothing guards \"{mutant.promise}\"")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
