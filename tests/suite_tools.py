"""The tools of a Debian suite other than the host's, to check rendered files with the versions a VM of that
suite runs: a Debian 13 (trixie) root directory holding haproxy, keepalived, nftables, cloud-init and nginx,
and a way to run one of its tools inside it.

The host (Debian 12, as CI's machine) checks with bookworm's tools; a trixie VM reads the same files with
haproxy 3.0, keepalived 2.3, nftables 1.1, cloud-init 25.1 and nginx 1.26, which accept and reject other
things. Running trixie's own binaries (with trixie's libraries, Python and schema files) in a chroot reads
each file as a Debian 13 VM would, without a VM: the kernel is the host's, which is all nft -c and
keepalived's interface lookup talk to.

The root is built once with mmdebstrap and cached under CACHE_DIR (as the e2e images are), keyed by a digest
of its recipe.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import tempfile
import time

CACHE_DIR = pathlib.Path(os.environ.get("HA_LB_TEST_IMAGE_CACHE", "/var/cache/ha-lb-test-image"))  # also tests/e2e/image.py's

SUITE = "trixie"
RECIPE = {
    "version": 2,  # bump when the build below changes
    "suite": SUITE,
    "packages": sorted(["haproxy", "keepalived", "nftables", "cloud-init", "nginx", "openssl", "iproute2", "systemd"]),
    "sources": [
        f"deb http://deb.debian.org/debian {SUITE} main",
        f"deb http://deb.debian.org/debian {SUITE}-updates main",
        f"deb http://deb.debian.org/debian-security {SUITE}-security main",
    ],
}
# Not `debian13-ha-lb-*`: tests/e2e/image.py removes older images under that prefix.
PREFIX = f"{SUITE}-tools-root-"
BUILD_PREFIX = f"{SUITE}-tools-build-"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def recipe_digest() -> str:
    return hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:16]


def trixie_root(log=print) -> pathlib.Path:
    """The cached trixie root for RECIPE, built (a minute or two) when missing."""
    target = CACHE_DIR / f"{PREFIX}{recipe_digest()}"
    if target.is_dir():  # only ever renamed into place whole
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f"{SUITE}-tools.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest process may be building it: wait for it
        if target.is_dir():
            return target
        for stale in CACHE_DIR.glob(f"{BUILD_PREFIX}*"):  # left by a build that was killed (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        work = pathlib.Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=CACHE_DIR))
        try:
            log(f"building the {SUITE} tools root {target.name} (mmdebstrap, a minute or two)")
            started = time.monotonic()
            result = subprocess.run(
                ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(RECIPE["packages"]),
                 "--aptopt=Acquire::Retries \"3\"", SUITE, str(work / "root"), *RECIPE["sources"]],
                capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"mmdebstrap {SUITE} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
            (work / "root").rename(target)
            log(f"built {target} in {time.monotonic() - started:.0f} s")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for old in CACHE_DIR.glob(f"{PREFIX}*"):  # older recipes
            if old != target:
                shutil.rmtree(old, ignore_errors=True)
    return target


def in_root(root: pathlib.Path, *command: str, binds=(), netns: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """Run command in root, with the root's own binaries and libraries, so a trixie tool reads a rendered file
    as it would on a Debian 13 VM; the mounts are made in a private mount namespace (unshare), which dies
    with the command, so neither the host nor the cached root is changed.

    /proc, /dev and /sys are the host's; /tmp is a fresh tmpfs. Each entry of binds (a host path, or a
    (host path, path in the root) pair) is bind-mounted into the root: the rendered files at the same path,
    so the tool reads them at the path the host sees. With netns, it runs in that network namespace
    (`ip netns exec` first: the /sys it mounts is then the namespace's).
    """
    mounts = [f"mount -t tmpfs tmpfs {shlex.quote(str(root / 'tmp'))}"]
    for name in ("proc", "dev", "sys"):
        mounts.append(f"mount --rbind /{name} {shlex.quote(str(root / name))}")
    for bind in binds:
        source, inside = (bind, bind) if isinstance(bind, (str, os.PathLike)) else bind
        inside = str(root / str(inside).lstrip("/"))
        # Under /tmp the mount point is made in the tmpfs; elsewhere an empty directory is left in the root.
        mounts.append(f"mkdir -p {shlex.quote(inside)} && mount --bind {shlex.quote(str(source))} {shlex.quote(inside)}")
    script = "set -eu\n" + "\n".join(mounts) + f"\nexec chroot {shlex.quote(str(root))} " + shlex.join(command) + "\n"
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, "unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=timeout,
                          env={"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root"})


if __name__ == "__main__":
    root = trixie_root()
    for tool in (["haproxy", "-v"], ["keepalived", "--version"], ["nft", "--version"], ["cloud-init", "--version"],
                 ["nginx", "-v"]):
        result = in_root(root, *tool)
        print((result.stdout + result.stderr).splitlines()[0])
