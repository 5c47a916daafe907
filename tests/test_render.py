"""Rendering: what each VM receives, checked as text a user would read (no Pulumi, no tools)."""

from __future__ import annotations

import pathlib

import jinja2
import pytest
import yaml

from components.render import (
    PATHS,
    lab_hosts,
    load_balancer_files,
    render_boot_finished_script,
    render_boot_finished_unit,
    render_haproxy_cfg,
    render_host,
    render_keepalived_conf,
    render_nftables_conf,
    stats_password_hash,
)
from components.settings import load_settings
from components.sha_crypt import sha512_crypt
from tests import crypt_compat
from tests.conftest import reference_priority_load_balancers

PASSWORD = "correct-horse-battery"


def settings(**raw):
    return load_settings({"statsPassword": PASSWORD, "waitForReady": False, **raw}, stack="test")


def lb(s, name):
    return next(x for x in s.load_balancers if x.name == name)


def host(s, name):
    return next(h for h in lab_hosts(s) if h.name == name)


def test_sha512_crypt_matches_the_published_test_vector_and_the_system_crypt():
    assert sha512_crypt("Hello world!", "saltstring") == (
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")
    system_crypt = crypt_compat.system_crypt()
    if system_crypt:
        for password in ("", "a", "x" * 80, "pässwörd"):
            assert sha512_crypt(password, "abcdefgh") == system_crypt(password, "$6$abcdefgh")


def test_keepalived_lb01_wins_by_priority_and_waits_out_a_hold_down_before_taking_the_vip_back():
    s = settings()
    lb01, lb02 = render_keepalived_conf(s, lb(s, "lb01")), render_keepalived_conf(s, lb(s, "lb02"))
    assert "priority 254" in lb01 and "router_id lb01" in lb01
    assert "priority 253" in lb02 and "router_id lb02" in lb02
    # keepalived ignores preempt_delay on an initial MASTER: both start as BACKUP.
    for conf in (lb01, lb02):
        assert "state BACKUP" in conf and "state MASTER" not in conf and "\n    preempt_delay 10\n" in conf


def test_without_a_hold_down_lb01_starts_as_master():
    s = settings(vrrp={"preemptDelay": 0})
    lb01, lb02 = render_keepalived_conf(s, lb(s, "lb01")), render_keepalived_conf(s, lb(s, "lb02"))
    assert "state MASTER" in lb01 and "state BACKUP" in lb02 and "preempt_delay" not in lb01 + lb02


def test_keepalived_renders_the_classic_values():
    s = settings()
    lb01, lb02 = render_keepalived_conf(s, lb(s, "lb01")), render_keepalived_conf(s, lb(s, "lb02"))
    for conf in (lb01, lb02):
        # HAProxy's death is the kernel's event and the boot gate a file keepalived watches: nothing is polled
        # (a polled check made busy guests flap, and put a loaded master in FAULT long after its boot).
        assert "check_haproxy" not in conf and "is-active" not in conf
        assert "vrrp_script" not in conf and "track_script" not in conf
        # No weighted check: only the boot gate's "weight 0 reverse" (no weight: FAULT while it fails).
        assert "\n    weight" not in conf.replace("\n    weight 0 reverse\n", "\n") and "virtual_router_id 1" in conf
        assert "advert_int 1\n" in conf and "vrrp_version 2" in conf
        assert "192.168.10.3 dev frontend" in conf and "interface frontend" in conf
        assert "vrrp_track_process track_haproxy" in conf and "process haproxy" in conf
    # Unicast (default): each names itself as source and the other as peer.
    assert "unicast_src_ip 192.168.10.4" in lb01 and "unicast_peer {\n        192.168.10.2\n    }" in lb01
    assert "unicast_src_ip 192.168.10.2" in lb02 and "unicast_peer {\n        192.168.10.4\n    }" in lb02


def test_keepalived_multicast_has_no_unicast_peers():
    s = settings(vrrp={"unicast": False})
    conf = render_keepalived_conf(s, lb(s, "lb01"))
    assert "unicast_src_ip" not in conf and "unicast_peer" not in conf


def test_without_preempt_both_start_as_backup_with_nopreempt():
    s = settings(vrrp={"preempt": False})
    for name in ("lb01", "lb02"):
        conf = render_keepalived_conf(s, lb(s, name))
        assert "state BACKUP" in conf and "nopreempt" in conf and "state MASTER" not in conf
        assert "preempt_delay" not in conf


def test_fast_profile_renders_vrrpv3_with_a_tenth_of_a_second():
    s = settings(vrrp={"profile": "fast", "trackProcess": False})
    conf = render_keepalived_conf(s, lb(s, "lb01"))
    assert "vrrp_version 3" in conf and "advert_int 0.1\n" in conf and "interval 1\n" in conf


def test_haproxy_balances_every_web_server_and_passes_tls_through():
    s = settings(webServers=[{"name": f"web{i:02}", "address": f"192.168.80.{20 + i}"} for i in range(1, 4)])
    cfg = render_haproxy_cfg(s, stats_password_hash(s, PASSWORD))
    assert "bind 192.168.10.3:80\n" in cfg and "bind 192.168.10.3:443\n" in cfg and "bind :9000" in cfg
    for i in range(1, 4):
        assert f"server web{i:02} 192.168.80.{20 + i}:8080 check\n" in cfg
        assert f"server web{i:02} 192.168.80.{20 + i}:8443 check check-ssl verify none" in cfg
    https_frontend = cfg.split("\nfrontend web-prod-https")[1].split("\nbackend web-prod-https")[0]
    https_backend = cfg.split("\nbackend web-prod-https")[1]
    assert "mode tcp" in https_frontend and "mode tcp" in https_backend
    assert "option redispatch" in cfg and "retries 3" in cfg and "maxconn 4000" in cfg
    for timeout in ("http-request 10s", "queue 1m", "connect 10s", "client 1m", "server 1m"):
        assert f"timeout {timeout}\n" in cfg


def test_stats_page_always_asks_for_a_password_and_only_its_hash_is_rendered():
    s = settings()
    cfg = render_haproxy_cfg(s, stats_password_hash(s, PASSWORD))
    assert "stats http-request auth" in cfg and "http_auth(stats_users)" in cfg and "stats hide-version" in cfg
    assert f"user admin password {sha512_crypt(PASSWORD, stats_password_hash(s, PASSWORD).split('$')[2])}" in cfg
    assert PASSWORD not in cfg
    assert "stats uri /haproxy_stats" in cfg


def test_firewall_allows_vrrp_from_the_peer_for_unicast_and_to_the_group_for_multicast():
    s = settings()
    unicast = render_nftables_conf(s, host(s, "lb01"))
    accepted = 'iifname "frontend" ip saddr 192.168.10.2 ip daddr 192.168.10.4 ip ttl 255 ip protocol 112 accept'
    assert "policy drop" in unicast and accepted in unicast
    assert "ip protocol 51" not in unicast and "224.0.0.18" not in unicast
    assert "ip daddr 192.168.10.3 tcp dport { 80, 443 } accept" in unicast and "tcp dport 9000 accept" in unicast
    s = settings(vrrp={"unicast": False})
    multicast = render_nftables_conf(s, host(s, "lb02"))
    # Multicast too: only the peer, not anyone who sends to the group.
    assert 'iifname "frontend" ip saddr 192.168.10.4 ip daddr 224.0.0.18 ip ttl 255 ip protocol 112 accept' in multicast
    for rules in (unicast, multicast):
        assert sum("protocol 112 accept" in line for line in rules.splitlines()) == 1, rules


def test_firewall_drops_counts_and_logs_every_other_vrrp_speaker():
    for s in (settings(), settings(vrrp={"unicast": False})):
        rules = render_nftables_conf(s, host(s, "lb01"))
        lines = [line.strip() for line in rules.splitlines()]
        log = ('ip protocol 112 counter name vrrp_dropped limit rate 5/second burst 10 packets '
               'log prefix "ha-lb: VRRP dropped: " level warn')
        # After the peer's accept, before anything else could let VRRP in; the drop follows the rate-limited log.
        assert lines.index(log) == lines.index("ip protocol 112 drop") - 1
        assert lines.index(log) > next(i for i, line in enumerate(lines) if "protocol 112 accept" in line)
        assert "counter vrrp_dropped {" in lines


def test_web_firewall_opens_app_ports_to_the_backend_network_only():
    s = settings()
    rules = render_nftables_conf(s, host(s, "web01"))
    assert "ip saddr 192.168.80.0/24 tcp dport { 8080, 8443 } accept" in rules
    assert "dport { 80, 443 }" not in rules and "protocol 112" not in rules


def test_user_data_carries_each_file_verbatim_and_activates_in_order():
    s = settings()
    files = load_balancer_files(s, lb(s, "lb01"), stats_password_hash(s, PASSWORD))
    cloud = render_host(s, host(s, "lb01"), stats_password_hash(s, PASSWORD))
    assert cloud.user_data.startswith("#cloud-config\n")
    document = yaml.safe_load(cloud.user_data)
    assert {f["path"]: f["content"] for f in document["write_files"]} == {f.path: f.content for f in files}
    assert document["packages"] == ["haproxy", "keepalived", "nftables", "qemu-guest-agent", "prometheus-node-exporter"]
    activate = next(f.content for f in files if f.path.endswith("ha-lb-activate"))
    lines = [line for line in activate.splitlines() if line and not line.startswith("#")]
    order = [next(i for i, line in enumerate(lines) if line.startswith(prefix)) for prefix in (
        "sysctl", "haproxy -c", "keepalived --config-test", "systemctl restart haproxy", "systemctl restart keepalived")]
    assert order == sorted(order), "sysctl must be applied and configs validated before HAProxy starts"
    assert "set -eu" in activate
    sysctl = next(f.content for f in files if f.path == "/etc/sysctl.d/60-ha-lb.conf")
    assert "net.ipv4.ip_nonlocal_bind = 1" in sysctl and "net.ipv4.ip_forward = 1" in sysctl


def test_golden_images_get_no_package_list():
    s = settings(installPackages=False)
    document = yaml.safe_load(render_host(s, host(s, "web01"), None).user_data)
    assert "packages" not in document and "package_update" not in document


def test_a_package_mirror_becomes_cloud_inits_apt_primary_and_security():
    s = settings(networkMode="isolated", packageMirror="http://192.168.80.1:3142/debian")
    document = yaml.safe_load(render_host(s, host(s, "web01"), None).user_data)
    assert document["apt"]["primary"] == [{"arches": ["default"], "uri": "http://192.168.80.1:3142/debian"}]
    assert document["apt"]["security"] == [{"arches": ["default"], "uri": "http://192.168.80.1:3142/debian-security"}]
    assert document["package_update"] is True and "nginx" in document["packages"]
    # Without one the image's own sources stay.
    assert {"primary", "security"}.isdisjoint(
        yaml.safe_load(render_host(settings(), host(settings(), "web01"), None).user_data)["apt"])


def test_cloud_init_installs_the_packages_without_their_recommends():
    # node-exporter's Recommends (its collectors, with perl, smartmontools, ipmitool and 15-minute timers) on
    # every VM otherwise.
    s = settings()
    for name in ("lb01", "web01"):
        document = yaml.safe_load(render_host(s, host(s, name), stats_password_hash(s, PASSWORD)).user_data)
        assert document["apt"]["conf"].strip() == 'APT::Install-Recommends "false";'
        assert document["packages"]
    # A golden image (nothing installed): the image's apt settings stay as they are.
    golden = settings(installPackages=False)
    assert "apt" not in yaml.safe_load(render_host(golden, host(golden, "web01"), None).user_data)


def test_network_config_matches_nics_by_mac_and_routes_only_in_nat_mode():
    s = settings()
    nat = yaml.safe_load(render_host(s, host(s, "lb01"), "x").network_config)
    frontend = nat["ethernets"]["frontend"]
    assert frontend["set-name"] == "frontend" and frontend["addresses"] == ["192.168.10.4/24"]
    assert frontend["match"]["macaddress"] == host(s, "lb01").nics[0].mac
    assert frontend["routes"] == [{"to": "0.0.0.0/0", "via": "192.168.10.1"}]
    assert "routes" not in nat["ethernets"]["backend"]
    s = settings(networkMode="isolated", installPackages=False)
    isolated = yaml.safe_load(render_host(s, host(s, "lb01"), "x").network_config)
    assert all("routes" not in nic for nic in isolated["ethernets"].values())


def test_meta_data_instance_id_is_stable_per_lab_and_host():
    s = settings()
    meta = yaml.safe_load(render_host(s, host(s, "web02"), None).meta_data)
    assert meta == {"instance-id": "ha-lb-test-web02", "local-hostname": "web02"}


def test_same_settings_render_byte_identical_text():
    first = [render_host(settings(), h, "hash") for h in lab_hosts(settings())]
    second = [render_host(settings(), h, "hash") for h in lab_hosts(settings())]
    assert first == second


def test_macs_are_distinct_and_stable():
    macs = [nic.mac for h in lab_hosts(settings()) for nic in h.nics]
    assert len(set(macs)) == len(macs) and all(m.startswith("52:54:00:") for m in macs)
    assert macs == [nic.mac for h in lab_hosts(settings()) for nic in h.nics]


def test_templates_refuse_missing_values():
    # StrictUndefined: a template variable the code forgot to pass fails loudly instead of rendering "".
    from components import render

    with pytest.raises(jinja2.UndefinedError):
        render._render("sysctl.conf.j2")
    with pytest.raises(ValueError, match="stats password hash"):
        render_host(settings(), host(settings(), "lb01"), None)


def test_a_check_weight_renders_the_reference_weight_mode():
    s = settings(vrrp={"checkWeight": 2}, loadBalancers=reference_priority_load_balancers())
    conf = render_keepalived_conf(s, lb(s, "lb01"))
    check = conf.split("vrrp_script check_haproxy {")[1].split("}")[0]
    assert "interval 2" in check and "weight 2" in check and "fall 2" in check


def test_without_the_process_event_connector_only_the_polled_check_is_rendered():
    s = settings(vrrp={"trackProcess": False})
    conf = render_keepalived_conf(s, lb(s, "lb01"))
    assert "track_process" not in conf and "vrrp_track_process" not in conf
    assert "track_script {\n        check_haproxy\n    }" in conf
    check = conf.split("vrrp_script check_haproxy {")[1].split("}")[0]
    assert 'script "/usr/bin/systemctl is-active --quiet haproxy"' in check and "interval 2" in check
    assert "fall 2" in check and "rise 2" in check and "weight" not in check


@pytest.mark.parametrize("vrrp", [{}, {"trackProcess": False}, {"profile": "fast"}, {"preempt": False},
                                  {"unicast": False}])
def test_every_vrrp_mode_keeps_a_node_out_of_the_election_until_its_boot_has_finished(vrrp):
    """The boot gate is a file keepalived watches (track_file): without a weight and reversed, so a missing file or
    0 keeps the instance in FAULT whatever the priorities, and the boot-finished script writes "1" there."""
    s = settings(vrrp=vrrp)
    for name in ("lb01", "lb02"):
        conf = render_keepalived_conf(s, lb(s, name))
        gate = conf.split("track_file boot_finished {\n")[1].split("}")[0]
        assert gate == f'    file "{PATHS.boot_finished_marker}"\n    weight 0 reverse\n', gate
        tracked = conf.split("    track_file {\n")[1].split("    }")[0].split()
        assert tracked == ["boot_finished"]
    script = render_boot_finished_script()
    assert f"> {PATHS.boot_finished_marker}.new\nmv -f {PATHS.boot_finished_marker}.new {PATHS.boot_finished_marker}\n" in script
    assert f"ExecStart={PATHS.boot_finished_script}\n" in render_boot_finished_unit()


@pytest.mark.parametrize("vm", ["lb01", "web01"])
def test_files_are_written_after_the_packages_are_installed_and_before_activation(vm):
    """`defer: true` files are written by write-files-deferred, which Debian's cloud-init runs in its final
    stage after package-update-upgrade-install and before scripts-user runs the runcmd script
    (/etc/cloud/cloud.cfg, cloud_final_modules): no package install sees a half-written config, and dpkg
    never finds our file where its conffile goes."""
    s = settings()
    digest = stats_password_hash(s, PASSWORD) if vm.startswith("lb") else None
    document = yaml.safe_load(render_host(s, host(s, vm), digest).user_data)
    assert document["packages"] and document["write_files"]
    assert all(item.get("defer") is True for item in document["write_files"]), document["write_files"]
    cloud_cfg = pathlib.Path("/etc/cloud/cloud.cfg")
    if cloud_cfg.exists():  # the installed cloud-init's own module order
        final = yaml.safe_load(cloud_cfg.read_text())["cloud_final_modules"]
        names = [m if isinstance(m, str) else m[0] for m in final]
        names = [n.replace("_", "-") for n in names]
        assert names.index("package-update-upgrade-install") < names.index("write-files-deferred") \
            < names.index("scripts-user")


# -- metrics (issue #11) ------------------------------------------------------------------------


def test_haproxy_serves_its_prometheus_exporter_on_the_metrics_port():
    s = settings()
    cfg = render_haproxy_cfg(s, stats_password_hash(s, PASSWORD))
    frontend = cfg.split("\nfrontend prometheus\n")[1].split("\n\n")[0]
    assert "    bind *:8405\n" in frontend
    assert "    http-request use-service prometheus-exporter if { path /metrics }" in frontend
    s = settings(metricsPort=9405)
    assert "    bind *:9405\n" in render_haproxy_cfg(s, stats_password_hash(s, PASSWORD))


def test_keepalived_reports_every_state_change_to_the_notify_script():
    s = settings()
    for name in ("lb01", "lb02"):
        conf = render_keepalived_conf(s, lb(s, name))
        instance = conf.split("vrrp_instance web-prod {")[1]
        assert "\n    notify /usr/local/sbin/ha-lb-vrrp-notify\n" in instance


def test_only_the_libvirt_host_may_scrape_the_metrics_ports():
    s = settings()
    for name in ("lb01", "lb02"):
        rules = render_nftables_conf(s, host(s, name))
        assert 'iifname "frontend" ip saddr 192.168.10.1 tcp dport { 8405, 9100 } accept' in rules
        assert sum("8405" in line or "9100" in line for line in rules.splitlines()) == 1, rules
    for name in ("web01", "web02"):
        rules = render_nftables_conf(s, host(s, name))
        assert 'iifname "backend" ip saddr 192.168.80.1 tcp dport 9100 accept' in rules
        assert sum("9100" in line for line in rules.splitlines()) == 1, rules


def test_every_vm_installs_node_exporter_and_load_balancers_get_the_notify_script():
    s = settings()
    for vm in ("lb01", "lb02", "web01", "web02"):
        digest = stats_password_hash(s, PASSWORD) if vm.startswith("lb") else None
        document = yaml.safe_load(render_host(s, host(s, vm), digest).user_data)
        assert "prometheus-node-exporter" in document["packages"]
        notify = [f for f in document["write_files"] if f["path"] == "/usr/local/sbin/ha-lb-vrrp-notify"]
        if vm.startswith("lb"):
            assert len(notify) == 1 and notify[0]["permissions"] == "0755" and notify[0]["owner"] == "root:root"
            assert notify[0]["content"].startswith("#!/bin/sh\n")
        else:
            assert notify == []


def test_the_rollout_installs_a_changed_notify_script_and_reloads_keepalived():
    from components.guest_scripts import load_balancer_rollout_script

    s = settings()
    script = load_balancer_rollout_script(s, lb(s, "lb01"), stats_password_hash(s, PASSWORD), activate=True)
    notify = next(f.content for f in load_balancer_files(s, lb(s, "lb01"), "x")
                  if f.path == "/usr/local/sbin/ha-lb-vrrp-notify")
    assert f"cat > \"$staging/ha-lb-vrrp-notify\" <<'HA_LB_END_OF_FILE'\n{notify}HA_LB_END_OF_FILE" in script
    install = ('sudo -n install -o root -g root -m 0755 "$staging/ha-lb-vrrp-notify" /usr/local/sbin/ha-lb-vrrp-notify\n'
               '    changed="$changed keepalived"')
    assert install in script


def test_the_metrics_output_names_every_scrape_target():
    from components.render import scrape_targets

    assert scrape_targets(settings(metricsPort=9405)) == {
        "haproxy": ["192.168.10.4:9405", "192.168.10.2:9405"],
        "node": ["192.168.10.4:9100", "192.168.10.2:9100", "192.168.80.3:9100", "192.168.80.2:9100"],
    }


@pytest.mark.parametrize("vrrp", [{}, {"profile": "fast"}, {"unicast": False}])
def test_the_master_repeats_its_gratuitous_arp_every_second(vrrp):
    """A host that followed another node's gratuitous ARP (a second master for a moment) is back within a second."""
    s = settings(vrrp=vrrp)
    for name in ("lb01", "lb02"):
        instance = render_keepalived_conf(s, lb(s, name)).split("vrrp_instance web-prod {")[1]
        assert "\n    garp_master_refresh 1\n" in instance and "\n    garp_master_delay 1\n" in instance


@pytest.mark.parametrize("vrrp", [{}, {"profile": "fast"}, {"unicast": False}])
def test_a_stepping_down_master_answers_before_it_goes_so_the_new_masters_arps_come_last(vrrp):
    """higher_prio_send_advert: the old master's last advert makes the new one send its gratuitous ARPs again, after
    anything the old master announced (its refresh raced the failback's ARPs in the namespace harness)."""
    s = settings(vrrp=vrrp)
    for name in ("lb01", "lb02"):
        instance = render_keepalived_conf(s, lb(s, name)).split("vrrp_instance web-prod {")[1]
        assert "\n    higher_prio_send_advert\n" in instance
