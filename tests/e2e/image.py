"""The e2e test image: Debian 12 with everything the lab's VMs need (guests have no internet).

Built with mmdebstrap into a directory, put on a raw disk without loop devices or mounts
(`mkfs.ext4 -d` at the partition's offset, GRUB's boot.img and core.img written by dd), converted to
qcow2 and cached under CACHE_DIR, keyed by a digest of RECIPE: rebuilt only when the recipe changes.

    python3 -m tests.e2e.image          # build (or find) the image and print its path
"""

from __future__ import annotations

import glob
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

from tests.suite_tools import CACHE_DIR  # one cache for the test images and the tools roots

TOOLS = ("mmdebstrap", "sfdisk", "mkfs.ext4", "grub-mkimage", "qemu-img")
GRUB_MODULES_DIR = "/usr/lib/grub/i386-pc"

# Everything that decides the image's bytes. Change anything here and the image is rebuilt.
RECIPE = {
    "version": 2,  # bump when the build steps below change
    "suite": "bookworm",
    "sources": [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    ],
    "packages": sorted([
        # boot and base system
        "linux-image-cloud-amd64", "initramfs-tools", "systemd-sysv", "udev", "dbus", "ifupdown", "netbase",
        "iproute2", "procps", "sudo", "ca-certificates", "less", "kmod",
        # cloud-init and access
        "cloud-init", "cloud-guest-utils", "openssh-server", "qemu-guest-agent",
        # the roles (installPackages: false): load balancers and web servers
        "haproxy", "keepalived", "nftables", "nginx", "openssl", "curl", "prometheus-node-exporter",
    ]),
    "files": {
        "/etc/fstab": "LABEL=rootfs / ext4 defaults,errors=remount-ro 0 1\n",
        # Without a locale setting cloud-init ends in `status: error` (update-locale fails).
        "/etc/cloud/cloud.cfg.d/90-ha-lb-test.cfg": "locale: C.UTF-8\ndatasource_list: [ NoCloud, None ]\n",
        "/etc/machine-id": "",
    },
    "remove": ["/etc/hostname", "/var/lib/dbus/machine-id"],
    # A golden image for both roles: the role daemons stay off until cloud-init's activation script
    # enables the ones its role needs (nginx's default site on :80 would stop HAProxy binding VIP:80).
    "disable": ["haproxy", "keepalived", "nginx"],
    "kernel_cmdline": "root=LABEL=rootfs ro console=tty0 console=ttyS0,115200n8",
    "disk_mib": 3072,
}

GRUB_CFG = """set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry "debian" {{
    linux /boot/{kernel} {cmdline}
    initrd /boot/{initrd}
}}
"""


def recipe_digest() -> str:
    return hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:16]


def image_path() -> pathlib.Path:
    return CACHE_DIR / f"debian12-ha-lb-{recipe_digest()}.qcow2"


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"image build step failed: {' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def ensure_image(log=print) -> tuple[pathlib.Path, float, bool]:
    """(path, seconds spent, built?): the cached image for RECIPE, built when missing."""
    started = time.monotonic()
    target = image_path()
    if target.exists():
        return target, time.monotonic() - started, False
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="build-", dir=CACHE_DIR))
    try:
        root = work / "rootfs"
        log(f"building test image {target.name} (mmdebstrap, about a minute)")
        _run("mmdebstrap", "--variant=minbase", "--include=" + ",".join(RECIPE["packages"]),
             "--aptopt=Acquire::Retries \"3\"", RECIPE["suite"], str(root), *RECIPE["sources"])
        _customize(root)
        raw = work / "disk.raw"
        _make_bootable_disk(root, raw, work)
        partial = target.with_suffix(".partial")
        _run("qemu-img", "convert", "-O", "qcow2", str(raw), str(partial))
        partial.rename(target)
        for old in CACHE_DIR.glob("debian12-ha-lb-*.qcow2"):  # older recipes
            if old != target:
                old.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target, time.monotonic() - started, True


def _customize(root: pathlib.Path) -> None:
    for path, content in RECIPE["files"].items():
        file = root / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content)
    for path in RECIPE["remove"]:
        (root / path.lstrip("/")).unlink(missing_ok=True)
    _run("systemctl", f"--root={root}", "disable", "--quiet", *RECIPE["disable"])
    cloud_cfg = (root / "etc/cloud/cloud.cfg").read_text()
    # The image's default user (sshUser 'debian', passwordless sudo) comes from Debian's cloud.cfg.
    if "name: debian" not in cloud_cfg or "NOPASSWD:ALL" not in cloud_cfg:
        raise RuntimeError("Debian's cloud.cfg no longer defines the 'debian' default user with passwordless sudo")
    kernels = sorted(glob.glob(str(root / "boot/vmlinuz-*")))
    initrds = sorted(glob.glob(str(root / "boot/initrd.img-*")))
    if len(kernels) != 1 or len(initrds) != 1:
        raise RuntimeError(f"expected one kernel and one initrd in the image, found {kernels} {initrds}")
    grub = root / "boot/grub"
    shutil.copytree(GRUB_MODULES_DIR, grub / "i386-pc", dirs_exist_ok=True)
    (grub / "grub.cfg").write_text(GRUB_CFG.format(
        kernel=pathlib.Path(kernels[0]).name, initrd=pathlib.Path(initrds[0]).name, cmdline=RECIPE["kernel_cmdline"]))


def _make_bootable_disk(root: pathlib.Path, raw: pathlib.Path, work: pathlib.Path) -> None:
    """One DOS partition at 1 MiB holding an ext4 made from the directory; GRUB in the MBR gap."""
    size_mib = RECIPE["disk_mib"]
    with open(raw, "wb") as disk:
        disk.truncate(size_mib * 1024 * 1024)
    subprocess.run(["sfdisk", "--quiet", str(raw)], input="label: dos\nstart=2048, type=83, bootable\n",
                   text=True, check=True, capture_output=True)
    _run("mkfs.ext4", "-q", "-F", "-d", str(root), "-E", "offset=1048576", "-L", "rootfs", str(raw),
         f"{size_mib - 1}M")
    core = work / "core.img"
    _run("grub-mkimage", "-O", "i386-pc", "-o", str(core), "-p", "(hd0,msdos1)/boot/grub",
         "biosdisk", "part_msdos", "ext2")
    if core.stat().st_size > 2047 * 512:
        raise RuntimeError("GRUB core.img does not fit before the first partition")
    boot = pathlib.Path(GRUB_MODULES_DIR, "boot.img").read_bytes()
    with open(raw, "r+b") as disk:
        disk.write(boot[:440])  # boot code only: the partition table after byte 440 stays
        disk.seek(512)
        disk.write(core.read_bytes())


if __name__ == "__main__":
    path, seconds, built = ensure_image()
    print(f"{path} ({'built' if built else 'cache hit'} in {seconds:.1f} s)")
    sys.exit(0)
