"""A gated release (fleet.release_gate): `up --until canary` runs the canary wave and records it; `up --after canary`
runs the rest only for the same commit, selection and canary state. No engine: the stack runs are stand-ins, the
stacks' tags a dict, the record store a folder."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fleet import desired_state, engine, release_gate, rollout, skipping, stack_identity
from fleet import project_runs as fleet_command
from fleet.desired_state import COMMIT_TAG, DIGEST_TAG, Desired
from fleet.record_store import FileRecords
from fleet.rehearsal import rehearsal_backend
from fleet.release_gate import ReleaseRecord, ReleaseRefused, refusals
from fleet.rollout import Selection, run_fleet
from fleet.skipping import LastRun
from fleet.stack_identity import StackIdentity
from tenancy.model import Tenant
from tests.conftest import ROOT
from tests.fleet.recorded_runs import RecordedRuns
from tests.tenant_text import tenant_yaml

A = "a" * 40
B = "b" * 40
DIGEST = "v1:" + "d" * 64
CHANGED = "v1:" + "c" * 64
UNTIL = "tenantctl up --env prod --until canary"


def tenant(slug: str, tier: str = "basic") -> Tenant:
    from ruamel.yaml import YAML

    return Tenant.model_validate(YAML(typ="safe").load(tenant_yaml(slug, tier=tier)))


FLEET = [tenant("acme", "premium"), tenant("globex"), tenant("initech"), tenant("umbrella", "premium"),
         tenant("wayne")]
WAVES = [["acme", "globex"], ["initech", "umbrella", "wayne"]]


# ---- the gate's verdict (pure) ----

def awaiting(**changes) -> ReleaseRecord:
    record = ReleaseRecord("prod", A, None, None, WAVES, [], release_gate.AWAITING, "2026-12-04T21:00:00+00:00",
                           canary={s: {"digest": DIGEST, "commit": A} for s in WAVES[0]}, platform_commit=A)
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def verdict(record, **now) -> list[str]:
    current = {"env": "prod", "commit": A, "changed_since": None, "only": None, "waves": WAVES, "removed": [],
               "canary_tags": {s: {"digest": DIGEST, "commit": A} for s in WAVES[0]},
               "canary_decisions": {s: (True, "desired state unchanged") for s in WAVES[0]},
               "platform_commit": A, "until": UNTIL}
    return refusals(record, **{**current, **now})


def test_the_approval_holds_for_the_canary_of_the_same_commit_selection_and_state():
    assert verdict(awaiting()) == []
    assert verdict(awaiting(status=release_gate.RELEASED)) == []  # a re-run after a later wave failed


@pytest.mark.parametrize(("record", "now", "expected"), [
    (None, {}, "no canary has run in prod: `tenantctl up --env prod --until canary` runs the canary wave first"),
    (awaiting(status=release_gate.RUNNING), {}, "did not finish: interrupted?"),
    (awaiting(status=release_gate.FAILED, problems=["prod.acme: failed (boom)"]), {},
     "the canary of aaaaaaaaaaaa failed: prod.acme: failed (boom)"),
    (awaiting(), {"commit": B}, "the canary proved commit aaaaaaaaaaaa, this checkout is bbbbbbbbbbbb"),
    (awaiting(), {"changed_since": B}, "the canary ran another selection"),
    (awaiting(), {"only": ["wayne"]}, "the canary ran another selection"),
    (awaiting(), {"waves": [["acme", "globex"], ["initech", "umbrella"]]}, "the waves changed since the canary"),
    (awaiting(), {"removed": ["hooli"]}, "the waves changed since the canary"),
    (awaiting(), {"canary_tags": {"acme": {"digest": CHANGED, "commit": B}, "globex": {"digest": DIGEST, "commit": A}}},
     "canary acme: its stack changed since the canary"),
    (awaiting(), {"canary_decisions": {"acme": (True, "x"), "globex": (False, "desired state changed")}},
     "canary globex: no longer what the canary proved (desired state changed)"),
    (awaiting(canary={"acme": {"digest": None, "commit": A}, "globex": {"digest": DIGEST, "commit": A}}),
     {"canary_tags": {"acme": {"digest": None, "commit": A}, "globex": {"digest": DIGEST, "commit": A}}},
     "canary acme: the canary recorded no desired-state digest"),
    (awaiting(), {"platform_commit": B}, "the platform stack prod was deployed from bbbbbbbbbbbb since the canary"),
], ids=["no-canary", "interrupted", "failed", "other-commit", "other-base", "other-only", "other-waves",
        "other-removals", "canary-stack-changed", "canary-desired-changed", "no-digest", "platform-changed"])
def test_the_gate_refuses_with_the_reason(record, now, expected):
    problems = verdict(record, **now)
    assert problems and expected in " ".join(problems), problems


@pytest.mark.parametrize(("commit", "expected"), [(None, "has none"), (A + "+dirty", "working tree differs")])
def test_a_gated_release_is_bound_to_a_clean_commit(commit, expected):
    with pytest.raises(ReleaseRefused, match=expected):
        release_gate.bound_commit(commit, "--until canary")


# ---- what each half runs ----

def Runs(monkeypatch, fail: set[str] = frozenset()) -> RecordedRuns:  # noqa: N802 (reads as the class it was)
    """Every stack that runs reports one update; `fail`: these stacks fail."""
    return RecordedRuns(monkeypatch, fail=fail, changed=1)


@pytest.fixture
def backend(tmp_path) -> engine.Backend:
    return rehearsal_backend(ROOT, tmp_path, "passphrase")


@pytest.fixture
def digests(monkeypatch):
    """Every desired digest is DIGEST unless a test changes a slug's; every last run clean at DIGEST."""
    changed: set[str] = set()
    monkeypatch.setattr(desired_state, "desired_digests", lambda _r, _e, tenants, *_a, **_k: {
        t.slug: Desired(CHANGED if t.slug in changed else DIGEST) for t in tenants})
    clean = LastRun(applied_digest=DIGEST, deployed_commit=A, history=("update", "succeeded"), checks={"rls": True})
    monkeypatch.setattr(skipping, "last_run", lambda _spec, _identity: clean)
    return changed


