"""Skipping what is proven unchanged (fleet.skipping, fleet rule 7): the decision, what a stack's files say about
its last run, and what a fleet run does with the decisions: waves, removals, orphans and the summary. No engine:
the stack runs are stand-ins that return outcomes."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from fleet import desired_state, engine, skipping
from fleet import project_runs as fleet_command
from fleet.desired_state import COMMIT_TAG, DIGEST_TAG, Desired
from fleet.rehearsal import rehearsal_backend
from fleet.rollout import Selection, run_fleet
from fleet.skipping import Decision, LastRun, decide
from fleet.stack_identity import TAG_TENANT_ID, StackIdentity
from fleet.stack_run import LAST_ERROR_TAG
from tenancy.model import Tenant
from tests.conftest import ROOT
from tests.fleet.recorded_runs import RecordedRuns
from tests.tenant_text import tenant_yaml

DIGEST = "v1:" + "a" * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CLEAN = LastRun(applied_digest=DIGEST, deployed_commit=COMMIT, history=("update", "succeeded"),
                checks={"rls_enabled_and_forced": True, "webhook_signed_probe_accepted": True})


def tenant(slug: str, tier: str = "basic") -> Tenant:
    from ruamel.yaml import YAML

    return Tenant.model_validate(YAML(typ="safe").load(tenant_yaml(slug, tier=tier)))


# ---- the decision ----

def test_an_unchanged_digest_after_a_clean_run_is_skipped_naming_the_deployed_commit():
    decision = decide(Desired(DIGEST), CLEAN)
    assert decision == Decision(True, "desired state unchanged since 0123456789ab")


def test_without_a_recorded_commit_the_reason_names_the_last_up():
    assert decide(Desired(DIGEST), LastRun(**{**vars(CLEAN), "deployed_commit": None})).reason == (
        "desired state unchanged since its last up")


@pytest.mark.parametrize(("change", "says"), [
    ({"applied_digest": "v1:" + "b" * 64}, "desired state changed since 0123456789ab"),
    ({"applied_digest": None}, "no applied digest recorded"),
    ({"last_error": "onboarding checks failed"}, "its last up failed: onboarding checks failed"),
    ({"history": ("update", "failed")}, "its last operation was a update that failed"),
    ({"history": ("refresh", "succeeded")}, "its last operation was a refresh that succeeded"),
    ({"history": None}, "no update in its history"),
    ({"pending": ("creating acme-key",)}, "pending operations: creating acme-key"),
    ({"locked": "pid 7 of ci on runner since 2026-12-04"}, "locked: pid 7"),
    ({"checks": {"rls_enabled_and_forced": True, "webhook_signed_probe_accepted": False}},
     "its last check failed: webhook_signed_probe_accepted"),
    ({"checks": None}, "no check verdict exported"),
    ({"unreadable": "ValueError: bad json"}, "its last run cannot be read: ValueError"),
    ({"offboarded": True}, "offboarded"),
])
def test_a_stack_whose_last_run_was_not_clean_or_whose_digest_changed_runs_and_says_why(change, says):
    decision = decide(Desired(DIGEST), LastRun(**{**vars(CLEAN), **change}))
    assert not decision.skip and says in decision.reason


def test_a_stack_whose_digest_cannot_be_computed_is_never_skipped_and_says_why():
    decision = decide(Desired(None, "rehearsal.acme: the program does not run offline: boom"), CLEAN)
    assert not decision.skip and decision.reason == (
        "no desired-state digest: rehearsal.acme: the program does not run offline: boom")


def test_a_new_stack_runs():
    assert decide(Desired(DIGEST), None) == Decision(False, "no stack yet")


# ---- what a stack's files say about its last run (a file backend, read without the engine) ----

def _backend(tmp_path) -> engine.Backend:
    return rehearsal_backend(ROOT, tmp_path, "passphrase")


def _write_stack(backend: engine.Backend, stack: str, *, pending: list | None = None, checks: dict | None = None,
                 history: list[tuple[int, str, str]] = ((1, "update", "succeeded"),)) -> None:
    root = backend.backend_dir / ".pulumi"
    (root / "stacks" / "tenant-onboarding").mkdir(parents=True, exist_ok=True)
    resources = [{"urn": f"urn:pulumi:{stack}::tenant-onboarding::pulumi:pulumi:Stack::x",
                  "type": "pulumi:pulumi:Stack", "custom": False,
                  "outputs": {"tenant": {"checks": checks if checks is not None else {"rls": True}}}}]
    latest = {"manifest": {}, "resources": resources, **({"pending_operations": pending} if pending else {})}
    (root / "stacks" / "tenant-onboarding" / f"{stack}.json").write_text(
        json.dumps({"version": 3, "checkpoint": {"stack": stack, "latest": latest}}))
    folder = root / "history" / "tenant-onboarding" / stack
    folder.mkdir(parents=True, exist_ok=True)
    for stamp, kind, result in history:
        (folder / f"{stack}-{stamp}.history.json").write_text(json.dumps({"kind": kind, "result": result}))


def _identity(stack: str, **tags: str) -> StackIdentity:
    values = {TAG_TENANT_ID: "t", DIGEST_TAG: DIGEST, COMMIT_TAG: COMMIT, **tags}
    return StackIdentity(stack, "t", tags=values)


def test_a_clean_stack_is_read_from_its_tags_checkpoint_and_newest_history_entry(tmp_path):
    backend = _backend(tmp_path)
    _write_stack(backend, "rehearsal.acme", history=[(9, "update", "succeeded"), (10, "update", "succeeded"),
                                                     (8, "refresh", "failed")])
    last = skipping.last_run(engine.StackSpec(backend, "rehearsal.acme"), _identity("rehearsal.acme"))
    assert last == LastRun(applied_digest=DIGEST, deployed_commit=COMMIT, history=("update", "succeeded"),
                           checks={"rls": True})
    assert decide(Desired(DIGEST), last).skip


def test_pending_operations_a_lock_a_failed_update_or_a_last_error_are_read(tmp_path):
    backend = _backend(tmp_path)
    pending = [{"type": "creating", "resource": {"urn": "urn:pulumi:s::p::aws:kms/key:Key::acme-key",
                                                 "type": "aws:kms/key:Key"}}]
    _write_stack(backend, "rehearsal.acme", pending=pending, history=[(1, "update", "succeeded"),
                                                                      (2, "update", "failed")])
    lock = backend.backend_dir / ".pulumi" / "locks" / "organization" / "tenant-onboarding" / "rehearsal.acme"
    lock.mkdir(parents=True)
    (lock / "x.json").write_text(json.dumps({"pid": 1, "hostname": "elsewhere", "username": "ci",
                                             "timestamp": "2026-12-04T10:00:00Z"}))
    last = skipping.last_run(engine.StackSpec(backend, "rehearsal.acme"),
                             _identity("rehearsal.acme", **{LAST_ERROR_TAG: "boom"}))
    assert last.pending == ("creating acme-key (aws:kms/key:Key)",) and last.history == ("update", "failed")
    assert last.locked and "elsewhere" in last.locked and last.last_error == "boom"
    assert not decide(Desired(DIGEST), last).skip


def test_an_unreadable_checkpoint_makes_the_stack_run(tmp_path):
    backend = _backend(tmp_path)
    _write_stack(backend, "rehearsal.acme")
    (backend.backend_dir / ".pulumi" / "stacks" / "tenant-onboarding" / "rehearsal.acme.json").write_text("{")
    last = skipping.last_run(engine.StackSpec(backend, "rehearsal.acme"), _identity("rehearsal.acme"))
    assert last.unreadable and not decide(Desired(DIGEST), last).skip


# ---- a fleet run with the decisions ----

FLEET = [tenant("acme", "premium"), tenant("globex"), tenant("initech"), tenant("umbrella", "premium"),
         tenant("wayne")]


Runs = RecordedRuns


@pytest.fixture
def decided(monkeypatch, tmp_path):
    """Digests and last runs as a test sets them: `unchanged` slugs are skipped, the others changed; `no_digest`
    slugs have none."""
    settings = {"unchanged": set(), "no_digest": set()}

    def digests(_root, _env, tenants, _spec_for, _shared, _concurrency=2, no_shared="?"):
        return {t.slug: Desired(None, "the program does not run offline: boom") if t.slug in settings["no_digest"]
                else Desired(DIGEST if t.slug in settings["unchanged"] else "v1:" + "c" * 64) for t in tenants}

    monkeypatch.setattr(desired_state, "desired_digests", digests)
    monkeypatch.setattr(skipping, "last_run", lambda _spec, _identity: CLEAN)
    return settings


def _spec_for(tmp_path):
    backend = _backend(tmp_path)
    return lambda stack, _tenant: engine.StackSpec(backend, stack)


def _selection(tenants=FLEET, removed=(), orphans=()) -> Selection:
    identities = {f"prod.{t.slug}": StackIdentity(f"prod.{t.slug}", str(t.tenant_id)) for t in tenants}
    return Selection("prod", True, list(tenants), removed=list(removed), orphans=list(orphans),
                     identities=identities)


def _shared():
    return object(), None


def _text(table) -> str:
    console = Console(width=400, record=True)
    console.print(table)
    return console.export_text()


def test_unchanged_stacks_are_skipped_in_their_wave_and_a_skipped_canary_wave_is_said_and_goes_on(
        monkeypatch, tmp_path, decided):
    decided["unchanged"] = {"acme", "globex", "initech", "umbrella"}  # the canaries (acme, globex) among them
    runs = Runs(monkeypatch, changes={"prod.wayne": 2})
    said = []
    result = run_fleet(_selection(), "up", _spec_for(tmp_path), say=said.append, shared=_shared, commit=COMMIT)
    assert runs.ran == ["prod", "prod.wayne"]
    assert result.waves == [["acme", "globex"], ["initech", "umbrella", "wayne"]]  # skipping changes no wave
    assert [o.status for o in result.tenants] == ["skipped", "skipped", "skipped", "skipped", "ok"]
    assert result.tally() == {"ok": 1, "changed": 1, "failed": 0, "skipped": 4}
    assert result.ok and result.stopped_after_wave is None
    assert any("wave 1 (canary): every stack skipped" in r and "the rollout goes on" in r for r in result.remarks)
    assert "  prod.acme: skipped (desired state unchanged since 0123456789ab)" in said
    report = result.as_dict()
    assert report["counts"]["skipped"] == 4
    assert {"stack": "prod.initech", "reason": "desired state unchanged since 0123456789ab"} in report["skipped"]
    wayne = next(t for t in report["tenants"] if t["stack"] == "prod.wayne")
    assert wayne["reason"] == "desired state changed since 0123456789ab"
    text = _text(fleet_command.summary_table(result))
    assert "1 ok, 1 changed, 0 failed, 4 skipped" in text and "desired state unchanged since 0123456789ab" in text
    assert "wave 1 (canary): every stack skipped" in text
    markdown = fleet_command.markdown_summary(result)
    assert "4 skipped: desired state unchanged" in markdown and "`prod.acme`: desired state unchanged" in markdown


def test_force_runs_every_selected_stack_and_an_up_hands_each_its_digest_to_record(monkeypatch, tmp_path, decided):
    decided["unchanged"] = {t.slug for t in FLEET}  # unchanged, and still run
    runs = Runs(monkeypatch)
    result = run_fleet(_selection(), "up", _spec_for(tmp_path), shared=_shared, force=True)
    assert runs.ran == ["prod", *(f"prod.{t.slug}" for t in FLEET)]
    assert all(o.reason == skipping.FORCED for o in result.tenants) and result.tally()["skipped"] == 0
    # Each tenant stack's `up` records its digest as applied without a mock run of its own (fleet.stack_run).
    assert [job.desired for job in runs.jobs] == [None, *[Desired(DIGEST)] * len(FLEET)]


def test_a_forced_preview_computes_no_digest(monkeypatch, tmp_path, decided):
    monkeypatch.setattr(desired_state, "desired_digests", lambda *_a, **_k: pytest.fail("no digest for a preview"))
    runs = Runs(monkeypatch)
    result = run_fleet(_selection(), "preview", _spec_for(tmp_path), shared=_shared, force=True)
    assert runs.ran == ["prod", *(f"prod.{t.slug}" for t in FLEET)] and result.tally()["skipped"] == 0
    assert all(job.desired is None for job in runs.jobs)


@pytest.mark.parametrize("operation", ["up", "preview"])
def test_refresh_refreshes_every_selected_stack_before_it_runs(monkeypatch, tmp_path, decided, operation):
    decided["unchanged"] = {t.slug for t in FLEET}
    runs = Runs(monkeypatch)
    result = run_fleet(_selection(), operation, _spec_for(tmp_path), shared=_shared, refresh=True)
    assert len(runs.jobs) == 1 + len(FLEET) and all(job.refresh_first for job in runs.jobs)  # the platform too
    assert result.tally()["skipped"] == 0


def test_a_stack_without_a_digest_runs_and_the_summary_says_why(monkeypatch, tmp_path, decided):
    decided["unchanged"] = {t.slug for t in FLEET}
    decided["no_digest"] = {"initech"}
    runs = Runs(monkeypatch)
    result = run_fleet(_selection(), "up", _spec_for(tmp_path), shared=_shared)
    assert runs.ran == ["prod", "prod.initech"]
    text = _text(fleet_command.summary_table(result))
    assert "ran: no desired-state digest: the program does not run offline: boom" in text


def test_no_shared_inputs_run_every_stack_saying_why(monkeypatch, tmp_path):
    runs = Runs(monkeypatch)
    result = run_fleet(_selection(), "up", _spec_for(tmp_path),
                       shared=lambda: (None, "environment prod has no digest key yet (its first `up` makes it)"))
    assert len(runs.ran) == 1 + len(FLEET)
    assert all("no digest key yet" in o.reason for o in result.tenants)


def test_removals_and_orphans_are_never_skipped(monkeypatch, tmp_path, decided):
    decided["unchanged"] = {t.slug for t in FLEET[:4]}
    runs = Runs(monkeypatch)
    result = run_fleet(_selection(FLEET[:4], removed=["wayne"], orphans=["hooli"]), "up", _spec_for(tmp_path),
                       shared=_shared)
    assert [job.operation for job in runs.jobs if job.spec.name == "prod.wayne"] == ["offboard"]
    assert result.orphans == ["hooli"] and not result.ok  # an orphan still fails the run (rule 3)
    assert result.tally()["skipped"] == 4


def test_a_failure_still_stops_the_rollout_after_its_wave(monkeypatch, tmp_path, decided):
    many = [*FLEET, *(tenant(f"tenant-{n}") for n in range(6))]
    decided["unchanged"] = {"acme"}
    Runs(monkeypatch, fail={"prod.globex"})
    result = run_fleet(_selection(many), "up", _spec_for(tmp_path), shared=_shared)
    assert result.stopped_after_wave == 1 and not result.ok
    later = [o for o in result.tenants if o.stack not in ("prod.acme", "prod.globex")]
    assert later and all(o.errors == ["not run: wave 1 had a failure"] for o in later)


def test_a_preview_skips_too_and_says_when_the_platform_changes_first(monkeypatch, tmp_path, decided):
    decided["unchanged"] = {t.slug for t in FLEET}
    runs = Runs(monkeypatch, changes={"prod": 1})
    result = run_fleet(_selection(), "preview", _spec_for(tmp_path), shared=_shared, create_stacks=False)
    assert runs.ran == ["prod"] and result.tally() == {"ok": 0, "changed": 1, "failed": 0, "skipped": 5}
    assert any("the platform stack prod changes" in remark for remark in result.remarks)


def test_without_digest_inputs_nothing_is_judged(monkeypatch, tmp_path):
    runs = Runs(monkeypatch)
    result = run_fleet(_selection(), "up", _spec_for(tmp_path))
    assert len(runs.ran) == 1 + len(FLEET) and all(o.reason is None for o in result.tenants)
