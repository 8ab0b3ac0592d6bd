"""One line per error, for progress output, summary tables and the CLI's `error:` line.

An engine or provider error can hold a whole traceback and a database URL with its password; an
operator needs the last message, without the secret. The full text stays in the JSON output and
behind `tenantctl --debug`.
"""

from __future__ import annotations

from fleet.stack_run import headline
from tenancy.redaction import redact


def one_line(error: str, limit: int = 300) -> str:
    """The error's last meaningful line (a traceback reduced to its exception's message), redacted and cut."""
    line = headline(error) if "Traceback (most recent call last)" in error else _last_message(error)
    line = redact(" ".join(line.split()))
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _last_message(error: str) -> str:
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else error
    # The engine's "error: ..." lines carry the cause; without one, the last line does.
    causes = [line for line in lines if line.lower().startswith("error:")]
    return (causes or lines)[-1]
