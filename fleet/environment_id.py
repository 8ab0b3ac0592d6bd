"""Each environment's id (fleet rule 1): a UUID beside its state. Its claim on the database it provisions is
the domain's (tenancy/environment_claim.py).

Beside the state: the record `environments/<env>.json` in the environment's record store
(fleet.record_store: `DIR/.tenantctl/` of a `file://` backend or of the rehearsal, `<prefix>.tenantctl/` in
an S3 backend's bucket), created on the first `up` with the store's atomic create (a link(2); an S3 PutObject
with `If-None-Match: *`), so two first runs agree on one id, and never regenerated while it exists.

"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from fleet.record_store import RecordStore, RecordStoreError, as_store
from tenancy.app_schema import ENVIRONMENTS_TABLE
from tenancy.environment_claim import EnvironmentIdError

ENVIRONMENTS = "environments"
TABLE = ENVIRONMENTS_TABLE
__all__ = ["EnvironmentIdError", "id_name", "id_path", "recorded_id"]


def id_name(env: str) -> str:
    return f"{ENVIRONMENTS}/{env}.json"


def id_path(records: Path, env: str) -> Path:
    """Where a folder store keeps the id."""
    return records / id_name(env)


def recorded_id(records: Path | RecordStore, env: str, create: bool = False) -> str | None:
    """The environment's id; made (once) when `create` and there is none. None: none recorded, none made."""
    store = as_store(records)
    existing = _read(store, env)
    if existing is not None or not create:
        return existing
    try:
        store.create(id_name(env), json.dumps({"environment_id": str(uuid.uuid4()), "name": env}) + "\n")
    except (OSError, RecordStoreError) as exc:
        raise EnvironmentIdError(f"cannot record the environment id: {exc}") from None
    # Whoever created it first, this run or another one at the same moment, that record is the id.
    return _read(store, env)


def _read(store: RecordStore, env: str) -> str | None:
    where = store.where(id_name(env))
    try:
        found = store.read(id_name(env))
    except RecordStoreError as exc:
        raise EnvironmentIdError(f"cannot read the environment id: {exc}") from None
    if found is None:
        return None
    try:
        return str(uuid.UUID(json.loads(found.text)["environment_id"]))
    except (ValueError, KeyError, TypeError):
        # Never replaced by a new one: the database still knows the old id, and a new one would be refused there.
        raise EnvironmentIdError(f"{where} does not hold an environment id; restore it from a backup of the "
                                 f"state (the database's {TABLE} row names it)") from None
