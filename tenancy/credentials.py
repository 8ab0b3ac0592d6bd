"""Application-level encryption of tenant credentials (Fernet), as the application reads them.

`fingerprint` is a keyed digest: it lets the TenantConfigRow provider tell whether a secret
changed without storing or comparing the secret itself, and without re-encrypting it.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class CredentialError(Exception):
    pass


def _fernet(key: str) -> Fernet:
    try:
        return Fernet(key.encode() if isinstance(key, str) else key)
    except (ValueError, TypeError) as exc:
        raise CredentialError("fernetKey is not a valid Fernet key (32 url-safe base64-encoded bytes)") from exc


def validate_key(key: str) -> None:
    _fernet(key)


def encrypt(key: str, plaintext: str) -> str:
    return _fernet(key).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(key: str, token: str) -> str:
    try:
        return _fernet(key).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise CredentialError("stored credential cannot be decrypted with this fernetKey") from exc


def fingerprint(key: str, value: str) -> str:
    """HMAC-SHA256 of `value` under a key derived from the Fernet key (never the key itself)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tenant-onboarding/fingerprint").derive(
        key.encode("ascii")
    )
    return hmac.new(derived, value.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_body(signing_secret: str, body: bytes) -> str:
    """The X-ServiceDesk-Signature value: hex HMAC-SHA256 of the raw request body."""
    return hmac.new(signing_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_matches(signing_secret: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign_body(signing_secret, body), signature.strip().lower())
