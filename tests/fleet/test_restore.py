"""`tenantctl restore`'s AWS side against moto: what it takes back, and what it refuses (the engine: tests/e2e)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from fleet.restore import RestoreError, _restore_in_aws

TENANT_ID = "20ab6862-0914-44a5-8827-42ff80980e24"


@pytest.fixture
def offboarded():
    """A tenant's key and secret as offboarding leaves them: both scheduled for deletion."""
    with mock_aws():
        kms, secrets = boto3.client("kms", region_name="us-east-1"), boto3.client("secretsmanager",
                                                                                  region_name="us-east-1")
        key = kms.create_key()["KeyMetadata"]
        secret = secrets.create_secret(Name="tenants/acme/credentials", KmsKeyId=key["Arn"],
                                       Tags=[{"Key": "tenant_id", "Value": TENANT_ID}])
        secrets.delete_secret(SecretId=secret["ARN"], RecoveryWindowInDays=14)
        kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=30)
        yield secrets, kms, key, secret


def test_restore_takes_back_the_secret_and_its_key_enabled(offboarded):
    secrets, kms, key, secret = offboarded
    assert _restore_in_aws((secrets, kms), "acme", TENANT_ID) == (key["KeyId"], secret["ARN"])
    assert "DeletedDate" not in secrets.describe_secret(SecretId=secret["ARN"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_restore_refuses_another_tenants_secret(offboarded):
    secrets, kms, key, secret = offboarded
    with pytest.raises(RestoreError, match="belongs to tenant .*nothing was restored"):
        _restore_in_aws((secrets, kms), "acme", "00000000-0000-4000-8000-000000000000")
    assert "DeletedDate" in secrets.describe_secret(SecretId=secret["ARN"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_restore_after_the_window_says_so(offboarded):
    secrets, kms, _key, secret = offboarded
    secrets.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
    with pytest.raises(RestoreError, match="recovery window has passed"):
        _restore_in_aws((secrets, kms), "acme", TENANT_ID)
