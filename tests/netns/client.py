"""The client host of the namespace harness: probes and load, run inside the client's namespace.

    python3 client.py get URL [--user U --password P] [--timeout S]      one request, a JSON line
    python3 client.py tls HOST PORT [--timeout S]                        TLS handshake + GET, a JSON line
    python3 client.py load URL --duration S --interval S [--timeout S]  one JSON line per request (concurrent)
    python3 client.py rate URL --duration S --connections N              keep-alive throughput, a JSON line

Every loop is bounded by --duration. Times are time.time() (the test's clock too).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import socket
import ssl
import sys
import threading
import time
import urllib.parse


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    return connection, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def request(url: str, timeout: float, headers: dict[str, str] | None = None) -> dict:
    started = time.time()
    result: dict = {"t": started}
    connection, path = _connection(url, timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
        result.update(status=response.status, body=body, ok=response.status == 200)
    except (OSError, http.client.HTTPException) as error:
        result.update(status=None, body="", ok=False, error=f"{type(error).__name__}: {error}")
    finally:
        connection.close()
    result["elapsed"] = time.time() - started
    return result


def tls(host: str, port: int, timeout: float) -> dict:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the web servers' certificates are self-signed
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with context.wrap_socket(raw) as secure:
            certificate = secure.getpeercert(binary_form=True)
            secure.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := secure.recv(4096):
                data += chunk
    return {"cert_sha256": hashlib.sha256(certificate).hexdigest(), "version": secure.version(),
            "response": data.decode(errors="replace")}


def load(url: str, duration: float, interval: float, timeout: float) -> None:
    """One request every `interval` s, each on its own connection and thread, whether or not the earlier ones
    have answered (as independent clients do): a request stuck in a SYN retry does not hide the moment
    service returns, so an outage is resolved to `interval`, not to `timeout`. At most duration / interval
    requests, at most timeout / interval + 1 in flight."""
    lock = threading.Lock()

    def one() -> None:
        line = json.dumps(request(url, timeout))
        with lock:
            print(line, flush=True)

    threads: list[threading.Thread] = []
    started = time.time()
    for index in range(int(duration / interval)):
        time.sleep(max(0.0, started + index * interval - time.time()))
        thread = threading.Thread(target=one, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(timeout + 1)


def rate(url: str, duration: float, connections: int) -> dict:
    counts = {"requests": 0, "failures": 0}
    lock = threading.Lock()
    end = time.time() + duration

    def worker() -> None:
        connection, path = _connection(url, 2.0)
        done = failed = 0
        while time.time() < end:
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                done += 1
                failed += response.status != 200
            except (OSError, http.client.HTTPException):
                failed += 1
                connection.close()
                connection, path = _connection(url, 2.0)
        with lock:
            counts["requests"] += done
            counts["failures"] += failed

    started = time.time()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.time() - started
    return {**counts, "seconds": seconds, "per_second": counts["requests"] / seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("get", "tls", "load", "rate"))
    parser.add_argument("target", nargs="+")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    if args.mode == "get":
        headers = {}
        if args.user is not None:
            token = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        print(json.dumps(request(args.target[0], args.timeout, headers)))
    elif args.mode == "tls":
        print(json.dumps(tls(args.target[0], int(args.target[1]), args.timeout)))
    elif args.mode == "load":
        load(args.target[0], args.duration, args.interval, args.timeout)
    else:
        print(json.dumps(rate(args.target[0], args.duration, args.connections)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
