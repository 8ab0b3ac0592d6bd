"""`tenantctl destroy`: remove exactly one tenant with a `pulumi destroy` of its own stack, guarding its data.

This command deletes nothing itself. History goes only through the TenantConfigRow resource, which
purges it in the same transaction as the row when the purge was applied to its state: with
`--purge-data` the command first proves the destroy can run (`pulumi destroy --preview-only`), then
sets the stack's `purgeData.<slug>` and applies it to the row alone, and only then destroys. If any
step fails, the purge mark is taken back, so a later removal cannot purge by surprise.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from components.naming import tenant_config_row_urn, tenant_stack_name
from tenantctl import db, tenant_data

PURGE_CONFIG = "purgeData"


class OffboardingError(Exception):
    pass


def destroy_command(env: str, slug: str) -> list[str]:
    return ["pulumi", "destroy", "--stack", tenant_stack_name(env, slug), "--yes", "--non-interactive"]


def destroy_preview_command(env: str, slug: str) -> list[str]:
    return ["pulumi", "destroy", "--preview-only", "--stack", tenant_stack_name(env, slug), "--non-interactive"]


def mark_purge_commands(env: str, slug: str) -> list[list[str]]:
    """Set the purge mark, then apply it to the tenant's row resource alone (its row is not rewritten)."""
    stack = tenant_stack_name(env, slug)
    return [
        ["pulumi", "config", "set", "--path", f"{PURGE_CONFIG}.{slug}", "true", "--stack", stack],
        ["pulumi", "up", "--stack", stack, "--target", tenant_config_row_urn(stack, slug), "--yes", "--skip-preview",
         "--non-interactive"],
    ]


def unmark_purge_command(env: str, slug: str) -> list[str]:
    return ["pulumi", "config", "rm", "--path", f"{PURGE_CONFIG}.{slug}", "--stack", tenant_stack_name(env, slug)]


def offboarding_commands(env: str, slug: str, purge: bool) -> list[list[str]]:
    """Every command `destroy --yes` runs, in order (what it prints without --yes)."""
    commands = [destroy_preview_command(env, slug)]
    if purge:
        commands += mark_purge_commands(env, slug)
    commands.append(destroy_command(env, slug))
    if purge:
        commands.append(unmark_purge_command(env, slug))
    return commands


def database_url_from_stack(env: str) -> str | None:
    """The provisioner URL from the platform stack's config, decrypted by the Pulumi CLI when it is installed."""
    if shutil.which("pulumi") is None:
        return None
    result = subprocess.run(["pulumi", "config", "get", "databaseUrl", "--stack", env],
                            capture_output=True, text=True, timeout=120, env=_engine_env())
    return result.stdout.strip() or None if result.returncode == 0 else None


def count_history(database_url: str, tenant_id: str) -> dict[str, int]:
    """The tenant's history rows, read-only (the purge itself happens only in the row resource's delete)."""
    try:
        connection = db.connect(database_url)
    except db.DatabaseError as exc:
        raise OffboardingError(str(exc)) from None
    with connection, connection.cursor() as cursor:
        return tenant_data.history_counts(cursor, tenant_id)


@dataclass
class Runner:
    """Runs the Pulumi CLI, streaming its output; `say` reports each step."""

    say: Callable[[str], None]

    def __call__(self, command: list[str], capture: bool = False) -> subprocess.CompletedProcess:
        if shutil.which(command[0]) is None:
            raise OffboardingError("the Pulumi CLI is not installed here; run the printed commands where it is")
        self.say("$ " + " ".join(command))
        return subprocess.run(command, capture_output=capture, text=True, env=_engine_env())


def offboard(env: str, slug: str, purge: bool, run: Runner) -> int:
    preflight = run(destroy_preview_command(env, slug), capture=True)
    if preflight.returncode != 0:
        detail = (preflight.stderr or preflight.stdout).strip().splitlines()[-3:]
        raise OffboardingError("the destroy cannot run, so nothing was changed: " + " / ".join(detail))
    if purge:
        for command in mark_purge_commands(env, slug):
            if run(command).returncode != 0:
                run(unmark_purge_command(env, slug))
                raise OffboardingError("could not apply the purge mark to the tenant's row; it was taken back and "
                                       "nothing was destroyed or purged")
    code = run(destroy_command(env, slug)).returncode
    if purge:
        run(unmark_purge_command(env, slug))
        if code != 0:
            # The row is still in state with the mark applied: take it back there too, or a later removal of
            # the tenant file would purge its history unasked.
            run(mark_purge_commands(env, slug)[1])
    return code


def _engine_env() -> dict[str, str]:
    import os

    from tenantctl.engine import NO_DOWNLOADS

    return {**os.environ, **NO_DOWNLOADS}
