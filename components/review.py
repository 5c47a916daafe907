"""A pull-request review of a stack change: what each VM receives, and what `pulumi up` will do about it.

Pure functions from two offline renders (components/offline.py's output directories) to Markdown. Nothing
here reads a stack file, runs the program or talks to libvirt, so every rule is tested on small inputs.

Secret-safe by construction: file texts are masked before anything is compared for display (password
hashes and any given secret value become a fixed marker), and the finished text is checked for every
secret once more (`SecretLeak`).
"""

from __future__ import annotations

import difflib
import json
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

# The files cloud-init reads from the seed disk, shown before the files user-data writes.
SEED_FILES = ("user-data", "meta-data", "network-config")
PLAN_FILE = "plan.json"
OUTPUTS_FILE = "outputs.json"  # the stack outputs, secrets shown as "[secret]"
# crypt(3) hashes (sha512-crypt is what HAProxy's userlist gets; the others for safety): a hash of a
# weak password is as good as the password to whoever reads it, so no review shows one.
_CRYPT_HASH = re.compile(r"\$(?:1|5|6|y|2[aby])\$[^\s\"']+")
HASH_MARKER = "[password hash: not shown]"
SECRET_MARKER = "[secret: not shown]"
# GitHub's limit for an issue or pull-request comment, in characters.
COMMENT_LIMIT = 65536
COMMENT_MARKER = "<!-- ha-lb-review -->"
# Tiers as the review lists them: the web servers first (the load balancers' rollout waits for them).
TIER_ORDER = ("web", "lb")

NEW, REMOVED, REBUILT, RESTARTED, ROLLED_OUT, SEED_ONLY, UNCHANGED = (
    "new", "removed", "rebuilt", "restarted", "rolled out", "seed only", "unchanged")


class SecretLeak(RuntimeError):
    """The review would show a secret: refuse to print it."""


@dataclass(frozen=True)
class RenderedMachine:
    name: str
    files: dict[str, str]  # seed files by name, then written files by absolute path
    plan: dict

    @property
    def tier(self) -> str:
        return self.plan["tier"]


@dataclass(frozen=True)
class RenderedStack:
    stack: str
    machines: dict[str, RenderedMachine]
    resources: dict[str, dict]  # the lab's other libvirt objects (networks, pool, base image, provider)
    outputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: pathlib.Path, stack: str) -> "RenderedStack":
        plan = json.loads((directory / PLAN_FILE).read_text())
        outputs = json.loads((directory / OUTPUTS_FILE).read_text()) if (directory / OUTPUTS_FILE).exists() else {}
        machines = {}
        for name, machine_plan in plan["machines"].items():
            files = {seed: (directory / name / seed).read_text() for seed in SEED_FILES}
            written = directory / name / "files"
            for path in sorted(p for p in written.rglob("*") if p.is_file()):
                files["/" + str(path.relative_to(written))] = path.read_text()
            machines[name] = RenderedMachine(name, files, machine_plan)
        return cls(stack, machines, plan["resources"], outputs)

    @classmethod
    def empty(cls, stack: str) -> "RenderedStack":
        return cls(stack, {}, {})

    def up_order(self) -> list[str]:
        """Machines in the order `pulumi up` creates them: each tier's chain (every VM waits for the
        previous one of its tier), tiers in the order they appear."""
        ordered: list[str] = []
        rank = {tier: index for index, tier in enumerate(TIER_ORDER)}
        tiers = sorted({m.tier for m in self.machines.values()}, key=lambda t: (rank.get(t, len(rank)), t))
        for tier in tiers:
            members = {n: m for n, m in self.machines.items() if m.tier == tier}
            following = {m.plan["after"]: n for n, m in members.items()}
            current = following.get(None)
            while current is not None and current not in ordered:
                ordered.append(current)
                current = following.get(current)
            ordered.extend(sorted(n for n in members if n not in ordered))  # a broken chain still shows
        return ordered


@dataclass(frozen=True)
class FileChange:
    machine: str
    path: str
    diff: str  # a unified diff of the masked texts; empty when only a secret changed
    secret_changed: bool = False  # a masked part (a password hash, a secret) differs

    @property
    def secret_only(self) -> bool:
        return not self.diff

    @property
    def counts(self) -> tuple[int, int]:
        lines = self.diff.splitlines()[2:]
        return (sum(1 for l in lines if l.startswith("+")), sum(1 for l in lines if l.startswith("-")))


@dataclass(frozen=True)
class MachineChange:
    name: str
    tier: str
    kind: str
    reasons: tuple[str, ...] = ()
    files: tuple[FileChange, ...] = ()


