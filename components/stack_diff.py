"""`python -m components.offline diff`: render two versions of a stack offline and print a Markdown review.

    diff OLD_STACK_FILE NEW_STACK_FILE      both rendered by the working tree's program
    diff --base GIT_REF [STACK_FILE ...]    the program and stack files as of GIT_REF against the working
                                            tree (every Pulumi.<stack>.yaml of either when none is named)

Exit status: 0 without changes, 2 with changes, 1 on an error (bad input, a render the program rejects).

Secrets: a `secure:` value is never decrypted (a review job holds no passphrase). A secure statsPassword is
rendered as a stand-in derived from its ciphertext, so a new ciphertext shows up as a rollout without
showing anything of the value; a plain-text secret in a stack file is masked, like every password hash.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pathlib
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import yaml

from .offline import PLACEHOLDER_PRIVATE_KEY, STACK_FILE_PATTERN
from .program_run import PROJECT_ROOT
from .review import (
    COMMENT_LIMIT,
    PLAN_FILE,
    Block,
    RenderedStack,
    SecretLeak,
    compare,
    fit_comment,
    render_markdown,
    review_blocks,
)

PREFIX = "ha-lb:"
# Settings whose value is a secret: masked wherever it could appear.
SECRET_SETTINGS = ("statsPassword", "sshPrivateKey")
NO_CHANGES, CHANGES, ERROR = 0, 2, 1


class ReviewError(RuntimeError):
    """Bad input or a render that failed: the message says which and why."""


@dataclass
class StackVersion:
    """One version of one stack file, ready to render: secrets replaced, secret values collected."""
    stack: str
    text: Optional[str]  # None: the stack does not exist in this version
    secrets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def sanitized(self) -> str:
        document = yaml.safe_load(self.text or "") or {}
        if not isinstance(document, dict):
            raise ReviewError(f"Pulumi.{self.stack}.yaml: expected a mapping with a `config:` key")
        config = dict(document.get("config") or {})
        for key, value in list(config.items()):
            setting = key[len(PREFIX):] if key.startswith(PREFIX) else None
            if isinstance(value, dict) and set(value) == {"secure"}:
                if setting == "statsPassword":
                    # A stand-in that changes exactly when the ciphertext does; it reveals nothing.
                    config[key] = "encrypted-" + hashlib.sha256(str(value["secure"]).encode()).hexdigest()[:16]
                elif setting == "sshPrivateKey":
                    config[key] = PLACEHOLDER_PRIVATE_KEY  # reaches only the SSH connections, never a VM
                else:
                    del config[key]
                    if setting is not None:
                        self.notes.append(f"`{key}` is encrypted: rendered as if unset.")
            elif setting in SECRET_SETTINGS and isinstance(value, str):
                self.secrets.append(value)
                if setting == "sshPrivateKey":
                    self.secrets.extend(line for line in value.splitlines()[1:-1] if len(line) >= 16)
        return yaml.safe_dump({"config": config}, sort_keys=False)


def _render(project: pathlib.Path, version: StackVersion, work: pathlib.Path, label: str) -> Optional[pathlib.Path]:
    """Render one version with `project`'s own program; None when the stack does not exist there."""
    if version.text is None:
        return None
    stack_dir = work / "stack"
    stack_dir.mkdir(parents=True)
    stack_file = stack_dir / f"Pulumi.{version.stack}.yaml"
    stack_file.write_text(version.sanitized())
    out = work / "render"
    result = subprocess.run(
        [sys.executable, "-m", "components.offline", str(stack_file), "--out", str(out)],
        cwd=project, capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        message = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise ReviewError(f"{label}: Pulumi.{version.stack}.yaml does not render:\n" + "\n".join(message[-20:]))
    return out


def review_stack(stack: str, old: StackVersion, new: StackVersion, old_project: pathlib.Path,
                 old_label: str, new_label: str, work: pathlib.Path) -> tuple[list[Block], bool, list[str]]:
    notes = [*old.notes, *new.notes]
    new_dir = _render(PROJECT_ROOT, new, work / "new", new_label)
    old_dir = _render(old_project, old, work / "old", old_label)
    if old_dir is not None and not (old_dir / PLAN_FILE).exists():
        # A program from before plan.json: its stack file rendered by today's program instead.
        notes.append(f"The program at {old_label} predates this review: its stack file is rendered by the "
                     "working tree's program, so program changes are not shown.")
        old_dir = _render(PROJECT_ROOT, old, work / "old-again", old_label)
    old_render = RenderedStack.load(old_dir, stack) if old_dir else RenderedStack.empty(stack)
    new_render = RenderedStack.load(new_dir, stack) if new_dir else RenderedStack.empty(stack)
    if old_dir is None:
        notes.append(f"Stack `{stack}` is new.")
    if new_dir is None:
        notes.append(f"Stack `{stack}` is removed: `pulumi destroy` removes its lab.")
    secrets = [*old.secrets, *new.secrets]
    review = compare(old_render, new_render, old_label, new_label, secrets, notes)
    return review_blocks(review), review.changed, secrets


def _git(project: pathlib.Path, *args: str, binary: bool = False) -> Any:
    result = subprocess.run(["git", *args], cwd=project, capture_output=True, timeout=120, text=not binary)
    if result.returncode != 0:
        error = result.stderr if not binary else result.stderr.decode(errors="replace")
        raise ReviewError(f"git {' '.join(args)}: {error.strip()}")
    return result.stdout


def _stack_name(path: pathlib.Path) -> str:
    match = STACK_FILE_PATTERN.match(path.name)
    if not match:
        raise ReviewError(f"{path}: expected a stack file named Pulumi.<stack>.yaml")
    return match.group("stack")


def _read(path: pathlib.Path) -> Optional[str]:
    return path.read_text() if path.is_file() else None


def diff_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.offline diff",
        description="Render two versions of a stack offline and print a Markdown review "
                    "(exit 0: no changes, 2: changes, 1: error).")
    parser.add_argument("stack_files", nargs="*", type=pathlib.Path,
                        help="OLD_STACK_FILE NEW_STACK_FILE, or with --base the stack files to review")
    parser.add_argument("--base", metavar="GIT_REF", help="review the working tree against this git ref")
    parser.add_argument("--out", type=pathlib.Path, help="write the whole review here (default: standard output)")
    parser.add_argument("--comment", type=pathlib.Path,
                        help="also write a pull-request comment: the review cut to fit --comment-limit")
    parser.add_argument("--comment-limit", type=int, default=COMMENT_LIMIT, help="characters (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        blocks, changed, secrets = _review(args)
        text = render_markdown(blocks, secrets)
        if args.comment:
            args.comment.write_text(fit_comment(blocks, args.comment_limit, secrets))
    except (ReviewError, SecretLeak, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return ERROR
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return CHANGES if changed else NO_CHANGES


def _review(args: argparse.Namespace) -> tuple[list[Block], bool, list[str]]:
    blocks: list[Block] = []
    changed = False
    secrets: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ha-lb-review-") as temp:
        work = pathlib.Path(temp)
        pairs: list[tuple[str, StackVersion, StackVersion]] = []
        if args.base is None:
            if len(args.stack_files) != 2:
                raise ReviewError("expected OLD_STACK_FILE NEW_STACK_FILE, or --base GIT_REF [STACK_FILE ...]")
            old_path, new_path = args.stack_files
            for path in (old_path, new_path):
                if not path.is_file():
                    raise ReviewError(f"{path}: no such stack file")
            stack = _stack_name(new_path)
            if _stack_name(old_path) != stack:
                raise ReviewError(f"{old_path} and {new_path} name different stacks ({_stack_name(old_path)!r}, "
                                  f"{stack!r}): the lab's names come from the stack, so compare one stack's versions")
            pairs.append((stack, StackVersion(stack, _read(old_path)), StackVersion(stack, _read(new_path))))
            old_project, old_label, new_label = PROJECT_ROOT, f"`{old_path}`", f"`{new_path}`"
        else:
            commit = _commit_of(args.base)
            prefix = _git(PROJECT_ROOT, "rev-parse", "--show-prefix").strip()
            archive = _git(PROJECT_ROOT, "archive", "--format=tar", commit, *([prefix] if prefix else []), binary=True)
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(work / "base", filter="data")
            old_project = work / "base" / prefix
            if not (old_project / "components" / "offline.py").is_file():
                raise ReviewError(f"--base {args.base}: the program there has no offline render "
                                  "(components/offline.py)")
            if args.stack_files:
                relative = []
                for path in args.stack_files:
                    try:
                        relative.append(path.resolve().relative_to(PROJECT_ROOT))
                    except ValueError:
                        raise ReviewError(f"{path}: not a file of the project at {PROJECT_ROOT}") from None
                    _stack_name(path)
            else:
                relative = sorted({pathlib.Path(p.name) for root in (PROJECT_ROOT, old_project)
                                   for p in root.glob("Pulumi.*.y*ml") if STACK_FILE_PATTERN.match(p.name)})
                if not relative:
                    raise ReviewError(f"no Pulumi.<stack>.yaml in {PROJECT_ROOT} or at {args.base}")
            for path in relative:
                stack = _stack_name(path)
                pairs.append((stack, StackVersion(stack, _read(old_project / path)),
                              StackVersion(stack, _read(PROJECT_ROOT / path))))
            old_label, new_label = f"`{args.base}` ({commit[:12]})", "the working tree"
        for index, (stack, old, new) in enumerate(pairs):
            stack_blocks, stack_changed, stack_secrets = review_stack(
                stack, old, new, old_project, old_label, new_label, work / f"stack-{index}")
            blocks += stack_blocks
            changed = changed or stack_changed
            secrets += stack_secrets
    return blocks, changed, secrets


def _commit_of(ref: str) -> str:
    try:
        return _git(PROJECT_ROOT, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except ReviewError:
        raise ReviewError(f"--base {ref!r}: not a commit in {PROJECT_ROOT}") from None
