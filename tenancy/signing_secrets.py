"""Reading a tenant's webhook signing secret the way the application does: from its `tenant_configs` row,
inside the tenant's RLS context, decrypted with the application's Fernet key.

Used by `tenantctl verify` (for the tenant and for a peer) and by the OnboardingCheck (for a peer tenant,
whose real secret must be refused on this tenant's webhook URL).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from tenancy import credentials, db


class SigningSecretError(Exception):
    """The secret could not be read; the message names the database, never a password or the secret."""


@dataclass(frozen=True)
class WebhookSecrets:
    """What the application reads to judge a tenant's webhook: its secret, the next one during a rotation, and
    whether it is suspended."""

    current: str
    next: str | None = None
    suspended: bool = False


def read_signing_secret(database_url: str, tenant_id: str, fernet_key: str) -> str:
    return read_webhook_secrets(database_url, tenant_id, fernet_key).current


def read_webhook_secrets(database_url: str, tenant_id: str, fernet_key: str) -> WebhookSecrets:
    try:
        connection = db.connect(database_url)
    except db.DatabaseError as exc:
        raise SigningSecretError(str(exc)) from None
    try:
        with connection, connection.cursor() as cursor:
            db.set_tenant_variable(cursor, tenant_id)
            cursor.execute(
                "SELECT webhook_signing_secret_encrypted, webhook_next_signing_secret_encrypted,"
                " suspended_at IS NOT NULL FROM tenant_configs WHERE tenant_id = %s", (tenant_id,)
            )
            row = cursor.fetchone()
    except psycopg.Error as exc:
        raise SigningSecretError(
            f"reading tenant_configs on {db.describe_dsn(database_url)}: {db.first_line(exc)}"
        ) from None
    if row is None:
        raise SigningSecretError(f"tenant {tenant_id} has no tenant_configs row in {db.describe_dsn(database_url)}")
    try:
        return WebhookSecrets(credentials.decrypt(fernet_key, row[0]),
                              None if row[1] is None else credentials.decrypt(fernet_key, row[1]), bool(row[2]))
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
