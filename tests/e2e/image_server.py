"""Serves one directory over HTTP on 127.0.0.1 as a cloud-image mirror does: HEAD with Content-Length, GET,
and single byte ranges (206), which the libvirt provider needs to download a base image from a URL
(0.8.1 libvirt/volume_image.go: Size() by HEAD, IsQCOW2() by `Range: bytes=0-7`, Import() by GET)."""

from __future__ import annotations

import http.server
import pathlib
import re
import threading
import time
from dataclasses import dataclass, field

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class ImageServer:
    directory: pathlib.Path
    ranges: bool = True  # False: a server that ignores Range and always answers the whole file (200)
    chunk_pause: float = 0.0  # seconds to wait after each 64 KiB of a body: a slow mirror (may change later)
    requests: list[str] = field(default_factory=list)  # "METHOD /path Range" as received

    def __enter__(self) -> "ImageServer":
        directory, requests, ranges, settings = self.directory, self.requests, self.ranges, self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _file(self) -> pathlib.Path | None:
                path = (directory / self.path.lstrip("/")).resolve()
                return path if path.parent == directory.resolve() and path.is_file() else None

            def _serve(self, body: bool) -> None:
                requests.append(f"{self.command} {self.path} {self.headers.get('Range', '')}".strip())
                path = self._file()
                if path is None:
                    self.send_error(404)
                    return
                size = path.stat().st_size
                start, end = 0, size - 1
                match = _RANGE.match(self.headers.get("Range", "")) if ranges else None
                if match:
                    start = int(match.group(1))
                    end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if body:
                    with path.open("rb") as source:
                        source.seek(start)
                        remaining = end - start + 1
                        while remaining > 0:
                            pause = settings.chunk_pause  # read each time: a test may lift it mid-run
                            chunk = source.read(min(1 << 16 if pause else 1 << 20, remaining))
                            if not chunk:
                                break
                            self.wfile.write(chunk)
                            self.wfile.flush()
                            remaining -= len(chunk)
                            time.sleep(pause)

            def do_HEAD(self) -> None:  # noqa: N802 (the http.server interface)
                self._serve(body=False)

            def do_GET(self) -> None:  # noqa: N802
                try:
                    self._serve(body=True)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away mid-download (a test kills it on purpose)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

