"""The export record beside the state (fleet.export_records) and the gate of a removal `up` offboards: refused
without a recorded export that covers the tenant now, run with one or with --without-export. No engine, no
database: the stack runs are stand-ins (tests/fleet/test_release_gate.Runs), the store a folder, the tenant's
row as the gate reads it a value."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fleet import export_records
from fleet import project_runs as fleet_command
from fleet import tenant_export as fleet_tenant_export
from fleet.record_store import FileRecords
from fleet.rollout import Selection, run_fleet
from fleet.stack_identity import StackIdentity
from tenancy.tenant_export import CurrentTenant, dumps
from tests.fleet.test_release_gate import FLEET, Runs, backend, digests, spec_for  # noqa: F401
from tests.tenancy.test_tenant_export import CIPHERTEXT, HISTORY, NOW, ROW, TENANT_ID, exported

HOOLI = TENANT_ID  # the removed tenant: the export's tenant


@pytest.fixture(scope="module")
def operator_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def current(**changes) -> CurrentTenant:
    """The tenant as the export holds it: same row, same counts."""
    counts = {"tenant_configs": 1, "enhancement_history": len(HISTORY), "ticket_history": 0, "system_inventory": 0}
    return CurrentTenant(TENANT_ID, "prod", {**ROW, **changes.pop("row", {})}, {**counts, **changes})


def recorded(tmp_path, key, made=NOW, env="prod") -> FileRecords:
    store = FileRecords(tmp_path / "records")
    document = exported(key, made)
    document["manifest"]["environment"] = env
    text = dumps(document)
    export_records.write_record(store, export_records.record_of(document["manifest"], "acme.export",
                                                                hashlib.sha256(text.encode()).hexdigest()))
    return store


def refusals(store, now=NOW + timedelta(hours=1), now_tenant=None):
    return export_records.removal_refusals("prod", {"acme": TENANT_ID}, lambda: store,
                                           lambda _id: now_tenant or current(), "--env prod", now)


def test_the_record_holds_what_the_gate_needs_and_no_secret(tmp_path, operator_key):
    store = recorded(tmp_path, operator_key)
    found = store.read(export_records.record_name("prod", TENANT_ID))
    record = json.loads(found.text)

    assert record["tenant_id"] == TENANT_ID and record["slug"] == "acme" and record["environment"] == "prod"
    assert record["row"]["id"] == ROW["id"] and len(record["row"]["sha256"]) == 64
    assert record["tables"]["enhancement_history"] == 1 and record["created_at"].startswith("2026-12-04T12:00")
    assert record["file"]["name"] == "acme.export" and len(record["file"]["sha256"]) == 64
    # No key material, no part, no row value: only what the gate compares.
    assert "encryption" not in record and "parts" not in record
    for secret in (CIPHERTEXT, "Acme", ROW["provisioning_owner"], "ephemeral"):
        assert secret not in found.text


def test_a_newer_export_replaces_the_record(tmp_path, operator_key):
    recorded(tmp_path, operator_key, NOW - timedelta(hours=30))
    store = recorded(tmp_path, operator_key, NOW)

    assert refusals(store) == {}


def test_a_removal_without_a_recorded_export_is_refused_with_what_to_run(tmp_path):
    [why] = refusals(FileRecords(tmp_path / "records")).values()

    assert why.startswith("prod.acme: removal refused, nothing offboarded") and "no export of it is recorded" in why
    assert f"tenantctl export acme --env prod --tenant-id {TENANT_ID} --recipient KEY.pub --out FILE" in why
    assert "--without-export" in why


def test_a_fresh_recorded_export_of_the_tenant_as_it_is_lets_the_removal_run(tmp_path, operator_key):
    assert refusals(recorded(tmp_path, operator_key)) == {}


@pytest.mark.parametrize(("store_kwargs", "now_tenant", "now", "expected"), [
    ({}, None, NOW + timedelta(hours=25), "25.0 h old"),
    ({"env": "staging"}, None, None, "no export of it is recorded"),  # another environment's export
    ({}, current(row={"name": "Acme Corp"}), None, "the tenant's row changed since"),
    ({}, current(row={"id": "another-row"}), None, "the tenant's row now is another-row"),
    ({}, current(ticket_history=3), None, "ticket_history: 0 exported, 3 now"),
])
def test_a_stale_or_mismatching_recorded_export_is_refused(tmp_path, operator_key, store_kwargs, now_tenant, now,
                                                          expected):
    store = recorded(tmp_path, operator_key, **store_kwargs)

    [why] = refusals(store, now or NOW + timedelta(hours=1), now_tenant).values()

    assert expected in why and "removal refused" in why


def test_a_malformed_record_or_an_unreadable_row_is_a_refusal_not_a_traceback(tmp_path, operator_key):
    store = FileRecords(tmp_path / "records")
    store.create(export_records.record_name("prod", TENANT_ID), "not json")
    [why] = refusals(store).values()
    assert "is not an export record" in why

    def unreadable(_id):
        raise fleet_tenant_export.ExportError("reading tenant x from db: connection refused")

    store = recorded(tmp_path / "b", operator_key)
    [why] = export_records.removal_refusals("prod", {"acme": TENANT_ID}, lambda: store, unreadable, "--env prod",
                                            NOW).values()
    assert "connection refused" in why


# ---- the rollout: a refused removal fails the run, the rest runs ----

def selection(removed=("acme-old",)) -> Selection:
    identities = {f"prod.{t.slug}": StackIdentity(f"prod.{t.slug}", str(t.tenant_id)) for t in FLEET}
    identities.update({f"prod.{slug}": StackIdentity(f"prod.{slug}", HOOLI) for slug in removed})
    return Selection("prod", True, list(FLEET), removed=list(removed), identities=identities)


def test_a_refused_removal_is_a_failed_outcome_and_the_other_stacks_run(monkeypatch, backend):  # noqa: F811
    runs = Runs(monkeypatch)
    result = run_fleet(selection(("acme-old", "hooli")), "up", spec_for(backend), force=True,
                       refused_removals={"acme-old": "prod.acme-old: removal refused, nothing offboarded"})

    assert "prod.acme-old" not in runs.ran and "prod.hooli" in runs.ran and "prod.wayne" in runs.ran
    refused = next(o for o in result.removed if o.stack == "prod.acme-old")
    assert refused.status == "failed" and refused.errors == ["prod.acme-old: removal refused, nothing offboarded"]
    assert not result.ok and result.tally()["failed"] == 1


class Project:
    """The project run of `prod` with its selection, store and the tenant's row stood in."""

    def __init__(self, monkeypatch, backend, tmp_path) -> None:  # noqa: F811
        self.backend, self.store = backend, FileRecords(tmp_path / "records")
        self.runs = Runs(monkeypatch)
        monkeypatch.setattr(fleet_command.upgrade_guard, "refuse_unmigrated", lambda *_a: None)
        monkeypatch.setattr(fleet_command.desired_state, "deployed_commit", lambda _root: "a" * 40)
        monkeypatch.setattr(fleet_command, "fleet_selection", lambda *_a, **_k: (selection(), ["prod"]))
        monkeypatch.setattr(fleet_command, "digest_inputs", lambda *_a: lambda: (object(), None))
        monkeypatch.setattr(export_records, "store_for", lambda _backend: self.store)
        monkeypatch.setattr(fleet_tenant_export, "current_tenant", lambda _url, _id, _env: current())

    def run(self, operation: str = "up", **options):
        from tests.conftest import ROOT

        target = fleet_command.FleetEnvironment("prod", self.backend, lambda _id: spec_for(self.backend),
                                                lambda _create: None, "--env prod", database_url=lambda: "pg://x")
        return fleet_command.run(ROOT, ROOT / "tenants", "prod", operation, FLEET, None, "HEAD~1", 2, lambda _l: None,
                                 target=target, force=True, **options)


