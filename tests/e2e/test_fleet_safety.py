"""Ordinary operator actions never delete a tenant (fleet rule 3), on the real engine and the rehearsal's services.

Each test is a case from the fleet-safety issue that deleted rows on an earlier main: a missing file, another
tenants folder, a changed tenant_id, `previous_slugs` naming another tenant's stack, a preview that renamed.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from fleet.rehearsal import STACK
from fleet.rehearse import RehearseFailure, run_rehearse
from tests.tenant_text import tenant_yaml


def _ids(tenants_dir: Path) -> dict[str, str]:
    from tenancy.loader import load_tenants

    return {t.tenant.slug: str(t.tenant.tenant_id) for t in load_tenants(tenants_dir=tenants_dir).tenants}


def _rows(app_db) -> set[str]:
    return {str(r[0]) for r in app_db.execute("SELECT tenant_id FROM tenant_configs")}


def _backend_files(state_dir: Path) -> dict[str, str]:
    """Every file of the rehearsal's backend, by content digest: what a preview must leave as it found it."""
    backend = state_dir / "backend"
    return {str(p.relative_to(backend)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(backend.rglob("*")) if p.is_file()}


def _refused(call) -> RehearseFailure:
    try:
        call()
    except RehearseFailure as exc:
        return exc
    raise AssertionError("the run was not refused")


def test_a_missing_file_leaves_an_orphan_and_another_folder_is_refused(rehearsal, app_db, tenants_dir, tmp_path):
    ids = _ids(tenants_dir)
    assert rehearsal.up().ok
    app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (ids["globex"],))
    saved = (tenants_dir / "globex.yaml").read_text()
    (tenants_dir / "globex.yaml").unlink()

    orphaned = rehearsal.up()

    # The stack, its row and its history stay; the run says why it is not ok.
    assert not orphaned.ok and orphaned.rows_lost == 0 and orphaned.removed_tenants == []
    assert any(e.startswith(f"{STACK}.globex: orphan") for e in orphaned.errors)
    assert _rows(app_db) == set(ids.values()) and app_db.history_row_count() == 1
    assert orphaned.summary.get("delete", 0) == 0
    assert rehearsal.stack(f"{STACK}.globex").outputs()["tenant"].value["tenant_id"] == ids["globex"]

    # Another tenants folder on the same state: both live stacks would be orphans, above the bound of 1.
    other = tmp_path / "other-tenants"
    other.mkdir()
    (other / "initech.yaml").write_text(tenant_yaml("initech", tier="basic"))
    refused = _refused(lambda: run_rehearse(other, rehearsal.database_url, app_db.app_dsn, False,
                                            state_base=rehearsal.state_base))
    assert "refused before anything ran" in str(refused)
    assert any(f"{STACK}.acme" in d and f"{STACK}.globex" in d and "--max-removals" in d for d in refused.details)
    assert _rows(app_db) == set(ids.values())

    # The file back: the tenant is whole again, nothing was recreated.
    (tenants_dir / "globex.yaml").write_text(saved)
    back = rehearsal.up()
    assert back.ok and back.summary.get("create", 0) == 0 and back.rows_lost == 0


def test_a_changed_tenant_id_is_refused_and_changes_nothing(rehearsal, app_db, tenants_dir):
    ids = _ids(tenants_dir)
    assert rehearsal.up().ok
    text = (tenants_dir / "globex.yaml").read_text()
    new_id = str(uuid.uuid4())
    (tenants_dir / "globex.yaml").write_text(text.replace(ids["globex"], new_id))

    refused = _refused(rehearsal.up)

    assert any(ids["globex"] in d and new_id in d for d in refused.details), refused.details
    assert _rows(app_db) == set(ids.values())


def test_previous_slugs_never_take_over_another_tenants_stack(rehearsal, app_db, tenants_dir):
    ids = _ids(tenants_dir)
    assert rehearsal.up().ok
    # globex's file is gone, and a new client (its own tenant_id) claims globex's stack as its old name.
    (tenants_dir / "globex.yaml").unlink()
    (tenants_dir / "newco.yaml").write_text(tenant_yaml("newco", tier="basic", extra="previous_slugs: [globex]\n")
                                            .replace("newco-servicedesk-api-key", "globex-servicedesk-api-key"))

    refused = _refused(rehearsal.up)

    assert any(f"{STACK}.globex" in d and ids["globex"] in d for d in refused.details), refused.details
    assert _rows(app_db) == set(ids.values())
    assert rehearsal.stack(f"{STACK}.globex").outputs()["tenant"].value["tenant_id"] == ids["globex"]


def test_a_preview_of_a_rename_writes_nothing_to_the_backend(rehearsal, tenants_dir):
    assert rehearsal.up().ok
    text = (tenants_dir / "globex.yaml").read_text().replace("slug: globex", "slug: globex-inc")
    (tenants_dir / "globex.yaml").unlink()
    (tenants_dir / "globex-inc.yaml").write_text(text + "previous_slugs: [globex]\n")
    before = _backend_files(rehearsal.state_dir)

    preview = rehearsal.preview()

    assert _backend_files(rehearsal.state_dir) == before
    assert {t.slug: t.status for t in preview.tenants}["globex-inc"] == "skipped"