def selection(removed=()) -> Selection:
    identities = {f"prod.{t.slug}": StackIdentity(f"prod.{t.slug}", str(t.tenant_id)) for t in FLEET}
    return Selection("prod", True, list(FLEET), removed=list(removed), identities=identities)


def spec_for(backend):
    return lambda stack, _tenant: engine.StackSpec(backend, stack)


def test_until_canary_runs_the_platform_and_the_canary_and_lists_everything_else_as_held(monkeypatch, backend):
    runs = Runs(monkeypatch)
    result = run_fleet(selection(removed=["hooli"]), "up", spec_for(backend), force=True, stage="until-canary")
    assert runs.ran == ["prod", "prod.acme", "prod.globex"]
    assert result.held == ["prod.initech", "prod.umbrella", "prod.wayne", "prod.hooli"] and result.removed == []
    assert result.ok and result.waves == WAVES and result.as_dict()["held"] == result.held
    table = fleet_command.summary_table(result)
    assert "canary only: 4 stack(s) held for approval" in table.title
    assert "`prod.hooli`" in fleet_command.markdown_summary(result)


def test_after_canary_runs_the_later_waves_and_the_removals_only(monkeypatch, backend):
    runs = Runs(monkeypatch)
    result = run_fleet(selection(removed=["hooli"]), "up", spec_for(backend), force=True, stage="after-canary")
    assert runs.ran == ["prod.initech", "prod.umbrella", "prod.wayne", "prod.hooli"]
    assert [job.operation for job in runs.jobs][-1] == "offboard"
    assert any("platform stack prod: applied by the canary run" in r for r in result.remarks)
    assert any("wave 1 (canary): acme, globex applied by the canary run" in r for r in result.remarks)


