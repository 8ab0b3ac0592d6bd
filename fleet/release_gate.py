"""A gated release: `tenantctl up --until canary`, an approval, then `tenantctl up --after canary`.

`--until canary` applies the platform stack and the canary wave only (fleet.rollout.waves), and records the
release beside the environment's state (`releases/<env>.json` in its record store, fleet.record_store):
the commit it deployed, the selection it ran (`--changed-since` as a commit, `--only`), every wave, the
removals it held back, and what each canary stack and the platform stack recorded about themselves when the
canary wave ended (their `tenant:applied-digest` and `tenant:deployed-commit` tags). The record is written
`running` before anything runs, so an interrupted canary is never taken for a finished one.

`--after canary` runs the rest (the later waves, then the removals) only when that record says the canary of
the same commit and the same selection succeeded, and the canary stacks are still what the canary proved:

- the checkout is the recorded commit, with no local change (`+dirty` binds to nothing);
- the selection gives the same waves and removals (nothing is skipped, or added, silently);
- each canary stack still carries the digest and commit the canary recorded, its desired-state digest computed
  now equals that digest, and its last run was clean (fleet.skipping's decision: skipped as unchanged);
- the platform stack still carries the recorded commit.

Anything else is refused before anything runs, with every reason, and exit 1: run `--until canary` again.
The approval itself is the operator's (or CI's protected environment's): this module makes sure that what is
approved is what the canary proved.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fleet.desired_state import COMMIT_TAG, DIGEST_TAG
from fleet.record_store import RecordStore, RecordStoreError
from fleet.rollout import FleetError

STAGES = ("canary",)  # the only gate: after the canary wave
RELEASES = "releases"
RUNNING, FAILED, AWAITING, RELEASED = "running", "failed", "awaiting-approval", "released"


class ReleaseRefused(FleetError):
    """A gated run that must not run: nothing has run. `problems` says every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def record_name(env: str) -> str:
    return f"{RELEASES}/{env}.json"


@dataclass
class ReleaseRecord:
    env: str
    commit: str
    changed_since: str | None  # the commit --changed-since named, resolved
    only: list[str] | None
    waves: list[list[str]]
    removed: list[str]
    status: str  # running | failed | awaiting-approval | released
    started_at: str
    finished_at: str | None = None
    # slug -> {"digest": ..., "commit": ...}: what each canary stack's tags said when the canary wave ended
    canary: dict[str, dict[str, str | None]] = field(default_factory=dict)
    platform_commit: str | None = None
    problems: list[str] = field(default_factory=list)  # why the canary failed
    released_at: str | None = None

    @property
    def canary_wave(self) -> list[str]:
        return self.waves[0] if self.waves else []

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ReleaseRecord:
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def bound_commit(commit: str | None, option: str) -> str:
    """The commit a gated run is bound to; refused without git or with local changes."""
    if not commit:
        raise ReleaseRefused([f"{option}: a gated release is bound to a git commit, and this checkout has none"])
    if commit.endswith("+dirty"):
        raise ReleaseRefused([f"{option}: the working tree differs from {commit.removesuffix('+dirty')[:12]}: a "
                              "gated release is bound to a commit; commit or stash the changes first"])
    return commit


def read(store: RecordStore, env: str) -> tuple[ReleaseRecord | None, str | None]:
    """The environment's release record and its version; (None, None) when there is none."""
    try:
        found = store.read(record_name(env))
    except (OSError, RecordStoreError) as exc:
        raise ReleaseRefused([f"cannot read the release record: {exc}"]) from None
    if found is None:
        return None, None
    try:
        return ReleaseRecord.from_json(found.text), found.version
    except (ValueError, TypeError, KeyError):
        raise ReleaseRefused([f"{store.where(record_name(env))} is not a release record: run `--until canary` "
                              "again"]) from None


