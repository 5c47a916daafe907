"""Models of the provider plugins that cannot be built here (their Go modules are not served): installed
into the tests' PULUMI_HOME as the plugin versions the installed Python SDKs ask for."""

from __future__ import annotations

import json
import pathlib
import sys

import pulumi_command
import pulumi_tls

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent.parent
# plugin name -> (the SDK package whose pulumi-plugin.json names the version, the model's module)
MODELS = {"command": (pulumi_command, "tests.engine.models.command"),
          "tls": (pulumi_tls, "tests.engine.models.tls")}


def install_models(plugins_dir: pathlib.Path) -> list[pathlib.Path]:
    """Writes each model's launcher where the CLI looks for an installed plugin
    (PULUMI_HOME/plugins/resource-NAME-vVERSION/pulumi-resource-NAME, beside an empty .lock file)."""
    installed = []
    for name, (package, module) in MODELS.items():
        version = json.loads((pathlib.Path(package.__file__).parent / "pulumi-plugin.json").read_text())["version"]
        directory = plugins_dir / f"resource-{name}-v{version}"
        directory.mkdir(parents=True, exist_ok=True)
        launcher = directory / f"pulumi-resource-{name}"
        launcher.write_text(f'#!/bin/sh\nPYTHONPATH="{PROJECT_ROOT}" exec "{sys.executable}" -m {module} "$@"\n')
        launcher.chmod(0o755)
        (plugins_dir / f"resource-{name}-v{version}.lock").touch()
        installed.append(launcher)
    return installed
