"""The one redaction every error text passes before it leaves the process it was made in: a stack tag (the
last-error tag, also an argv of `pulumi stack tag set`), a log line, a status line, a metric label.

It removes what an error may quote: the password of a URL or DSN (`postgresql://user:pw@host`,
`password=pw`), bearer and basic credentials, `token=`/`api_key=`/`secret=` values, the shapes of the
tokens this fleet handles (Fernet keys, GitHub and AWS access keys), and any value the caller knows is a
secret (a stack's secret config). Imports nothing of ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
SHORTEST_KNOWN_SECRET = 6  # shorter "secrets" (a test's "x") would mask ordinary words

URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):(?P<password>[^@\s]*?)@")
KEY_VALUE = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|fernet[_-]?key|"
    # `key=value` and `"key": value`; not `key: words` (prose: "password: give ...") nor `:secret:name` (an ARN)
    r"client[_-]?secret|private[_-]?key)(?:\s*=\s*|['\"]\s*:\s*))(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&)}\]]+)",
    re.IGNORECASE)
AUTHORIZATION = re.compile(r"(?P<head>\b(?:Bearer|Basic|Token)\s+)(?P<value>[A-Za-z0-9._~+/=-]{8,})")
TOKEN_SHAPES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}|xox[abpr]-[\w-]{10,})\b"
    r"|(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])")  # a Fernet key: 32 bytes, urlsafe base64


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every secret it may quote replaced by ***."""
    for secret in sorted({s for s in secrets if s and len(s) >= SHORTEST_KNOWN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = KEY_VALUE.sub(lambda m: m["head"] + MASK, text)
    text = AUTHORIZATION.sub(lambda m: m["head"] + MASK, text)
    return TOKEN_SHAPES.sub(MASK, text)
