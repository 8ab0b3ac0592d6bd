"""offboard_stack's steps and their order, on a recorded stack (the real engine: tests/e2e/test_offboarding.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pulumi.automation import errors

from fleet import engine, offboard_stack, stack_guards
from fleet.stack_guards import Guards

KEY = "urn:pulumi:prod.acme::tenant-onboarding::t$aws:kms/key:Key::acme-kms-key"
SECRET = "urn:pulumi:prod.acme::tenant-onboarding::t$aws:secretsmanager/secret:Secret::acme-credentials"  # noqa: S105


class RecordedStack:
    name = "prod.acme"

    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on
        self.tags = {"tenant:id": "20ab6862-0914-44a5-8827-42ff80980e24"}
        self.config: set[str] = set()
        self.workspace = SimpleNamespace(remove_stack=lambda name: self.calls.append(f"stack rm {name}"))

    def _step(self, call: str):
        self.calls.append(call)
        if self.fail_on and (call == self.fail_on or call.startswith(f"{self.fail_on} --target")):
            raise errors.CommandError(SimpleNamespace(stdout="", stderr=f"error: {call} failed", code=1))

    def destroy(self, preview_only=False, exclude_protected=False, **_):
        self._step("destroy --preview-only" if preview_only else "destroy")
        return SimpleNamespace(summary=SimpleNamespace(resource_changes={"delete": 5}))

    def up(self, target=None, **_):
        self._step(f"up --target {' '.join(target)}")

    def set_config(self, key, value, path=False):
        self._step(f"config set {key} {value.value}")
        self.config.add(key)

    def remove_config(self, key, path=False):
        self._step(f"config rm {key}")
        self.config.discard(key)

    def list_tags(self):
        return dict(self.tags)

    def set_tag(self, key, value):
        self.calls.append(f"tag {key}")
        self.tags[key] = value

    def remove_tag(self, key):
        self.tags.pop(key, None)

    def outputs(self):
        return {}

    def get_all_config(self):
        return {}


@pytest.fixture
def stack(monkeypatch):
    recorded = RecordedStack()
    guards = {"on": True}
    monkeypatch.setattr(engine, "open_stack", lambda spec, create=True: recorded)
    monkeypatch.setattr(engine, "export_state", lambda _s: {"deployment": {"resources": [{"urn": KEY}]}})
    monkeypatch.setattr(stack_guards, "read_guards", lambda _s: Guards(
        {KEY: ["protect"], SECRET: ["retainOnDelete"]} if guards["on"] else {}))

    def set_guards(_s, _g, on):
        recorded.calls.append(f"state guards {'on' if on else 'off'}")
        guards["on"] = on

    monkeypatch.setattr(stack_guards, "set_guards", set_guards)
    original_up = recorded.up

    def up(target=None, **kwargs):  # the program declares the guards unless the stack is marked
        original_up(target=target, **kwargs)
        guards["on"] = offboard_stack.OFFBOARDING_KEY not in recorded.config

    recorded.up = up
    return recorded


SPEC = engine.StackSpec(engine.Backend(project_root=None), "prod.acme")


def test_with_the_file_the_guards_are_lifted_by_a_targeted_up_then_destroyed_and_tombstoned(stack):
    stack.tags[engine.APPLIED_DIGEST_TAG] = "sha256:applied"  # what the last up recorded: no longer the state
    outcome = offboard_stack.offboard_stack(SPEC, tenant_file=True)
    assert outcome.ok, outcome.errors
    assert engine.APPLIED_DIGEST_TAG not in stack.tags
    assert stack.calls == [
        "destroy --preview-only",
        "config set tenant-onboarding:offboarding true",
        f"up --target {KEY} {SECRET}",
        "destroy",
        "tag tenant:id", "tag tenant:slug", "tag tenant:offboarded-at",
        "config rm tenant-onboarding:offboarding",
    ]
    assert outcome.summary == {"delete": 5} and not outcome.removed


def test_without_the_file_the_state_is_edited_and_erase_history_removes_the_stack(stack):
    outcome = offboard_stack.offboard_stack(SPEC, tenant_file=False, erase_history=True)
    assert outcome.ok, outcome.errors
    assert "state guards off" in stack.calls and not any(c.startswith("up") for c in stack.calls)
    assert stack.calls[-1] == "stack rm prod.acme" and outcome.removed


def test_a_failed_destroy_preview_changes_nothing(stack):
    stack.fail_on = "destroy --preview-only"
    outcome = offboard_stack.offboard_stack(SPEC, tenant_file=False)
    assert not outcome.ok and "failed" in outcome.errors[0]
    assert stack.calls == ["destroy --preview-only"]


def test_a_failed_destroy_takes_the_mark_back_and_puts_the_guards_back(stack):
    stack.fail_on = "destroy"
    outcome = offboard_stack.offboard_stack(SPEC, tenant_file=False)
    assert not outcome.ok and "destroy failed" in outcome.errors[0]
    assert stack.calls[-3:] == ["destroy", "config rm tenant-onboarding:offboarding", "state guards on"]
    assert "tag tenant:offboarded-at" not in stack.calls


def test_a_failed_lift_with_the_file_puts_the_guards_back_on_what_is_left(stack):
    stack.fail_on = "up"
    outcome = offboard_stack.offboard_stack(SPEC, tenant_file=True, purge=True)
    assert not outcome.ok
    assert stack.calls[1:] == [
        "config set tenant-onboarding:offboarding true",
        "config set tenant-onboarding:purgeData.acme true",
        f"up --target {KEY} {SECRET}",
        "config rm tenant-onboarding:offboarding",
        "config rm tenant-onboarding:purgeData.acme",
        f"up --target {KEY}",  # the secret is no longer in the state: only what is left is guarded again
    ]


def test_purge_without_the_file_is_refused_before_anything_runs(stack):
    outcome = offboard_stack.offboard_stack(SPEC, tenant_file=False, purge=True)
    assert not outcome.ok and "needs its tenant file" in outcome.errors[0] and stack.calls == []


def test_a_platform_stack_is_never_offboarded(stack):
    outcome = offboard_stack.offboard_stack(engine.StackSpec(SPEC.backend, "prod"))
    assert not outcome.ok and "platform stack" in outcome.errors[0] and stack.calls == []
