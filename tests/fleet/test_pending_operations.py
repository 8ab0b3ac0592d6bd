"""A KMS key create the engine lost (no pending operation left) is looked for by its tags like a pending one
(issue 19). The engine-backed end of it is in tests/e2e/test_pending_operations.py."""

from __future__ import annotations

from fleet import pending_operations
from fleet.pending_operations import KEY, Found, Unadoptable

STACK = "prod.acme"
TENANT_ID = "20ab6862-0914-44a5-8827-42ff80980e24"
PREFIX = f"urn:pulumi:{STACK}::tenant-onboarding::"
COMPONENT = f"{PREFIX}tenant-onboarding:index:TenantStack::acme"
PROVIDER = {"urn": f"{PREFIX}pulumi:providers:aws::default_7_51_1", "id": "p-1", "type": "pulumi:providers:aws",
            "custom": True}
KEY_URN = f"{PREFIX}tenant-onboarding:index:TenantStack$aws:kms/key:Key::acme-kms-key"


def _deployment(*extra: dict, pending: list[dict] | None = None) -> dict:
    resources = [{"urn": f"{PREFIX}pulumi:pulumi:Stack::tenant-onboarding-{STACK}", "type": "pulumi:pulumi:Stack"},
                 PROVIDER, {"urn": COMPONENT, "type": "tenant-onboarding:index:TenantStack"}, *extra]
    return {"resources": resources, "pending_operations": pending or []}


def test_a_tenant_stack_without_its_key_adopts_the_key_tagged_for_it():
    deployment = _deployment()
    lost = pending_operations.lost_key(deployment, STACK, lambda: TENANT_ID)
    asked = []

    def lookup(resource):
        asked.append(resource)
        return Found("k-1", {"arn": "arn:aws:kms:eu-west-1:1:key/k-1", "keyId": "k-1"})

    resolved, notes, adopted = pending_operations.resolve(deployment, lookup, [lost])

    assert asked[0]["inputs"]["tags"] == {"tenant_id": TENANT_ID, "stack": STACK}
    [key] = [r for r in resolved["resources"] if r["type"] == KEY]
    assert (key["urn"], key["id"], key["parent"], key["provider"]) == (KEY_URN, "k-1", COMPONENT,
                                                                      f"{PROVIDER['urn']}::p-1")
    assert key["protect"] and adopted == [KEY_URN]
    assert notes == [f"adopted acme-kms-key ({KEY}, id k-1), which an interrupted create the engine had not "
                     "recorded had made"]


def test_a_lost_create_that_made_nothing_says_nothing_and_changes_nothing():
    deployment = _deployment()
    lost = pending_operations.lost_key(deployment, STACK, lambda: TENANT_ID)

    resolved, notes, adopted = pending_operations.resolve(deployment, lambda _resource: None, [lost])

    assert (resolved["resources"], notes, adopted) == (deployment["resources"], [], [])


def test_two_keys_tagged_for_a_lost_create_are_reported_and_neither_adopted():
    deployment = _deployment()
    lost = pending_operations.lost_key(deployment, STACK, lambda: TENANT_ID)

    resolved, notes, adopted = pending_operations.resolve(deployment, lambda _r: Unadoptable(["k-1", "k-2"]), [lost])

    assert adopted == [] and not any(r["type"] == KEY for r in resolved["resources"])
    assert "k-1, k-2" in notes[0] and pending_operations.UNADOPTED_TAG in notes[0]


def test_only_a_tenant_stack_missing_its_key_and_any_create_of_it_is_searched():
    key = {"urn": KEY_URN, "type": KEY, "id": "k-1", "custom": True}
    pending_key = [{"type": "creating", "resource": {k: v for k, v in key.items() if k != "id"}}]
    platform = {"resources": [PROVIDER], "pending_operations": []}

    def tenant_id():
        raise AssertionError("asked for the tenant_id of a stack that is not searched")

    assert pending_operations.lost_key(_deployment(key), STACK, tenant_id) is None
    assert pending_operations.lost_key(_deployment(pending=pending_key), STACK, tenant_id) is None
    assert pending_operations.lost_key(platform, "prod", tenant_id) is None
    assert pending_operations.lost_key({"resources": []}, STACK, tenant_id) is None  # a stack never run
    assert pending_operations.lost_key(_deployment(), STACK, lambda: None) is None  # no tenant_id to look for


def test_an_interrupted_delete_is_cleared_and_its_resource_refreshed_before_it_is_done_again():
    secret = {"urn": f"{PREFIX}tenant-onboarding:index:TenantStack$aws:secretsmanager/secret:Secret::acme-credentials",
              "type": "aws:secretsmanager/secret:Secret", "id": "arn:s", "custom": True}
    deployment = _deployment(secret, pending=[{"type": "deleting", "resource": secret}])

    resolved, notes, refresh = pending_operations.resolve(deployment, lambda _r: None)

    assert resolved["pending_operations"] == [] and secret in resolved["resources"]
    assert refresh == [secret["urn"]] and "refreshed" in notes[0]


def test_a_pending_create_says_truthfully_what_the_run_does_with_it():
    """Looked for in the cloud and absent: it had made nothing. Not looked for (a row its provider adopts): the
    run finishes it, with no claim about what the interrupted create made."""
    row_urn = f"{PREFIX}tenant-onboarding:index:TenantStack$pulumi-python:dynamic:Resource::acme-tenant-config"
    creates = [{"type": "creating", "resource": {"urn": KEY_URN, "type": KEY}},
               {"type": "creating", "resource": {"urn": row_urn, "type": "pulumi-python:dynamic:Resource"}}]

    resolved, notes, _ = pending_operations.resolve(_deployment(pending=creates), lambda _resource: None)

    assert resolved["pending_operations"] == []
    assert notes == ["an interrupted create of acme-kms-key had made nothing: cleared, and this run creates it",
                     "creating acme-tenant-config (pulumi-python:dynamic:Resource) was interrupted: cleared, and "
                     "this run finishes it"]
