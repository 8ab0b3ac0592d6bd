"""Which real tenants a tenant's isolation checks probe: the next few after it in tenant_id order.

Deterministic and local, so adding a tenant changes the peers of only its neighbours, and the same
tenant gets the same peers from the program's OnboardingCheck and from `tenantctl verify`.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

PEERS_PER_TENANT = 2


def peer_tenant_ids(
    tenant_ids: Iterable[UUID | str], tenant_id: UUID | str, count: int = PEERS_PER_TENANT
) -> list[str]:
    ordered = sorted({str(t) for t in tenant_ids} | {str(tenant_id)})
    at = ordered.index(str(tenant_id))
    return [ordered[(at + step) % len(ordered)] for step in range(1, min(count, len(ordered) - 1) + 1)]
