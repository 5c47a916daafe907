"""Mutation check: each mutant breaks one promise with one small change to a template, a component or a
guest script; the fast tests must fail for every one of them.

    python3 -m tests.mutation            # every mutant; exit 1 if any survives
    python3 -m tests.mutation -k rollout # the mutants whose id contains "rollout"

Each mutant runs in its own copy of the project (the working tree is never touched), against its guard (GUARDS)
and then, if that passed, the fast tests below, with `-x`. tests/test_golden.py is left out on purpose: it fails on any change at all, so it
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
    "tests/test_hosts_and_bridges.py",
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
    Mutant("keepalived-no-last-word", "cloud-init/keepalived.conf.j2", "    higher_prio_send_advert\n", "",
           "after a failback the host follows the new master's gratuitous ARPs, not the old master's last refresh"),
    Mutant("keepalived-no-boot-gate", "cloud-init/keepalived.conf.j2", "        boot_finished\n", "",
           "a load balancer back from a reboot takes the VIP only once its boot has finished"),
    Mutant("boot-gate-not-reversed", "cloud-init/keepalived.conf.j2", "    weight 0 reverse\n", "    weight 0\n",
           "a load balancer still booting stays out of the election"),
    # (--wait never answers "starting": systemd waits for the boot to end first, so the gate's other side is how
    # the boot ended.)
    Mutant("boot-gate-opens-whatever-the-boot-did", "cloud-init/boot-finished.sh.j2", "    running|degraded) ;;",
           "    *) ;;", "a load balancer whose boot ended in maintenance or shutdown stays out of the election"),
    Mutant("boot-gate-not-waiting", "cloud-init/boot-finished.sh.j2", "is-system-running --wait)",
           "is-system-running)", "a load balancer joins the election once its boot has finished, not never"),
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
    Mutant("rollout-restarts-haproxy", "components/guest_scripts.py", '("systemctl reload haproxy.service",)',
           '("systemctl restart haproxy.service",)', "a rollout refuses no connection (hitless reload)"),
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
           "if runs and (sample.at - runs[-1][1] < self.timeout or runs[-1][2] is None):",
           "if runs and runs[-1][2] is None:",
           "a request that fails late (in flight at the fault) does not cut the failover's outage short"),
    Mutant("review-shows-hashes", "components/review.py", "    return _CRYPT_HASH.sub(HASH_MARKER, text)",
           "    return text", "no secret reaches a pull-request comment"),
    Mutant("review-silent-on-a-deaf-rollout", "components/review.py",
           "before == after or len(rolled) < 2", "True",
           "the review says when a rollout leaves the pair deaf to each other (a VRRP transport or version change)"),
    Mutant("pair-on-one-of-several-hosts", "components/settings.py",
           "if len(load_balancers) == 2 and load_balancers[0].host == load_balancers[1].host:", "if False:",
           "with several hosts, losing one hypervisor never takes both load balancers"),
    Mutant("libvirt-networks-across-hosts", "components/settings.py",
           "if network_mode in LIBVIRT_NETWORK_MODES and len(used) > 1:",
           "if network_mode in LIBVIRT_NETWORK_MODES and len(used) > 2:",
           "a lab spread over hosts on networks that cannot span them is refused before any resource"),
    Mutant("ssh-uri-with-a-port-accepted", "components/libvirt_uri.py", "    if port is not None:\n",
           "    if port == 0:\n", "a qemu+ssh URI the provider cannot dial is refused with the reason, not failed at preview"),
    Mutant("vms-on-the-first-hosts-provider", "components/lab.py", "hypervisor = args.hypervisors[host.placement]",
           "hypervisor = next(iter(args.hypervisors.values()))", "each VM runs on the host it is placed on"),
    Mutant("host-fault-on-a-shared-host", "components/drill.py",
           'if fault == "host" and placement[master] == placement[peer]:', "if False:",
           "the host drill never powers off both load balancers"),
    Mutant("review-misses-secret-changes", "components/stack_diff.py",
           '"encrypted-" + hashlib.sha256(str(value["secure"]).encode()).hexdigest()[:16]', '"encrypted-stand-in"',
           "a changed secret shows as a rollout in the review"),
)


# The test that killed each mutant in the last full run (`python3 -m tests.mutation` prints it): run first, it kills
# most mutants in seconds where the whole list took up to three minutes. A guard that no longer kills its mutant
# costs one extra pytest run, never a false "killed".
GUARDS = {
    "keepalived-tracks-another-process": "tests/test_haproxy_live.py::test_keepalived_tracks_the_process_name_haproxy_really_runs_under",
    "keepalived-fall-once": "tests/test_render.py::test_a_check_weight_renders_the_reference_weight_mode",
    "keepalived-no-garp-refresh": "tests/test_render.py::test_the_master_repeats_its_gratuitous_arp_every_second",
    "keepalived-no-last-word": "tests/test_render.py::test_a_stepping_down_master_answers_before_it_goes_so_the_new_masters_arps_come_last",
    "keepalived-no-boot-gate": "tests/test_render.py::test_every_vrrp_mode_keeps_a_node_out_of_the_election_until_its_boot_has_finished",
    "boot-gate-not-reversed": "tests/test_render.py::test_keepalived_renders_the_classic_values",
    "boot-gate-opens-whatever-the-boot-did": "tests/test_activate_script.py::test_the_boot_gate_opens_only_once_systemd_has_finished_booting",
    "boot-gate-not-waiting": "tests/test_activate_script.py::test_the_boot_gate_opens_only_once_systemd_has_finished_booting",
    "keepalived-preempt-inverted": "tests/test_render.py::test_without_a_hold_down_lb01_starts_as_master",
    "keepalived-no-hold-down": "tests/test_render.py::test_keepalived_lb01_wins_by_priority_and_waits_out_a_hold_down_before_taking_the_vip_back",
    "haproxy-stats-auth-inverted": "tests/test_haproxy_live.py::test_the_stats_page_asks_for_the_password_and_takes_only_the_right_one",
    "haproxy-no-redispatch": "tests/test_render.py::test_haproxy_balances_every_web_server_and_passes_tls_through",
    "haproxy-no-retries": "tests/test_render.py::test_haproxy_balances_every_web_server_and_passes_tls_through",
    "haproxy-https-terminated": "tests/test_render.py::test_haproxy_balances_every_web_server_and_passes_tls_through",
    "haproxy-no-health-check": "tests/test_render.py::test_haproxy_balances_every_web_server_and_passes_tls_through",
    "nftables-vrrp-on-backend": "tests/test_render.py::test_firewall_allows_vrrp_from_the_peer_for_unicast_and_to_the_group_for_multicast",
    "nftables-vrrp-from-anyone": "tests/test_render.py::test_firewall_allows_vrrp_from_the_peer_for_unicast_and_to_the_group_for_multicast",
    "nftables-rogue-vrrp-silent": "tests/test_render.py::test_firewall_drops_counts_and_logs_every_other_vrrp_speaker",
    "nftables-open-by-default": "tests/test_firewall_live.py::test_only_the_allowed_ports_are_open",
    "sysctl-no-nonlocal-bind": "tests/test_render.py::test_user_data_carries_each_file_verbatim_and_activates_in_order",
    "user-data-files-not-deferred": "tests/test_render.py::test_files_are_written_after_the_packages_are_installed_and_before_activation",
    "activate-firewall-not-enabled": "tests/test_activate_script.py::test_every_service_is_enabled_so_a_reboot_brings_back_firewall_haproxy_and_keepalived",
    "nginx-site-wrong-port": "tests/test_nginx_live.py::test_web01_answers_where_haproxy_sends_its_http_and_https_traffic",
    "ready-check-ignores-cloud-init-failure": "tests/test_gate.py::test_cloud_init_not_done_cleanly_fails_with_its_report_and_output_log",
    "ready-check-no-journal": "tests/test_day2_plan.py::test_every_vm_has_a_readiness_check_that_reports_cloud_init_and_services",
    "ready-check-waits-full-timeout": "tests/test_readiness_wait.py::test_the_readiness_script_waits_only_for_what_is_left_of_ready_timeout",
    "rollout-skips-haproxy-check": "tests/test_rollout_privileges.py::test_every_privileged_step_goes_through_sudo",
    "rollout-installs-without-sudo": "tests/test_render.py::test_the_rollout_installs_a_changed_notify_script_and_reloads_keepalived",
    "rollout-restarts-haproxy": "tests/test_rollout_privileges.py::test_every_privileged_step_goes_through_sudo",
    "apt-installs-recommends": "tests/test_render.py::test_cloud_init_installs_the_packages_without_their_recommends",
    "vip-check-accepts-errors": "tests/test_gate.py::test_a_503_for_the_whole_timeout_fails_with_the_status_after_retrying",
    "vip-check-ignores-rollouts": "tests/test_day2_plan.py::test_a_password_change_rolls_out_without_replacing_anything",
    "outputs-before-vip-check": "tests/test_graph_promises.py::test_no_output_resolves_before_the_final_vip_check_has_run",
    "rebuilt-vm-not-checked": "tests/test_graph_promises.py::test_a_rebuilt_vm_is_checked_again_and_the_others_are_not",
    "user-data-secret": "tests/test_graph_promises.py::test_user_data_of_every_vm_stays_a_plain_value_for_readable_diffs",
    "lb-rollout-lowest-priority-first": "tests/test_day2_plan.py::test_the_lb_rollout_validates_everywhere_then_goes_one_lb_at_a_time_after_the_webs",
    "config-change-rebuilds-lbs": "tests/test_day2_plan.py::test_a_config_only_change_touches_the_rollout_and_seed_but_replaces_no_vm",
    "replacements-create-before-delete": "tests/test_day2_plan.py::test_vms_are_replaced_one_at_a_time_per_tier",
    "dial-limit-outlasts-ready-timeout": "tests/test_readiness_wait.py::test_dialing_never_outlasts_ready_timeout_yet_keeps_trying_most_of_it",
    "port-range-unchecked": "tests/test_settings.py::test_each_bad_setting_is_named_with_its_value_and_what_is_allowed",
    "default-priorities-of-the-reference": "tests/test_settings.py::test_defaults_reproduce_the_reference_plan_where_libvirt_allows",
    "status-blind-to-split-brain": "tests/test_lab_tools.py::test_the_verdict_names_what_is_wrong",
    "drill-on-an-unhealthy-lab": "tests/test_lab_tools.py::test_the_drill_refuses_an_unhealthy_lab_and_touches_nothing",
    "drill-client-waits-for-its-requests": "tests/test_lab_tools.py::test_the_drills_client_resolves_an_outage_to_its_interval_not_its_timeout",
    "drill-outage-split-by-a-late-failure": "tests/test_lab_tools.py::test_a_request_in_flight_at_the_fault_that_fails_late_does_not_split_the_outage",
    "review-shows-hashes": "tests/test_stack_diff.py::test_a_new_stats_password_rolls_out_without_showing_it",
    "review-silent-on-a-deaf-rollout": "tests/test_stack_diff.py::test_a_switch_to_multicast_says_the_pair_is_deaf_between_the_two_rollouts",
    "review-misses-secret-changes": "tests/test_stack_diff.py::test_a_new_stats_password_rolls_out_without_showing_it",
    "pair-on-one-of-several-hosts": "tests/test_hosts_and_bridges.py::test_both_load_balancers_on_one_of_several_hosts_is_refused_with_the_reason",
    "libvirt-networks-across-hosts": "tests/test_hosts_and_bridges.py::test_vms_on_several_hosts_need_bridged_networks",
    "ssh-uri-with-a-port-accepted": "tests/test_hosts_and_bridges.py::test_a_port_in_a_qemu_ssh_uri_is_refused_with_what_works_instead",
    "vms-on-the-first-hosts-provider": "tests/test_hosts_and_bridges.py::test_each_host_gets_its_own_provider_pool_and_base_image_and_each_vm_its_hosts_provider",
    "host-fault-on-a-shared-host": "tests/test_lab_tools.py::test_the_host_fault_is_refused_when_the_pair_shares_a_host",
}


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
        # The test file that guards the promise first (GUARDS, from an earlier run), then every fast test: a mutant
        # its guard no longer kills still has to die somewhere.
        for tests in ([(GUARDS[mutant.id],)] if mutant.id in GUARDS else []) + [FAST_TESTS]:
            result = subprocess.run(
                # Debian 13's run of the real-tools checks (each has a Debian 12 twin here) would double every
                # mutant's time: it is left to the suite itself.
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-rf",
                 "-k", "not trixie", *tests],
                cwd=root, capture_output=True, text=True, timeout=900,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
            if result.returncode != 0:
                break
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
