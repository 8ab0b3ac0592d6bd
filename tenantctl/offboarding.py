"""`tenantctl destroy`: remove exactly one tenant with a targeted `pulumi destroy`, guarding its data.

The history check here and the TenantConfigRow provider's delete apply the same rule
(`tenantctl.tenant_data`): a tenant with history rows is only removed when its data is purged.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from components.naming import tenant_stack_urn
from tenantctl import db, tenant_data


class OffboardingError(Exception):
    pass


def destroy_command(stack: str, slug: str) -> list[str]:
    return ["pulumi", "destroy", "--stack", stack, "--target", tenant_stack_urn(stack, slug), "--target-dependents",
            "--yes"]


def database_url_from_stack(stack: str) -> str | None:
    """The provisioner URL from stack config, decrypted by the Pulumi CLI when it is installed."""
    if shutil.which("pulumi") is None:
        return None
    result = subprocess.run(["pulumi", "config", "get", "databaseUrl", "--stack", stack],
                            capture_output=True, text=True, timeout=120)
    return result.stdout.strip() or None if result.returncode == 0 else None


@dataclass
class HistoryCheck:
    counts: dict[str, int]
    purged: dict[str, int] | None = None

    @property
    def has_history(self) -> bool:
        return any(self.counts.values())


def check_history(database_url: str, tenant_id: str, purge: bool) -> HistoryCheck:
    """Count the tenant's history rows; with `purge`, delete them in one transaction."""
    try:
        connection = db.connect(database_url)
    except db.DatabaseError as exc:
        raise OffboardingError(str(exc)) from None
    with connection:
        with connection.cursor() as cursor:
            counts = tenant_data.history_counts(cursor, tenant_id)
            purged = tenant_data.purge_history(cursor, tenant_id) if purge and any(counts.values()) else None
    return HistoryCheck(counts, purged)


def run_destroy(command: list[str]) -> int:
    if shutil.which(command[0]) is None:
        raise OffboardingError("the Pulumi CLI is not installed here; run the printed command where it is")
    return subprocess.run(command).returncode
