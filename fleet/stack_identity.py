"""Whose a tenant stack is: the tenant_id its tags record, and whether offboarding left it as a tombstone.

A stack is matched to a tenant file by its tenant_id, never by its name alone: a name can be reused by a
new file, a rename can point at an old stack, and a file's tenant_id can be edited. `tenantctl up` writes
`tenant:id` when it creates a stack and adds it to an older stack that lacks it; a stack made by hand
(`pulumi stack init`) and never deployed has no identity yet. Reading is one CLI call per stack, in
parallel threads (each call is a process of its own), and writes nothing (preview is read-only).
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fleet import engine

TAG_SLUG, TAG_TIER, TAG_TENANT_ID = "tenant:slug", "tenant:tier", "tenant:id"
TAG_OFFBOARDED_AT = "tenant:offboarded-at"
READ_CONCURRENCY = 8


@dataclass(frozen=True)
class StackIdentity:
    stack: str
    tenant_id: str | None  # None: never tagged and never deployed (a stack made by hand), or unreadable
    offboarded_at: str | None = None
    unreadable: str | None = None  # why its tags could not be read: that stack fails alone when it runs
    # Every tag it has (read once, for the run's later decisions too: fleet.skipping reads its last run's).
    tags: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def tombstone(self) -> bool:
        return self.offboarded_at is not None


def identity_from(stack: str, tags: dict[str, str], outputs: dict | None) -> StackIdentity:
    """From the stack's tags, or (an older stack without the tag) the tenant_id its last `up` exported."""
    tenant_id = tags.get(TAG_TENANT_ID)
    if tenant_id is None and isinstance(outputs, dict):
        exported = outputs.get("tenant")
        tenant_id = exported.get("tenant_id") if isinstance(exported, dict) else None
    return StackIdentity(stack, tenant_id, tags.get(TAG_OFFBOARDED_AT), tags=dict(tags))


def read_identities(backend: engine.Backend, stacks: list[str]) -> dict[str, StackIdentity]:
    """Each stack's identity. One that cannot be read (a corrupt checkpoint) says why, and the others go on."""
    if not stacks:
        return {}
    options = engine.workspace_options(backend)
    binary = str(engine.pulumi_binary(backend.project_root))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *args], cwd=options.work_dir, env=dict(options.env_vars),
                              capture_output=True, text=True, timeout=120)

    def read(stack: str) -> StackIdentity:
        known = _from_folder(backend, stack)
        if known is not None:
            return known
        tags = cli("stack", "tag", "ls", "--json", "--stack", stack)
        if tags.returncode != 0:
            reason = engine.checkpoint_problem(backend, stack) or _last_line(tags.stderr)
            return StackIdentity(stack, None, unreadable=reason)
        values = json.loads(tags.stdout or "{}") or {}
        outputs = None
        if TAG_TENANT_ID not in values:
            result = cli("stack", "output", "--json", "--stack", stack)
            outputs = json.loads(result.stdout or "{}") if result.returncode == 0 else None
        return identity_from(stack, values, outputs)

    with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
        return dict(zip(stacks, pool.map(read, stacks), strict=True))


def _from_folder(backend: engine.Backend, stack: str) -> StackIdentity | None:
    """On a file backend, the identity read from the backend's folder, as the CLI reads it but without starting
    one process per stack (at 1,000 stacks, that was most of a no-change release: docs/scaling.md): the checkpoint
    must parse (else the stack is unreadable, saying why, as `stack tag ls` would fail), the tags come from the file
    the engine keeps beside it, and the outputs, where no tenant_id tag is recorded, from the checkpoint. None (the
    CLI is asked) when the folder does not hold them in the form known here."""
    paths = engine.stack_paths(backend, stack)
    if paths is None or not paths[0].is_file():
        return None
    problem = engine.checkpoint_problem(backend, stack)
    if problem is not None:
        return StackIdentity(stack, None, unreadable=problem)
    try:
        document = json.loads(paths[0].with_name(f"{stack}.pulumi-tags").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("version") != 1 or not isinstance(document.get("tags"), dict):
        return None
    values = {str(k): str(v) for k, v in document["tags"].items()}
    outputs = None
    if TAG_TENANT_ID not in values:
        outputs = engine.outputs_from_checkpoint(backend, stack)
        if outputs is None:
            return None
    return identity_from(stack, values, outputs)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no reason given"
