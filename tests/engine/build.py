"""The real Pulumi engine for the tests: the CLI and the libvirt provider plugin, built with `go` from Go
modules (no downloaded binaries), cached by a digest of everything that decides their bytes.

    python3 -m tests.engine.build        # build (or find) them and print where they are

What is built, and why this way:
- `pulumi` from github.com/pulumi/pulumi/pkg/v3 (cmd/pulumi). `go install pkg@version` refuses a module
  whose go.mod has replace directives, so tests/engine/cli is a small module of ours that requires it and
  repeats its replace directive. v3.276.0: the Go module proxy here serves no pkg/v3 that matches the
  Python SDK's 3.272 exactly (a newer CLI runs older SDKs).
- `pulumi-resource-libvirt` 0.5.4 from tests/engine/provider-libvirt (see its main.go for what it is and
  the one difference from the released plugin).
- Not built: pulumi-language-python (its module is not served here): the tests run the program through
  the Automation API's inline program, the Python SDK's own language server, which the CLI reaches with
  `--client` (tests/engine/stack.py). pulumi-command, pulumi-tls and pulumi-random (their provider modules
  are not served): tests/engine/plugins holds models of them.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

HERE = pathlib.Path(__file__).resolve().parent
CACHE_ROOT = pathlib.Path(os.environ.get("HA_LB_ENGINE_CACHE", "/var/cache/ha-lb-pulumi"))
CLI_VERSION = "3.276.0"
LIBVIRT_PLUGIN_VERSION = "0.5.4"
CLI_MODULE = HERE / "cli"
LIBVIRT_MODULE = HERE / "provider-libvirt"
_SOURCES = [CLI_MODULE / n for n in ("go.mod", "go.sum", "tools.go")] + \
    [LIBVIRT_MODULE / n for n in ("go.mod", "go.sum", "main.go")]


@dataclass(frozen=True)
class Engine:
    root: pathlib.Path  # holds bin/pulumi (the layout pulumi.automation.PulumiCommand expects)
    home: pathlib.Path  # PULUMI_HOME with the plugins installed
    build_seconds: float  # 0 for a cache hit
    size_bytes: int

    @property
    def cli(self) -> pathlib.Path:
        return self.root / "bin" / "pulumi"


def _digest() -> str:
    go_version = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256(f"{CLI_VERSION} {LIBVIRT_PLUGIN_VERSION} {go_version}".encode())
    for path in _SOURCES:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _go_build(module: pathlib.Path, package: str, output: pathlib.Path, ldflags: str) -> None:
    result = subprocess.run(
        ["go", "build", "-mod=readonly", "-trimpath", "-ldflags", ldflags, "-o", str(output), package],
        cwd=module, capture_output=True, text=True, timeout=3600,
        env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"go build {package} in {module} failed:\n{result.stderr[-4000:]}")


def ensure_engine(log: Callable[[str], None] = lambda message: None) -> Engine:
    """The cached build for the current sources, built first if missing."""
    root = CACHE_ROOT / _digest()
    home = root / "home"
    if not (root / "complete").exists():
        started = time.monotonic()
        log(f"building the Pulumi CLI {CLI_VERSION} and pulumi-resource-libvirt {LIBVIRT_PLUGIN_VERSION} "
            f"with go into {root} (several minutes on a fresh machine)")
        CACHE_ROOT.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE_ROOT))
        try:
            version_flag = f"-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v{CLI_VERSION}"
            _go_build(CLI_MODULE, "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi", staging / "bin" / "pulumi",
                      f"-s -w {version_flag}")
            plugin = staging / "pulumi-resource-libvirt"
            _go_build(LIBVIRT_MODULE, ".", plugin, "-s -w")
            subprocess.run(
                [str(staging / "bin" / "pulumi"), "plugin", "install", "resource", "libvirt",
                 LIBVIRT_PLUGIN_VERSION, "--file", str(plugin)],
                check=True, capture_output=True, text=True, timeout=120,
                env={**os.environ, "PULUMI_HOME": str(staging / "home"), "PULUMI_SKIP_UPDATE_CHECK": "true"},
            )
            plugin.unlink()
            (staging / "build-seconds").write_text(f"{time.monotonic() - started:.0f}\n")
            (staging / "complete").write_text("")
            if root.exists():
                shutil.rmtree(root)
            staging.rename(root)
            for stale in CACHE_ROOT.iterdir():  # builds of earlier sources
                if stale != root and stale.is_dir() and not stale.name.startswith("."):
                    shutil.rmtree(stale, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        seconds = time.monotonic() - started
    else:
        seconds = 0.0
    # The models are plain Python: written anew each time, so they always match the working tree.
    from .plugins import install_models

    install_models(home / "plugins")
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return Engine(root=root, home=home, build_seconds=seconds, size_bytes=size)


if __name__ == "__main__":
    engine = ensure_engine(log=lambda message: print(message, file=sys.stderr, flush=True))
    print(f"{engine.cli} (PULUMI_HOME {engine.home}; {engine.size_bytes / 1e6:.0f} MB; "
          f"{'built in %.0f s' % engine.build_seconds if engine.build_seconds else 'cache hit'})")
