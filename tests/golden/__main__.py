"""python3 -m tests.golden [--update]: compare the render with tests/golden/, or rewrite it (see __init__.py)."""

from __future__ import annotations

import argparse
import os
import sys

from . import GOLDEN_DIR, check, update
from .stacks import stacks


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.golden", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--update", action="store_true", help="rewrite tests/golden/<stack>/ from the current render")
    args = parser.parse_args(argv)
    names = ", ".join(stacks())
    if args.update:
        changed = update()
        for line in changed:
            print(line)
        print(f"tests/golden: {len(changed)} change(s) written for stacks {names}" if changed
              else f"tests/golden: up to date for stacks {names}")
        return 0
    found = check()
    for entry in found:
        sys.stdout.write(entry)
    if found:
        print(f"tests/golden: {len(found)} difference(s); if they are intended, run `python3 -m tests.golden "
              f"--update` and review the diff of {GOLDEN_DIR.relative_to(GOLDEN_DIR.parent.parent)}/")
        return 1
    print(f"tests/golden: every file matches for stacks {names}")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # As components/offline.py: the Pulumi SDK's mock event loop prints a spurious traceback at teardown.
    os._exit(code)
