"""A local Debian mirror for the e2e guests: exactly the files a guest's apt asks for, recorded from
deb.debian.org when the test image is built, then served to the lab's guests at the host's backend address.

Recording: while the image is built, apt inside the image's root (the image's own apt, sources and keyring)
runs `apt-get update` and `apt-get install --download-only` of each role's packages through `MirrorServer`
in record mode, which forwards each request to deb.debian.org and keeps the answer. The files are Debian's
own (InRelease signed by Debian, indices, .debs): the guests verify them with their own keyring as they would
against any real mirror. Serving: the same paths, nothing else (404), to the lab networks only.
"""

from __future__ import annotations

import email.utils
import http.server
import ipaddress
import pathlib
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Optional, Sequence

# The archives a Debian cloud image's sources name (/etc/apt/sources.list.d/debian.sources), by the path
# prefix the mirror serves them under: the deb.debian.org layout, so `packageMirror: http://HOST:PORT/debian`
# finds its security archive at http://HOST:PORT/debian-security.
UPSTREAM = {"debian": "http://deb.debian.org/debian", "debian-security": "http://deb.debian.org/debian-security"}
_SAFE_PATH = re.compile(r"^/(debian|debian-security)/([A-Za-z0-9._+~%/-]+)$")


@dataclass
class MirrorServer:
    """record=True: forward to UPSTREAM and keep each answer under `directory`; record=False: serve only what
    was kept (under `directory` or one of `more`: one mirror for several suites), to clients inside `clients`."""

    directory: pathlib.Path
    more: Sequence[pathlib.Path] = ()
    record: bool = False
    clients: Sequence[str] = ("127.0.0.0/8",)
    host: str = "127.0.0.1"
    served: list[str] = field(default_factory=list)  # "CODE /path" as answered
    _server: Optional[http.server.ThreadingHTTPServer] = None

    def __enter__(self) -> "MirrorServer":
        mirror = self
        networks = [ipaddress.ip_network(c) for c in self.clients]

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (the http.server interface)
                self._answer(body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(body=False)

            def _answer(self, body: bool) -> None:
                if not any(ipaddress.ip_address(self.client_address[0]) in n for n in networks):
                    self.send_error(403)
                    return
                match = _SAFE_PATH.match(self.path.split("?")[0])
                if not match or ".." in self.path:
                    self._finish(404, None, body)
                    return
                file = mirror.directory / match.group(1) / match.group(2)
                if mirror.record and not file.is_file():
                    mirror._fetch(f"{UPSTREAM[match.group(1)]}/{match.group(2)}", file)
                for other in mirror.more:
                    if not file.is_file():
                        file = other / match.group(1) / match.group(2)
                self._finish(200 if file.is_file() else 404, file if file.is_file() else None, body)

            def _finish(self, code: int, file: Optional[pathlib.Path], body: bool) -> None:
                mirror.served.append(f"{code} {self.path}")
                if file is None:
                    self.send_error(code)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(file.stat().st_size))
                self.send_header("Last-Modified", email.utils.formatdate(file.stat().st_mtime, usegmt=True))
                self.end_headers()
                if body:
                    with file.open("rb") as source:
                        shutil.copyfileobj(source, self.wfile, 1 << 20)

        self._server = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @staticmethod
    def _fetch(url: str, file: pathlib.Path) -> None:
        """Keep upstream's answer; a 404 stays a 404 (apt asks for files that do not exist, e.g. a
        compression the archive does not offer, and must get the same answer from the mirror)."""
        for attempt in range(3):
            try:
                with urllib.request.urlopen(url, timeout=60) as answer:
                    data = answer.read()
                break
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    return
                if attempt == 2:
                    raise
            except OSError:
                if attempt == 2:
                    raise
            time.sleep(2)
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_name(file.name + ".partial")
        partial.write_bytes(data)
        partial.rename(file)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def url(self, archive: str = "debian", host: Optional[str] = None) -> str:
        return f"http://{host or self.host}:{self.port}/{archive}"

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def valid_until(directory: pathlib.Path) -> Optional[float]:
    """The earliest `Valid-Until` of the recorded Release files (apt refuses an expired one): None if none."""
    found = []
    for release in directory.glob("*/dists/*/InRelease"):
        match = re.search(r"^Valid-Until: (.+)$", release.read_text(errors="replace"), re.MULTILINE)
        if match:
            found.append(email.utils.parsedate_to_datetime(match.group(1)).timestamp())
    return min(found) if found else None