def test_a_failed_canary_holds_the_rest_and_runs_no_removal(monkeypatch, backend):
    runs = Runs(monkeypatch, fail={"prod.globex"})
    result = run_fleet(selection(removed=["hooli"]), "up", spec_for(backend), force=True, stage="until-canary")
    assert runs.ran == ["prod", "prod.acme", "prod.globex"] and not result.ok
    assert result.held == ["prod.initech", "prod.umbrella", "prod.wayne", "prod.hooli"]


def test_a_stage_goes_with_up_only(backend):
    with pytest.raises(rollout.FleetError, match="goes with up only"):
        run_fleet(selection(), "preview", spec_for(backend), stage="until-canary")


# ---- the two halves through the project run: the record, the gate, the refusals ----

class Release:
    """The project run of `prod` with its selection, commit, stacks' tags and record store stood in."""

    def __init__(self, monkeypatch, backend, tmp_path) -> None:
        self.commit, self.backend = A, backend
        self.store = FileRecords(tmp_path / "records")
        self.tags: dict[str, dict[str, str]] = {}
        self.removed: list[str] = []
        monkeypatch.setattr(fleet_command.upgrade_guard, "refuse_unmigrated", lambda *_a: None)
        monkeypatch.setattr(fleet_command.desired_state, "deployed_commit", lambda _root: self.commit)
        monkeypatch.setattr(fleet_command, "fleet_selection", lambda *_a, **_k: (selection(self.removed),
                                                                                 ["prod", *selection().identities]))
        monkeypatch.setattr(fleet_command, "digest_inputs", lambda *_a: lambda: (object(), None))
        monkeypatch.setattr(release_gate, "store_for", lambda _backend: self.store)
        monkeypatch.setattr(stack_identity, "read_identities", lambda _b, names: {
            name: StackIdentity(name, None, tags=self.tags.get(name, {})) for name in names})

    def applied(self, commit: str, digest: str = DIGEST) -> None:
        """What a successful up leaves on each stack it ran."""
        for name in ["prod", *(f"prod.{t.slug}" for t in FLEET)]:
            self.tags[name] = {COMMIT_TAG: commit, **({DIGEST_TAG: digest} if name != "prod" else {})}

    def run(self, stage: str | None, force: bool = True):
        """Every selected stack runs (--force): the canary's own check reads the digests all the same."""
        target = fleet_command.FleetEnvironment("prod", self.backend, lambda _id: spec_for(self.backend),
                                                lambda _create: None, "--env prod")
        return fleet_command.run(ROOT, ROOT / "tenants", "prod", "up", FLEET, None, None, 2, lambda _l: None,
                                 target=target, stage=stage, force=force)

    def record(self) -> dict:
        return json.loads(self.store.read(release_gate.record_name("prod")).text)


@pytest.fixture
def release(monkeypatch, backend, tmp_path, digests) -> Release:
    return Release(monkeypatch, backend, tmp_path)


def test_the_approval_is_bound_to_what_the_canary_applied(monkeypatch, release):
    runs = Runs(monkeypatch)
    release.applied(A)
    result = release.run("until-canary")
    record = release.record()
    assert runs.ran == ["prod", "prod.acme", "prod.globex"] and result.ok
    assert record["status"] == release_gate.AWAITING and record["commit"] == A and record["waves"] == WAVES
    assert record["canary"] == {"acme": {"digest": DIGEST, "commit": A}, "globex": {"digest": DIGEST, "commit": A}}
    assert any("awaiting approval" in r and "--after canary" in r for r in result.remarks)

    release.run("after-canary")
    assert runs.ran[3:] == ["prod.initech", "prod.umbrella", "prod.wayne"]
    assert release.record()["status"] == release_gate.RELEASED


def test_a_plain_up_while_a_release_awaits_its_approval_says_so(monkeypatch, release):
    Runs(monkeypatch)
    release.applied(A)
    release.run("until-canary")
    plain = release.run(None)
    assert any("awaited approval after its canary" in r for r in plain.remarks)
    release.run("after-canary")
    assert not any("awaited approval" in r for r in release.run(None).remarks)


