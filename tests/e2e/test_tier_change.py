"""A tier change on the real engine, in the rehearsal: one tenant upgraded to premium, then downgraded to basic.

The row keeps its id, created_at and history; the KMS key, the Secrets Manager secret and the signing secret stay.
The rehearsal renders its Kubernetes objects (no cluster to ask for volumes), so the downgrade is refused until
the tenant file names that loss with "*". The guard logic is tests/fleet/test_tier_change.py; the volume check on
a real API server, tests/fleet/test_namespace_volumes.py.
"""

from __future__ import annotations

from cryptography.fernet import Fernet

from fleet import engine, stack_run
from fleet.rehearsal import STACK, STATE_FILE, RehearsalState, rehearsal_backend
from fleet.stack_run import StackJob
from fleet.tier_change import NAMESPACE_TYPE
from tests.conftest import ROOT

GLOBEX = "c5ad57d3-7689-4bb8-8876-51f571580a7e"
KEPT = ("aws:kms/key:Key", "aws:secretsmanager/secret:Secret")


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


def _set_tier(tenants_dir, tier: str, extra: str = "") -> None:
    path = tenants_dir / "globex.yaml"
    text = path.read_text().split("tier_change:")[0].replace("tier: basic", f"tier: {tier}")
    path.write_text(text.replace("tier: premium", f"tier: {tier}") + extra)


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

    _set_tier(tenants_dir, "basic")
    for operation in ("preview", "up"):  # refused before the engine runs: the stack's own job, no whole rehearsal
        refused = stack_run.run(StackJob(_spec(rehearsal), operation, create=False))
        assert refused.status == "failed" and len(refused.errors) == 1, refused.errors
        assert "refused: namespace tenant-globex is not on a cluster" in refused.errors[0]
        assert "rendered to" in refused.errors[0] and "accept_volume_loss: ['*']" in refused.errors[0]
    assert _namespace(_resources(rehearsal))["protect"]  # nothing changed: the guard is still on

    _set_tier(tenants_dir, "basic", 'tier_change:\n  accept_volume_loss: ["*"]\n')
    preview = rehearsal.preview(force=False)
    assert preview.ok, _tenant(preview).errors
    said = _tenant(preview).tier_change
    assert said.startswith("tier change premium -> basic: namespace tenant-globex and its 9 objects deleted "
                           "(ResourceQuota, LimitRange, 4 NetworkPolicy, ServiceAccount, Role, RoleBinding)"), said
    assert "volumes: not checked (objects rendered to" in said and "NOT KEPT" not in said
    assert _namespace(_resources(rehearsal))["protect"]  # a preview lifts nothing

    downgrade = rehearsal.up(force=False)

    assert downgrade.ok, _tenant(downgrade).errors
    assert _tenant(downgrade).tier_change.split("; volumes")[0] == said.split("; volumes")[0]  # as previewed
    resources = _resources(rehearsal)
    assert _namespace(resources) is None
    assert not [r["urn"] for r in resources
                if ((r.get("inputs") or {}).get("metadata") or {}).get("namespace") == "tenant-globex"]
    assert (_row(app_db), _history(app_db), _kept(resources)) == (row, history, kept)
