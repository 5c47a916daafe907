"""A stack of the real program run by the real Pulumi engine: `pulumi up`, `preview --diff`, `destroy`.

The CLI built by tests/engine/build.py runs the engine (local file backend, passphrase secrets) against
the real plugins; the program is __main__.py itself, run by the Python SDK's language server (the
Automation API's inline program: the CLI is started with `--client`, since the Go language host cannot be
built here). Configuration goes through `pulumi config set` like a user's.
"""

from __future__ import annotations

import json
import os
import pathlib
import runpy
import subprocess
import sys
from typing import Any, Callable, Mapping, Optional

import pulumi.automation as auto

from .build import Engine

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
PROGRAM = PROJECT_ROOT / "__main__.py"
PASSPHRASE = "ha-lb-test-passphrase"


def _program() -> None:
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    runpy.run_path(str(PROGRAM), run_name="__main__")


class EngineStack:
    """One stack in its own backend directory; config values are JSON-encoded unless strings. `program` is
    the project's __main__.py unless a test gives a small program of its own."""

    def __init__(self, engine: Engine, work_dir: pathlib.Path, stack: str, config: Mapping[str, Any],
                 secret_keys: tuple[str, ...] = ("statsPassword", "sshPrivateKey"),
                 extra_env: Optional[Mapping[str, str]] = None, program: Callable[[], None] = _program):
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "state").mkdir(exist_ok=True)
        self.env = {
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_BACKEND_URL": f"file://{work_dir / 'state'}",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_HOME": str(engine.home),
            # Plugins are built here: never try to download one.
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            **(extra_env or {}),
        }
        options = auto.LocalWorkspaceOptions(
            work_dir=str(work_dir),
            pulumi_home=str(engine.home),
            env_vars=self.env,
            secrets_provider="passphrase",
            project_settings=auto.ProjectSettings(name="ha-lb", runtime="python"),
            pulumi_command=auto.PulumiCommand(root=str(engine.root)),
        )
        self.secret_keys = secret_keys
        self.engine = engine
        self.work_dir = work_dir
        self.stack = auto.create_or_select_stack(stack, "ha-lb", program, opts=options)
        self.set_config(config)

    def set_config(self, config: Mapping[str, Any]) -> None:
        """Replaces the whole `ha-lb:` configuration (keys absent from `config` are removed)."""
        current = {k for k in self.stack.get_all_config() if k.startswith("ha-lb:")}
        wanted = {f"ha-lb:{k}" for k in config}
        if current - wanted:
            self.stack.remove_all_config(sorted(current - wanted))
        self.stack.set_all_config({
            f"ha-lb:{key}": auto.ConfigValue(value if isinstance(value, str) else json.dumps(value),
                                             secret=key in self.secret_keys)
            for key, value in config.items()
        })

    def up(self, on_output: Optional[Callable[[str], None]] = None) -> auto.UpResult:
        return self.stack.up(on_output=on_output, color="never")

    def preview_diff(self) -> str:
        """The text `pulumi preview --diff` prints."""
        lines: list[str] = []
        self.stack.preview(diff=True, on_output=lines.append, color="never")
        return "\n".join(lines)

    def destroy(self, on_output: Optional[Callable[[str], None]] = None) -> auto.DestroyResult:
        return self.stack.destroy(on_output=on_output, color="never")

    def outputs(self) -> dict[str, Any]:
        return {name: value.value for name, value in self.stack.outputs().items()}

    def resources(self) -> list[dict[str, Any]]:
        """The stack's resources in state (`pulumi stack export`)."""
        return self.stack.export_stack().deployment.get("resources", [])

    def cli(self, *args: str) -> str:
        """A plain CLI command against this stack's backend (e.g. `stack output`)."""
        result = subprocess.run([str(self.engine.cli), *args, "--stack", self.stack.name],
                                cwd=self.work_dir, env={**os.environ, **self.env},
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"pulumi {' '.join(args)} failed: {result.stderr}")
        return result.stdout
