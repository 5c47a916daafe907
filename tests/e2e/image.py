"""The e2e test images: Debian 13 (trixie) and Debian 12 (bookworm) built like Debian's official generic cloud
images, and for each a local mirror holding what cloud-init's apt needs to install the roles' packages.

Like the official images (debian-cloud-images, config_space/{bookworm,trixie}: package_config/{CLOUD,GENERIC,
SYSTEM_BOOT,AMD64}, files/etc/apt and files/etc/cloud/cloud.cfg.d/01_debian_cloud.cfg, scripts/SYSTEM_BOOT/
20-enable-systemd-*): minbase without Recommends; the generic kernel; cloud-init picking netplan (no ifupdown)
with systemd-networkd and systemd-resolved; unattended-upgrades, apparmor, systemd-timesyncd; apt sources in
deb822 through `mirror+file:` lists that cloud-init rewrites (`apt: generate_mirrorlists: true`); no apt lists,
no SSH host keys, an empty machine-id. Without the role packages: cloud-init installs haproxy, keepalived,
nginx, nftables... as it does for a user; and a golden twin of each (`TestImage.golden`: the roles' packages
installed by apt from the mirror, as a user makes a golden image, for `installPackages: false`). What differs
from the official images, and why: GRUB is written by hand on a DOS label (no
loop devices here; grub-cloud-amd64 needs them), the root is found by label, and of the EXTRAS list only
curl and ca-certificates (the readiness script uses curl) are installed.

Built with mmdebstrap into a directory, put on a raw disk without loop devices or mounts
(`mkfs.ext4 -d` at the partition's offset, GRUB's boot.img and core.img written by dd), converted to
qcow2 and cached under CACHE_DIR with its mirror, keyed by a digest of the suite's recipe: rebuilt when the
recipe changes or when the mirror's Release files are about to expire (apt refuses an expired Valid-Until).

    python3 -m tests.e2e.image [trixie|bookworm]    # build (or find) the image and print its path
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
from dataclasses import dataclass

from components.render import APT_CONF, LOAD_BALANCER, PACKAGES, WEB_SERVER
from tests.e2e.apt_mirror import MirrorServer, valid_until
from tests.suite_tools import CACHE_DIR, in_root  # one cache for the test images and the tools roots

TOOLS = ("mmdebstrap", "sfdisk", "mkfs.ext4", "grub-mkimage", "qemu-img")
GRUB_MODULES_DIR = "/usr/lib/grub/i386-pc"
# A cached mirror is rebuilt when a recorded Release expires sooner than this (a run lasts about an hour).
MIRROR_MIN_VALIDITY = 2 * 24 * 3600

SUITES = {"trixie": 13, "bookworm": 12}

# debian-cloud-images package_config: CLOUD, GENERIC, SYSTEM_BOOT (with TIME_SYSTEMD), AMD64 (the generic
# kernel; grub-cloud-amd64 left out, see above), EXTRAS' curl and ca-certificates.
_OFFICIAL_PACKAGES = [
    "openssh-server", "ssh-import-id", "cloud-initramfs-growroot",  # CLOUD
    "cloud-init", "cloud-guest-utils",  # GENERIC
    "sudo", "libpam-systemd", "systemd-resolved", "libnss-myhostname", "netplan.io", "polkitd",
    "unattended-upgrades", "apparmor", "zstd", "apt-utils", "init", "iptables", "iputils-ping", "less", "nano",
    "netbase", "vim-tiny", "whiptail", "systemd-timesyncd",  # SYSTEM_BOOT
    "linux-image-amd64",  # AMD64
    "curl", "ca-certificates",  # EXTRAS
]
_SUITE_PACKAGES = {
    # SYSTEM_BOOT on trixie adds these (and keeps libnss-resolve, which bookworm's images remove); AMD64 adds
    # dosfstools.
    "trixie": ["libnss-resolve", "linux-sysctl-defaults", "e2fsprogs", "dosfstools"],
    "bookworm": [],
}
# /etc/resolv.conf: bookworm's images link systemd-resolved's full file; trixie's keep the package's stub link.
_RESOLV_CONF = {"trixie": "../run/systemd/resolve/stub-resolv.conf", "bookworm": "/run/systemd/resolve/resolv.conf"}

_DEBIAN_SOURCES = """Types: deb deb-src
URIs: mirror+file:///etc/apt/mirrors/debian.list
Suites: {suite} {suite}-updates {suite}-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: mirror+file:///etc/apt/mirrors/debian-security.list
Suites: {suite}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
# files/etc/cloud/cloud.cfg.d/01_debian_cloud.cfg/DEBIAN, verbatim.
_DEBIAN_CLOUD_CFG = """apt:
  generate_mirrorlists: true

system_info:
  default_user:
    name: debian
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
    lock_passwd: True
    gecos: Debian
    groups: [adm, audio, cdrom, dialout, dip, floppy, plugdev, sudo, video]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
"""
_OFFICIAL_MIRRORS = {"debian": "https://deb.debian.org/debian", "debian-security": "https://deb.debian.org/debian-security"}


