"""The program under the real Pulumi engine: preview, up, refresh, renames, removals, policy and state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.rehearsal import STACK
from tenancy import credentials
from tests.conftest import ROOT
from tests.tenant_text import tenant_yaml

POLICY_PACK = str(ROOT / "tests" / "standins" / "policy-pack")


def _ids(tenants_dir: Path) -> dict[str, str]:
    from tenancy.loader import load_tenants

    return {t.tenant.slug: str(t.tenant.tenant_id) for t in load_tenants(tenants_dir=tenants_dir).tenants}


def _rows(app_db) -> dict[str, str]:
    return {str(r[0]): r[1] for r in app_db.execute("SELECT tenant_id, name FROM tenant_configs")}


def _signing_secret(app_db, tenant_id: str) -> str:
    token = app_db.execute("SELECT webhook_signing_secret_encrypted FROM tenant_configs WHERE tenant_id = %s",
                           (tenant_id,))[0][0]
    return credentials.decrypt(app_db.fernet_key, token)


def test_preview_of_a_new_tenant_shows_unknowns_and_changes_nothing(rehearsal, app_db, tenants_dir):
    assert rehearsal.up().ok
    rows = _rows(app_db)
    (tenants_dir / "initech.yaml").write_text(tenant_yaml("initech", tier="premium"))
    lines: list[str] = []

    result = rehearsal.preview()
    rehearsal.stack(f"{STACK}.initech").preview(color="never", on_output=lines.append)

    assert result.ok and result.operation == "preview"
    statuses = {t.slug: t for t in result.tenants}
    assert statuses["initech"].status == "created" and statuses["acme"].status == "unchanged"
    assert result.summary["create"] >= 20 and result.changes == result.summary["create"]
    assert any("kms_key_arn" in line and "[unknown]" in line for line in lines)
    assert _rows(app_db) == rows


@pytest.mark.kubernetes_api
def test_up_creates_everything_and_a_second_up_changes_nothing(rehearsal, app_db, tenants_dir):
    first = rehearsal.up()
    second = rehearsal.up()

    assert first.ok, first.as_dict()
    assert first.engine.startswith("v3.") and {t.status for t in first.tenants} == {"created"}
    assert all(t.checks == {"rls": True, "webhook": True} for t in first.tenants)
    assert set(_rows(app_db)) == set(_ids(tenants_dir).values())
    assert second.ok and second.changes == 0 and set(second.summary) == {"same"}
    # The second run's check results are the first run's, and say so.
    assert all(t.checked_now for t in first.tenants) and not any(t.checked_now for t in second.tenants)
    assert [t.checked_at for t in second.tenants] == [t.checked_at for t in first.tenants]
    assert all(t.checked_at for t in second.tenants)
    rehearsal.stack().up(color="never", expect_no_changes=True)  # the engine's own word for it


@pytest.mark.kubernetes_api
def test_the_rehearsals_api_server_holds_every_kubernetes_object_it_applied(rehearsal):
    """The objects are applied for real (kubernetes-validate checks the same manifests offline in
    tests/components/test_tenant_stack.py); the API server's own validation and admission accepted each."""
    from fleet import rehearsal_cluster

    assert rehearsal.up(keep_running=True).ok
    kube = rehearsal_cluster.control_plane_for(rehearsal.state_dir)
    assert kube.adopt()
    try:
        def names(path: str) -> list[str]:
            reply = kube.request("GET", path)
            assert reply.ok, reply.message
            return sorted(f"{i['metadata'].get('namespace', '')}/{i['metadata']['name']}" for i in reply.body["items"]
                          if i["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "ai-agents"
                          and "rehearsal-cluster-setup" not in i["metadata"]["labels"].values())

        # The platform stack's shared namespace and the premium tenant's own.
        assert names("/api/v1/namespaces") == ["/production", "/tenant-acme"]
        assert len(names("/apis/networking.k8s.io/v1/networkpolicies")) == 4
        assert names("/api/v1/secrets") == ["production/tenant-globex-credentials",
                                            "tenant-acme/tenant-acme-credentials"]
        # The PrometheusRule is the Prometheus Operator's CRD: the rehearsal's cluster set-up installs a stand-in.
        assert names("/apis/monitoring.coreos.com/v1/prometheusrules") == ["monitoring/tenant-globex-alerts",
                                                                           "tenant-acme/tenant-acme-alerts"]
        assert len(names("/api/v1/namespaces/monitoring/configmaps")) == 2  # the dashboards
    finally:
        kube.stop()  # lets go: the fixture stops it


def test_editing_one_tenant_updates_only_that_tenants_resources(rehearsal, tenants_dir, app_db):
    assert rehearsal.up().ok
    path = tenants_dir / "globex.yaml"
    path.write_text(path.read_text().replace("max_tokens: 500", "max_tokens: 800"))

    result = rehearsal.up()

    assert {t.slug: t.status for t in result.tenants} == {"acme": "unchanged", "globex": "updated"}
    prefs = app_db.execute("SELECT enhancement_preferences FROM tenant_configs WHERE tenant_id = %s",
                           (_ids(tenants_dir)["globex"],))[0][0]
    assert prefs["max_tokens"] == 800


def test_refresh_shows_a_row_edited_by_hand(rehearsal, tenants_dir, app_db):
    assert rehearsal.up().ok
    acme = _ids(tenants_dir)["acme"]
    app_db.execute("UPDATE tenant_configs SET name = 'Edited by hand' WHERE tenant_id = %s", (acme,))

    # Only the row is refreshed: the rehearsal's API server does not run between runs (its objects are read back by
    # tests/e2e/test_kubernetes_rehearsal.py).
    stack = rehearsal.stack(f"{STACK}.acme")
    row_urn = next(r["urn"] for r in stack.export_stack().deployment["resources"]
                   if r["urn"].endswith("::acme-tenant-config"))
    refreshed = stack.refresh(color="never", target=[row_urn])
    state = stack.export_stack().deployment["resources"]
    row = next(r for r in state if r["urn"].endswith("::acme-tenant-config"))
    restored = rehearsal.up()

    assert refreshed.summary.resource_changes.get("update") == 1
    assert row["outputs"]["name"] == "Edited by hand"
    assert restored.ok and _rows(app_db)[acme] == "Acme Corp MSP"


def test_a_database_url_change_and_a_rename_keep_the_row_history_and_signing_secret(rehearsal, tenants_dir, app_db):
    # globex is basic: a premium tenant's rename would replace its namespace, which the engine's guard refuses
    # (docs/operations.md).
    assert rehearsal.up().ok
    ids = _ids(tenants_dir)
    secret_before = _signing_secret(app_db, ids["globex"])
    for tenant_id in ids.values():
        app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s), (%s)", (tenant_id, tenant_id))
    text = (tenants_dir / "globex.yaml").read_text().replace("slug: globex", "slug: globex-corp")
    (tenants_dir / "globex.yaml").unlink()
    (tenants_dir / "globex-corp.yaml").write_text(text + "previous_slugs: [globex]\n")

    result = rehearsal.up(database_url=app_db.provisioner_dsn + "?sslmode=disable")
    # The tenant's stack is renamed with it (rehearsal.globex -> rehearsal.globex-corp): its state moves along.
    resources = rehearsal.stack(f"{STACK}.globex-corp").export_stack().deployment["resources"]

    assert result.ok, result.as_dict()
    assert result.rows_lost == 0 and set(_rows(app_db)) == set(ids.values())
    assert app_db.history_row_count() == 4
    assert _signing_secret(app_db, ids["globex"]) == secret_before  # the RandomPassword moved, not recreated
    assert result.summary.get("delete", 0) == 0 or "globex" not in result.removed_tenants
    names = {r["urn"].rsplit("::", 1)[-1] for r in resources}
    assert "globex-corp-tenant-config" in names and "globex-tenant-config" not in names
    assert (rehearsal.state_dir / "manifests").exists()


