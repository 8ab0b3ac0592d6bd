"""What a change of a tenant file's lifecycle fields will do, in words a reviewer reads in the plan and the PR
preview: suspension and resumption (`state`), and the signing-secret rotation (`webhook`).

The field-by-field diff says what changed; these lines say what the next `up` does about it, and what it keeps.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tenancy.model import Tenant, Tier
from tenancy.signing_rotation import signing_phase


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def lifecycle_effects(old: Tenant | None, new: Tenant, now: datetime | None = None) -> list[str]:
    """One line per effect of going from `old` (None: a new tenant) to `new` at the next `up`."""
    now = now or datetime.now(UTC)
    effects: list[str] = []
    was_suspended = old is not None and old.suspended
    premium = new.tier is Tier.PREMIUM
    if new.suspended and not was_suspended:
        effects.append(
            "suspend: the tenant_configs row is marked suspended (suspended_at) and the application refuses the "
            "tenant's webhooks with HTTP 423"
            + (f"; its namespace quota goes from {new.effective_resources.pods} pods to 0, so no new pod is "
               "admitted (running pods are not evicted)" if premium else "")
            + "; its secrets, KMS key, row and history are kept")
    elif was_suspended and not new.suspended:
        effects.append(
            "resume: suspended_at is cleared and the tenant's webhooks are accepted again"
            + (f"; its namespace quota allows {new.effective_resources.pods} pods again" if premium else ""))
    if old is None:
        return effects
    before, after = signing_phase(old, now), signing_phase(new, now)
    rotation = new.webhook.rotation
    if after.overlapping and not before.overlapping:
        effects.append(
            f"signing-secret rotation: version {after.next_version} is created beside version "
            f"{after.current_version}; webhooks signed with either are accepted until {_when(after.overlap_until)}; "
            f"`tenantctl handoff {new.slug} --reveal` gives the new secret for the client's admin")
    elif rotation is not None and after.deadline_passed:
        effects.append(
            f"the signing-secret overlap ended at {_when(rotation.overlap_until)}: the next `up` retires version "
            f"{new.webhook.signing_secret_version} and webhooks signed with it are refused")
    elif before.overlapping and not after.overlapping and after.current_version == before.next_version:
        effects.append(
            f"finish the signing-secret rotation: version {before.current_version} is retired and webhooks signed "
            f"with it are refused; version {after.current_version} stays")
    elif after.current_version != before.current_version:
        effects.append(
            f"WARNING: the signing secret is replaced at once (version {before.current_version} -> "
            f"{after.current_version}, no overlap): webhooks signed with the old secret are refused from the next "
            f"`up`; `tenantctl rotate-signing-secret {new.slug}` rotates without dropping any")
    return effects
