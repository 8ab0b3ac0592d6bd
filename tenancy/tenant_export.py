"""A tenant's export: its rows, encrypted to an operator's X25519 key, with a manifest anyone can read.

The file is one JSON document:
- `manifest`, in clear: the tenant (id, slug), the environment (name, id), its `tenant_configs` row (id, created
  and updated times, the SHA-256 of the row as exported), each table's row count, when and by which tool the
  export was made, the recipient key's fingerprint, and each part's SHA-256 and size, taken over the part's
  *ciphertext*: a tampered or truncated part is detected without the private key (offboarding's gate does);
- `parts`: each part (the tenant file, then one per tenant table) encrypted with AES-256-GCM under a key derived
  (HKDF-SHA256) from an X25519 exchange between a fresh ephemeral key and the operator's public key: age's own
  recipient scheme, made with `cryptography`. Each part's associated data is the canonical manifest without its
  part checksums, plus the part's name, so an edited manifest (a stale export made to look fresh, another
  tenant's id) fails decryption at import.

Why an X25519 key and not KMS: the export must outlive the environment it leaves (the client's data after the
client left), it is made where only the public key is needed (CI, an operator's shell), and it is opened offline
with a private key that never meets the environment. A KMS key would tie every export to the environment's AWS
account and the exporting role to kms:Encrypt there. Encrypted secrets in the row (Fernet ciphertext) stay as
they are: the export holds no secret in clear outside its encryption.

This module is pure: reading and writing rows is `fleet.tenant_export`'s.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

FORMAT = "tenantctl-export/1"
ALGORITHM = "X25519-HKDF-SHA256/AES-256-GCM"
TENANT_FILE_PART = "tenant_file"
MAX_AGE = timedelta(hours=24)
# An export's clock may run a little ahead of the host that checks it.
CLOCK_SKEW = timedelta(minutes=5)
MAX_FILE_BYTES = 1 << 30


class ExportError(Exception):
    """One line an operator can act on: what is wrong with which export, never a secret."""


# --- rows as JSON -----------------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A database value as JSON: UUIDs and numbers as text where JSON would lose them, times as ISO 8601 UTC."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def row_digest(row: dict[str, Any]) -> str:
    """The SHA-256 of a row as exported (every column, in canonical JSON): any change to the row moves it."""
    return hashlib.sha256(canonical(plain(row))).hexdigest()


# --- keys -------------------------------------------------------------------------------------------------------


def load_recipient(pem: bytes, where: str):
    """The operator's X25519 public key from PEM (`openssl pkey -pubout`); ExportError, located, otherwise."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ExportError(f"{where}: not a PEM public key (make one with `openssl genpkey -algorithm X25519 -out "
                          "operator.key` and `openssl pkey -in operator.key -pubout -out operator.pub`)") from None
    if not isinstance(key, X25519PublicKey):
        raise ExportError(f"{where}: a {type(key).__name__.removeprefix('_')} key, not an X25519 public key")
    return key