def test_tenantctl_destroy_removes_one_tenant_and_nothing_else(rehearsal, tenants_dir, app_db):
    """`tenantctl destroy --rehearsal` offboards the tenant's own stack on the real engine (tests/e2e/
    test_offboarding.py proves the guards and the tombstone); no other stack changes."""
    import subprocess
    import sys

    ids = _ids(tenants_dir)
    assert rehearsal.up().ok
    urns = lambda name: {r["urn"] for r in rehearsal.stack(name).export_stack().deployment.get("resources") or []}  # noqa: E731
    acme_before, globex_before = urns(f"{STACK}.acme"), urns(f"{STACK}.globex")

    result = subprocess.run(
        [sys.executable, "-m", "tenantctl", "destroy", "globex", "--rehearsal", "--state-dir",
         str(rehearsal.state_base), "--yes", "--without-export", "--tenants-dir", str(tenants_dir), "--database-url",
         app_db.provisioner_dsn],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert urns(f"{STACK}.globex") == set() and any(urn.endswith("::globex") for urn in globex_before)
    assert urns(f"{STACK}.acme") == acme_before
    assert set(_rows(app_db)) == {ids["acme"]}


def test_the_policy_pack_reports_a_violating_tenant(rehearsal):
    from pulumi.automation import ConfigValue, errors

    assert rehearsal.up().ok
    # The platform moves the shared namespace; the pack (left at its default, `production`) flags where globex goes.
    platform = rehearsal.stack()
    platform.set_config("tenant-onboarding:sharedNamespace", ConfigValue("elsewhere"))
    platform.up(color="never", on_output=lambda _line: None)
    lines: list[str] = []
    with pytest.raises(errors.CommandError):
        rehearsal.stack(f"{STACK}.globex").preview(color="never", policy_packs=[POLICY_PACK], on_output=lines.append)

    text = "\n".join(lines)
    assert "tenant-objects-in-tenant-namespace" in text and "globex" in text and "elsewhere" in text


def test_secrets_never_appear_in_clear_in_the_exported_state_or_on_disk(rehearsal, tenants_dir, app_db):
    from fleet.engine import export_state
    from fleet.rehearsal import STATE_FILE, RehearsalState

    assert rehearsal.up().ok
    exported = json.dumps([export_state(rehearsal.stack(name)) for name in (STACK, f"{STACK}.acme", f"{STACK}.globex")])
    checkpoints = "".join(path.read_text() for path in (rehearsal.state_dir / "backend").rglob("*.json"))
    config = "".join(path.read_text() for path in (rehearsal.state_dir / "workspace").glob("Pulumi.*.yaml"))
    state = RehearsalState.load(rehearsal.state_dir / STATE_FILE)
    secrets = [value for name, value in state.environment["secrets"].items() if name != "passphrase"]
    secrets += [_signing_secret(app_db, tenant_id) for tenant_id in _ids(tenants_dir).values()]

    assert len(secrets) >= 5 and '"ciphertext"' in exported and checkpoints
    for secret in secrets:
        assert secret not in exported and secret not in checkpoints and secret not in config
