"""Rotating a tenant's webhook signing secret without dropping a webhook: the phases, and writing them into the
tenant file.

A rotation is two reviewed changes of the tenant file (docs/operations.md, "Rotating the signing secret"):
- `tenantctl rotate-signing-secret SLUG` writes `webhook.rotation: {next_version, overlap_until}`: the next `up`
  creates the next secret beside the current one, and the application accepts a signature made with either;
- `--finish` (after the client's admin confirms the new secret is saved) makes the next version the current one
  and drops `rotation`: the next `up` retires the old secret, and a signature made with it is refused.
A passed `overlap_until` is acted on by the next `up` as if `--finish` had been written (`signing_phase`).

The edit keeps the file's comments and layout (ruamel's round trip), and the result is loaded again with the same
loader as `tenantctl validate` before it replaces the file, so a rotation never writes a file that does not load.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tenancy.model import Tenant

DEFAULT_OVERLAP = timedelta(days=7)
MAX_OVERLAP = timedelta(days=90)


class RotationError(Exception):
    """A rotation that cannot be written; the message says why and what to do."""


@dataclass(frozen=True)
class SigningPhase:
    """Which signing secrets the program deploys for a tenant at a given moment."""

    current_version: int
    next_version: int | None = None  # during an overlap
    overlap_until: datetime | None = None
    deadline_passed: bool = False  # a rotation whose overlap is over: retired as by `--finish`

    @property
    def overlapping(self) -> bool:
        return self.next_version is not None


def signing_phase(tenant: Tenant, now: datetime | None = None) -> SigningPhase:
    webhook = tenant.webhook
    rotation = webhook.rotation
    if rotation is None:
        return SigningPhase(webhook.signing_secret_version)
    if (now or datetime.now(UTC)) >= rotation.overlap_until:
        return SigningPhase(rotation.next_version, deadline_passed=True)
    return SigningPhase(webhook.signing_secret_version, rotation.next_version, rotation.overlap_until)


def _round_trip():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def start_rotation(path: Path, tenant: Tenant, overlap: timedelta = DEFAULT_OVERLAP,
                   now: datetime | None = None) -> SigningPhase:
    """Write the next version and the overlap deadline into the tenant file at `path`."""
    if not timedelta(hours=1) <= overlap <= MAX_OVERLAP:
        raise RotationError(f"the overlap must be between 1 hour and {MAX_OVERLAP.days} days")
    if tenant.webhook.rotation is not None:
        rotation = tenant.webhook.rotation
        raise RotationError(
            f"{path}: a rotation to version {rotation.next_version} is already under way (until "
            f"{_shown(rotation.overlap_until)}); finish it first with `tenantctl rotate-signing-secret "
            f"{tenant.slug} --finish`")
    until = ((now or datetime.now(UTC)) + overlap).astimezone(UTC).replace(microsecond=0)
    next_version = tenant.webhook.signing_secret_version + 1

    def edit(data) -> None:
        from ruamel.yaml.comments import CommentedMap

        webhook = data.setdefault("webhook", CommentedMap())
        if "signing_secret_version" not in webhook:
            webhook["signing_secret_version"] = tenant.webhook.signing_secret_version
        rotation = CommentedMap()
        rotation["next_version"] = next_version
        rotation["overlap_until"] = _shown(until)
        webhook["rotation"] = rotation

    _rewrite(path, edit)
    return SigningPhase(tenant.webhook.signing_secret_version, next_version, until)


def finish_rotation(path: Path, tenant: Tenant) -> SigningPhase:
    """Make the next version the current one and drop the rotation: the next `up` retires the old secret."""
    rotation = tenant.webhook.rotation
    if rotation is None:
        raise RotationError(f"{path}: no rotation is under way (webhook.rotation is not set); start one with "
                            f"`tenantctl rotate-signing-secret {tenant.slug}`")

    def edit(data) -> None:
        webhook = data["webhook"]
        webhook["signing_secret_version"] = rotation.next_version
        del webhook["rotation"]

    _rewrite(path, edit)
    return SigningPhase(rotation.next_version)


def _shown(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rewrite(path: Path, edit) -> None:
    import io

    from tenancy.loader import parse_tenant_bytes

    yaml = _round_trip()
    data = yaml.load(path.read_text(encoding="utf-8"))
    edit(data)
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    text = buffer.getvalue()
    _tenant, problems = parse_tenant_bytes(text.encode("utf-8"), str(path), expected_slug=path.stem)
    if problems:
        raise RotationError("the rotated file would not load: " + "; ".join(map(str, problems)))
    # Written beside the file and renamed over it: an interrupted write leaves the old file whole.
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
