"""ProvisionerAccess: with manageProvisionerRole, Pulumi owns the provisioner role and exactly its grants."""

from __future__ import annotations

import re

import pytest

from components.provisioner_access import PROVISIONER_GRANTS
from fleet.mock_runtime import Secret, run_program
from fleet.plan import plan_config

GRANT = re.compile(r"GRANT\s+(.+?)\s+ON\s+(.+?)\s+TO\s+([^;]+);", re.S)


def sql_grants_to_provisioner(text: str) -> set[tuple]:
    grants = set()
    for privileges, target, roles in GRANT.findall(text):
        if "tenant_provisioner" not in roles:
            continue
        privs = tuple(p.strip() for p in privileges.split(","))
        target = " ".join(target.split())
        if target.startswith("SCHEMA"):
            grants.add(("schema", (), privs))
        elif target.startswith("FUNCTION"):
            grants.add(("function", (target.split()[1].split("(")[0],), privs))
        else:
            grants.add(("table", tuple(t.strip() for t in target.split(",")), privs))
    return grants


def test_declared_grants_match_the_schema_contract(repo_root):
    text = (repo_root / "db" / "app_schema.sql").read_text()
    assert sql_grants_to_provisioner(text) == set(PROVISIONER_GRANTS)


@pytest.fixture(scope="module")
def managed_run():
    from tests.conftest import ROOT

    config, secret_keys = plan_config(ROOT, ROOT / "tenants", "dev",
                                      ["acme-servicedesk-api-key", "globex-servicedesk-api-key"])
    del config["tenant-onboarding:databaseUrl"]
    config.update({"tenant-onboarding:manageProvisionerRole": "true", "postgresql:host": "db.internal",
                   "postgresql:sslmode": "require"})
    return run_program(ROOT, "dev", config, secret_keys)  # the platform stack owns the role


def test_role_is_created_least_privileged(managed_run):
    [role] = [r for r in managed_run.resources if r.type == "postgresql:index/role:Role"]
    assert role.inputs["name"] == "tenant_provisioner"
    assert role.inputs["login"] is True
    assert role.inputs["superuser"] is False and role.inputs["bypassRowLevelSecurity"] is False
    assert isinstance(role.inputs["password"], Secret)


def test_grants_are_registered(managed_run):
    grants = {(r.inputs["objectType"], tuple(r.inputs.get("objects") or ()), tuple(r.inputs["privileges"]))
              for r in managed_run.resources if r.type == "postgresql:index/grant:Grant"}
    assert grants == set(PROVISIONER_GRANTS)


def test_tenant_stacks_get_the_managed_roles_url_as_a_secret(managed_run):
    url = managed_run.exports["databaseUrl"]  # what every tenant stack's rows connect with
    assert isinstance(url, Secret)
    assert re.fullmatch(r"postgresql://tenant_provisioner:[A-Za-z0-9]{40}@db\.internal:5432/app\?sslmode=require",
                        url.value)