@dataclass(frozen=True)
class StackReview:
    stack: str
    old_label: str
    new_label: str
    machines: tuple[MachineChange, ...]
    resources: tuple[str, ...]  # one line per other libvirt object added, removed or changed
    notes: tuple[str, ...] = ()
    gated: bool = True  # the readiness gate is on: rollouts and the final VIP check exist

    @property
    def changed(self) -> bool:
        return bool(self.resources) or any(m.kind != UNCHANGED for m in self.machines)


@dataclass
class Block:
    """A self-contained piece of Markdown; essential blocks survive when a comment must be cut."""
    text: str
    essential: bool = True


def mask(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, SECRET_MARKER)
    return _CRYPT_HASH.sub(HASH_MARKER, text)


def _secret_parts(text: str, secrets: Iterable[str]) -> tuple:
    """What mask() hides in a text, to tell whether it changed without showing it."""
    return tuple(_CRYPT_HASH.findall(text)), tuple(text.count(s) for s in secrets if s)


def _elide_written_contents(user_data: str) -> str:
    """user-data with each write_files content replaced by a pointer: those files get a diff of their own."""
    out: list[str] = []
    skipping_deeper_than: Optional[int] = None
    for line in user_data.splitlines(keepends=True):
        indent = len(line) - len(line.lstrip(" "))
        if skipping_deeper_than is not None:
            if not line.strip() or indent > skipping_deeper_than:
                continue
            skipping_deeper_than = None
        match = re.match(r"^(\s*)content: [|>][-+]?\s*$", line)
        if match:
            out.append(f"{match.group(1)}content: (shown as its own file)\n")
            skipping_deeper_than = len(match.group(1))
            continue
        out.append(line)
    return "".join(out)


def _shown(path: str, text: str, secrets: Iterable[str]) -> str:
    return mask(_elide_written_contents(text) if path == "user-data" else text, secrets)


def _file_changes(name: str, old: dict[str, str], new: dict[str, str], secrets: Sequence[str]) -> list[FileChange]:
    changes = []
    ordered = [p for p in SEED_FILES if p in old or p in new] + sorted((set(old) | set(new)) - set(SEED_FILES))
    for path in ordered:
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        if path == "user-data" and before is not None and after is not None \
                and _elide_written_contents(before) == _elide_written_contents(after):
            continue  # only written files changed: each has its own diff
        shown_before = _shown(path, before, secrets) if before is not None else ""
        shown_after = _shown(path, after, secrets) if after is not None else ""
        diff = "".join(difflib.unified_diff(
            shown_before.splitlines(keepends=True), shown_after.splitlines(keepends=True),
            fromfile=f"a/{name}{'/' if not path.startswith('/') else ''}{path}" if before is not None else "/dev/null",
            tofile=f"b/{name}{'/' if not path.startswith('/') else ''}{path}" if after is not None else "/dev/null",
        ))
        secret_changed = _secret_parts(before or "", secrets) != _secret_parts(after or "", secrets)
        changes.append(FileChange(name, path, diff, secret_changed=secret_changed or not diff))
    return changes


def _rebuild_reasons(old: RenderedMachine, new: RenderedMachine, files: Sequence[FileChange]) -> tuple[str, ...]:
    reasons = []
    old_disk, new_disk = old.plan["disk"], new.plan["disk"]
    if old_disk.get("baseImage") != new_disk.get("baseImage"):
        reasons.append(f"base image {old_disk.get('baseImage')} → {new_disk.get('baseImage')}")
    if old_disk.get("size") != new_disk.get("size"):
        reasons.append(f"disk size {_gib(old_disk.get('size'))} → {_gib(new_disk.get('size'))}")
    in_place = set(new.plan["rolledOut"])
    rebuild_files = [f.path for f in files if f.path not in in_place]
    if rebuild_files:
        reasons.append("changed " + ", ".join(f"`{p}`" for p in rebuild_files)
                       + " (not applied in place: cloud-init applies them at first boot)")
    if not reasons:
        reasons.append("its rebuild key changed")
    return tuple(reasons)


def _gib(size: object) -> str:
    return f"{int(size) // 2**30} GiB" if isinstance(size, (int, float)) else str(size)


def _domain_reasons(old: RenderedMachine, new: RenderedMachine) -> tuple[str, ...]:
    labels = {"vcpu": "vCPUs", "memory": "memory (MiB)", "type": "domain type"}
    return tuple(f"{labels.get(k, k)} {old.plan['domain'].get(k)} → {new.plan['domain'].get(k)}"
                 for k in sorted(set(old.plan["domain"]) | set(new.plan["domain"]))
                 if old.plan["domain"].get(k) != new.plan["domain"].get(k))


