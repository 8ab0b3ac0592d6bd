"""What an interrupted run left in a stack's checkpoint as pending operations, resolved before the next `up`.

The engine records an operation before it asks the provider, and clears it when the provider answers. A
run killed in between leaves the operation pending, and the engine then forgets it: an interrupted create
of an object with a name of its own (a secret, an alias) fails for ever after on the name, and one with a
generated id (the KMS key) is created a second time. So, before `up` (rule 2: a preview only reports):

- a pending create is looked for in the cloud: by name (secret, alias), or by the tenant_id tag written at
  create time (KMS key). Found, it is adopted into the state with its id; absent, the pending create is
  cleared and the run creates it. A key that cannot be told apart (two candidates) is tagged
  `tenant:unadopted` and reported, never deleted (rule 4);
- every other pending create is of an object the run redoes idempotently (a row the provider adopts,
  a random value, a rendered manifest, a secret version), and is cleared;
- an interrupted update or delete is cleared and so resumed: the next `up` compares the program with the
  state, which still holds the resource as it was before the interruption. The resource of an interrupted
  delete is refreshed first: a delete that AWS carried out (a key scheduled for deletion, a secret marked
  deleted) leaves the state, instead of failing when it is asked for again.

`tenantctl destroy` (fleet.offboard_stack) resolves them the same way before its destroy.

A create can also be lost without a trace: the engine records a create whose provider call failed as one that
made nothing, and drops its pending operation, though AWS may have made the object (the provider stopped or
crashed under it: issue 19). So a tenant stack whose state holds its TenantStack but no KMS key, and no pending
create of one, is treated as a pending create of its key: the key tagged for it is adopted, several are tagged
and reported, none is nothing to do. (The alias and the secret have names of their own: a lost create of one
fails the next `up` on the name, loudly, rather than making a second object.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.naming import PROJECT, TENANT_STACK_TYPE
from fleet import engine
from fleet.stack_identity import TAG_TENANT_ID

KEY, ALIAS, SECRET = "aws:kms/key:Key", "aws:kms/alias:Alias", "aws:secretsmanager/secret:Secret"
LOOKED_FOR = (KEY, ALIAS, SECRET)  # what an interrupted create is looked for in the cloud (`lookup`)
AWS_PROVIDER = "pulumi:providers:aws"
UNADOPTED_TAG = "tenant:unadopted"


@dataclass
class Found:
    id: str
    outputs: dict[str, Any]


@dataclass
class Unadoptable:
    ids: list[str]


Lookup = Callable[[dict], "Found | Unadoptable | None"]


def pending(deployment: dict) -> list[dict]:
    return list(deployment.get("pending_operations") or [])


def describe(operation: dict) -> str:
    resource = operation.get("resource") or {}
    return f"{operation.get('type', '?')} {engine.resource_name(resource.get('urn', '::?'))} ({resource.get('type')})"


def lost_key(deployment: dict, stack: str, tenant_id: Callable[[], str | None]) -> dict | None:
    """The KMS key of a tenant stack whose state holds its TenantStack but neither the key nor a pending create
    of it, as the resource a pending create would hold (what `_key` looks for: the tenant_id and stack tags);
    None for any other stack. The engine records the TenantStack before it asks for the key, its child.
    `tenant_id` is asked only for such a stack."""
    resources = deployment.get("resources") or []
    if any(r.get("type") == KEY for r in resources) or any(
            (op.get("resource") or {}).get("type") == KEY for op in pending(deployment)):
        return None
    components = [r for r in resources if r.get("type") == TENANT_STACK_TYPE]
    providers = [r for r in resources if r.get("type") == AWS_PROVIDER and r.get("id")]
    if len(components) != 1 or len(providers) != 1:
        return None
    tenant = tenant_id()
    if not tenant:
        return None
    parent = components[0]["urn"]
    prefix, kind, name = parent.rsplit("::", 2)
    return {"urn": f"{prefix}::{kind}${KEY}::{name}-kms-key",  # as components/tenant_stack.py names it
            "custom": True, "type": KEY, "parent": parent, "protect": True,
            "provider": f"{providers[0]['urn']}::{providers[0]['id']}",
            "inputs": {"tags": {"tenant_id": tenant, "stack": stack}}}


def resolve(deployment: dict, lookup: Lookup, lost: list[dict] | None = None) -> tuple[dict, list[str], list[str]]:
    """The deployment with its pending operations, and the `lost` creates (`lost_key`), resolved; the notes, and
    the URNs to refresh (those adopted, and those an interrupted delete may have deleted). A lost create that
    made nothing is no news: no note."""
    resources = list(deployment.get("resources") or [])
    known_ids = {r.get("id") for r in resources if r.get("id")}
    in_state = {r.get("urn") for r in resources}
    notes, to_refresh = [], []
    operations = [(op, False) for op in pending(deployment)]
    operations += [({"type": "creating", "resource": resource}, True) for resource in lost or []]
    for operation, was_lost in operations:
        resource = dict(operation.get("resource") or {})
        name = engine.resource_name(resource.get("urn", "::?"))
        if operation.get("type") == "deleting" and resource.get("urn") in in_state:
            to_refresh.append(resource["urn"])
            notes.append(f"{describe(operation)} was interrupted: cleared, refreshed (gone, it leaves the state), "
                         "and this run finishes it")
            continue
        if operation.get("type") != "creating":
            notes.append(f"{describe(operation)} was interrupted: cleared, and this run finishes it")
            continue
        found = lookup(resource)
        if isinstance(found, Unadoptable):
            notes.append(f"an interrupted create of {name} left {len(found.ids)} objects that cannot be told apart "
                         f"({', '.join(found.ids)}): tagged {UNADOPTED_TAG} and left for an operator, none of them "
                         "adopted")
            continue
        if found is None or found.id in known_ids:
            if was_lost:
                continue
            if resource.get("type") in LOOKED_FOR:
                notes.append(f"an interrupted create of {name} had made nothing: cleared, and this run creates it")
            else:  # not looked for: its provider adopts or remakes it (a row, a random value, a manifest)
                notes.append(f"{describe(operation)} was interrupted: cleared, and this run finishes it")
            continue
        resource.update(id=found.id, outputs={**(resource.get("inputs") or {}), **found.outputs})
        resource.setdefault("custom", True)
        resources.append(resource)
        known_ids.add(found.id)
        to_refresh.append(resource["urn"])
        made_by = "an interrupted create the engine had not recorded" if was_lost else "an interrupted create"
        notes.append(f"adopted {name} ({resource.get('type')}, id {found.id}), which {made_by} had made")
    return {**deployment, "resources": resources, "pending_operations": []}, notes, to_refresh


def recover(stack, spec: engine.StackSpec, apply: bool) -> list[str]:
    """Resolve the stack's pending operations (only report them unless `apply`). The notes say what happened.

    On a file backend the checkpoint is first read from the backend's folder (what `pulumi stack export` would
    print, secrets as ciphertext, without a CLI process): when it holds nothing to resolve, as after every clean
    run, that is the answer. Anything to resolve, or a checkpoint that cannot be read there, and the CLI exports
    it, as on every other backend: the import that resolves it starts from the engine's own export."""
    found = _checkpoint_on_disk(spec)
    if found is not None and not pending(found) and _lost(found, stack, spec) is None:
        return []
    deployment_doc = engine.export_state(stack)
    deployment = deployment_doc.get("deployment") or {}
    operations = pending(deployment)
    lost = _lost(deployment, stack, spec)
    if not operations and lost is None:
        return []
    if not apply:
        return [f"{describe(op)} was left pending by an interrupted run; `up` resolves it" for op in operations] + (
            [f"the state of {spec.name} holds no KMS key yet: `up` first looks in AWS for one tagged for this stack "
             "that an interrupted run made"] if lost else [])
    lookup = cloud_lookup(stack, deployment)
    resolved, notes, to_refresh = resolve(deployment, lookup, [lost] if lost else [])
    if not operations and not to_refresh:
        return notes  # nothing was lost after all (or what was is only tagged): the state stays as it is
    engine.import_state(stack, {**deployment_doc, "deployment": resolved})
    if to_refresh:
        stack.refresh(target=to_refresh, color="never", on_output=lambda _line: None)
    return notes


