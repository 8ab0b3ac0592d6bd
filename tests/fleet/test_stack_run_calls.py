"""What a tenant stack's `up` asks of the Pulumi CLI, and what it reads from a file backend's folder instead
(issue 22, item 4; tests/e2e/test_stack_cost.py counts the calls with the real engine). No engine here: stand-in
stacks record what they are asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet import engine, pending_operations, stack_run
from fleet.desired_state import DIGEST_TAG, Desired, SharedInputs, config_fingerprint, known_digest, stack_config
from fleet.rehearsal import rehearsal_backend
from tests.conftest import ROOT

DIGEST = "v1:" + "a" * 64
OTHER = "v1:" + "b" * 64
STACK = "rehearsal.acme"
SECRET = {engine.SIGNATURE_KEY: engine.SECRET_SIGNATURE, "ciphertext": "v1:abc"}


class Stack:
    """A stand-in for the Automation API's Stack: records the tag calls, answers list_tags."""

    def __init__(self, tags: dict[str, str] | None = None) -> None:
        self.name = STACK
        self.tags = dict(tags or {})
        self.calls: list[str] = []

    def list_tags(self) -> dict[str, str]:
        self.calls.append("tag ls")
        return dict(self.tags)

    def remove_tag(self, key: str) -> None:
        self.calls.append(f"tag rm {key}")
        self.tags.pop(key, None)

    def set_tag(self, key: str, value: str) -> None:
        self.calls.append(f"tag set {key}")
        self.tags[key] = value


# ---- the applied digest before an `up`: removed unless this `up` reapplies it ----

@pytest.mark.parametrize(("tags", "applying", "refresh_first", "removed"), [
    ({DIGEST_TAG: DIGEST}, DIGEST, False, False),  # this up applies the recorded desired state: kept
    ({DIGEST_TAG: DIGEST}, OTHER, False, True),  # another desired state: removed before the up
    ({DIGEST_TAG: DIGEST}, None, False, True),  # not known before the up: removed
    ({DIGEST_TAG: DIGEST}, DIGEST, True, True),  # a refresh comes first: it changes the state
    (None, DIGEST, False, True),  # the tags could not be read: removed, as before
    ({}, None, False, False),  # nothing recorded: nothing to remove
])
def test_the_applied_digest_is_removed_before_an_up_unless_that_up_reapplies_it(tags, applying, refresh_first,
                                                                                removed):
    stack = Stack(tags)
    stack_run._forget_unless_reapplied(stack, tags, applying, refresh_first)
    assert stack.calls == ([f"tag rm {DIGEST_TAG}"] if removed else [])
    if removed and tags is not None:
        assert DIGEST_TAG not in tags  # the run's view of the tags follows: the digest is set again after the up


def test_after_a_successful_up_only_the_tags_that_differ_are_written_from_the_tags_read_before_it():
    stack = Stack({DIGEST_TAG: DIGEST, "tenant:slug": "acme", stack_run.LAST_ERROR_TAG: "boom"})
    current = stack.list_tags()
    stack.calls.clear()
    stack_run._record_error(stack, None, {"tenant:slug": "acme"}, {DIGEST_TAG: DIGEST, "tenant:deployed-commit": "c"},
                            current=current)
    assert stack.calls == ["tag set tenant:deployed-commit", f"tag rm {stack_run.LAST_ERROR_TAG}"]


def test_without_the_tags_read_before_they_are_read_after_the_up_as_before():
    stack = Stack({DIGEST_TAG: DIGEST})
    stack_run._record_error(stack, None, {}, {DIGEST_TAG: OTHER})
    assert stack.calls == ["tag ls", f"tag set {DIGEST_TAG}"]


# ---- the digest an `up` applies, known before it ----

def _shared() -> SharedInputs:
    return SharedInputs(b"k" * 32, {}, {}, "", "")


def _stack_file(tmp_path: Path, config: dict) -> engine.StackSpec:
    backend = rehearsal_backend(ROOT, tmp_path, "passphrase")
    backend.work_dir.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in config.items())
    (backend.work_dir / f"Pulumi.{STACK}.yaml").write_text(f"config:\n{lines}", encoding="utf-8")
    return engine.StackSpec(backend, STACK)


def test_the_run_s_desired_digest_is_the_applied_one_only_when_the_stack_file_holds_the_config_it_was_computed_with(
        tmp_path):
    shared = _shared()
    spec = _stack_file(tmp_path, {"tenant-onboarding:runChecks": "true", "tenant-onboarding:key": {"secure": "v1:x"}})
    planned = stack_config({"tenant-onboarding:key": {"secure": "v1:x"}}, {"runChecks": "true"}, {"key": "plain"})
    desired = Desired(DIGEST, config=config_fingerprint(planned, shared.key))
    assert known_digest(spec, shared, desired) == DIGEST
    # A value the file holds differently (an operator's edit, a secret set anew): computed after the up instead.
    spec = _stack_file(tmp_path, {"tenant-onboarding:runChecks": "false", "tenant-onboarding:key": {"secure": "v1:x"}})
    assert known_digest(spec, shared, desired) is None
    spec = _stack_file(tmp_path, {"tenant-onboarding:runChecks": "true", "tenant-onboarding:key": {"secure": "v1:y"}})
    assert known_digest(spec, shared, desired) is None
    assert known_digest(spec, shared, None) is None and known_digest(spec, None, desired) is None


