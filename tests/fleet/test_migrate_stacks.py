"""What migrate-stacks plans from exported states (no engine); tests/e2e/test_migration_safety.py runs it for real."""

from __future__ import annotations

import uuid

from ruamel.yaml import YAML

from components.naming import TENANT_STACK_TYPE
from fleet.migrate_stacks import Destination, dependents_outside, missing_in_destination, plan_moves
from fleet.rollout import TAG_TENANT_ID
from tenancy.model import Tenant
from tests.tenant_text import tenant_yaml

PROJECT = "tenant-onboarding"
ACME = Tenant.model_validate(YAML(typ="safe").load(tenant_yaml("acme")))
GLOBEX = Tenant.model_validate(YAML(typ="safe").load(tenant_yaml("globex", tier="basic")))


def root(stack: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{stack}"


def tenant_resources(stack: str, tenant: Tenant, tenant_id: str | None = None) -> list[dict]:
    """A TenantStack with a KMS key and a grandchild, as an exported state lists them."""
    top = f"urn:pulumi:{stack}::{PROJECT}::{TENANT_STACK_TYPE}::{tenant.slug}"
    key = f"urn:pulumi:{stack}::{PROJECT}::{TENANT_STACK_TYPE}$aws:kms/key:Key::{tenant.slug}-key"
    alias = f"urn:pulumi:{stack}::{PROJECT}::{TENANT_STACK_TYPE}$aws:kms/key:Key$aws:kms/alias:Alias::{tenant.slug}-a"
    return [
        {"urn": top, "type": TENANT_STACK_TYPE, "parent": root(stack),
         "outputs": {"tenant_id": tenant_id or str(tenant.tenant_id)}},
        {"urn": key, "type": "aws:kms/key:Key", "parent": top, "id": f"key-{tenant.slug}", "custom": True},
        {"urn": alias, "type": "aws:kms/alias:Alias", "parent": key, "id": f"alias-{tenant.slug}", "custom": True,
         "dependencies": [key]},
    ]


def state(stack: str, *tenants: Tenant) -> dict:
    resources = [{"urn": root(stack), "type": "pulumi:pulumi:Stack"}]
    for tenant in tenants:
        resources += tenant_resources(stack, tenant)
    return {"deployment": {"resources": resources}}


def destination(tenant: Tenant | None = None, tag: str | None = None, **kwargs) -> Destination:
    resources = [{"urn": root(f"prod.{tenant.slug}" if tenant else "prod.x"), "type": "pulumi:pulumi:Stack"}]
    if tenant is not None:
        resources += tenant_resources(f"prod.{tenant.slug}", tenant, **kwargs)
    return Destination({TAG_TENANT_ID: tag} if tag else {}, resources)


def summary(moves) -> list[tuple]:
    return [(m.slug, m.dest, m.resources, m.resume, m.note) for m in moves]


def test_every_tenant_of_the_single_stack_moves_to_its_own_stack():
    assert summary(plan_moves("prod", state("prod", GLOBEX, ACME), [ACME, GLOBEX])) == [
        ("acme", "prod.acme", 3, False, None), ("globex", "prod.globex", 3, False, None)]


def test_a_tenant_without_a_file_is_not_moved_and_says_why():
    [acme, globex] = plan_moves("prod", state("prod", ACME, GLOBEX), [ACME])
    assert acme.note is None
    assert globex.note == "no tenant file tenants/globex.yaml in this checkout: not moved"


def test_an_empty_destination_of_the_same_tenant_is_moved_into():
    for tag in (str(ACME.tenant_id), None):  # created by an interrupted run, before or without its tags
        [move] = plan_moves("prod", state("prod", ACME), [ACME], {"prod.acme": destination(tag=tag)})
        assert (move.note, move.resume) == (None, False)


def test_a_destination_tagged_for_another_tenant_id_is_refused():
    other = str(uuid.uuid4())
    [move] = plan_moves("prod", state("prod", ACME), [ACME], {"prod.acme": destination(tag=other)})
    assert not move.resume and other in move.note and str(ACME.tenant_id) in move.note and "refused" in move.note


def test_a_destination_holding_the_whole_tenant_completes_the_interrupted_move():
    [move] = plan_moves("prod", state("prod", ACME), [ACME],
                        {"prod.acme": destination(ACME, tag=str(ACME.tenant_id))})
    assert (move.note, move.resume) == (None, True)


def test_a_destination_holding_the_same_slug_of_another_tenant_id_is_refused():
    other = str(uuid.uuid4())
    [move] = plan_moves("prod", state("prod", ACME), [ACME], {"prod.acme": destination(ACME, tenant_id=other)})
    assert not move.resume and other in move.note and "refused" in move.note


def test_a_destination_holding_another_tenants_stack_is_refused():
    held = destination(GLOBEX)
    [move] = plan_moves("prod", state("prod", ACME), [ACME], {"prod.acme": held})
    assert not move.resume and "another tenant (globex)" in move.note


def test_an_incomplete_or_different_copy_in_the_destination_is_refused():
    short = destination(ACME)
    short.resources = short.resources[:-1]  # the alias is missing
    other_key = destination(ACME)
    other_key.resources[2]["id"] = "key-of-something-else"  # tracks another cloud object
    for held in (short, other_key):
        [move] = plan_moves("prod", state("prod", ACME), [ACME], {"prod.acme": held})
        assert not move.resume and "without 1 of its 3 resources" in move.note


def test_missing_in_destination_compares_urns_without_the_stack_name_and_ids():
    source = state("prod", ACME)["deployment"]["resources"]
    acme = f"urn:pulumi:prod::{PROJECT}::{TENANT_STACK_TYPE}::acme"
    assert missing_in_destination(source, destination(ACME).resources, acme) == []
    assert len(missing_in_destination(source, destination().resources, acme)) == 3


def test_a_resource_outside_the_tenant_that_depends_on_it_blocks_the_completion():
    resources = state("prod", ACME)["deployment"]["resources"]
    acme = f"urn:pulumi:prod::{PROJECT}::{TENANT_STACK_TYPE}::acme"
    assert dependents_outside(resources, acme) == []
    outsider = {"urn": f"urn:pulumi:prod::{PROJECT}::kubernetes:core/v1:Namespace::shared", "parent": root("prod"),
                "propertyDependencies": {"metadata": [resources[2]["urn"]]}}
    assert dependents_outside([*resources, outsider], acme) == [outsider["urn"]]
    [move] = plan_moves("prod", {"deployment": {"resources": [*resources, outsider]}}, [ACME],
                        {"prod.acme": destination(ACME)})
    assert not move.resume and "depend on it" in move.note