def _lost(deployment: dict, stack, spec: engine.StackSpec) -> dict | None:
    return lost_key(deployment, spec.name, lambda: spec.tags.get(TAG_TENANT_ID) or _tagged_tenant_id(stack))


def _checkpoint_on_disk(spec: engine.StackSpec) -> dict | None:
    """The stack's deployment from a file backend's folder; None when it is not there, cannot be read, or is there
    both plain and compressed (which one the engine reads depends on its settings)."""
    try:
        paths = engine.stack_paths(spec.backend, spec.name)
        if paths is None or paths[0].with_name(paths[0].name + ".gz").exists():
            return None
        return engine.read_checkpoint(spec.backend, spec.name)
    except Exception:  # noqa: BLE001 (anything unexpected: the engine's own export decides, as before)
        return None


def _tagged_tenant_id(stack) -> str | None:
    """The tenant_id the stack's tags record (an offboarding's spec carries no tags of its own)."""
    from pulumi.automation import errors as auto_errors

    try:
        return stack.list_tags().get(TAG_TENANT_ID)
    except auto_errors.CommandError:
        return None


def cloud_lookup(stack, deployment: dict) -> Lookup:
    """Finds a pending create's object in AWS, with the stack's own provider settings."""
    config = {key: value.value for key, value in stack.get_all_config().items() if not value.secret}
    region = config.get("aws:region") or "us-east-1"
    endpoint = config.get(f"{PROJECT}:awsEndpoint")
    in_state = {r.get("id") for r in deployment.get("resources") or []}

    def client(service: str):
        import boto3

        if endpoint:  # a local emulator, with the placeholders the program's own provider uses
            from components.providers import LOCAL_AWS_ACCESS_KEY, LOCAL_AWS_SECRET_KEY

            return boto3.client(service, region_name=region, endpoint_url=endpoint,
                                aws_access_key_id=LOCAL_AWS_ACCESS_KEY, aws_secret_access_key=LOCAL_AWS_SECRET_KEY)
        return boto3.client(service, region_name=region)

    def lookup(resource: dict) -> Found | Unadoptable | None:
        from botocore.exceptions import BotoCoreError, ClientError

        kind, inputs = resource.get("type"), resource.get("inputs") or {}
        try:
            if kind == SECRET:
                return _secret(client("secretsmanager"), inputs)
            if kind == ALIAS:
                return _alias(client("kms"), inputs)
            if kind == KEY:
                return _key(client("kms"), inputs, in_state)
        except (BotoCoreError, ClientError) as exc:
            raise engine.EngineError(f"cannot look for {engine.resource_name(resource['urn'])}, whose create was "
                                     f"interrupted, in AWS: {exc}; nothing was changed") from None
        return None

    return lookup


