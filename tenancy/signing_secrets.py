"""Reading a tenant's webhook signing secret the way the application does: from its `tenant_configs` row,
inside the tenant's RLS context, decrypted with the application's Fernet key.

Used by `tenantctl verify` (for the tenant and for a peer) and by the OnboardingCheck (for a peer tenant,
whose real secret must be refused on this tenant's webhook URL).
"""

from __future__ import annotations

import psycopg

from tenancy import credentials, db


class SigningSecretError(Exception):
    """The secret could not be read; the message names the database, never a password or the secret."""


def read_signing_secret(database_url: str, tenant_id: str, fernet_key: str) -> str:
    try:
        connection = db.connect(database_url)
    except db.DatabaseError as exc:
        raise SigningSecretError(str(exc)) from None
    try:
        with connection, connection.cursor() as cursor:
            db.set_tenant_variable(cursor, tenant_id)
            cursor.execute(
                "SELECT webhook_signing_secret_encrypted FROM tenant_configs WHERE tenant_id = %s", (tenant_id,)
            )
            row = cursor.fetchone()
    except psycopg.Error as exc:
        raise SigningSecretError(
            f"reading tenant_configs on {db.describe_dsn(database_url)}: {db.first_line(exc)}"
        ) from None
    if row is None:
        raise SigningSecretError(f"tenant {tenant_id} has no tenant_configs row in {db.describe_dsn(database_url)}")
    try:
        return credentials.decrypt(fernet_key, row[0])
    except credentials.CredentialError as exc:
        raise SigningSecretError(str(exc)) from None


def first_peer_secret(database_url: str, peer_tenant_ids: list[str], fernet_key: str) -> str | None:
    """The signing secret of the first peer that has a row (None when no peer has one yet)."""
    for peer in peer_tenant_ids:
        try:
            return read_signing_secret(database_url, str(peer), fernet_key)
        except SigningSecretError:
            continue
    return None
