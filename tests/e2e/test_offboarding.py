"""The engine's guards and offboarding, on the real engine: a plain destroy is refused, offboarding goes through."""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest

from fleet.rehearsal import STACK
from services import aws_emulator
from tests.conftest import ROOT

KMS_KEY, SM_SECRET, ROW = "aws:kms/key:Key", "aws:secretsmanager/secret:Secret", ":TenantConfigRow"


def _state(stack) -> dict[str, dict]:
    """The stack's resources by type suffix of interest (key, secret, row), as its state records them."""
    resources = stack.export_stack().deployment.get("resources") or []
    return {kind: next((r for r in resources if r["type"].endswith(kind)), None) for kind in (KMS_KEY, SM_SECRET, ROW)}


def _aws(rehearsal, service: str):
    endpoint = aws_emulator.ensure_running(rehearsal.state_dir).endpoint
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")  # noqa: S106 (the emulator's dummy credentials)


def _rows(app_db) -> set[str]:
    return {str(r[0]) for r in app_db.execute("SELECT tenant_id FROM tenant_configs")}


def test_a_plain_destroy_is_refused_by_the_engine_and_a_removal_offboards_through_the_state(
        rehearsal, tenants_dir, app_db):
    """(a) `pulumi destroy` of a tenant stack meets `protect` and deletes nothing; (the fleet's removal path) with
    the file gone, offboard_stack lifts the guards in the state and the destroy then goes through. It first
    resolves what interrupted runs left: the key's create pending (adopted, so destroyed too) and the secret's
    delete, which AWS had carried out (resumed: asked again, AWS would refuse a secret marked deleted)."""
    from pulumi.automation import errors

    from fleet.offboard_stack import TAG_OFFBOARDED_AT, offboard_stack

    assert rehearsal.up().ok
    stack = rehearsal.stack(f"{STACK}.acme")
    before = _state(stack)
    rows = _rows(app_db)
    lines: list[str] = []

    with pytest.raises(errors.CommandError):
        stack.destroy(color="never", on_output=lines.append)

    assert "protect" in "\n".join(lines)
    assert _state(stack) == before and all(before.values())
    assert _rows(app_db) == rows
    key = _aws(rehearsal, "kms").describe_key(KeyId=before[KMS_KEY]["id"])["KeyMetadata"]
    assert key["KeyState"] == "Enabled"
    assert "DeletedDate" not in _aws(rehearsal, "secretsmanager").describe_secret(SecretId=before[SM_SECRET]["id"])

    (tenants_dir / "acme.yaml").unlink()  # a removal: the program can no longer run for acme
    rehearsal.leave_pending(f"{STACK}.acme", "::acme-kms-key")
    _aws(rehearsal, "secretsmanager").delete_secret(SecretId=before[SM_SECRET]["id"], RecoveryWindowInDays=14)
    rehearsal.leave_pending(f"{STACK}.acme", "::acme-credentials", "deleting")
    outcome = offboard_stack(_spec(rehearsal, "acme"))

    assert outcome.ok, outcome.errors
    assert [note.split(" (")[0].split(" was ")[0] for note in outcome.recovered] == [
        "adopted acme-kms-key", "deleting acme-credentials"], outcome.recovered
    assert outcome.tenant_deleted and _state(stack) == {KMS_KEY: None, SM_SECRET: None, ROW: None}
    assert TAG_OFFBOARDED_AT in stack.list_tags()
    assert _aws(rehearsal, "kms").describe_key(KeyId=before[KMS_KEY]["id"])["KeyMetadata"]["KeyState"] == \
        "PendingDeletion"
    assert "DeletedDate" in _aws(rehearsal, "secretsmanager").describe_secret(SecretId=before[SM_SECRET]["id"])


def _spec(rehearsal, slug: str):
    from fleet import engine
    from fleet.rehearsal import STATE_FILE, RehearsalState, rehearsal_backend

    passphrase = RehearsalState.load(rehearsal.state_dir / STATE_FILE).environment["secrets"]["passphrase"]
    return engine.StackSpec(rehearsal_backend(ROOT, rehearsal.state_dir, passphrase), f"{STACK}.{slug}")


def _tenantctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tenantctl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_tenantctl_destroy_offboards_one_tenant_keeps_a_tombstone_and_restore_takes_it_back(
        rehearsal, tenants_dir, app_db):
    """(b) `tenantctl destroy SLUG --yes` lifts the guards, destroys, and leaves the stack with its history and
    tags; (c) the secret's recovery window ends before the key's deletion window; within them, `tenantctl restore`
    and an `up` bring the same key and secret back (no failure on the secret's name)."""
    assert rehearsal.up().ok
    globex, acme = rehearsal.stack(f"{STACK}.globex"), rehearsal.stack(f"{STACK}.acme")
    before, acme_before = _state(globex), _state(acme)
    updates_before = len(globex.history())
    rows = _rows(app_db)

    where = ("--rehearsal", "--state-dir", str(rehearsal.state_base), "--database-url", app_db.provisioner_dsn,
             "--tenants-dir", str(tenants_dir))
    result = _tenantctl("destroy", "globex", *where, "--yes", "--without-export")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    tags = globex.list_tags()
    assert tags["tenant:offboarded-at"].endswith("Z") and tags["tenant:slug"] == "globex"
    assert tags["tenant:id"] == before[ROW]["inputs"]["tenant_id"]
    assert len(globex.history()) > updates_before  # the stack and its history stay
    assert _state(globex) == {KMS_KEY: None, SM_SECRET: None, ROW: None}
    assert _rows(app_db) == rows - {before[ROW]["inputs"]["tenant_id"]}
    assert "offboarding" not in str(globex.get_all_config())
    assert _state(acme) == acme_before
    key = _aws(rehearsal, "kms").describe_key(KeyId=before[KMS_KEY]["id"])["KeyMetadata"]
    secret = _aws(rehearsal, "secretsmanager").describe_secret(SecretId=before[SM_SECRET]["id"])
    assert key["KeyState"] == "PendingDeletion"
    # Both dates are when AWS deletes for good: the secret (14 days) goes well before its key (30 days).
    assert (key["DeletionDate"] - secret["DeletedDate"]).days >= 15

    restored = _tenantctl("restore", "globex", *where)
    again = rehearsal.up()

    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert again.ok, [t.errors for t in again.tenants]
    after = _state(globex)
    assert after[KMS_KEY]["id"] == before[KMS_KEY]["id"] and after[SM_SECRET]["id"] == before[SM_SECRET]["id"]
    assert after[KMS_KEY]["protect"] and after[SM_SECRET]["retainOnDelete"] and after[ROW]["protect"]
    assert _aws(rehearsal, "kms").describe_key(KeyId=before[KMS_KEY]["id"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert "DeletedDate" not in _aws(rehearsal, "secretsmanager").describe_secret(SecretId=before[SM_SECRET]["id"])
    assert "tenant:offboarded-at" not in globex.list_tags() and _rows(app_db) == rows
    assert rehearsal.up().ok  # the adoption is done once; later runs are plain ups