def _secret(sm, inputs: dict) -> Found | None:
    from botocore.exceptions import ClientError

    try:
        described = sm.describe_secret(SecretId=inputs.get("name", ""))
    except ClientError:
        return None
    if described.get("DeletedDate"):
        return None
    return Found(described["ARN"], {"arn": described["ARN"]})


def _alias(kms, inputs: dict) -> Found | None:
    name = inputs.get("name")
    for page in kms.get_paginator("list_aliases").paginate():
        for alias in page["Aliases"]:
            if alias["AliasName"] == name and alias.get("TargetKeyId"):
                key_arn = kms.describe_key(KeyId=alias["TargetKeyId"])["KeyMetadata"]["Arn"]
                return Found(name, {"arn": alias["AliasArn"], "targetKeyArn": key_arn})
    return None


def _key(kms, inputs: dict, in_state: set) -> Found | Unadoptable | None:
    """The key the interrupted create made: tagged with this tenant's id and this stack, live, and not in the
    state. Two such keys cannot be told apart: both are tagged for an operator, and neither is adopted."""
    wanted = _tag_map(inputs.get("tags"))
    tenant_id, stack = wanted.get("tenant_id"), wanted.get("stack")
    if not tenant_id or not stack:
        return None
    candidates = []
    for page in kms.get_paginator("list_keys").paginate():
        for key in page["Keys"]:
            if key["KeyId"] in in_state:
                continue
            meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
            if meta["KeyState"] == "PendingDeletion":
                continue
            tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])}
            if tags.get("tenant_id") == tenant_id and tags.get("stack") == stack and UNADOPTED_TAG not in tags:
                candidates.append(meta)
    if len(candidates) == 1:
        meta = candidates[0]
        return Found(meta["KeyId"], {"arn": meta["Arn"], "keyId": meta["KeyId"]})
    for meta in candidates:
        kms.tag_resource(KeyId=meta["KeyId"], Tags=[{"TagKey": UNADOPTED_TAG, "TagValue": "true"}])
    return Unadoptable([m["KeyId"] for m in candidates]) if candidates else None


def _tag_map(tags: Any) -> dict[str, str]:
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {}
