"""`tenantctl restore`: take an offboarded tenant's KMS key and secret back from their deletion windows.

Offboarding (fleet.offboard_stack) leaves the tenant's stack as a tombstone, tagged with its tenant id, and
schedules the key's deletion (30 days) and the secret's (14 days). Within those windows this module:
1. finds the secret by the name the tenant's slug gives it, and refuses one whose `tenant_id` tag is another
   tenant's (identity is checked, not assumed);
2. restores it (RestoreSecret), then its key, the one that encrypts it (CancelKeyDeletion, EnableKey): a
   restored key left disabled could not decrypt the secret;
3. records both in the stack's `adopt` config, so that the next `up` of the re-added tenant file imports them
   instead of creating new ones (which fails on the secret's name), and takes the tombstone tag off.
It touches nothing else: the row, namespace and Kubernetes objects are created again by that `up`.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.naming import PROJECT, secretsmanager_name, split_stack_name
from components.settings import ADOPT
from fleet import engine
from fleet.offboard_stack import TAG_OFFBOARDED_AT, TAG_TENANT_ID

TAG_RESTORED_AT = "tenant:restored-at"


class RestoreError(Exception):
    """One line that says what could not be restored and why."""


@dataclass
class Restored:
    stack: str
    kms_key_id: str
    secret_arn: str


def restore_stack(spec: engine.StackSpec) -> Restored:
    from botocore.exceptions import BotoCoreError, ClientError
    from pulumi.automation import errors as auto_errors

    slug = split_stack_name(spec.name)[1]
    if slug is None:
        raise RestoreError(f"{spec.name} is a platform stack; restore takes back one tenant's stack")
    try:
        stack = engine.open_stack(spec, create=False)
        tags = stack.list_tags()
        if TAG_OFFBOARDED_AT not in tags:
            raise RestoreError(f"{spec.name} was not offboarded (no {TAG_OFFBOARDED_AT} tag): nothing to restore")
        tenant_id = tags.get(TAG_TENANT_ID)
        if not tenant_id:
            raise RestoreError(f"{spec.name} records no {TAG_TENANT_ID}: its key and secret cannot be identified")
        config = {k: v.value for k, v in stack.get_all_config().items()}
        key_id, secret_arn = _restore_in_aws(_clients(config), slug, tenant_id)
        from pulumi.automation import ConfigValue

        stack.set_config(f"{PROJECT}:{ADOPT}.kmsKeyId", ConfigValue(key_id), path=True)
        stack.set_config(f"{PROJECT}:{ADOPT}.secretArn", ConfigValue(secret_arn), path=True)
        stack.set_tag(TAG_RESTORED_AT, tags[TAG_OFFBOARDED_AT])
        stack.remove_tag(TAG_OFFBOARDED_AT)
    except auto_errors.StackNotFoundError:
        raise RestoreError(f"stack {spec.name} does not exist on this backend: nothing to restore") from None
    except auto_errors.CommandError as exc:
        raise RestoreError(f"{spec.name}: {str(exc).strip().splitlines()[-1]}") from None
    except ClientError as exc:
        raise RestoreError(f"AWS refused the restore: {exc.response['Error'].get('Message', exc)}") from None
    except BotoCoreError as exc:
        raise RestoreError(f"AWS cannot be reached: {exc}") from None
    return Restored(spec.name, key_id, secret_arn)


def _clients(config: dict[str, str]) -> tuple:
    """Secrets Manager and KMS clients where the stack's own AWS provider goes (its region; a local emulator's
    endpoint in a rehearsal)."""
    import boto3

    endpoint = config.get(f"{PROJECT}:awsEndpoint")
    options = {"region_name": config.get("aws:region") or "us-east-1"}
    if endpoint:  # a local emulator (ProviderSettings allows loopback only), which takes any credentials
        options.update(endpoint_url=endpoint, aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
    return boto3.client("secretsmanager", **options), boto3.client("kms", **options)


def _restore_in_aws(clients: tuple, slug: str, tenant_id: str) -> tuple[str, str]:
    from botocore.exceptions import ClientError

    secrets, kms = clients
    name = secretsmanager_name(slug)
    try:
        secret = secrets.describe_secret(SecretId=name)
    except ClientError as exc:
        if exc.response["Error"].get("Code") == "ResourceNotFoundException":
            raise RestoreError(f"the secret {name} is gone: its recovery window has passed, or it never "
                               "existed; re-add the tenant file to create it anew") from None
        raise
    owner = {t["Key"]: t["Value"] for t in secret.get("Tags", [])}.get("tenant_id")
    if owner != tenant_id:
        raise RestoreError(f"the secret {name} belongs to tenant {owner}, not {tenant_id}; nothing was restored")
    key = kms.describe_key(KeyId=secret["KmsKeyId"])["KeyMetadata"]
    if key["KeyState"] not in ("PendingDeletion", "Disabled", "Enabled"):
        raise RestoreError(f"the tenant's KMS key {key['KeyId']} is {key['KeyState']}: it cannot decrypt the secret")
    if secret.get("DeletedDate"):
        secrets.restore_secret(SecretId=secret["ARN"])
    if key["KeyState"] == "PendingDeletion":
        kms.cancel_key_deletion(KeyId=key["KeyId"])  # leaves the key disabled
    if key["KeyState"] != "Enabled":
        kms.enable_key(KeyId=key["KeyId"])
    return key["KeyId"], secret["ARN"]
