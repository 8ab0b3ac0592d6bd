"""The operator documents' `tenantctl verify` command, run as written against a password-protected database.

Every document gives the same command; here it runs, word for word, with its environment variables set,
against a cluster where app_user and tenant_provisioner have passwords (scram over TCP), a tenant
onboarded, and the reference receiver standing in for the application at the stack's webhookBaseUrl.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from services.localpg import LocalPostgres
from services.receiver import WebhookReceiver
from tenancy import credentials
from tests.conftest import ROOT
from tests.tenant_text import tenant_yaml

DOCS = ["docs/onboarding-runbook.md", "docs/troubleshooting.md", "docs/handoff-guide.md"]
APP_PASSWORD, PROVISIONER_PASSWORD = "app pass w0rd", "prov-pa$$word"  # noqa: S105 (test values)


def documented_verify(doc: str) -> str:
    [command] = {m.group(0) for m in re.finditer(r"(?<![\w-])tenantctl verify [^\n`]+",
                                                  (ROOT / doc).read_text())}
    return command


@pytest.fixture(scope="module")
def password_cluster():
    base = Path(tempfile.mkdtemp(prefix="pw-cluster-"))
    os.chmod(base, 0o755)  # noqa: S103 (the postgres OS user must reach the cluster directory)
    try:
        with LocalPostgres(base_dir=base) as cluster:
            cluster.create_database("app")
            cluster.load_schema("app")
            with psycopg.connect(cluster.dsn(dbname="app"), autocommit=True) as conn:
                conn.execute(f"ALTER ROLE app_user PASSWORD '{APP_PASSWORD}'")
                conn.execute(f"ALTER ROLE tenant_provisioner PASSWORD '{PROVISIONER_PASSWORD}'")
            (cluster.data_dir / "pg_hba.conf").write_text(
                "local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
            )
            with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
                conn.execute("SELECT pg_reload_conf()")
            yield cluster
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _url(cluster: LocalPostgres, user: str, password: str) -> str:
    from urllib.parse import quote

    return f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:{cluster.port}/app"


@pytest.mark.parametrize("doc", DOCS)
def test_the_documented_verify_command_passes_on_a_password_protected_database(password_cluster, tmp_path, doc):
    fernet_key = Fernet.generate_key().decode()
    project = tmp_path / "project"
    (project / "tenants").mkdir(parents=True)
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    tenant_id = "7d1c2e4a-5b6f-4a8b-9c0d-1e2f3a4b5c6d"
    (project / "tenants" / "acme.yaml").write_text(tenant_yaml("acme", tenant_id=tenant_id))
    provisioner = _url(password_cluster, "tenant_provisioner", PROVISIONER_PASSWORD)
    app_url = _url(password_cluster, "app_user", APP_PASSWORD)
    with psycopg.connect(provisioner) as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (tenant_id,))
        conn.execute(
            "INSERT INTO tenant_configs (tenant_id, name, servicedesk_url, servicedesk_api_key_encrypted,"
            " webhook_signing_secret_encrypted) VALUES (%s, 'Acme', 'https://acme.sdpondemand.com', %s, %s)"
            " ON CONFLICT (tenant_id) DO NOTHING",
            (tenant_id, credentials.encrypt(fernet_key, "k"), credentials.encrypt(fernet_key, "signing-secret")),
        )
        conn.execute("UPDATE tenant_configs SET webhook_signing_secret_encrypted = %s WHERE tenant_id = %s",
                     (credentials.encrypt(fernet_key, "signing-secret"), tenant_id))
    with WebhookReceiver(app_url, fernet_key) as receiver:
        (project / "stacks").mkdir(exist_ok=True)
        (project / "stacks" / "Pulumi.prod.yaml").write_text(
            f"config:\n  tenant-onboarding:webhookBaseUrl: {receiver.base_url}\n")
        words = shlex.split(documented_verify(doc))
        command = [sys.executable, "-m", *words]  # `tenantctl` (.venv/bin/tenantctl) as this interpreter runs it
        env = {**os.environ, "TENANT_DATABASE_URL": provisioner, "APP_DATABASE_URL": app_url,
               "TENANT_FERNET_KEY": fernet_key, "PYTHONPATH": str(ROOT)}
        # The shell would expand "$VAR": do the same, word by word.
        command = [env[word[1:]] if word.startswith("$") else word for word in command]
        result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 10 checks passed" in result.stdout
    assert APP_PASSWORD not in result.stdout + result.stderr
