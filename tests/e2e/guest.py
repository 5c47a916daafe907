"""TLS from the host to the lab (the rest of talking to a lab lives in components/lab_access.py, which the
status view and the drill share with the tests)."""

from __future__ import annotations

import socket
import ssl
import subprocess


def tls_peer_common_name(host: str, port: int, timeout: float = 5.0) -> tuple[str, str]:
    """(certificate CN, body of GET /): completes a TLS handshake without verifying the self-signed chain."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            body = b""
            while chunk := tls.recv(4096):
                body += chunk
    pem = ssl.DER_cert_to_PEM_cert(der)
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "multiline"], input=pem,
                             capture_output=True, text=True, check=True).stdout
    cn = next((line.split("=", 1)[1].strip() for line in subject.splitlines() if "commonName" in line), "")
    return cn, body.decode(errors="replace")


# What a load balancer back from a boot (a reboot, or its host's return) must show, and where that boot spent its time.
BOOT_REPORT = ("timeout 240 systemctl is-system-running --wait; systemd-analyze; "
               "systemd-analyze critical-chain keepalived.service haproxy.service; systemd-analyze blame | head -n 12")
BOOT_GATE_JOURNAL = ("sudo -n journalctl -b -o short-unix --no-pager _PID=1 | grep -m1 'Startup finished'; "
                     "sudo -n journalctl -b -o short-unix --no-pager -u keepalived "
                     "| grep -E 'tracked file boot_finished|Entering (BACKUP|MASTER) STATE'")
PERSISTED = ("systemctl is-active haproxy keepalived nftables; cat /proc/sys/net/ipv4/ip_nonlocal_bind; "
             "sudo -n nft list tables; cloud-init status")


def check_back_from_boot(ssh, address: str, note) -> None:
    """The boot gate: the node took part in the election again only once its boot had finished (systemd's "Startup
    finished"), BACKUP then MASTER after; its services enabled, sysctl and firewall persisted, cloud-init done (its
    last stage may still run on an emulated guest while it already serves)."""
    ssh.run(address, "timeout 240 cloud-init status --wait", timeout=260)
    boot = ssh.run(address, BOOT_REPORT, timeout=300)
    note("the load balancer's boot (systemd-analyze)", "\n" + boot.stdout + boot.stderr)
    journal = ssh.run(address, BOOT_GATE_JOURNAL, timeout=60).stdout
    note("its boot end and its keepalived's return", "\n" + journal)
    stamps = {what: float(line.split()[0]) for line in reversed(journal.splitlines())
              for what in ("Startup finished", "Entering BACKUP STATE", "Entering MASTER STATE") if what in line}
    assert len(stamps) == 3 and stamps["Startup finished"] < stamps["Entering BACKUP STATE"] \
        < stamps["Entering MASTER STATE"], journal
    checks = ssh.run(address, PERSISTED)
    assert checks.stdout.split()[:4] == ["active", "active", "active", "1"], checks.stdout + checks.stderr
    assert "table inet ha_lb" in checks.stdout and "status: done" in checks.stdout
