"""Offboarding one tenant stack through the Automation API: its guards lifted, its resources destroyed, a tombstone.

The only path in our code that lifts a tenant's engine guards (components/tenant_stack.py). In order, each step
only after the one before it succeeded:
1. a destroy preview of what is not guarded: the stack exists, its secrets decrypt and its plugins load, before
   anything changes; then the pending operations an interrupted run left are resolved as `up` resolves them
   (fleet.pending_operations): an interrupted create's object is adopted, so that the destroy deletes it too, and
   an interrupted delete (a killed offboarding's) is resumed;
2. the stack's config `offboarding: true` (with `purge`, also `purgeData.<slug>: true`), written before the step
   that depends on it, so an interrupted offboarding is visible in the stack's own config;
3. the guards lifted in the state, in one of two ways:
   - the tenant's file is there: a `pulumi up` targeted at the guarded resources. The program declares them
     without guards and the engine records that (the purge mark reaches the row the same way). This is the
     program's own word, and nothing else of the tenant is touched;
   - the file is gone (a removal): the program cannot run, so `fleet.stack_guards` edits the state. This
     clears `retainOnDelete` too, which `pulumi state unprotect --all` would leave, so the secret is scheduled
     for deletion instead of forgotten;
4. `pulumi destroy`, without removing the stack: the key and the secret are scheduled for deletion within their
   windows (30 and 14 days; `tenantctl restore` takes them back);
5. the tombstone: the stack stays, with its history, tagged `tenant:offboarded-at` (and `tenant:id`,
   `tenant:slug`), and the marks leave its config so that a restored tenant's next `up` guards it again;
6. only with `erase_history`: `pulumi stack rm`.
If anything fails from step 2 on, the marks are taken back and the guards are put back on what the stack still
holds: a failed offboarding leaves a guarded stack, never an unguarded one.

Importing this module has no side effects; the fleet runs `offboard_stack` in its process pool through
`StackJob(spec, "offboard")`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from components.naming import PROJECT, split_stack_name
from components.settings import ADOPT, OFFBOARDING
from fleet import engine, pending_operations, stack_guards
from fleet.stack_identity import TAG_OFFBOARDED_AT, TAG_SLUG, TAG_TENANT_ID
from fleet.stack_run import StackOutcome, fault_injection, headline

PURGE_CONFIG = "purgeData"
OFFBOARDING_KEY = f"{PROJECT}:{OFFBOARDING}"
ADOPT_KEY = f"{PROJECT}:{ADOPT}"


class OffboardStackError(Exception):
    """A step of the offboarding failed; the message is one line an operator can act on."""


def offboarded_at() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def offboard_stack(spec: engine.StackSpec, *, purge: bool = False, erase_history: bool = False,
                   tenant_file: bool | None = None) -> StackOutcome:
    """Offboard the tenant stack `spec.name` (see the module's docstring). Every failure is an outcome.

    `tenant_file`: whether the tenant's file is there for the program to read (None: look in the stack's
    `tenantsDir`). A removal passes False."""
    from pulumi.automation import errors as auto_errors

    started = time.monotonic()
    outcome = StackOutcome(spec.name, "offboard")
    events = engine.EngineEvents(fault=fault_injection(spec.name))
    try:
        slug = split_stack_name(spec.name)[1]
        if slug is None:
            raise OffboardStackError(f"{spec.name} is a platform stack; offboarding is for one tenant's stack")
        stack = engine.open_stack(spec, create=False)
        engine.forget_applied_digest(stack)  # the state changes now: no recorded digest may describe it
        run = _Offboarding(stack, slug, events, lambda: pending_operations.recover(stack, spec, apply=True))
        present = tenant_file if tenant_file is not None else run.tenant_file_present()
        if purge and not present:
            raise OffboardStackError(f"purging {slug}'s history needs its tenant file: the purge is applied through "
                                     "the tenant's row resource, which the program declares from that file")
        try:
            outcome.summary = run.offboard(present, purge)
        finally:
            outcome.recovered = run.recovered
        if erase_history:
            stack.workspace.remove_stack(spec.name)
            outcome.removed = True
    except auto_errors.StackNotFoundError:
        outcome.status = "failed"
        outcome.errors = [f"stack {spec.name} does not exist on this backend: nothing to offboard"]
    except (OffboardStackError, engine.EngineError) as exc:
        outcome.status = "failed"
        outcome.errors = [str(exc)]
    except auto_errors.CommandError as exc:
        outcome.status = "failed"
        outcome.errors = [headline(m) for ms in events.errors.values() for m in ms] + events.general_errors
        outcome.errors = outcome.errors or [headline(str(exc))]
    outcome.ops = events.ops
    outcome.seconds = time.monotonic() - started
    return outcome


class _Offboarding:
    """The steps on one opened stack."""

    QUIET = {"color": "never", "on_output": lambda _line: None}

    def __init__(self, stack, slug: str, events: engine.EngineEvents,
                 recover: Callable[[], list[str]] = lambda: []) -> None:
        self.stack, self.slug, self.events, self.recover = stack, slug, events, recover
        self.recovered: list[str] = []  # what an interrupted run left, and this one resolved

    def tenant_file_present(self) -> bool:
        configured = self.stack.get_all_config().get(f"{PROJECT}:tenantsDir")
        tenants_dir = Path(configured.value if configured else "tenants")  # as the program reads it
        return (tenants_dir / f"{self.slug}.yaml").is_file()

    def offboard(self, tenant_file: bool, purge: bool) -> dict[str, int]:
        from pulumi.automation import errors as auto_errors

        self.stack.destroy(preview_only=True, exclude_protected=True, **self.QUIET)
        self.recovered += self.recover()
        identity = self._identity()
        guards = stack_guards.read_guards(self.stack)
        self._mark(purge)
        try:
            self._lift(guards, tenant_file)
            result = self.stack.destroy(on_event=self.events, **self.QUIET)
        except (auto_errors.CommandError, OffboardStackError) as exc:
            self._take_back(guards, tenant_file, purge, exc)
            raise
        self._tombstone(identity)
        self._unmark(purge)
        self._forget_adoption()
        return dict(result.summary.resource_changes or {})

    def _identity(self) -> dict[str, str]:
        """The tenant's id and slug for the tombstone, from the stack's tags or else its last outputs."""
        tags = self.stack.list_tags()
        exported = self.stack.outputs().get("tenant")
        values = exported.value if exported is not None and isinstance(exported.value, dict) else {}
        return {TAG_TENANT_ID: tags.get(TAG_TENANT_ID) or str(values.get("tenant_id") or ""),
                TAG_SLUG: tags.get(TAG_SLUG) or self.slug}

    def _mark(self, purge: bool) -> None:
        from pulumi.automation import ConfigValue

        self.stack.set_config(OFFBOARDING_KEY, ConfigValue("true"))
        if purge:
            self.stack.set_config(f"{PROJECT}:{PURGE_CONFIG}.{self.slug}", ConfigValue("true"), path=True)

    def _unmark(self, purge: bool) -> None:
        self.stack.remove_config(OFFBOARDING_KEY)
        if purge:
            self.stack.remove_config(f"{PROJECT}:{PURGE_CONFIG}.{self.slug}", path=True)

    def _forget_adoption(self) -> None:
        """A restore's `adopt` names objects this destroy just scheduled for deletion: a later re-add must not
        try to import them again unless a new `tenantctl restore` says so."""
        if ADOPT_KEY in self.stack.get_all_config():
            self.stack.remove_config(ADOPT_KEY)

    def _lift(self, guards: stack_guards.Guards, tenant_file: bool) -> None:
        if not guards.urns:
            return
        if tenant_file:
            self.stack.up(target=guards.urns, on_event=self.events, **self.QUIET)
        else:
            stack_guards.set_guards(self.stack, guards, on=False)
        left = stack_guards.read_guards(self.stack)
        if left.urns:
            raise OffboardStackError(f"the guards of {', '.join(left.urns)} are still set; nothing was destroyed")

    def _take_back(self, guards: stack_guards.Guards, tenant_file: bool, purge: bool, cause: Exception) -> None:
        """The marks out of the config and the guards back on what is left, whatever step failed."""
        from pulumi.automation import errors as auto_errors

        try:
            self._unmark(purge)
            if tenant_file:
                still = self._urns_in_state(guards)
                if still:
                    self.stack.up(target=still, **self.QUIET)
            else:
                stack_guards.set_guards(self.stack, guards, on=True)
        except auto_errors.CommandError as exc:
            raise OffboardStackError(
                f"{headline(str(cause))}; then putting the guards back failed too ({headline(str(exc))}): run "
                f"`pulumi config rm {OFFBOARDING} --stack {self.stack.name}` and `tenantctl up` for this tenant"
            ) from None

    def _urns_in_state(self, guards: stack_guards.Guards) -> list[str]:
        """The guarded resources a failed destroy left: a targeted up must not recreate a deleted one."""
        deployment = engine.export_state(self.stack)
        present = {r["urn"] for r in (deployment.get("deployment") or {}).get("resources") or []}
        return [urn for urn in guards.urns if urn in present]

    def _tombstone(self, identity: dict[str, str]) -> None:
        for key, value in {**identity, TAG_OFFBOARDED_AT: offboarded_at()}.items():
            if value:
                self.stack.set_tag(key, value)
