"""Waits until a URL answers 200 through the VIP; run by `pulumi up` on the Pulumi host.

    python -m components.vip_check http://192.168.10.3/ --timeout 120
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request


def wait_for_http(url: str, timeout: float, interval: float = 1.0) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read(200).decode(errors="replace").strip()
                if response.status == 200:
                    return True, body
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except (urllib.error.URLError, OSError) as error:
            last = str(getattr(error, "reason", error))
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
