"""`tenantctl destroy`: offboard exactly one tenant: its guards lifted, its own stack destroyed, a tombstone kept.

This command deletes nothing itself. History goes only through the TenantConfigRow resource, which purges it in
the same transaction as the row when the purge was applied to its state. The engine steps are
`fleet.offboard_stack`'s (the same the fleet runs for a removal), run the way the fleet runs them: in a worker
process of its own session (rule 6), after the stack's stale lock and tenantctl's record of a killed run are judged
(rule 5). This module checks history first and prints, without --yes, the same steps as `pulumi` commands an
operator could run by hand.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

from components.naming import guarded_urns, tenant_stack_name
from components.settings import OFFBOARDING
from fleet import engine
from fleet.offboard_stack import PURGE_CONFIG, TAG_OFFBOARDED_AT
from fleet.stack_run import StackJob, StackOutcome, process_pool, run_in_process
from tenancy import db, tenant_data


class OffboardingError(Exception):
    pass


def offboarding_commands(env: str, slug: str, purge: bool, tenant_file: bool = True, premium: bool = True,
                         erase_history: bool = False) -> list[list[str]]:
    """Every step `destroy --yes` takes, in order, as the `pulumi` command that does the same."""
    stack = tenant_stack_name(env, slug)
    commands = [["pulumi", "destroy", "--preview-only", "--exclude-protected", "--stack", stack, "--non-interactive"],
                ["pulumi", "config", "set", OFFBOARDING, "true", "--stack", stack]]
    if purge:
        commands.append(["pulumi", "config", "set", "--path", f"{PURGE_CONFIG}.{slug}", "true", "--stack", stack])
    if tenant_file:
        targets = [arg for urn in guarded_urns(stack, slug, premium) for arg in ("--target", urn)]
        commands.append(["pulumi", "up", "--stack", stack, *targets, "--yes", "--skip-preview", "--non-interactive"])
    else:
        # (tenantctl also clears the secret's retainOnDelete in the state, which no `pulumi` command does.)
        commands.append(["pulumi", "state", "unprotect", "--all", "--stack", stack, "--yes"])
    commands += [["pulumi", "destroy", "--stack", stack, "--yes", "--non-interactive"],
                 ["pulumi", "stack", "tag", "set", TAG_OFFBOARDED_AT, "<UTC time now>", "--stack", stack],
                 ["pulumi", "config", "rm", OFFBOARDING, "--stack", stack]]
    if purge:
        commands.append(["pulumi", "config", "rm", "--path", f"{PURGE_CONFIG}.{slug}", "--stack", stack])
    if erase_history:
        commands.append(["pulumi", "stack", "rm", stack, "--yes"])
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


def offboard(spec: engine.StackSpec, purge: bool, erase_history: bool, tenant_file: bool,
             say: Callable[[str], None]) -> None:
    """The offboarding of the stack; OffboardingError (one line) when it failed, its guards back in place."""
    say(f"offboarding {spec.name}: destroy preview, lift the guards, destroy, tombstone")
    outcome = offboard_in_worker(spec, purge=purge, erase_history=erase_history, tenant_file=tenant_file)
    for note in outcome.recovered:
        say(f"recovered: {note}")
    if not outcome.ok:
        raise OffboardingError("; ".join(outcome.errors) or f"offboarding {spec.name} failed")
    counts = outcome.counts()
    kept = "its history erased" if outcome.removed else f"the stack kept as a tombstone ({TAG_OFFBOARDED_AT})"
    say(f"{spec.name}: {counts['deleted']} resource(s) destroyed, {kept}")


def offboard_in_worker(spec: engine.StackSpec, *, purge: bool, erase_history: bool,
                       tenant_file: bool) -> StackOutcome:
    """`offboard_stack` in a worker of its own session, as the fleet runs a removal: a Ctrl-C reaches its engine,
    which cancels cleanly, and a killed tenantctl's worker ends its engine and exits."""
    job = StackJob(spec, "offboard", purge=purge, erase_history=erase_history, tenant_file=tenant_file)
    with process_pool(1) as pool:
        return run_in_process(pool, job).result()


def _engine_env() -> dict[str, str]:
    import os

    from fleet.engine import NO_DOWNLOADS

    return {**os.environ, **NO_DOWNLOADS}
