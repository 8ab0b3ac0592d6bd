"""TenantConfigRow: a tenant's row in the application's `tenant_configs` table, as a dynamic resource.

pulumi-postgresql manages roles and grants but not rows, so this provider owns the row:
create inserts it (or adopts an existing row), diff compares plain fields and keyed fingerprints
of the secrets, update rewrites it in one transaction, read shows drift on `pulumi refresh`, and
delete removes it only as the offboarding rules allow. The provider works inside RLS: every
transaction first scopes itself to the tenant.

No change but a new `tenant_id` replaces the resource: connection details are state, not identity.
Each resource writes its own owner token into `tenant_configs.provisioning_owner` on create, adopt
and update, and a delete compares it: when a rename, an alias or another stack has adopted the row
since, the delete leaves it (and all history) in place and says so. History is deleted only when
the purge was applied (`purge_on_delete` in state), in the same transaction as the row, with the
history tables locked against concurrent inserts.

A tenant's lifecycle is an update of the same row, never a replacement: `suspended` sets `suspended_at` (kept
at its first time while the tenant stays suspended) and clears it on resumption; during a signing-secret rotation
`webhook_next_signing_secret` is stored beside the current secret, encrypted the same way, and cleared after.
State written before these existed diffs to no change for an active tenant without a rotation.

The engine serializes the provider with dill and runs it in another process, so everything it
needs is imported inside the methods and every connection is opened and closed per call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

PLAIN_FIELDS = ("name", "servicedesk_url", "enhancement_preferences")
# Secret input -> its keyed fingerprint in state; each is stored Fernet-encrypted in `<field>_encrypted`.
SECRET_FIELDS = {
    "servicedesk_api_key": "servicedesk_api_key_fingerprint",
    "webhook_signing_secret": "webhook_signing_secret_fingerprint",
    "llm_api_key": "llm_api_key_fingerprint",
    "webhook_next_signing_secret": "webhook_next_signing_secret_fingerprint",
}
# Secrets a tenant may go without (NULL in the row): the LLM key (the application then uses the platform's own),
# and the next signing secret, set only while a rotation is under way.
OPTIONAL_SECRETS = ("llm_api_key", "webhook_next_signing_secret")
ABSENT = "absent"  # the fingerprint of an optional secret that is not set
# Written to state, and secret there: the provider needs them again in read and delete.
SECRET_OUTPUTS = ["database_url", "fernet_key", "servicedesk_api_key", "webhook_signing_secret", "llm_api_key",
                  "webhook_next_signing_secret"]
# Only a different tenant is a different row; everything else is an update (of the row or of state only).
REPLACE_ON = ("tenant_id",)
# Which environment writes (fleet rule 1): state only, checked against the database's claim on every write.
ENVIRONMENT_FIELDS = ("environment_id", "environment_name")


class TenantConfigRowError(Exception):
    """Raised to the engine; the message is what the operator sees in `pulumi up`."""


@dataclass
class TenantConfigRowArgs:
    tenant_id: pulumi.Input[str]
    name: pulumi.Input[str]
    servicedesk_url: pulumi.Input[str]
    enhancement_preferences: pulumi.Input[dict]
    servicedesk_api_key: pulumi.Input[str]
    webhook_signing_secret: pulumi.Input[str]
    fernet_key: pulumi.Input[str]
    database_url: pulumi.Input[str]
    purge_on_delete: pulumi.Input[bool] = False
    llm_api_key: pulumi.Input[str] | None = None
    # The environment's id from its platform stack; None (a plan, no id recorded): the database is not checked.
    environment_id: pulumi.Input[str] | None = None
    environment_name: pulumi.Input[str] | None = None
    # Tenant file `state: suspended`: the row's `suspended_at` is set (the application refuses its webhooks).
    suspended: pulumi.Input[bool] = False
    # During a signing-secret rotation: the next secret, accepted beside the current one.
    webhook_next_signing_secret: pulumi.Input[str] | None = None


def _is_unknown(value: Any) -> bool:
    """A value the engine does not know yet: `Unknown` from the provider host, the sentinel string elsewhere."""
    from pulumi.output import Unknown
    from pulumi.runtime import rpc

    return isinstance(value, Unknown) or value == rpc.UNKNOWN


def _fingerprints(props: dict) -> dict[str, str | None]:
    from tenancy import credentials

    key = props.get("fernet_key")
    fingerprints: dict[str, str | None] = {}
    for field, fp_name in SECRET_FIELDS.items():
        value = props.get(field)
        if value is None and field in OPTIONAL_SECRETS:
            fingerprints[fp_name] = ABSENT
            continue
        known = not _is_unknown(key) and not _is_unknown(value)
        fingerprints[fp_name] = credentials.fingerprint(key, value) if known else None
    return fingerprints


_SECRET_COLUMNS = ", ".join(f"{field}_encrypted" for field in SECRET_FIELDS)
_SECRET_VALUES = ", ".join("%s" for _ in SECRET_FIELDS)
_SECRET_ASSIGNMENTS = ", ".join(f"{field}_encrypted = %s" for field in SECRET_FIELDS)
# Suspended: keep the time it was first suspended; active: NULL. The parameter is whether it is suspended.
_SUSPENDED_AT = "CASE WHEN %s THEN coalesce(suspended_at, now()) END"


def _old_fingerprint(olds: dict, field: str) -> str | None:
    """A fingerprint in state; an optional secret that state from before it existed has none was absent."""
    value = olds.get(SECRET_FIELDS[field])
    return ABSENT if value is None and field in OPTIONAL_SECRETS and SECRET_FIELDS[field] not in olds else value


def _encrypted(props: dict, field: str) -> str | None:
    from tenancy import credentials

    value = props.get(field)
    return None if value is None else credentials.encrypt(props["fernet_key"], value)


def _revision(props: dict, fingerprints: dict) -> str:
    """A digest of everything the application reads from the row; the post-deploy check re-runs when it moves."""
    import hashlib

    material = json.dumps(
        {**{f: props.get(f) for f in PLAIN_FIELDS}, **fingerprints, "tenant_id": props.get("tenant_id"),
         # Only when suspended, so that every active row keeps the revision it had before suspension existed.
         **({"suspended": True} if props.get("suspended") else {})},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


class TenantConfigRowProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        import uuid

        from tenancy import credentials

        failures = []
        tenant_id = news.get("tenant_id")
        if not _is_unknown(tenant_id):
            try:
                uuid.UUID(str(tenant_id))
            except ValueError:
                failures.append(CheckFailure("tenant_id", f"{tenant_id!r} is not a UUID"))
        environment_id = news.get("environment_id")
        if environment_id is not None and not _is_unknown(environment_id):
            try:
                uuid.UUID(str(environment_id))
            except ValueError:
                failures.append(CheckFailure("environment_id", f"{environment_id!r} is not a UUID"))
        for required in ("name", "servicedesk_url", "database_url", "fernet_key"):
            if not news.get(required):
                failures.append(CheckFailure(required, f"{required} is required"))
        key = news.get("fernet_key")
        if key and not _is_unknown(key):
            try:
                credentials.validate_key(key)
            except credentials.CredentialError as exc:
                failures.append(CheckFailure("fernet_key", str(exc)))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [f for f in PLAIN_FIELDS if _is_unknown(news.get(f)) or news.get(f) != olds.get(f)]
        new_fps = _fingerprints(news)
        for field, fp_name in SECRET_FIELDS.items():
            if new_fps[fp_name] is None or new_fps[fp_name] != _old_fingerprint(olds, field):
                changed.append(field)
        for flag in ("purge_on_delete", "suspended"):
            if _is_unknown(news.get(flag)) or bool(news.get(flag)) != bool(olds.get(flag)):
                changed.append(flag)
        for field in ("database_url", *ENVIRONMENT_FIELDS):
            if _is_unknown(news.get(field)) or news.get(field) != olds.get(field):
                changed.append(field)
        replaces = [f for f in REPLACE_ON if _is_unknown(news.get(f)) or news.get(f) != olds.get(f)]
        return DiffResult(changes=bool(changed or replaces), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        from tenancy import db

        fps = _fingerprints(props)
        tenant_id = str(props["tenant_id"])
        token = _new_owner_token()
        with _transaction(props) as cursor:
            _claim_database(cursor, props)
            db.set_tenant_variable(cursor, tenant_id)
            cursor.execute("SELECT id, provisioning_owner FROM tenant_configs WHERE tenant_id = %s FOR UPDATE",
                           (tenant_id,))
            existing = cursor.fetchone()
            values = (
                props["name"],
                props["servicedesk_url"],
                *(_encrypted(props, field) for field in SECRET_FIELDS),
                json.dumps(props["enhancement_preferences"]),
            )
            suspended = bool(props.get("suspended"))
            if existing:
                # Onboarded by hand, renamed, or moved from another resource: take it over under the same id.
                # Its history is never touched here; the previous owner's delete sees the new token and leaves it.
                # A suspension already recorded keeps its time.
                cursor.execute(
                    f"UPDATE tenant_configs SET name = %s, servicedesk_url = %s, {_SECRET_ASSIGNMENTS},"
                    " enhancement_preferences = %s::jsonb, provisioning_owner = %s,"
                    f" suspended_at = {_SUSPENDED_AT}, updated_at = now() WHERE tenant_id = %s RETURNING id",
                    (*values, token, suspended, tenant_id),
                )
            else:
                cursor.execute(
                    f"INSERT INTO tenant_configs (tenant_id, name, servicedesk_url, {_SECRET_COLUMNS},"
                    f" enhancement_preferences, provisioning_owner, suspended_at) VALUES (%s, %s, %s,"
                    f" {_SECRET_VALUES}, %s::jsonb, %s, CASE WHEN %s THEN now() END) RETURNING id",
                    (tenant_id, *values, token, suspended),
                )
            row_id = str(cursor.fetchone()[0])
        if existing and existing[1]:
            pulumi.log.info(f"tenant_configs row of tenant {tenant_id} adopted from another resource "
                            "(a rename, an alias or another stack); its history is kept")
        return CreateResult(row_id, _outputs(props, fps, adopted=existing is not None, owner_token=token))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from tenancy import db

        fps = _fingerprints(news)
        tenant_id = str(news["tenant_id"])
        token = olds.get("owner_token")
        adopted = bool(olds.get("adopted"))
        row_unchanged = (all(news.get(f) == olds.get(f) for f in PLAIN_FIELDS)
                         and all(fps[fp] == _old_fingerprint(olds, f) for f, fp in SECRET_FIELDS.items())
                         and bool(news.get("suspended")) == bool(olds.get("suspended")))
        if row_unchanged:  # only the purge marker, the connection or the environment moved: the row stays
            if news.get("environment_id"):
                with _transaction(news) as cursor:
                    _claim_database(cursor, news)
            return UpdateResult(_outputs(news, fps, adopted=adopted, owner_token=token))
        token = token or _new_owner_token()  # state from before owner tokens: claim the row now
        assignments = ["name = %s", "servicedesk_url = %s", "enhancement_preferences = %s::jsonb",
                       "provisioning_owner = %s", f"suspended_at = {_SUSPENDED_AT}"]
        params: list[Any] = [news["name"], news["servicedesk_url"], json.dumps(news["enhancement_preferences"]), token,
                             bool(news.get("suspended"))]
        # Only a secret that really changed is re-encrypted.
        for field, fp_name in SECRET_FIELDS.items():
            if fps[fp_name] != _old_fingerprint(olds, field):
                assignments.append(f"{field}_encrypted = %s")
                params.append(_encrypted(news, field))
        with _transaction(news) as cursor:
            _claim_database(cursor, news)
            db.set_tenant_variable(cursor, tenant_id)
            cursor.execute("SELECT provisioning_owner FROM tenant_configs WHERE tenant_id = %s FOR UPDATE",
                           (tenant_id,))
            current = cursor.fetchone()
            if current is None:
                raise TenantConfigRowError(
                    f"tenant_configs has no row for tenant {tenant_id} to update; "
                    "run `pulumi refresh` so Pulumi sees it is gone, then `pulumi up` recreates it"
                )
            if not _owns(current[0], olds.get("owner_token")):
                raise TenantConfigRowError(_taken_over(tenant_id))
            cursor.execute(
                f"UPDATE tenant_configs SET {', '.join(assignments)}, updated_at = now() WHERE tenant_id = %s",
                (*params, tenant_id),
            )
        return UpdateResult(_outputs(news, fps, adopted=adopted, owner_token=token))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from tenancy import credentials, db

        tenant_id = str(props["tenant_id"])
        with _transaction(props) as cursor:
            db.set_tenant_variable(cursor, tenant_id)
            cursor.execute(
                f"SELECT id, name, servicedesk_url, enhancement_preferences, provisioning_owner,"
                f" suspended_at IS NOT NULL, {_SECRET_COLUMNS} FROM tenant_configs WHERE tenant_id = %s",
                (tenant_id,),
            )
            row = cursor.fetchone()
        # A row another resource adopted is no longer this resource's: refresh drops it from this state.
        if row is None or not _owns(row[4], props.get("owner_token")):
            return ReadResult("", {})
        key = props["fernet_key"]
        outs = dict(props)
        outs.update(name=row[1], servicedesk_url=row[2], enhancement_preferences=row[3], suspended=row[5])
        for (field, fp_name), token in zip(SECRET_FIELDS.items(), row[6:], strict=True):
            if token is None:
                outs[field], outs[fp_name] = None, ABSENT
                continue
            try:
                outs[field] = credentials.decrypt(key, token)
                outs[fp_name] = credentials.fingerprint(key, outs[field])
            except credentials.CredentialError:
                outs[fp_name] = "undecryptable"
        outs["revision"] = _revision(outs, {fp: outs.get(fp) for fp in SECRET_FIELDS.values()})
        return ReadResult(str(row[0]), outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from tenancy import db, tenant_data

        tenant_id = str(props["tenant_id"])
        purge = bool(props.get("purge_on_delete"))
        with _transaction(props) as cursor:
            db.set_tenant_variable(cursor, tenant_id)
            tenant_data.lock_history(cursor)
            cursor.execute("SELECT provisioning_owner FROM tenant_configs WHERE tenant_id = %s FOR UPDATE",
                           (tenant_id,))
            current = cursor.fetchone()
            if current is None:
                pulumi.log.info(f"tenant_configs has no row for tenant {tenant_id} any more; nothing to delete "
                                "(history, if any, is left in place)")
                return
            if not _owns(current[0], props.get("owner_token")):
                pulumi.log.warn(f"tenant_configs row of tenant {tenant_id} is now managed by another resource "
                                "(a rename, an alias or another stack adopted it): left in place with its history")
                return
            counts = tenant_data.history_counts(cursor, tenant_id)
            if any(counts.values()) and not purge:
                held = tenant_data.describe_counts(counts)
                raise TenantConfigRowError(
                    f"refusing to delete tenant {props.get('name')!r} ({tenant_id}): "
                    f"it still has history rows ({held}). "
                    "To delete its data too, set `offboarding: {purge_data: true}` in its tenant file and run "
                    "`pulumi up` before removing it (or use `tenantctl destroy <slug> --purge-data`)."
                )
            if purge:
                tenant_data.purge_history(cursor, tenant_id)
            cursor.execute("DELETE FROM tenant_configs WHERE tenant_id = %s", (tenant_id,))


def _claim_database(cursor, props: dict) -> None:
    """Before any write: the database is this environment's (claimed now if it is nobody's), else refuse."""
    from tenancy.environment_claim import EnvironmentIdError, claim_database

    if not props.get("environment_id"):
        return
    try:
        claim_database(cursor, str(props["environment_id"]), str(props.get("environment_name") or "unnamed"))
    except EnvironmentIdError as exc:
        raise TenantConfigRowError(str(exc)) from None


def _owns(row_owner: str | None, token: str | None) -> bool:
    """Whether a resource holding `token` still manages a row whose owner column is `row_owner`.

    State written before owner tokens existed has none; it still owns a row nobody has claimed since.
    """
    return row_owner == token


def _new_owner_token() -> str:
    import uuid

    return str(uuid.uuid4())


def _taken_over(tenant_id: str) -> str:
    return (
        f"the tenant_configs row of tenant {tenant_id} is now managed by another resource (a rename, an alias or "
        "another stack adopted it), so this one no longer changes it. If this stack should manage it, run "
        "`pulumi refresh` (this resource then leaves the state) and `pulumi up` adopts the row again."
    )


def _outputs(props: dict, fingerprints: dict, adopted: bool, owner_token: str | None) -> dict:
    outs = {k: props.get(k) for k in ("tenant_id", *PLAIN_FIELDS, "database_url", "fernet_key", "purge_on_delete",
                                      *ENVIRONMENT_FIELDS)}
    outs["suspended"] = bool(props.get("suspended"))
    outs.update(fingerprints)
    outs["adopted"] = adopted
    outs["owner_token"] = owner_token
    outs["revision"] = _revision(props, fingerprints)
    return outs


class _transaction:
    """One connection and one transaction per provider call; commits on success, rolls back on error."""

    def __init__(self, props: dict) -> None:
        self.props = props

    def __enter__(self):
        from tenancy import db

        try:
            self.connection = db.connect(self.props["database_url"])
        except db.DatabaseError as exc:
            raise TenantConfigRowError(str(exc)) from None
        self.cursor = self.connection.cursor()
        return self.cursor

    def __exit__(self, exc_type, exc, _tb) -> bool:
        import psycopg

        try:
            if exc_type is None:
                self.connection.commit()
            else:
                self.connection.rollback()
        finally:
            self.connection.close()
        if isinstance(exc, psycopg.Error):
            from tenancy.db import describe_dsn, first_line

            raise TenantConfigRowError(
                f"tenant_configs on {describe_dsn(self.props['database_url'])}: {first_line(exc)}"
            ) from None
        return False


class TenantConfigRow(Resource, module="tenant-onboarding", name="TenantConfigRow"):
    """The tenant's `tenant_configs` row. Outputs: row id, fingerprints of the secrets, `revision`, `adopted`."""

    revision: pulumi.Output[str]
    adopted: pulumi.Output[bool]

    def __init__(self, name: str, args: TenantConfigRowArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS)
        props = {
            **vars(args),
            "servicedesk_api_key_fingerprint": None,
            "llm_api_key_fingerprint": None,
            "webhook_signing_secret_fingerprint": None,
            "webhook_next_signing_secret_fingerprint": None,
            "revision": None,
            "adopted": None,
            "owner_token": None,
        }
        super().__init__(TenantConfigRowProvider(), name, props, pulumi.ResourceOptions.merge(secret_opts, opts))