def _classify(old: Optional[RenderedMachine], new: Optional[RenderedMachine], files: list[FileChange]) -> tuple[str, tuple[str, ...]]:
    if old is None:
        return NEW, ()
    if new is None:
        return REMOVED, ()
    if old.plan["disk"] != new.plan["disk"]:
        return REBUILT, _rebuild_reasons(old, new, files)
    if old.plan["domain"] != new.plan["domain"]:
        return RESTARTED, _domain_reasons(old, new)
    if not files:
        return UNCHANGED, ()
    rolled_out = new.plan["rolledOut"]
    services = {rolled_out[f.path] for f in files if f.path in rolled_out}
    if services:
        actions = [done for service, done in new.plan["actions"] if service in services]
        secret_notes = [f"`{f.path}`: a secret changed (not shown)" for f in files if f.secret_changed]
        return ROLLED_OUT, tuple(actions + secret_notes)
    # The seed disk is rewritten, but a running VM never reads it again (cloud-init ran once).
    return SEED_ONLY, ("its seed disk is rewritten, but nothing applies it to the running VM: "
                       "rebuild it (`pulumi up --replace` its disk) or turn the readiness gate on",)


def compare(old: RenderedStack, new: RenderedStack, old_label: str, new_label: str,
            secrets: Sequence[str] = (), notes: Sequence[str] = ()) -> StackReview:
    names = new.up_order() + [n for n in old.up_order() if n not in new.machines]
    machines = []
    for name in names:
        before, after = old.machines.get(name), new.machines.get(name)
        files = _file_changes(name, before.files if before else {}, after.files if after else {}, secrets)
        kind, reasons = _classify(before, after, files)
        tier = (after or before).tier  # type: ignore[union-attr]
        machines.append(MachineChange(name, tier, kind, reasons, tuple(files)))
    resources = []
    for name in sorted(set(old.resources) | set(new.resources)):
        before, after = old.resources.get(name), new.resources.get(name)
        if before == after:
            continue
        if before is None:
            resources.append(f"`{name}` ({after['type']}): created")
        elif after is None:
            resources.append(f"`{name}` ({before['type']}): deleted once nothing uses it")
        else:
            keys = sorted(k for k in set(before["inputs"]) | set(after["inputs"])
                          if before["inputs"].get(k) != after["inputs"].get(k))
            resources.append(f"`{name}` ({after['type']}): " + ", ".join(
                f"{k} {json.dumps(before['inputs'].get(k))} → {json.dumps(after['inputs'].get(k))}" for k in keys))
    notes = [*notes, *_deaf_rollout_note(old, new, machines)]
    return StackReview(new.stack if new.machines else old.stack, old_label, new_label, tuple(machines),
                       tuple(mask(line, secrets) for line in resources), tuple(notes),
                       gated=any(m.plan["rolledOut"] for m in new.machines.values()))


def _deaf_rollout_note(old: RenderedStack, new: RenderedStack, machines: Sequence[MachineChange]) -> list[str]:
    """A change of what the pair must share to hear each other (the stack output `vrrp`: version, transport,
    router id, VRRPv2's advert interval), rolled out one load balancer at a time."""
    before, after = old.outputs.get("vrrp"), new.outputs.get("vrrp")
    rolled = [m.name for m in machines if m.tier == "lb" and m.kind == ROLLED_OUT]
    if not before or not after or before == after or len(rolled) < 2:
        return []
    changed = ", ".join(f"{key} {json.dumps(before.get(key))} → {json.dumps(after.get(key))}"
                        for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key))
    return [f"VRRP changes how the load balancers speak ({changed}): keepalived drops the other's adverts until both "
            f"have it, so from {rolled[0]}'s rollout until {rolled[-1]}'s the two do not hear each other and both "
            "hold the VIP. Clients see at most a lost node's outage; the pair is one holder again after "
            f"{rolled[-1]}'s rollout."]


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=0)
    return "`" * max(3, longest + 1)


def _describe(change: MachineChange) -> str:
    text = {
        NEW: "new VM (created, cloud-init configures it at first boot)",
        REMOVED: "removed (the VM and its disks are deleted)",
        REBUILT: "rebuilt: a fresh disk from the base image, cloud-init runs again",
        RESTARTED: "recreated on its own disk (restarted; cloud-init does not run again)",
        ROLLED_OUT: "configuration rolled out in place",
        SEED_ONLY: "seed disk rewritten only",
        UNCHANGED: "unchanged",
    }[change.kind]
    return text + (" — " + "; ".join(change.reasons) if change.reasons else "")


def review_blocks(review: StackReview) -> list[Block]:
    blocks = [Block(f"## ha-lb review: stack `{review.stack}`\n\n{review.old_label} → {review.new_label}\n")]
    blocks += [Block(f"> {note}\n") for note in review.notes]
    changed = [m for m in review.machines if m.files]
    if changed:
        blocks.append(Block("### What each VM receives\n"))
    for machine in changed:
        blocks.append(Block(f"#### {machine.name} ({machine.kind})\n"))
        for file in machine.files:
            if file.secret_only:
                blocks.append(Block(f"- `{file.path}`: only a secret changed (not shown)\n"))
                continue
            added, removed = file.counts
            fence = _fence(file.diff)
            blocks.append(Block(
                f"<details><summary><code>{file.path}</code> (+{added} −{removed})</summary>\n\n"
                f"{fence}diff\n{file.diff}{'' if file.diff.endswith(chr(10)) else chr(10)}{fence}\n\n</details>\n",
                essential=False))

    blocks.append(Block("### What `pulumi up` will do\n\n" + "\n".join(_plan_lines(review)) + "\n"))
    blocks.append(Block(f"**Summary:** {summary_line(review)}\n"))
    return blocks


