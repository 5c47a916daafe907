"""A web server stand-in for the namespace harness: answers on the HTTP and HTTPS ports with its own name.

    python3 web_standin.py NAME ADDRESS HTTP_PORT HTTPS_PORT CERT KEY PID_FILE

The body matches the lab's nginx page ("served by NAME (ADDRESS)"), so the same checks read both.
"""

from __future__ import annotations

import http.server
import os
import ssl
import sys
import threading
import time
import urllib.parse


def main() -> None:
    name, address, http_port, https_port, certificate, key, pid_file = sys.argv[1:8]
    body = f"served by {name} ({address})\n".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as nginx does
        disable_nagle_algorithm = True  # headers and body leave at once (no delayed-ACK stall per request)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            # ?delay=S keeps the request in flight for S seconds (at most 1): a server can die mid-request.
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            time.sleep(min(1.0, float(query.get("delay", ["0"])[0])))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    plain = Server((address, int(http_port)), Handler)
    secure = Server((address, int(https_port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    # The handshake happens in the request's thread, so a slow client cannot stall the accept loop.
    secure.socket = context.wrap_socket(secure.socket, server_side=True, do_handshake_on_connect=False)
    with open(pid_file, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    threading.Thread(target=secure.serve_forever, daemon=True).start()
    plain.serve_forever()


if __name__ == "__main__":
    main()