@pytest.fixture
def project(monkeypatch, backend, tmp_path, digests) -> Project:  # noqa: F811
    return Project(monkeypatch, backend, tmp_path)


def test_up_refuses_a_removal_without_a_recorded_export(project):
    result = project.run()

    assert "prod.acme-old" not in project.runs.ran and "prod.wayne" in project.runs.ran
    [refused] = result.removed
    assert refused.status == "failed" and "tenantctl export acme-old --env prod" in refused.errors[0]
    assert not result.ok


def test_up_offboards_a_removal_its_recorded_export_covers(project, operator_key, tmp_path, monkeypatch):
    project.store = recorded(tmp_path, operator_key)
    monkeypatch.setattr(export_records, "removal_refusals", _with_now(export_records.removal_refusals))
    result = project.run()

    assert project.runs.ran[-1] == "prod.acme-old" and project.runs.jobs[-1].operation == "offboard"
    assert result.ok


def test_up_without_export_offboards_and_names_the_loss(project):
    result = project.run(without_export=True)

    assert project.runs.ran[-1] == "prod.acme-old" and result.ok
    assert any("without an export" in r and "acme-old" in r for r in result.remarks)


def test_a_preview_of_a_removal_without_a_recorded_export_says_up_will_refuse_it(project):
    result = project.run("preview")

    assert project.runs.jobs[-1].spec.name == "prod.acme-old" and project.runs.jobs[-1].operation == "destroy-preview"
    [said] = [r for r in result.remarks if "acme-old" in r]
    assert said.startswith("`up` will refuse this removal") and "tenantctl export acme-old --env prod" in said
    assert result.ok  # a preview refuses nothing: it says what `up` will do


def test_a_preview_of_a_removal_its_recorded_export_covers_says_nothing_of_it(project, operator_key, tmp_path,
                                                                              monkeypatch):
    project.store = recorded(tmp_path, operator_key)
    monkeypatch.setattr(export_records, "removal_refusals", _with_now(export_records.removal_refusals))
    result = project.run("preview")

    assert project.runs.jobs[-1].operation == "destroy-preview"
    assert not [r for r in result.remarks if "acme-old" in r]


def _with_now(gate):
    """The gate at NOW + 1 h: the test export was made at NOW."""
    return lambda *args, **kwargs: gate(*args, **{**kwargs, "now": NOW + timedelta(hours=1)})
