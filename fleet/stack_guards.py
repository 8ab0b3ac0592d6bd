"""The engine guards (`protect`, `retainOnDelete`) recorded in a stack's state: read, cleared and put back.

Offboarding needs this where the program cannot run, because the tenant's file is gone (a removal). Then no
`up` can apply the program's unguarded declaration, and `pulumi state unprotect` alone is not enough:
it clears `protect` but leaves `retainOnDelete`. The destroy would then only forget the Secrets Manager
secret instead of scheduling its deletion. So the state itself is edited: exported as a reviewer
sees it (secrets stay ciphertext), the two flags changed on the named resources only, and imported again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fleet import engine

FLAGS = ("protect", "retainOnDelete")


@dataclass
class Guards:
    """Which resources of a stack carry which guard, by URN."""

    flags: dict[str, list[str]] = field(default_factory=dict)  # urn -> the FLAGS it has set

    @property
    def urns(self) -> list[str]:
        return sorted(self.flags)


def _resources(deployment: dict) -> list[dict]:
    return (deployment.get("deployment") or {}).get("resources") or []


def read_guards(stack) -> Guards:
    """The guarded resources of the stack, as its state records them now."""
    guards = Guards()
    for resource in _resources(engine.export_state(stack)):
        set_flags = [flag for flag in FLAGS if resource.get(flag)]
        if set_flags:
            guards.flags[resource["urn"]] = set_flags
    return guards


def set_guards(stack, guards: Guards, on: bool) -> None:
    """Clear (`on=False`) or put back (`on=True`) exactly these guards on the resources still in the state."""
    deployment = engine.export_state(stack)
    changed = False
    for resource in _resources(deployment):
        for flag in guards.flags.get(resource["urn"], []):
            if bool(resource.get(flag)) != on:
                resource[flag] = on
                changed = True
    if changed:
        engine.import_state(stack, deployment)


