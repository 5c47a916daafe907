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
