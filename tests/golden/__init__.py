"""Golden files: every file the offline render writes for a few stacks (tests/golden/stacks.py), kept whole.

    python3 -m tests.golden            # compare; prints a unified diff of every difference, exit 1 on one
    python3 -m tests.golden --update   # rewrite tests/golden/<stack>/ from the current render

tests/test_golden.py runs the comparison. A change to rendered output is reviewed as a diff of
tests/golden/ in the pull request.

The render is components/offline.py's write_render of the real program run under mocks, so the trees hold
per VM user-data, meta-data, network-config and files/..., plus plan.json, resources.txt and outputs.json.
File modes are not compared (git keeps only the executable bit): each file's permissions are in the
VM's user-data (write_files), which is. Nothing may depend on the machine: the program runs with an empty
HOME (no ~/.ssh keys are picked up), without LIBVIRT_DEFAULT_URI and PULUMI_CONFIG* variables, and
resources.txt is normalised (see normalise).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import pathlib
import shutil
import sys
import tempfile
from typing import Iterator, Optional

GOLDEN_DIR = pathlib.Path(__file__).resolve().parent
PROJECT_ROOT = GOLDEN_DIR.parent.parent
# Files of this package, not of any stack's tree.
_OWN = {"__init__.py", "__main__.py", "stacks.py", "__pycache__", ".gitattributes"}

PYTHON_PLACEHOLDER = "<python3>"
PROJECT_DIR_PLACEHOLDER = "<project-dir>"


@contextlib.contextmanager
def machine_independent() -> Iterator[None]:
    """What the program reads from the machine, emptied for the run: HOME (its ~/.ssh keys are the default
    sshPublicKeys and sshPrivateKey), LIBVIRT_DEFAULT_URI (the default libvirtUri) and PULUMI_CONFIG*
    (config the SDK reads from the environment)."""
    saved = {k: v for k, v in os.environ.items()
             if k in ("HOME", "LIBVIRT_DEFAULT_URI") or k.startswith("PULUMI_CONFIG")}
    home = tempfile.mkdtemp(prefix="ha-lb-golden-home-")
    try:
        for key in saved:
            del os.environ[key]
        os.environ["HOME"] = home
        yield
    finally:
        os.environ.pop("HOME", None)
        os.environ.update(saved)
        shutil.rmtree(home, ignore_errors=True)


def normalise(relative: str, text: str) -> str:
    """resources.txt names the vip-check command the Pulumi host runs: `<sys.executable> -m
    components.vip_check ...` in the project directory. Both paths differ between machines and checkouts
    (and nothing of them reaches a VM), so they are replaced by placeholders; every other byte is kept."""
    if relative != "resources.txt":
        return text
    # The interpreter first: it may live inside the project directory (a venv).
    return text.replace(sys.executable, PYTHON_PLACEHOLDER).replace(str(PROJECT_ROOT), PROJECT_DIR_PLACEHOLDER)


def _read(path: pathlib.Path) -> str:
    """The text byte for byte (read_text would turn a CR LF into LF and hide it)."""
    return path.read_bytes().decode("utf-8")


def render(name: str) -> dict[str, str]:
    """{path relative to the stack's tree: text} of one stack, as the offline render writes it."""
    from components.offline import write_render
    from components.program_run import run_program

    from .stacks import stacks

    config, other = stacks()[name]
    with machine_independent(), tempfile.TemporaryDirectory(prefix=f"ha-lb-golden-{name}-") as out:
        run = run_program(config, stack=name, other_config=other)
        root = pathlib.Path(out)
        written = write_render(run, root)
        tree = {}
        for path in written:
            relative = path.relative_to(root).as_posix()
            tree[relative] = normalise(relative, _read(path))
    return tree


def stored(name: str) -> Optional[dict[str, str]]:
    """The golden tree of a stack, None when its directory is missing."""
    root = GOLDEN_DIR / name
    if not root.is_dir():
        return None
    return {p.relative_to(root).as_posix(): _read(p) for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def unknown_directories() -> list[str]:
    """Entries of tests/golden/ that belong to no stack (a stack removed from stacks.py, a stray file)."""
    from .stacks import stacks

    names = set(stacks())
    return sorted(p.name for p in GOLDEN_DIR.iterdir() if p.name not in names and p.name not in _OWN)


def _unified(old: str, new: str, old_name: str, new_name: str) -> str:
    """git's unified diff, "\\ No newline at end of file" included."""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def differences(name: str, rendered: dict[str, str], golden: Optional[dict[str, str]]) -> list[str]:
    """One readable entry per difference: a unified diff for a changed file, and for a file only one side
    has, its name and its whole text as an added or removed file."""
    base = f"tests/golden/{name}"
    if golden is None:
        return [f"{base}/: missing (no golden tree for stack {name!r}); run `python3 -m tests.golden --update`\n"]
    found = []
    for relative in sorted(set(rendered) | set(golden)):
        old, new = golden.get(relative), rendered.get(relative)
        if old == new:
            continue
        if old is None:
            found.append(f"{base}/{relative}: rendered but not in the golden tree (a new file)\n"
                         + _unified("", new, "/dev/null", f"b/{base}/{relative}"))
        elif new is None:
            found.append(f"{base}/{relative}: in the golden tree but no longer rendered (a file gone)\n"
                         + _unified(old, "", f"a/{base}/{relative}", "/dev/null"))
        else:
            diff = _unified(old, new, f"a/{base}/{relative}", f"b/{base}/{relative}")
            # Only line endings differ (splitlines keeps them, so the diff shows them only as repr would).
            found.append(f"{base}/{relative}: differs\n" + diff + ("" if "\r" not in old + new
                                                                    else f"(line endings: {old[-12:]!r} vs {new[-12:]!r})\n"))
    return found


def check() -> list[str]:
    """Every difference between the current render and tests/golden/, over all stacks."""
    from .stacks import stacks

    found = [f"tests/golden/{entry}: belongs to no stack in tests/golden/stacks.py\n" for entry in unknown_directories()]
    for name in stacks():
        found += differences(name, render(name), stored(name))
    return found


def update() -> list[str]:
    """Rewrite every stack's tree from the current render (and drop trees of stacks no longer listed).
    Returns what changed, one line each."""
    from .stacks import stacks

    changed = []
    for entry in unknown_directories():
        path = GOLDEN_DIR / entry
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        changed.append(f"removed tests/golden/{entry} (no such stack)")
    for name in stacks():
        tree, golden = render(name), stored(name) or {}
        root = GOLDEN_DIR / name
        for relative in sorted(set(golden) - set(tree)):
            (root / relative).unlink()
            changed.append(f"removed tests/golden/{name}/{relative}")
        for relative, text in sorted(tree.items()):
            if golden.get(relative) == text:
                continue
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            # newline="": the bytes as rendered, whatever the platform's line endings.
            with open(path, "w", newline="") as handle:
                handle.write(text)
            changed.append(f"{'updated' if relative in golden else 'added'} tests/golden/{name}/{relative}")
        for directory in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
            if not any(directory.iterdir()):
                directory.rmdir()
    return changed