def recipe(suite: str) -> dict:
    """Everything that decides the image's bytes. Change anything here and the image is rebuilt."""
    return {
        "version": 6,  # bump when the build steps below change
        "suite": suite,
        "sources": [
            f"deb http://deb.debian.org/debian {suite} main",
            f"deb http://deb.debian.org/debian {suite}-updates main",
            f"deb http://deb.debian.org/debian-security {suite}-security main",
        ],
        "packages": sorted(_OFFICIAL_PACKAGES + _SUITE_PACKAGES[suite]),
        "files": {
            "/etc/fstab": "LABEL=rootfs / ext4 rw,discard,errors=remount-ro,x-systemd.growfs 0 1\n",
            "/etc/cloud/cloud.cfg.d/01_debian_cloud.cfg": _DEBIAN_CLOUD_CFG,
            "/etc/apt/sources.list": "# See /etc/apt/sources.list.d/debian.sources\n",
            "/etc/apt/sources.list.d/debian.sources": _DEBIAN_SOURCES.format(suite=suite),
            **{f"/etc/apt/mirrors/{name}.list": url + "\n" for name, url in _OFFICIAL_MIRRORS.items()},
            "/etc/default/locale": "LANG=C.UTF-8\n",
            "/etc/machine-id": "",
        },
        # mmdebstrap leaves 99mmdebstrap (the build's --aptopt); the official images have no apt.conf.d of their own.
        "remove": ["/etc/hostname", "/var/lib/dbus/machine-id", "/etc/ssh/ssh_host_*", "/etc/apt/apt.conf.d/99mmdebstrap"],
        "enable": ["systemd-networkd", "systemd-resolved"],
        "resolv_conf": _RESOLV_CONF[suite],
        # What the mirror must hold: each role's packages, resolved as apt in the image resolves them.
        "mirror_roles": {role: list(PACKAGES[role]) for role in (LOAD_BALANCER, WEB_SERVER)},
        "lab_apt_conf": APT_CONF,
        # grub-cloud-amd64's GRUB_CMDLINE_LINUX, the root by label.
        "kernel_cmdline": "root=LABEL=rootfs ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 "
                          "consoleblank=0",
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


@dataclass(frozen=True)
class TestImage:
    suite: str
    path: pathlib.Path  # as the official image: cloud-init installs the roles' packages
    golden: pathlib.Path  # the same with the roles' packages installed (installPackages: false)
    mirror: pathlib.Path  # the directory MirrorServer serves
    seconds: float  # spent finding or building it
    built: bool


def recipe_digest(suite: str) -> str:
    return hashlib.sha256(json.dumps(recipe(suite), sort_keys=True).encode()).hexdigest()[:16]


def _name(suite: str) -> str:
    return f"debian{SUITES[suite]}-ha-lb-{recipe_digest(suite)}"


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"image build step failed: {' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def ensure_image(suite: str = "trixie", log=print) -> TestImage:
    """The cached image and mirror for the suite's recipe, built when missing or when the mirror expires."""
    started = time.monotonic()
    target = CACHE_DIR / f"{_name(suite)}.qcow2"
    golden = CACHE_DIR / f"{_name(suite)}-golden.qcow2"
    mirror = CACHE_DIR / f"{_name(suite)}-mirror"
    expires = valid_until(mirror) if mirror.is_dir() else None
    if target.exists() and golden.exists() and mirror.is_dir() \
            and (expires is None or expires - time.time() > MIRROR_MIN_VALIDITY):
        return TestImage(suite, target, golden, mirror, time.monotonic() - started, False)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="build-", dir=CACHE_DIR))
    try:
        root = work / "rootfs"
        recorded = work / "mirror"
        log(f"building test image {target.name} and its mirror (mmdebstrap, a few minutes)")
        with MirrorServer(recorded, record=True) as recorder:
            # The hook runs with the root's /proc, /sys and /dev mounted (mmdebstrap's mount stage).
            hook = f"{sys.executable} -m tests.e2e.image --record-mirror {suite} \"$1\" {recorder.url('')}"
            _run("mmdebstrap", "--variant=minbase", "--include=" + ",".join(recipe(suite)["packages"]),
                 "--aptopt=Acquire::Retries \"3\"",
                 f"--customize-hook=cd {pathlib.Path(__file__).resolve().parents[2]} && {hook}",
                 suite, str(root), *recipe(suite)["sources"])
        _customize(suite, root)
        partial = target.with_suffix(".partial")
        _make_qcow2(suite, root, partial, work)
        golden_root = work / "golden"
        _run("cp", "-a", str(root), str(golden_root))
        _make_golden(suite, golden_root, recorded)
        golden_partial = golden.with_suffix(".partial")
        _make_qcow2(suite, golden_root, golden_partial, work)
        shutil.rmtree(mirror, ignore_errors=True)
        recorded.rename(mirror)
        partial.rename(target)
        golden_partial.rename(golden)
        for old in CACHE_DIR.glob(f"debian{SUITES[suite]}-ha-lb-*"):  # older recipes of this suite
            if old not in (target, golden, mirror):
                shutil.rmtree(old) if old.is_dir() else old.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return TestImage(suite, target, golden, mirror, time.monotonic() - started, True)


