"""`tenantctl verify` follows the row: a suspended tenant is expected to be refused with 423, and during a
rotation the next secret to be accepted too."""

from __future__ import annotations

import secrets

from ruamel.yaml import YAML

from checks.webhook import NEXT_SECRET_ACCEPTED, SUSPENDED_REFUSED
from fleet.verification import VerifyTarget, verify_tenant
from tenancy import credentials
from tenancy.model import Tenant
from tests.tenant_text import tenant_yaml


def _target(app_db, receiver, tenant_id) -> VerifyTarget:
    return VerifyTarget(["webhook"], app_db.provisioner_dsn, app_db.app_dsn, app_db.fernet_key, None,
                        receiver.webhook_url(tenant_id), [tenant_id])


def _tenant(tenant_id) -> Tenant:
    return Tenant.model_validate(YAML(typ="safe").load(tenant_yaml("acme", tenant_id=str(tenant_id))))


def test_verify_expects_a_suspended_tenant_to_be_refused_with_423(app_db, receiver):
    row = app_db.add_tenant()
    app_db.execute("UPDATE tenant_configs SET suspended_at = now() WHERE tenant_id = %s", (row.tenant_id,))

    outcome = verify_tenant(_tenant(row.tenant_id), _target(app_db, receiver, row.tenant_id))

    assert outcome.report.ok, outcome.report.render()
    assert SUSPENDED_REFUSED in {result.name for result in outcome.report.results}


def test_verify_checks_the_next_secret_during_a_rotation(app_db, receiver):
    row = app_db.add_tenant()
    app_db.execute("UPDATE tenant_configs SET webhook_next_signing_secret_encrypted = %s WHERE tenant_id = %s",
                   (credentials.encrypt(app_db.fernet_key, secrets.token_urlsafe(36)), row.tenant_id))

    outcome = verify_tenant(_tenant(row.tenant_id), _target(app_db, receiver, row.tenant_id))

    assert outcome.report.ok, outcome.report.render()
    assert NEXT_SECRET_ACCEPTED in {result.name for result in outcome.report.results}
