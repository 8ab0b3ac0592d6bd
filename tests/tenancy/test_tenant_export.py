"""The export's file format: manifest, checksums, encryption to an X25519 key, and offboarding's gate."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from tenancy.tenant_export import (
    CurrentTenant,
    ExportError,
    TenantRows,
    build_export,
    decrypt_export,
    dumps,
    gate_problems,
    load_identity,
    load_recipient,
    parse_export,
    row_digest,
)

TENANT_ID = "0b6a3c1e-5f0a-4a53-9d7e-2f1c8e6b9a01"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CIPHERTEXT = "gAAAAABnFernetCiphertextOfTheApiKey=="
ROW = {"id": "5d1f0c7e-8a55-4c1e-9b8e-1a2b3c4d5e6f", "tenant_id": TENANT_ID, "name": "Acme",
       "servicedesk_api_key_encrypted": CIPHERTEXT, "enhancement_preferences": {"max_tokens": 500},
       "created_at": "2026-11-01T10:00:00+00:00", "updated_at": "2026-12-01T10:00:00+00:00",
       "provisioning_owner": "token-1"}
HISTORY = [{"id": 7, "tenant_id": TENANT_ID, "ticket_id": "T-1", "details": {"ok": True},
            "created_at": "2026-11-02T10:00:00+00:00"}]


@pytest.fixture(scope="module")
def operator_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def rows() -> TenantRows:
    return TenantRows("slug: acme\n", {"tenant_configs": [ROW], "enhancement_history": HISTORY,
                                       "ticket_history": [], "system_inventory": []})


def exported(key: X25519PrivateKey, now: datetime = NOW) -> dict:
    return build_export(rows(), tenant_id=TENANT_ID, slug="acme", environment="prod", environment_id=None,
                        recipient=key.public_key(), tool_version="0.1.0", now=now)


def test_the_manifest_names_tenant_row_counts_time_tool_and_checksums_and_reads_without_the_key(operator_key):
    text = dumps(exported(operator_key))

    manifest = parse_export(text, "f")["manifest"]

    assert (manifest["tenant_id"], manifest["slug"], manifest["environment"]) == (TENANT_ID, "acme", "prod")
    assert manifest["row"] == {"id": ROW["id"], "created_at": ROW["created_at"], "updated_at": ROW["updated_at"],
                               "sha256": row_digest(ROW)}
    assert manifest["tables"] == {"tenant_configs": 1, "enhancement_history": 1, "ticket_history": 0,
                                  "system_inventory": 0}
    assert manifest["created_at"] == "2026-12-04T12:00:00+00:00" and manifest["tool"]["version"] == "0.1.0"
    assert set(manifest["parts"]) == {"tenant_file", "tenant_configs", "enhancement_history", "ticket_history",
                                      "system_inventory"}
    assert all(len(part["sha256"]) == 64 for part in manifest["parts"].values())
    # Nothing of the rows is in clear: not the ciphertext of a secret, not a name, not a ticket.
    assert CIPHERTEXT not in text and "T-1" not in text and "Acme" not in text


def test_a_round_trip_gives_the_rows_back(operator_key):
    document = parse_export(dumps(exported(operator_key)), "f")

    assert decrypt_export(document, operator_key, "f") == rows()


def test_a_tampered_part_is_detected_without_the_key(operator_key):
    document = exported(operator_key)
    sealed = bytearray(base64.b64decode(document["parts"]["enhancement_history"]))
    sealed[20] ^= 1
    document["parts"]["enhancement_history"] = base64.b64encode(bytes(sealed)).decode()

    with pytest.raises(ExportError, match="part enhancement_history: checksum mismatch"):
        parse_export(json.dumps(document), "f")


def test_a_truncated_file_is_refused(operator_key):
    text = dumps(exported(operator_key))

    with pytest.raises(ExportError, match="not a tenantctl export"):
        parse_export(text[: len(text) // 2], "f")


def test_an_edited_manifest_passes_its_checksums_but_does_not_open(operator_key):
    """A stale export made to look fresh: the part checksums still match, the encryption binds the manifest."""
    document = exported(operator_key, now=NOW - timedelta(days=3))
    document["manifest"]["created_at"] = NOW.isoformat()
    parsed = parse_export(json.dumps(document), "f")

    with pytest.raises(ExportError, match="does not open with this key and manifest"):
        decrypt_export(parsed, operator_key, "f")


def test_the_wrong_key_is_named_and_opens_nothing(operator_key):
    document = parse_export(dumps(exported(operator_key)), "f")
    other = X25519PrivateKey.generate()

    with pytest.raises(ExportError, match="not to the given private key"):
        decrypt_export(document, other, "f")


def test_keys_are_read_from_pem_and_another_kind_of_key_is_refused(operator_key):
    public_pem = operator_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    private_pem = operator_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    assert load_recipient(public_pem, "k").public_bytes(Encoding.Raw, PublicFormat.Raw) == \
        operator_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert isinstance(load_identity(private_pem, "k"), X25519PrivateKey)
    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

    with pytest.raises(ExportError, match="k: a ECPublicKey key, not an X25519 public key"):
        load_recipient(ec_pem, "k")
    with pytest.raises(ExportError, match="k: not a PEM public key"):
        load_recipient(b"not a key", "k")
    with pytest.raises(ExportError, match="k: not a PEM private key"):
        load_identity(public_pem, "k")


def current(**changes) -> CurrentTenant:
    fields = {"tenant_id": TENANT_ID, "environment": "prod", "row": dict(ROW),
              "counts": {"tenant_configs": 1, "enhancement_history": 1, "ticket_history": 0, "system_inventory": 0}}
    return CurrentTenant(**{**fields, **changes})


def test_the_gate_accepts_a_fresh_export_of_the_row_as_it_is(operator_key):
    manifest = exported(operator_key)["manifest"]

    assert gate_problems(manifest, current(), NOW + timedelta(hours=23)) == []


def test_the_gate_refuses_a_stale_export(operator_key):
    manifest = exported(operator_key)["manifest"]

    [problem] = gate_problems(manifest, current(), NOW + timedelta(hours=25))

    assert "25.0 h old" in problem and "within 24.0 h" in problem


@pytest.mark.parametrize(("change", "expected"), [
    ({"tenant_id": "6f0c2b8e-0d5d-4a8f-bb51-000000000000"}, "not 6f0c2b8e"),
    ({"environment": "staging"}, "made in environment 'prod', not 'staging'"),
    ({"row": {**ROW, "updated_at": "2026-12-04T11:00:00+00:00", "name": "Acme 2"}}, "the tenant's row changed since"),
    ({"row": {**ROW, "id": "00000000-0000-4000-8000-000000000000"}}, "the tenant's row now is 00000000"),
    ({"counts": {"tenant_configs": 1, "enhancement_history": 2, "ticket_history": 0, "system_inventory": 0}},
     "enhancement_history: 1 exported, 2 now"),
])
def test_the_gate_refuses_an_export_that_does_not_match_the_tenant_now(operator_key, change, expected):
    manifest = exported(operator_key)["manifest"]

    problems = gate_problems(manifest, current(**change), NOW)

    assert any(expected in problem for problem in problems), problems


def test_the_gate_accepts_an_export_once_the_row_is_gone_if_the_history_is_as_exported(operator_key):
    """A re-run of an interrupted offboarding: the row is deleted already, the export still names the tenant."""
    manifest = exported(operator_key)["manifest"]
    gone = {"tenant_configs": 0, "enhancement_history": 1, "ticket_history": 0, "system_inventory": 0}

    assert gate_problems(manifest, current(row=None, counts=gone), NOW) == []


@pytest.mark.parametrize("edit", [
    lambda m: m.update(row="r"), lambda m: m.update(tables={"tenant_configs": "1"}), lambda m: m.pop("tenant_id"),
    lambda m: m["parts"].pop("tenant_file"),
])
def test_a_malformed_manifest_is_a_located_error(operator_key, edit):
    document = exported(operator_key)
    edit(document["manifest"])

    with pytest.raises(ExportError, match="^f: "):
        parse_export(json.dumps(document), "f")