def record_mirror(suite: str, root: pathlib.Path, mirror_url: str) -> None:
    """Inside mmdebstrap's customize hook: apt in the image, with the image's sources pointed at the
    recording mirror, fetches the indices and each role's packages (as cloud-init's apt will)."""
    _write_files(suite, root)
    for name in _OFFICIAL_MIRRORS:
        (root / f"etc/apt/mirrors/{name}.list").write_text(f"{mirror_url}{name}\n")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    chroot = ("chroot", str(root))
    # apt as the finished image runs it: without mmdebstrap's build-time settings (00mmdebstrap: no
    # translations, no Recommends; 99mmdebstrap: our --aptopt), which would record too little.
    build_settings = [root / "etc/apt/apt.conf.d" / name for name in ("00mmdebstrap", "99mmdebstrap")]
    for path in build_settings:
        path.rename(path.with_name(path.name + ".build"))
    lab_settings = _write_lab_apt_conf(root)
    try:
        subprocess.run([*chroot, "apt-get", "update"], env=env, check=True, capture_output=True)
        for packages in recipe(suite)["mirror_roles"].values():
            # Each role on its own, so every .deb a role needs is fetched even where the roles overlap.
            subprocess.run([*chroot, "apt-get", "install", "--download-only", "--yes", *packages], env=env, check=True,
                           capture_output=True)
            subprocess.run([*chroot, "apt-get", "clean"], env=env, check=True, capture_output=True)
    finally:
        lab_settings.unlink()
        for path in build_settings:
            path.with_name(path.name + ".build").rename(path)
    _restore_official_apt(suite, root)


