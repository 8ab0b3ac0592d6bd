"""Exports recorded beside an environment's state, and the export gate of a removal `up` offboards.

`tenantctl export` writes, besides the encrypted file, the export's manifest to the environment's record store
(fleet.record_store: the rehearsal's state folder, or a project `file://` or `s3://` backend's), as
`exports/<env>/<tenant_id>.json`: only what offboarding's gate compares (tenant id and slug, environment, the
tenant_configs row's id and digest, the row counts, when it was made) and the file's name and SHA-256. No key,
no row, no secret: the record says an export exists, the file holds it.

`tenantctl up --changed-since` offboards a tenant whose file the range removed (fleet.rollout). That removal is
refused, its stack left as it is and the run failing, unless the tenant's recorded export passes the gate
`tenantctl destroy --export` applies (tenancy.tenant_export.gate_problems: fresh, same tenant and environment,
the tenant's row and counts as they are now), or `up --without-export` names the loss.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from components.naming import tenant_stack_name
from fleet.record_store import RecordStore, RecordStoreError
from tenancy.tenant_export import CurrentTenant, ExportError, gate_problems

# What the record keeps of a manifest: what the gate reads, and what names the export to a person.
RECORDED = ("tenant_id", "slug", "environment", "environment_id", "tables", "created_at")
ROW_KEYS = ("id", "sha256", "created_at", "updated_at")


class ExportRecordError(Exception):
    """The record could not be written or read; one line, without a secret."""


def record_name(env: str, tenant_id: str) -> str:
    return f"exports/{env}/{tenant_id}.json"


def record_of(manifest: dict, file_name: str, file_sha256: str) -> dict:
    """The record of an export: its manifest's identity, row and counts, and the file's name and checksum."""
    record = {key: manifest.get(key) for key in RECORDED}
    record["row"] = {key: manifest["row"].get(key) for key in ROW_KEYS}
    record["file"] = {"name": file_name, "sha256": file_sha256}
    return record


def store_for(backend) -> RecordStore:
    """The record store beside the environment's state; ExportRecordError where tenantctl keeps none."""
    from fleet.record_store import as_store
    from fleet.state_folder import UnsupportedBackend, project_store, rehearsal_records

    try:
        return (as_store(rehearsal_records(Path(backend.backend_dir).parent)) if backend.local
                else project_store(backend.project_root))
    except UnsupportedBackend as exc:
        raise ExportRecordError(str(exc)) from None


def write_record(store: RecordStore, record: dict) -> str:
    """The record, replacing the tenant's earlier one (the newest export is the one the gate reads); where."""
    name = record_name(record["environment"], record["tenant_id"])
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    try:
        for _attempt in range(3):
            found = store.read(name)
            if (store.replace(name, text, found.version) if found else store.create(name, text)):
                return store.where(name)
    except RecordStoreError as exc:
        raise ExportRecordError(str(exc)) from None
    raise ExportRecordError(f"{store.where(name)} changed while this export wrote it: run the export again")


def read_record(store: RecordStore, env: str, tenant_id: str) -> dict | None:
    name = record_name(env, tenant_id)
    try:
        found = store.read(name)
    except RecordStoreError as exc:
        raise ExportRecordError(str(exc)) from None
    if found is None:
        return None
    try:
        record = json.loads(found.text)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not all(key in record for key in ("tenant_id", "environment", "created_at",
                                                                        "row", "tables")) \
            or not isinstance(record["row"], dict) or not isinstance(record["tables"], dict):
        raise ExportRecordError(f"{store.where(name)} is not an export record: make a new export")
    return record


def removal_refusals(env: str, removals: dict[str, str | None], store: Callable[[], RecordStore],
                     current: Callable[[str], CurrentTenant], option: str,
                     now: datetime | None = None) -> dict[str, str]:
    """Each removal (slug -> its stack's tenant_id) whose tenant no recorded export covers as it is now, with why
    and what to run; {} when every one is covered. `store()` and `current(tenant_id)` are read only when there is
    a removal; `option` names the environment as a command does (`--env prod`, `--rehearsal ...`)."""
    refusals: dict[str, str] = {}
    now = now or datetime.now(UTC)
    for slug, tenant_id in removals.items():
        stack = tenant_stack_name(env, slug)
        hint = (f"run `tenantctl export {slug} {option} --tenant-id {tenant_id or 'ID'} --recipient KEY.pub --out "
                f"FILE` (it records the export beside the state) and `up` again, or pass --without-export to "
                "offboard without one (what the offboard deletes is then kept nowhere)")
        try:
            if tenant_id is None:
                raise ExportRecordError(f"stack {stack} records no tenant_id")
            record = read_record(store(), env, tenant_id)
            problems = ["no export of it is recorded"] if record is None else \
                gate_problems(record, current(tenant_id), now)
        except (ExportRecordError, ExportError) as exc:
            problems = [str(exc)]
        if problems:
            refusals[slug] = (f"{stack}: removal refused, nothing offboarded: no recorded export covers tenant {slug} "
                              f"as it is now ({'; '.join(problems)}): {hint}")
    return refusals
