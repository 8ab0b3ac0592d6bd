"""Creates an interrupted run left pending are adopted or redone by the next `up`: no duplicate, no failure."""

from __future__ import annotations

import boto3

from fleet.rehearsal import STACK
from services import aws_emulator


def _kms(rehearsal, arn: str):
    endpoint = aws_emulator.ensure_running(rehearsal.state_dir).endpoint
    return boto3.client("kms", endpoint_url=endpoint, region_name=arn.split(":")[3], aws_access_key_id="test",
                        aws_secret_access_key="test")  # noqa: S106


def test_an_interrupted_key_and_secret_create_are_adopted_not_duplicated(rehearsal, tenants_dir, app_db):
    assert rehearsal.up().ok
    key_arn = rehearsal.stack(f"{STACK}.globex").outputs()["tenant"].value["kms_key_arn"]
    key = rehearsal.leave_pending(f"{STACK}.globex", "::globex-kms-key")
    # The row's create too: the provider adopts the row it finds, so the pending create is only cleared and redone.
    rehearsal.leave_pending(f"{STACK}.globex", "::globex-tenant-config")
    first = rehearsal.up()
    rehearsal.leave_pending(f"{STACK}.globex", "::globex-kms-key", None)  # a create the engine lost
    secret = rehearsal.leave_pending(f"{STACK}.globex", "::globex-credentials")
    second = rehearsal.up()

    assert first.ok and second.ok, (first.as_dict(), second.as_dict())
    recovered = {t.slug: t.recovered for t in [*first.tenants, *second.tenants] if t.recovered}
    assert [note.split(" (")[0] for note in recovered["globex"]] == ["adopted globex-credentials",
                                                                     "adopted globex-kms-key"]
    assert "the engine had not recorded" in recovered["globex"][1]
    assert any(note.startswith("adopted globex-kms-key") for t in first.tenants for note in t.recovered)
    assert any("globex-tenant-config" in note and "this run finishes it" in note
               for t in first.tenants for note in t.recovered), [t.recovered for t in first.tenants]
    assert app_db.execute("SELECT count(*) FROM tenant_configs") == [(2,)]
    after = rehearsal.stack(f"{STACK}.globex")
    assert after.outputs()["tenant"].value["kms_key_arn"] == key_arn
    kms = _kms(rehearsal, key_arn)
    tenant_keys = [k["KeyId"] for k in kms.list_keys()["Keys"]
                   if {"TagKey": "tenant_id", "TagValue": key["inputs"]["tags"]["tenant_id"]}
                   in kms.list_resource_tags(KeyId=k["KeyId"]).get("Tags", [])
                   and kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"] != "PendingDeletion"]
    assert tenant_keys == [key["id"]]
    resources = {r["urn"]: r for r in after.export_stack().deployment["resources"]}
    assert resources[secret["urn"]]["id"] == secret["id"] and resources[key["urn"]]["id"] == key["id"]
    assert any(urn.endswith("::globex-tenant-config") for urn in resources)
    assert not after.export_stack().deployment.get("pending_operations")
