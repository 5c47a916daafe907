"""Waits until a URL answers 200 through the VIP; run by `pulumi up` on the Pulumi host.

    python -m components.vip_check http://192.168.10.3/ --timeout 120
"""

from __future__ import annotations

import argparse
import http.client
import sys
import time
import urllib.error
import urllib.request


# Straight to the VIP, on a libvirt network of this host: a proxy from the environment (http_proxy) cannot
# reach it, so none is used (as the gate's SSH connections to the guests use none).
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_for_http(url: str, timeout: float, interval: float = 1.0) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while True:
        try:
            with _DIRECT.open(url, timeout=5) as response:
                body = response.read(200).decode(errors="replace").strip()
                if response.status == 200:
                    return True, body
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except (urllib.error.URLError, OSError) as error:
            last = str(getattr(error, "reason", error))
        except http.client.HTTPException as error:  # not HTTP (e.g. BadStatusLine): try again, as for any failure
            last = f"{type(error).__name__}: {str(error).strip()}"
        if time.monotonic() >= deadline:
            return False, last
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Wait until the lab's VIP serves HTTP.")
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    ok, detail = wait_for_http(args.url, args.timeout)
    if ok:
        print(f"{args.url} answers: {detail}")
        return 0
    print(f"{args.url} did not answer within {args.timeout:.0f} s (last: {detail})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