def load_identity(pem: bytes, where: str):
    """The operator's X25519 private key from PEM (unencrypted PKCS#8, as `openssl genpkey` writes it)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem, password=None)
    except TypeError:
        raise ExportError(f"{where}: the private key is passphrase-protected; give an unencrypted copy on a "
                          "private path (`openssl pkey -in KEY -out PLAIN`)") from None
    except ValueError:
        raise ExportError(f"{where}: not a PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise ExportError(f"{where}: a {type(key).__name__.removeprefix('_')} key, not an X25519 private key")
    return key


def _raw(public_key) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_fingerprint(public_key) -> str:
    return "sha256:" + hashlib.sha256(_raw(public_key)).hexdigest()


def _wrap_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient,
                info=FORMAT.encode()).derive(shared)


# --- the file ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantRows:
    """What an export holds: the tenant file's text and each tenant table's rows (dicts of plain JSON values)."""

    tenant_file: str
    tables: dict[str, list[dict[str, Any]]]

    @property
    def config_row(self) -> dict[str, Any] | None:
        rows = self.tables.get("tenant_configs") or []
        return rows[0] if rows else None


def _associated(manifest: dict, part: str) -> bytes:
    bound = {k: v for k, v in manifest.items() if k != "parts"}
    return canonical(bound) + b"\0" + part.encode()


def build_export(rows: TenantRows, *, tenant_id: str, slug: str, environment: str, environment_id: str | None,
                 recipient, tool_version: str, now: datetime | None = None) -> dict:
    """The export document of `rows`, encrypted to `recipient` (an X25519 public key)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    config = rows.config_row
    if config is None:
        raise ExportError(f"tenant {slug} ({tenant_id}) has no tenant_configs row to export")
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = _raw(ephemeral.public_key())
    key = _wrap_key(ephemeral.exchange(recipient), ephemeral_raw, _raw(recipient))
    manifest = {
        "format": FORMAT,
        "tenant_id": str(tenant_id),
        "slug": slug,
        "environment": environment,
        "environment_id": environment_id,
        "row": {"id": str(config["id"]), "created_at": config.get("created_at"),
                "updated_at": config.get("updated_at"), "sha256": row_digest(config)},
        "tables": {table: len(table_rows) for table, table_rows in rows.tables.items()},
        "created_at": (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds"),
        "tool": {"name": "tenantctl", "version": tool_version},
        "encryption": {"algorithm": ALGORITHM, "recipient": key_fingerprint(recipient),
                       "ephemeral_public_key": base64.b64encode(ephemeral_raw).decode("ascii")},
    }
    clear = {TENANT_FILE_PART: rows.tenant_file.encode("utf-8"),
             **{table: canonical(plain(table_rows)) for table, table_rows in rows.tables.items()}}
    aead = AESGCM(key)
    parts, checksums = {}, {}
    for name, data in clear.items():
        nonce = os.urandom(12)
        sealed = nonce + aead.encrypt(nonce, data, _associated(manifest, name))
        parts[name] = base64.b64encode(sealed).decode("ascii")
        checksums[name] = {"sha256": hashlib.sha256(sealed).hexdigest(), "bytes": len(sealed)}
    manifest["parts"] = checksums
    return {"format": FORMAT, "manifest": manifest, "parts": parts}


def dumps(document: dict) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def parse_export(text: bytes | str, where: str) -> dict:
    """The export document, its form and every part's checksum verified; no key needed. ExportError otherwise."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportError(f"{where}: not a tenantctl export (not JSON: {str(exc).splitlines()[0]})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ExportError(f"{where}: not a tenantctl export (expected format {FORMAT!r})")
    manifest, parts = document.get("manifest"), document.get("parts")
    required = ("tenant_id", "slug", "environment", "row", "tables", "created_at", "encryption", "parts")
    if not isinstance(manifest, dict) or not isinstance(parts, dict):
        raise ExportError(f"{where}: the export has no manifest or no parts")
    missing = [key for key in required if key not in manifest]
    if missing:
        raise ExportError(f"{where}: manifest: missing {', '.join(missing)}")
    shapes = {"tenant_id": str, "slug": str, "environment": str, "row": dict, "tables": dict, "encryption": dict}
    wrong = [key for key, kind in shapes.items() if not isinstance(manifest[key], kind)]
    if wrong or not all(isinstance(n, int) for n in manifest["tables"].values()) \
            or not isinstance(manifest["row"].get("id"), str) or not isinstance(manifest["row"].get("sha256"), str):
        raise ExportError(f"{where}: manifest: malformed {', '.join(wrong) or 'row or tables'}")
    checksums = manifest["parts"]
    if not isinstance(checksums, dict) or set(checksums) != set(parts) or TENANT_FILE_PART not in parts:
        raise ExportError(f"{where}: manifest: its parts ({', '.join(sorted(checksums or {}))}) are not the file's "
                          f"({', '.join(sorted(parts))})")
    for name, sealed_text in parts.items():
        try:
            sealed = base64.b64decode(sealed_text, validate=True)
        except (ValueError, TypeError):
            raise ExportError(f"{where}: part {name}: not base64 (the file was altered)") from None
        expected = checksums[name]
        if not isinstance(expected, dict) or hashlib.sha256(sealed).hexdigest() != expected.get("sha256") \
                or len(sealed) != expected.get("bytes"):
            raise ExportError(f"{where}: part {name}: checksum mismatch (the file was altered or truncated)")
    created_at(manifest, where)
    return document


def created_at(manifest: dict, where: str) -> datetime:
    try:
        when = datetime.fromisoformat(str(manifest["created_at"]))
    except ValueError:
        raise ExportError(f"{where}: manifest: created_at {manifest['created_at']!r} is not an ISO 8601 time") \
            from None
    if when.tzinfo is None:
        raise ExportError(f"{where}: manifest: created_at {manifest['created_at']!r} has no time zone")
    return when


def decrypt_export(document: dict, identity, where: str) -> TenantRows:
    """The rows of a parsed export, opened with the operator's private key; ExportError on a wrong key or an
    altered manifest or part."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    manifest = document["manifest"]
    encryption = manifest["encryption"]
    if encryption.get("algorithm") != ALGORITHM:
        raise ExportError(f"{where}: encrypted with {encryption.get('algorithm')!r}, not {ALGORITHM}")
    if encryption.get("recipient") != key_fingerprint(identity.public_key()):
        raise ExportError(f"{where}: encrypted to key {encryption.get('recipient')}, not to the given private key "
                          f"({key_fingerprint(identity.public_key())})")
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    try:
        ephemeral_raw = base64.b64decode(encryption["ephemeral_public_key"], validate=True)
        ephemeral = X25519PublicKey.from_public_bytes(ephemeral_raw)
    except (KeyError, ValueError, TypeError):
        raise ExportError(f"{where}: manifest: encryption.ephemeral_public_key is malformed") from None
    aead = AESGCM(_wrap_key(identity.exchange(ephemeral), ephemeral_raw, _raw(identity.public_key())))
    clear: dict[str, bytes] = {}
    for name, sealed_text in document["parts"].items():
        sealed = base64.b64decode(sealed_text)
        try:
            clear[name] = aead.decrypt(sealed[:12], sealed[12:], _associated(manifest, name))
        except InvalidTag:
            raise ExportError(f"{where}: part {name} does not open with this key and manifest (the manifest or "
                              "the part was altered)") from None
    tables = {name: json.loads(data) for name, data in clear.items() if name != TENANT_FILE_PART}
    rows = TenantRows(clear[TENANT_FILE_PART].decode("utf-8"), tables)
    config = rows.config_row
    if config is None or str(config.get("tenant_id")) != manifest["tenant_id"] \
            or row_digest(config) != manifest["row"].get("sha256"):
        raise ExportError(f"{where}: the tenant_configs part does not match the manifest's row")
    for table, count in manifest["tables"].items():
        if len(tables.get(table, [])) != count:
            raise ExportError(f"{where}: part {table} holds {len(tables.get(table, []))} row(s), the manifest "
                              f"says {count}")
    return rows


# --- offboarding's gate -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurrentTenant:
    """What the environment holds for the tenant now, as the gate compares it."""

    tenant_id: str
    environment: str
    row: dict[str, Any] | None  # its tenant_configs row (None: gone already)
    counts: dict[str, int]  # rows per tenant table


def gate_problems(manifest: dict, current: CurrentTenant, now: datetime | None = None,
                  max_age: timedelta = MAX_AGE) -> list[str]:
    """Why this export does not cover the tenant as it is now; [] when it does (fresh, same tenant, environment,
    row and row counts)."""
    now = now or datetime.now(UTC)
    problems = []
    if manifest["tenant_id"] != str(current.tenant_id):
        problems.append(f"it is tenant {manifest['tenant_id']}'s, not {current.tenant_id}'s")
    if manifest["environment"] != current.environment:
        problems.append(f"it was made in environment {manifest['environment']!r}, not {current.environment!r}")
    made = created_at(manifest, "manifest")
    age = now - made
    if age > max_age:
        problems.append(f"it is {_hours(age)} old (made {manifest['created_at']}); offboarding needs one made "
                        f"within {_hours(max_age)}")
    elif age < -CLOCK_SKEW:
        problems.append(f"its created_at {manifest['created_at']} is in the future")
    row = manifest["row"]
    if current.row is not None:
        if str(current.row.get("id")) != row.get("id"):
            problems.append(f"it holds row {row.get('id')}, the tenant's row now is {current.row.get('id')}")
        elif row_digest(current.row) != row.get("sha256"):
            problems.append(f"the tenant's row changed since (updated_at {plain(current.row.get('updated_at'))}, "
                            f"the export's {row.get('updated_at')})")
    counts = {table: n for table, n in current.counts.items() if n or table in manifest["tables"]}
    exported = {table: n for table, n in manifest["tables"].items() if current.row is not None or
                table != "tenant_configs"}
    changed = [f"{table}: {exported.get(table, 0)} exported, {n} now" for table, n in sorted(counts.items())
               if exported.get(table, 0) != n]
    if changed:
        problems.append("rows changed since: " + "; ".join(changed))
    return problems


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h"