# ---- what is read from a file backend's folder instead of asked of the CLI ----

def _checkpoint(backend: engine.Backend, outputs: dict, pending: list | None = None) -> None:
    folder = backend.backend_dir / ".pulumi" / "stacks" / "tenant-onboarding"
    folder.mkdir(parents=True, exist_ok=True)
    root = {"urn": f"urn:pulumi:{STACK}::tenant-onboarding::pulumi:pulumi:Stack::x", "type": "pulumi:pulumi:Stack",
            "outputs": outputs}
    latest = {"resources": [root], **({"pending_operations": pending} if pending else {})}
    (folder / f"{STACK}.json").write_text(json.dumps({"version": 3, "checkpoint": {"latest": latest}}))


def test_outputs_are_read_from_the_checkpoint_leaving_out_every_one_with_a_secret_anywhere(tmp_path):
    backend = rehearsal_backend(ROOT, tmp_path, "passphrase")
    _checkpoint(backend, {"tenant": {"checks": {"rls": True}}, "key": SECRET, "nested": {"a": [1, SECRET]}})
    assert engine.outputs_from_checkpoint(backend, STACK) == {"tenant": {"checks": {"rls": True}}}
    # An asset or a resource reference: asked of the CLI, which renders it.
    _checkpoint(backend, {"file": {engine.SIGNATURE_KEY: "c44067f5952c0a294b673a41bacd8c17", "text": "x"}})
    assert engine.outputs_from_checkpoint(backend, STACK) is None
    assert engine.outputs_from_checkpoint(rehearsal_backend(ROOT, tmp_path / "none", "p"), STACK) is None


def test_tags_are_read_from_the_file_beside_the_checkpoint_else_asked_of_the_cli(tmp_path):
    backend = rehearsal_backend(ROOT, tmp_path, "passphrase")
    _checkpoint(backend, {})
    stack = Stack({"asked": "cli"})
    assert engine.read_tags(stack, backend) == {"asked": "cli"}  # no tags file: the CLI
    tags_file = backend.backend_dir / ".pulumi" / "stacks" / "tenant-onboarding" / f"{STACK}.pulumi-tags"
    tags_file.write_text(json.dumps({"version": 1, "tags": {DIGEST_TAG: DIGEST}}))
    assert engine.read_tags(stack, backend) == {DIGEST_TAG: DIGEST}
    tags_file.write_text(json.dumps({"version": 2, "tags": {}}))  # a form not known here: the CLI
    assert engine.read_tags(stack, backend) == {"asked": "cli"}
    assert stack.calls == ["tag ls", "tag ls"]


def test_pending_operations_are_looked_for_in_the_checkpoint_and_exported_by_the_cli_only_when_there_are_some(
        tmp_path, monkeypatch):
    backend = rehearsal_backend(ROOT, tmp_path, "passphrase")
    spec = engine.StackSpec(backend, STACK)
    exported = []
    monkeypatch.setattr(engine, "export_state", lambda stack: exported.append(stack) or {"deployment": {}})
    _checkpoint(backend, {})
    assert pending_operations.recover(object(), spec, apply=True) == [] and exported == []
    operation = {"type": "updating", "resource": {"urn": "urn:pulumi:s::p::random:index/randomId:RandomId::r",
                                                  "type": "random:index/randomId:RandomId"}}
    _checkpoint(backend, {}, pending=[operation])
    pending_operations.recover("stack", spec, apply=True)
    assert exported == ["stack"]  # the engine's own export decides (here it holds none: nothing to import)


def test_the_cli_s_version_is_asked_once_per_binary_and_told_to_later_processes(tmp_path, monkeypatch):
    binary = tmp_path / "bin" / "pulumi"
    binary.parent.mkdir()
    log = tmp_path / "asked"
    binary.write_text(f"#!/bin/sh\necho \"$1\" >> {log}\necho v3.276.0\n")
    binary.chmod(0o755)
    monkeypatch.delenv(engine.KNOWN_VERSION, raising=False)
    engine._pulumi_command.cache_clear()
    try:
        first = engine._pulumi_command(str(tmp_path))
        engine._pulumi_command.cache_clear()  # as a new process (a stack's worker) that inherits the environment
        second = engine._pulumi_command(str(tmp_path))
        assert str(first.version) == str(second.version) == "3.276.0" and second.command == str(binary)
        assert log.read_text().split() == ["version"]
        binary.write_text(binary.read_text() + "# rebuilt\n")  # another binary: asked again
        engine._pulumi_command.cache_clear()
        engine._pulumi_command(str(tmp_path))
        assert log.read_text().split() == ["version", "version"]
    finally:
        engine._pulumi_command.cache_clear()
