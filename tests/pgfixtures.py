"""Real-PostgreSQL fixtures: one throwaway cluster per test process, one fresh application database per test.

Each xdist worker is its own pytest session, so `local_pg` gives every worker its own cluster. Test
databases are copied from a template that already has db/app_schema.sql loaded, which takes
milliseconds. Roles are cluster-wide, so `app_db` puts the two application roles back to their
contract attributes after every test, whatever the test did to them.

Registered from tests/conftest.py with `pytest_plugins = ["tests.pgfixtures"]`.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg import sql

from services.localpg import LocalPostgres
from services.receiver import WebhookReceiver
from tenancy import credentials
from tenancy.app_schema import APP_ROLE, HISTORY_TABLES, PROVISIONER_ROLE, TENANT_VARIABLE
from tests.service_watchdog import note_postgres_root

TEMPLATE_DB = "app_template"
# On a disk filesystem CREATE DATABASE costs ~0.3 s even with fsync off; in memory it costs ~10 ms.
MEMORY_DIR = "/dev/shm"  # noqa: S108 (each cluster gets its own mkdtemp directory inside)
MEMORY_DIR_MIN_FREE = 1 << 30


@dataclass(frozen=True)
class Tenant:
    tenant_id: UUID
    name: str
    fernet_key: str
    signing_secret: str


@dataclass(frozen=True)
class AppDatabase:
    """A fresh database holding the application schema, and DSNs for each role that uses it."""

    name: str
    superuser_dsn: str
    app_dsn: str
    provisioner_dsn: str
    fernet_key: str

    def execute(self, statement: str | sql.Composable, params: Any = None) -> list[tuple]:
        """Run one statement as the superuser (which bypasses RLS) and return its rows, if any."""
        with psycopg.connect(self.superuser_dsn, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def add_tenant(self, tenant_id: UUID | None = None, *, name: str | None = None,
                   signing_secret: str | None = None) -> Tenant:
        """Insert a tenant_configs row the way the provisioner does, secrets encrypted with `fernet_key`."""
        tenant = Tenant(
            tenant_id=tenant_id or uuid.uuid4(),
            name=name or f"Tenant {secrets.token_hex(3)}",
            fernet_key=self.fernet_key,
            signing_secret=signing_secret or secrets.token_urlsafe(24),
        )
        with psycopg.connect(self.superuser_dsn) as conn:
            conn.execute("SELECT set_config(%s, %s, true)", (TENANT_VARIABLE, str(tenant.tenant_id)))
            conn.execute(
                "INSERT INTO tenant_configs (tenant_id, name, servicedesk_url, servicedesk_api_key_encrypted,"
                " webhook_signing_secret_encrypted) VALUES (%s, %s, %s, %s, %s)",
                (
                    tenant.tenant_id,
                    tenant.name,
                    "https://servicedesk.example.com",
                    credentials.encrypt(self.fernet_key, secrets.token_hex(16)),
                    credentials.encrypt(self.fernet_key, tenant.signing_secret),
                ),
            )
        return tenant

    def history_row_count(self) -> int:
        """Rows across the history tables, counted past RLS: how tests prove checks leave nothing behind."""
        return sum(
            self.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))[0][0]
            for table in HISTORY_TABLES
        )


def cluster_base_dir() -> str | None:
    """The in-memory filesystem when it has room (container defaults can be as small as 64 MB), else the temp dir."""
    try:
        stats = os.statvfs(MEMORY_DIR)
    except OSError:
        return None
    roomy = stats.f_bavail * stats.f_frsize >= MEMORY_DIR_MIN_FREE
    return MEMORY_DIR if roomy and os.access(MEMORY_DIR, os.W_OK | os.X_OK) else None


@pytest.fixture(scope="session")
def local_pg(service_watchdog: Path) -> Iterator[LocalPostgres]:
    """A running throwaway cluster (superuser `postgres`, trust auth), stopped and deleted at session end, or by
    the run's watchdog (tests/service_watchdog.py) when the run is killed: its root is noted there first."""
    root = Path(tempfile.mkdtemp(prefix="localpg-", dir=cluster_base_dir()))
    note_postgres_root(service_watchdog, root)
    cluster = LocalPostgres(root=root)
    try:
        yield cluster.start()
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def app_template(local_pg: LocalPostgres) -> str:
    """The name of a database with db/app_schema.sql loaded, to copy test databases from."""
    local_pg.create_database(TEMPLATE_DB)
    local_pg.load_schema(TEMPLATE_DB)
    return TEMPLATE_DB


@pytest.fixture
def app_db(local_pg: LocalPostgres, app_template: str) -> Iterator[AppDatabase]:
    """A fresh copy of the template database; dropped, and the application roles restored, afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    local_pg.create_database(name, template=app_template)
    try:
        yield AppDatabase(
            name=name,
            superuser_dsn=local_pg.dsn(dbname=name),
            app_dsn=local_pg.dsn(APP_ROLE, name),
            provisioner_dsn=local_pg.dsn(PROVISIONER_ROLE, name),
            fernet_key=Fernet.generate_key().decode("ascii"),
        )
    finally:
        local_pg.drop_database(name)
        with psycopg.connect(local_pg.dsn(), autocommit=True) as conn:
            for role in (APP_ROLE, PROVISIONER_ROLE):
                conn.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(role)))


@pytest.fixture
def receiver(app_db: AppDatabase) -> Iterator[WebhookReceiver]:
    """The reference webhook receiver, reading signing secrets from `app_db` as the application does."""
    with WebhookReceiver(app_db.app_dsn, app_db.fernet_key) as running:
        yield running