def _make_golden(suite: str, root: pathlib.Path, mirror: pathlib.Path) -> None:
    """A golden image made from the official-like one as a user makes theirs: apt-get install of both roles'
    packages (without Recommends, as cloud-init's apt installs them for the lab) from the recorded mirror; the role
    daemons disabled until cloud-init's activation script enables the ones its role needs (nginx's default
    site on :80 would stop HAProxy binding VIP:80)."""
    packages = sorted({p for role in recipe(suite)["mirror_roles"].values() for p in role})
    lab_settings = _write_lab_apt_conf(root)
    with MirrorServer(mirror) as replay:
        for name in _OFFICIAL_MIRRORS:
            (root / f"etc/apt/mirrors/{name}.list").write_text(f"{replay.url(name)}\n")
        for command in (("apt-get", "update"), ("apt-get", "install", "--yes", *packages), ("apt-get", "clean")):
            result = in_root(root, "env", "DEBIAN_FRONTEND=noninteractive", *command, timeout=900)
            if result.returncode != 0:
                raise RuntimeError(f"golden image: {' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    lab_settings.unlink()
    _restore_official_apt(suite, root)
    _run("systemctl", f"--root={root}", "disable", "--quiet", "haproxy", "keepalived", "nginx")


def _restore_official_apt(suite: str, root: pathlib.Path) -> None:
    """After apt ran against the test mirror: the official mirror lists again, and no apt lists (as shipped)."""
    _write_files(suite, root)
    for lists in (root / "var/lib/apt/lists").iterdir():
        if lists.is_file():
            lists.unlink()


def _write_lab_apt_conf(root: pathlib.Path) -> pathlib.Path:
    """The apt settings cloud-init writes on a lab VM before it installs the packages (render.APT_CONF), so
    the mirror holds, and the golden image carries, what a lab VM's apt installs."""
    path = root / "etc/apt/apt.conf.d/94cloud-init-config"
    path.write_text(APT_CONF)
    return path


def _write_files(suite: str, root: pathlib.Path) -> None:
    for path, content in recipe(suite)["files"].items():
        file = root / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content)


def _customize(suite: str, root: pathlib.Path) -> None:
    r = recipe(suite)
    _write_files(suite, root)
    for pattern in r["remove"]:
        for path in glob.glob(str(root / pattern.lstrip("/"))):
            pathlib.Path(path).unlink()
    _run("systemctl", f"--root={root}", "enable", "--quiet", *r["enable"])
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.symlink_to(r["resolv_conf"])
    if (root / "etc/network/interfaces").exists() or (root / "sbin/ifup").exists():
        raise RuntimeError("ifupdown is in the image: cloud-init would render ENI instead of netplan")
    for package in ("haproxy", "keepalived", "nginx", "nftables", "qemu-guest-agent"):
        if (root / f"var/lib/dpkg/info/{package}.list").exists():
            raise RuntimeError(f"{package} is in the image: cloud-init must install it, as for a user")
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
        kernel=pathlib.Path(kernels[0]).name, initrd=pathlib.Path(initrds[0]).name, cmdline=r["kernel_cmdline"]))


def _make_qcow2(suite: str, root: pathlib.Path, qcow2: pathlib.Path, work: pathlib.Path) -> None:
    raw = work / "disk.raw"
    _make_bootable_disk(root, raw, work, recipe(suite)["disk_mib"])
    _run("qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2))
    raw.unlink()


def _make_bootable_disk(root: pathlib.Path, raw: pathlib.Path, work: pathlib.Path, size_mib: int) -> None:
    """One DOS partition at 1 MiB holding an ext4 made from the directory; GRUB in the MBR gap."""
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


def ensure_engine_and_images(suites, log=print):
    """The engine (tests/engine/build.py) and the test images of `suites`, built side by side on a fresh machine:
    the images are mostly downloads and dpkg, the engine is go (CPU), so this saves the shorter of the two.
    Returns (engine, {suite: TestImage})."""
    import concurrent.futures

    from tests.engine import build

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        building = pool.submit(lambda: {suite: ensure_image(suite, log=log) for suite in suites})
        engine = build.ensure_engine(log=log)
        return engine, building.result()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--record-mirror"]:
        record_mirror(sys.argv[2], pathlib.Path(sys.argv[3]), sys.argv[4])
        sys.exit(0)
    found = ensure_image(sys.argv[1] if len(sys.argv) > 1 else "trixie")
    print(f"{found.path} and {found.mirror} ({'built' if found.built else 'cache hit'} in {found.seconds:.1f} s)")
    sys.exit(0)