def _plan_lines(review: StackReview) -> list[str]:
    if not review.changed:
        return ["Nothing: every VM gets what it has today."]
    lines: list[str] = []
    step = 0

    def add(title: str, items: Sequence[str]) -> None:
        nonlocal step
        if items:
            step += 1
            lines.append(f"{step}. {title}")
            lines.extend(f"   - {item}" for item in items)

    created = [r for r in review.resources if r.endswith("created") or "→" in r]
    add("Lab resources first:", created)
    by_tier: dict[str, list[MachineChange]] = {}
    for machine in review.machines:
        by_tier.setdefault(machine.tier, []).append(machine)
    rebuilding = {NEW, REBUILT, RESTARTED}
    for tier, members in by_tier.items():
        title = {"web": "Web servers, one at a time (each waits for the previous one to be ready):",
                 "lb": "Load balancers, one at a time (highest priority first), beside the web servers:"}.get(tier, f"{tier}:")
        add(title, [f"**{m.name}**: {_describe(m)}" for m in members if m.kind in rebuilding])
    rollouts = [m for m in review.machines if m.kind == ROLLED_OUT]
    add("Load balancer configuration, in place, once every web server is ready and both load balancers "
        "accepted it (haproxy -c, keepalived --config-test and nft --check on each; a configuration rejected "
        "anywhere is activated nowhere), one load balancer at a time, highest priority first:",
        [f"**{m.name}**: {_describe(m)}" for m in rollouts])
    add("Not applied to the running VMs:", [f"**{m.name}**: {_describe(m)}" for m in review.machines if m.kind == SEED_ONLY])
    deleted = [f"**{m.name}**: {_describe(m)}" for m in review.machines if m.kind == REMOVED]
    deleted += [r for r in review.resources if r.endswith("nothing uses it")]
    add("Last, what is no longer in the stack:", deleted)
    if review.gated and any(m.kind != UNCHANGED for m in review.machines):
        lines.append("")
        lines.append("The final VIP check runs again after any of these.")
    return lines


def summary_line(review: StackReview) -> str:
    if not review.changed:
        return f"stack `{review.stack}`: no changes."
    counts = {kind: sum(1 for m in review.machines if m.kind == kind)
              for kind in (NEW, REMOVED, REBUILT, RESTARTED, ROLLED_OUT, SEED_ONLY, UNCHANGED)}
    parts = [f"{n} {kind}" for kind, n in counts.items() if n]
    if review.resources:
        parts.append(f"{len(review.resources)} other lab resource change{'s' if len(review.resources) != 1 else ''}")
    return f"stack `{review.stack}`: " + ", ".join(parts) + "."


def render_markdown(blocks: Sequence[Block], secrets: Sequence[str] = ()) -> str:
    text = "\n".join(b.text for b in blocks)
    _refuse_secrets(text, secrets)
    return text


def fit_comment(blocks: Sequence[Block], limit: int = COMMENT_LIMIT, secrets: Sequence[str] = (),
                full_text_hint: str = "the whole review is in this run's artifact") -> str:
    """One comment under `limit` characters: every essential block, then as many diffs as fit, in order."""
    cut_note = f"\n> Cut to fit a comment: some file diffs are left out; {full_text_hint}.\n"
    essential = [b for b in blocks if b.essential]
    budget = limit - len(COMMENT_MARKER) - 2 - len(cut_note) - sum(len(b.text) + 1 for b in essential)
    if budget < 0:
        raise ValueError(f"the review's plan alone is longer than the comment limit ({limit} characters)")
    kept, cut = [], False
    for block in blocks:
        if not block.essential:
            if len(block.text) + 1 > budget:
                cut = True
                continue
            budget -= len(block.text) + 1
        kept.append(block)
    text = COMMENT_MARKER + "\n" + "\n".join(b.text for b in kept) + (cut_note if cut else "")
    _refuse_secrets(text, secrets)
    assert len(text) <= limit
    return text


def _refuse_secrets(text: str, secrets: Iterable[str]) -> None:
    for secret in secrets:
        if secret and secret in text:
            raise SecretLeak("the review would contain a secret value; nothing was written")
    if _CRYPT_HASH.search(text):
        raise SecretLeak("the review would contain a password hash; nothing was written")
