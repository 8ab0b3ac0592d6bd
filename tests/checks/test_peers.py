"""peer_tenant_ids: the real tenants a tenant's checks probe."""

from __future__ import annotations

import uuid

from checks.peers import peer_tenant_ids


def test_peers_are_the_next_tenants_in_id_order_wrapping_around():
    ids = [uuid.UUID(int=n) for n in (5, 1, 3, 9)]
    ordered = sorted(map(str, ids))

    assert peer_tenant_ids(ids, ids[1]) == ordered[1:3]
    assert peer_tenant_ids(ids, ids[3]) == ordered[:2]


def test_a_tenant_is_never_its_own_peer():
    only = uuid.uuid4()
    other = uuid.uuid4()

    assert peer_tenant_ids([only], only) == []
    assert peer_tenant_ids([only, other], only) == [str(other)]
    assert peer_tenant_ids([only, other], only, count=5) == [str(other)]


def test_adding_a_tenant_changes_the_peers_of_its_neighbours_only():
    ids = sorted(uuid.UUID(int=n) for n in range(10, 100, 10))
    before = {t: peer_tenant_ids(ids, t) for t in ids}
    newcomer = uuid.UUID(int=55)
    after = {t: peer_tenant_ids([*ids, newcomer], t) for t in ids}

    changed = [t for t in ids if before[t] != after[t]]
    assert changed == [uuid.UUID(int=40), uuid.UUID(int=50)]