def write(store: RecordStore, record: ReleaseRecord, version: str | None) -> str:
    """Write the record whole over `version` (None: there was none); another writer meanwhile is refused."""
    name = record_name(record.env)
    try:
        done = store.replace(name, record.to_json(), version) if version else store.create(name, record.to_json())
        found = store.read(name) if done else None
    except (OSError, RecordStoreError) as exc:
        raise ReleaseRefused([f"cannot write the release record: {exc}"]) from None
    if found is None:
        raise ReleaseRefused([f"{store.where(name)} changed while this run wrote it: another gated run? Run it "
                              "again"])
    return found.version


def tags_of(tags: dict[str, str] | None) -> dict[str, str | None]:
    tags = tags or {}
    return {"digest": tags.get(DIGEST_TAG), "commit": tags.get(COMMIT_TAG)}


def refusals(record: ReleaseRecord | None, *, env: str, commit: str, changed_since: str | None,
             only: list[str] | None, waves: list[list[str]], removed: list[str],
             canary_tags: dict[str, dict[str, str | None]], canary_decisions: dict[str, tuple[bool, str]],
             platform_commit: str | None, until: str) -> list[str]:
    """Why `--after canary` must not run (empty: it may). `canary_tags`: each canary stack's tags now;
    `canary_decisions`: slug -> (skipped as unchanged, why) from fleet.skipping, computed now."""
    if record is None:
        return [f"no canary has run in {env}: `{until}` runs the canary wave first"]
    if record.status == RUNNING:
        return [f"the canary run of {record.commit[:12]} (started {record.started_at}) did not finish: "
                f"interrupted? `{until}` runs it again"]
    if record.status == FAILED:
        return [f"the canary of {record.commit[:12]} failed: {'; '.join(record.problems) or 'see its run'}; fix it, "
                f"then `{until}` runs the canary again"]
    problems = []
    if record.commit != commit:
        problems.append(f"the canary proved commit {record.commit[:12]}, this checkout is {commit[:12]}: `{until}` "
                        "runs the canary of this commit first")
        return problems
    if (record.changed_since, sorted(record.only) if record.only else None) != (
            changed_since, sorted(only) if only else None):
        problems.append(f"the canary ran another selection (--changed-since {record.changed_since or '-'}, --only "
                        f"{','.join(record.only or []) or '-'}): run --after canary with the same options")
        return problems
    if record.waves != waves or sorted(record.removed) != sorted(removed):
        problems.append(f"the waves changed since the canary (then {record.waves}, removals {record.removed}; now "
                        f"{waves}, removals {removed}): `{until}` runs the canary again")
        return problems
    for slug in record.canary_wave:
        recorded, current = record.canary.get(slug) or {}, canary_tags.get(slug) or {}
        if not recorded.get("digest"):
            problems.append(f"canary {slug}: the canary recorded no desired-state digest, so the approval cannot be "
                            "bound to what it applied")
        elif current != recorded:
            problems.append(f"canary {slug}: its stack changed since the canary (digest "
                            f"{(current.get('digest') or '-')[:15]} @ {(current.get('commit') or '-')[:12]}, the "
                            f"canary applied {(recorded.get('digest') or '-')[:15]} @ "
                            f"{(recorded.get('commit') or '-')[:12]}): `{until}` runs the canary again")
        else:
            skipped, why = canary_decisions.get(slug, (False, "not judged"))
            if not skipped:
                problems.append(f"canary {slug}: no longer what the canary proved ({why}): `{until}` runs the "
                                "canary again")
    if record.platform_commit is not None and platform_commit != record.platform_commit:
        problems.append(f"the platform stack {env} was deployed from {(platform_commit or '-')[:12]} since the "
                        f"canary ({record.platform_commit[:12]}): `{until}` runs the canary again")
    return problems


def store_for(backend) -> RecordStore:
    """The record store beside the environment's state (the rehearsal's state folder, or a project `file://` or
    `s3://` backend's); refused on any other backend."""
    from fleet.record_store import as_store
    from fleet.state_folder import UnsupportedBackend, project_store, rehearsal_records

    try:
        return (as_store(rehearsal_records(Path(backend.backend_dir).parent)) if backend.local
                else project_store(backend.project_root))
    except UnsupportedBackend as exc:
        raise ReleaseRefused([f"a gated release records its canary beside the state: {exc}"]) from None