def test_after_canary_refuses_another_commit_and_runs_nothing(monkeypatch, release):
    runs = Runs(monkeypatch)
    release.applied(A)
    release.run("until-canary")
    release.commit = B
    with pytest.raises(ReleaseRefused, match="the canary proved commit aaaaaaaaaaaa, this checkout is bbbbbbbbbbbb"):
        release.run("after-canary")
    assert runs.ran == ["prod", "prod.acme", "prod.globex"]  # the canary's, nothing more


def test_after_canary_refuses_when_a_canary_stack_was_changed_since(monkeypatch, release, digests):
    runs = Runs(monkeypatch)
    release.applied(A)
    release.run("until-canary")
    digests.add("globex")  # its desired state now differs from what the canary applied
    with pytest.raises(ReleaseRefused, match="canary globex: no longer what the canary proved"):
        release.run("after-canary")
    release.tags["prod.acme"] = {COMMIT_TAG: B, DIGEST_TAG: CHANGED}  # another up ran it since
    with pytest.raises(ReleaseRefused, match="canary acme: its stack changed since the canary"):
        release.run("after-canary")
    assert len(runs.ran) == 3


def test_a_failed_canary_is_recorded_and_refuses_the_rest(monkeypatch, release):
    Runs(monkeypatch, fail={"prod.acme"})
    release.applied(A)
    result = release.run("until-canary")
    assert not result.ok and release.record()["status"] == release_gate.FAILED
    with pytest.raises(ReleaseRefused, match="the canary of aaaaaaaaaaaa failed: prod.acme: failed"):
        release.run("after-canary")


def test_an_interrupted_canary_refuses_the_rest(monkeypatch, release):
    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(fleet_command, "run_fleet", interrupted)
    with pytest.raises(KeyboardInterrupt):
        release.run("until-canary")
    assert release.record()["status"] == release_gate.RUNNING  # written before anything ran
    with pytest.raises(ReleaseRefused, match="did not finish: interrupted"):
        release.run("after-canary")


def test_after_canary_without_a_canary_or_with_local_changes_refuses(monkeypatch, release):
    Runs(monkeypatch)
    with pytest.raises(ReleaseRefused, match="no canary has run in prod"):
        release.run("after-canary")
    release.commit = A + "+dirty"
    with pytest.raises(ReleaseRefused, match="working tree differs"):
        release.run("until-canary")


# ---- the command line ----

runner = CliRunner()


@pytest.mark.parametrize(("args", "expected"), [
    (["--until", "wave2"], "--until 'wave2': the only gate is `canary`"),
    (["--until", "canary", "--after", "canary"], "give one"),
])
def test_up_refuses_a_bad_gate_option_before_anything(args, expected, tmp_path):
    from tenantctl.cli import app

    result = runner.invoke(app, ["up", "--env", "prod", "--tenants-dir", str(tmp_path), *args])
    assert result.exit_code == 1 and expected in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output


def test_a_refused_gate_is_a_clear_error_and_exit_1(monkeypatch, tmp_path):
    from tenantctl import fleet_commands
    from tenantctl.cli import app

    def refused(*_a, **_k):
        raise ReleaseRefused(["the canary proved commit aaaaaaaaaaaa, this checkout is bbbbbbbbbbbb: run it again"])

    monkeypatch.setattr(fleet_command, "run", refused)
    monkeypatch.setattr(fleet_commands, "_environment", _no_environment)
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "acme.yaml").write_text(tenant_yaml("acme"))
    result = runner.invoke(app, ["up", "--env", "prod", "--tenants-dir", str(tmp_path / "tenants"),
                                 "--after", "canary"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "the canary proved commit aaaaaaaaaaaa" in text and "refused before anything ran" in text
    assert "Traceback" not in result.output


class _no_environment:  # noqa: N801 (a context manager standing in for tenantctl's _environment)
    def __init__(self, *_a, **_k) -> None:
        self.name = "prod"

    def __enter__(self):
        return self

    def __exit__(self, *_exc) -> None:
        return None
