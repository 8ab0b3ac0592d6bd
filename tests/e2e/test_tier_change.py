"""A tier change on the real engine, in the rehearsal: one tenant upgraded to premium, then downgraded to basic.

The row keeps its id, created_at and history; the KMS key, the Secrets Manager secret and the signing secret stay.
The rehearsal applies its Kubernetes objects to its own API server (fleet.rehearsal_cluster), and the downgrade asks
that server for the namespace's PersistentVolumeClaims: refused while one is there, done once it is deleted, and the
namespace is gone from the server. The guard logic (and the refusal where objects are only rendered to files) is
tests/fleet/test_tier_change.py; the volume check itself, tests/fleet/test_namespace_volumes.py.
"""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from fleet import engine, rehearsal_cluster, stack_run
from fleet.rehearsal import STACK, STATE_FILE, RehearsalState, rehearsal_backend
from fleet.stack_run import StackJob
from fleet.tier_change import NAMESPACE_TYPE
from tests.conftest import ROOT
from tests.kube_cluster import eventually

pytestmark = pytest.mark.kubernetes_api  # the rehearsal applies to its own API server

GLOBEX = "c5ad57d3-7689-4bb8-8876-51f571580a7e"
KEPT = ("aws:kms/key:Key", "aws:secretsmanager/secret:Secret")
NAMESPACE = "/api/v1/namespaces/tenant-globex"
CLAIMS = f"{NAMESPACE}/persistentvolumeclaims"
CLAIM = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-0"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def _tenant(result, slug: str = "globex"):
    return next(t for t in result.tenants if t.slug == slug)


def _row(app_db) -> tuple:
    [(row_id, created_at, token)] = app_db.execute(
        "SELECT id, created_at, webhook_signing_secret_encrypted FROM tenant_configs WHERE tenant_id = %s", (GLOBEX,))
    return row_id, created_at, Fernet(app_db.fernet_key.encode()).decrypt(token.encode())


def _history(app_db) -> int:
    return app_db.execute("SELECT count(*) FROM enhancement_history WHERE tenant_id = %s", (GLOBEX,))[0][0]


def _resources(rehearsal) -> list[dict]:
    return rehearsal.stack(f"{STACK}.globex").export_stack().deployment.get("resources") or []


def _kept(resources) -> dict[str, str]:
    return {r["type"]: r["id"] for r in resources if r["type"] in KEPT}


def _namespace(resources) -> dict | None:
    return next((r for r in resources if r["type"] == NAMESPACE_TYPE), None)


def _spec(rehearsal) -> engine.StackSpec:
    passphrase = RehearsalState.load(rehearsal.state_dir / STATE_FILE).environment["secrets"]["passphrase"]
    return engine.StackSpec(rehearsal_backend(ROOT, rehearsal.state_dir, passphrase), f"{STACK}.globex")


def _set_tier(tenants_dir, tier: str) -> None:
    path = tenants_dir / "globex.yaml"
    path.write_text(path.read_text().replace("tier: basic", f"tier: {tier}").replace("tier: premium", f"tier: {tier}"))


def _cluster(rehearsal):
    """The rehearsal's API server (kept running between its runs), as its admin: the kubeconfig it writes."""
    kube = rehearsal_cluster.control_plane_for(rehearsal.state_dir)
    assert kube.adopt(), "the rehearsal left no API server running"
    return kube


def test_upgrade_then_downgrade_keeps_the_row_its_history_the_key_and_the_secrets(rehearsal, tenants_dir, app_db):
    (tenants_dir / "acme.yaml").unlink()  # one tenant: globex, basic
    assert rehearsal.up().ok
    app_db.execute("INSERT INTO enhancement_history (tenant_id) VALUES (%s)", (GLOBEX,))
    row, history, kept = _row(app_db), _history(app_db), _kept(_resources(rehearsal))
    assert len(kept) == len(KEPT)

    _set_tier(tenants_dir, "premium")
    upgrade = rehearsal.up(force=False)

    assert upgrade.ok, upgrade.errors + _tenant(upgrade).errors
    said = _tenant(upgrade).tier_change
    assert said.startswith("tier change basic -> premium: namespace tenant-globex and its 9 objects created"), said
    assert "credentials Secret" in said and "NOT KEPT" not in said and "row" in said
    resources = _resources(rehearsal)
    assert _namespace(resources)["protect"]
    assert (_row(app_db), _history(app_db), _kept(resources)) == (row, history, kept)

    kube = _cluster(rehearsal)
    try:
        created = kube.request("POST", CLAIMS, CLAIM)  # a volume claimed in the premium namespace
        assert created.ok, created.message

        _set_tier(tenants_dir, "basic")
        for operation in ("preview", "up"):  # refused before the engine runs: the stack's own job
            refused = stack_run.run(StackJob(_spec(rehearsal), operation, create=False))
            assert refused.status == "failed" and len(refused.errors) == 1, refused.errors
            assert "refused: namespace tenant-globex holds PersistentVolumeClaim(s) data-0" in refused.errors[0]
            assert "accept_volume_loss: [data-0]" in refused.errors[0]
        assert _namespace(_resources(rehearsal))["protect"]  # nothing changed: the guard is still on
        assert kube.request("GET", f"{CLAIMS}/data-0").ok

        assert kube.request("DELETE", f"{CLAIMS}/data-0").ok  # the operator moved the data and deleted the claim
        eventually(lambda: kube.request("GET", f"{CLAIMS}/data-0").status == 404, "the deleted claim is gone")
        preview = stack_run.run(StackJob(_spec(rehearsal), "preview", create=False))
        assert preview.status != "failed", preview.errors
        said = preview.tier_change
        assert said.startswith("tier change premium -> basic: namespace tenant-globex and its 9 objects deleted "
                               "(ResourceQuota, LimitRange, 4 NetworkPolicy, ServiceAccount, Role, RoleBinding)"), said
        assert said.endswith("volumes: none") and "NOT KEPT" not in said, said
        assert _namespace(_resources(rehearsal))["protect"]  # a preview lifts nothing

        downgrade = rehearsal.up(force=False)

        assert downgrade.ok, _tenant(downgrade).errors
        assert _tenant(downgrade).tier_change == said  # as previewed
        resources = _resources(rehearsal)
        assert _namespace(resources) is None
        assert not [r["urn"] for r in resources
                    if ((r.get("inputs") or {}).get("metadata") or {}).get("namespace") == "tenant-globex"]
        assert (_row(app_db), _history(app_db), _kept(resources)) == (row, history, kept)
        kube.stop()
        kube = _cluster(rehearsal)  # the run adopted the server and left it running again: ask it afresh
        eventually(lambda: kube.request("GET", NAMESPACE).status == 404, "tenant-globex gone from the API server")
    finally:
        kube.stop()  # lets go: the fixture's teardown stops it (rehearsal_cluster.stop_kept)
