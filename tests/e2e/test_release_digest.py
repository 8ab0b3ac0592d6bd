"""Ground truth for the desired-state digest (fleet.desired_state): a catalogue of code changes, each with the
outcome the digest must give, checked against the real engine where the case needs it.

One rehearsal of the two example tenants (acme: premium, globex: basic), applied once; then a real `up` that
changes nothing skips both. For each change, a copy of the project with that change (unchanged folders linked)
computes every tenant stack's digest offline, as `tenantctl status` does, and what `up` decides with it
(fleet.skipping.plan, which `up` calls once the platform ran): the stacks it runs, not skipped, must be the
catalogue's. Where the engine is needed, that copy's own `tenantctl rehearse --preview --force` runs every stack
and the stacks it would change are the ground truth. The platform output change needs the platform applied: it
is the copy's own skip-aware `rehearse` (an `up`), last, in the same test (one rehearsal for all), and it must
run every stack. A stack the engine changes that `up` would skip is a defect: the test fails on it in every case.

The engine runs where the digest's answer is not "every stack" and the change can reach the engine (the
label, the dynamic provider's and the checks' code, the platform output). With
TENANT_DIGEST_GROUND_TRUTH=full (`make test-long`, the weekly long-tests workflow) it runs for every case, and so
does the copy's skip-aware `rehearse --preview`, whose run set must be the catalogue's too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.desired_state import DIGEST_TAG
from tests.conftest import ROOT

FULL = os.environ.get("TENANT_DIGEST_GROUND_TRUTH") == "full"
SLUGS = ("acme", "globex")
# fleet/ is always copied: the project root the code finds is the one its own files are in (stack_files.CODE_ROOT).
COPIED = ("fleet",)
LINKED = ("__main__.py", "Pulumi.yaml", "pyproject.toml", "requirements.txt", "program", "components", "tenantctl",
          "tenancy", "checks", "fleet", "services", "policy", "stacks", "db", "docs", ".venv")

# Each stack's digest, and what `up` decides with it (fleet.skipping.plan, the function run_fleet calls once the
# platform ran: these changes leave the platform's outputs as they are), on the rehearsal as it is.
OFFLINE_DIGESTS = """
import json, sys
from pathlib import Path
from fleet import desired_state, skipping
from fleet.rehearse import rehearsal_sources
from fleet.stack_identity import read_identities
from tenancy.loader import require_tenants

tenants_dir, url, state_base = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
tenants = require_tenants(tenants_dir)
with rehearsal_sources(tenants_dir, url, state_base) as (spec_for, _stacks, _url):
    backend = spec_for("rehearsal", None).backend
    key = desired_state.environment_key(backend, "rehearsal")
    shared, why = desired_state.shared_or_why(backend.project_root, "rehearsal", spec_for, key)
    desired = desired_state.desired_digests(backend.project_root, "rehearsal", tenants, spec_for, shared, 2)
    identities = read_identities(backend, [f"rehearsal.{t.slug}" for t in tenants])
    plan = skipping.plan("rehearsal", tenants, spec_for, shared, why, identities, {t.slug for t in tenants}, 2,
                         desired=desired)
print(json.dumps({"root": str(backend.project_root), "digests": {s: d.digest for s, d in desired.items()},
                  "runs": sorted(s for s, d in plan.decisions.items() if not d.skip)}))
"""

# (name, {path: (old, new)}, stacks whose digest must change, whether the engine must check it by default)
CATALOGUE = [
    ("comment only", {"components/tenant_stack.py": (
        "        labels = naming.tenant_labels(",
        "        # A comment only: it moves every line below it, and changes nothing the engine compares.\n"
        "        labels = naming.tenant_labels(")}, set(), False),
    ("docs change", {"docs/scaling.md": ("# Scaling the fleet", "# Scaling the fleet (edited)")}, set(), False),
    ("label value in a shared component", {"components/isolation_manifests.py": (
        '"pod-security.kubernetes.io/audit": "restricted"', '"pod-security.kubernetes.io/audit": "baseline"')},
     {"acme"}, True),
    # By design every stack runs: the provider's diff is code the engine runs, and a mock run cannot say what it
    # would answer (fleet.desired_state); this change answers the same, so the engine changes nothing.
    ("dynamic provider code", {"components/dynamic/onboarding_check.py": (
        "changed = [key for key in TRIGGERS if news.get(key) != olds.get(key)]",
        "changed = [name for name in TRIGGERS if news.get(name) != olds.get(name)]")}, set(SLUGS), True),
    ("dynamic provider comment", {"components/dynamic/onboarding_check.py": (
        "ALL_CHECKS = (", "# A comment only.\nALL_CHECKS = (")}, set(), False),
    # The check logic lives in checks/, outside every stack's inputs: no stack runs, and the engine agrees.
    ("check code", {"checks/webhook.py": ("from __future__ import annotations\n",
                                         "from __future__ import annotations\n\n_GROUND_TRUTH = 1\n")},
     set(), True),
    # Every stack is checked by the pack: each runs (and none changes: the pack changes no resource).
    ("policy change", {"policy/tenant_policies.py": ("from __future__ import annotations\n",
                                                     "from __future__ import annotations\n\n_GROUND_TRUTH = 1\n")},
     set(SLUGS), False),
    # Every stack runs, by design: a mock run cannot predict a real provider's diff.
    ("provider or SDK version bump", {"requirements.txt": ("pulumi-random==", "# bumped\npulumi-random==")},
     set(SLUGS), False),
]


def project_copy(where: Path, edits: dict[str, tuple[str, str]]) -> Path:
    """This project with `edits` applied: each edited top-level folder copied, everything else linked."""
    where.mkdir(parents=True)
    edited_tops = {Path(path).parts[0] for path in edits}
    for name in LINKED:
        source = ROOT / name
        if not source.exists():
            continue
        if (name in edited_tops or name in COPIED) and source.is_dir():
            shutil.copytree(source, where / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif name in edited_tops:
            shutil.copy(source, where / name)
        else:
            (where / name).symlink_to(source)
    for path, (old, new) in edits.items():
        target = where / path
        text = target.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{path}: the catalogue's edit no longer applies"
        target.write_text(text.replace(old, new), encoding="utf-8")
    return where


def run_in(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([sys.executable, *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=900)


def offline(project: Path, rehearsal) -> dict:
    """The copy's digests, and the stacks its `up` runs (not skipped)."""
    done = run_in(project, "-c", OFFLINE_DIGESTS, str(rehearsal.tenants_dir), rehearsal.database_url,
                  str(rehearsal.state_base))
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(found["root"]) == project  # the copy's code computed it
    return found


def offline_digests(project: Path, rehearsal) -> dict[str, str | None]:
    return offline(project, rehearsal)["digests"]


def rehearse_copy(project: Path, rehearsal, *options: str) -> dict:
    """The copy's own `tenantctl rehearse --json` (`--force`: every stack runs; `--preview`: a preview)."""
    args = ["-m", "tenantctl", "rehearse", "--json", "--tenants-dir", str(rehearsal.tenants_dir),
            "--state-dir", str(rehearsal.state_base), "--database-url", rehearsal.database_url,
            "--app-database-url", rehearsal.app_db.app_dsn]
    done = run_in(project, *args, *options)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return json.loads(done.stdout)


def changes_of(result: dict) -> dict[str, int]:
    """Per tenant the engine ran, how many resources it changes."""
    return {t["slug"]: sum(n for op, n in t["counts"].items() if op != "unchanged") for t in result["tenants"]
            if t["status"] != "skipped"}


def ran(result: dict) -> set[str]:
    return {t["slug"] for t in result["tenants"] if t["status"] != "skipped"}


def engine_changes(project: Path, rehearsal) -> dict[str, int]:
    """The copy's own rehearsal preview, the engine forced to run every stack: per tenant, what it changes."""
    result = rehearse_copy(project, rehearsal, "--preview", "--force")
    assert ran(result) == set(SLUGS), result
    return changes_of(result)


def test_each_change_in_the_catalogue_runs_exactly_the_stacks_it_must(rehearsal, tmp_path):
    assert rehearsal.up().ok
    applied = {slug: rehearsal.stack(f"rehearsal.{slug}").list_tags().get(DIGEST_TAG) for slug in SLUGS}
    assert all(applied.values()), applied

    found = offline(project_copy(tmp_path / "copies" / "baseline", {}), rehearsal)
    baseline = found["digests"]
    assert baseline == applied  # what `up` recorded is what the digest computes offline, as `status` does
    # A release that changes nothing: the real `up` skips every tenant stack, saying why, as the plan says.
    said: list[str] = []
    again = rehearsal.up(force=False, progress=said.append)
    seen = [(t.slug, t.status, t.reason, t.counts) for t in again.tenants]
    assert found["runs"] == [] and again.ok, (seen, said)
    if any("the webhook receiver moves" in line for line in said):
        # Its port was taken meanwhile (a busy machine): the platform's webhook URL changed, so every stack runs.
        assert {t.slug for t in again.tenants if t.status != "skipped"} == set(SLUGS), (seen, said)
        baseline = offline_digests(project_copy(tmp_path / "copies" / "baseline-moved", {}), rehearsal)
    else:
        assert again.changes == 0 and [t[:2] for t in seen] == [(slug, "skipped") for slug in SLUGS], (seen, said)
        assert all(t.reason.startswith("desired state unchanged since ") for t in again.tenants)

    disagreements = []
    for number, (name, edits, expected, needs_engine) in enumerate(CATALOGUE):
        project = project_copy(tmp_path / "copies" / str(number), edits)
        found = offline(project, rehearsal)
        digests, up_runs = found["digests"], set(found["runs"])
        runs = {slug for slug in SLUGS if digests[slug] is None or digests[slug] != baseline[slug]}
        if runs != expected:
            disagreements.append(f"{name}: the digest runs {sorted(runs)}, the catalogue says {sorted(expected)}")
        if up_runs != expected:
            disagreements.append(f"{name}: `up` runs {sorted(up_runs)}, the catalogue says {sorted(expected)}")
        if FULL:  # the copy's own skip-aware preview (the same decision as `up`, read-only) runs the same stacks
            previewed = ran(rehearse_copy(project, rehearsal, "--preview"))
            if previewed != expected:
                disagreements.append(f"{name}: `preview` runs {sorted(previewed)}, the catalogue says "
                                     f"{sorted(expected)}")
        if needs_engine or FULL:
            changed = {slug for slug, n in engine_changes(project, rehearsal).items() if n}
            if changed - up_runs:
                disagreements.append(f"{name}: DEFECT: the engine changes {sorted(changed - up_runs)}, skipped")
            if name == "label value in a shared component" and changed != up_runs:
                disagreements.append(f"{name}: the engine changes {sorted(changed)}, `up` runs {sorted(up_runs)}")

    # Last, as it changes the state: a platform output (the monitoring namespace, which the premium tenant's network
    # policies name). Every tenant stack reads the platform's outputs, so every digest changes; the engine, after
    # the platform is applied, changes what uses it. The copy's `rehearse` applies it and records the new digests.
    # The copy's `up` skips what it may: after applying the platform, it runs every stack that reads its outputs.
    project = project_copy(tmp_path / "copies" / "platform", {"stacks/Pulumi.dev.yaml": (
        "tenant-onboarding:monitoringNamespace: monitoring", "tenant-onboarding:monitoringNamespace: monitoring-2")})
    result = rehearse_copy(project, rehearsal)
    changed = {slug for slug, n in changes_of(result).items() if n}
    if ran(result) != set(SLUGS):
        disagreements.append(f"platform output: `up` runs {sorted(ran(result))}, the catalogue says every stack")
    after = offline_digests(project, rehearsal)
    runs = {slug for slug in SLUGS if after[slug] != baseline[slug]}
    if runs != set(SLUGS):
        disagreements.append(f"platform output: the digest runs {sorted(runs)}, the catalogue says every stack")
    if not changed or changed - runs:
        disagreements.append(f"platform output: the engine changes {sorted(changed)}, the digest runs {sorted(runs)}")
    recorded = {slug: rehearsal.stack(f"rehearsal.{slug}").list_tags().get(DIGEST_TAG) for slug in SLUGS}
    if recorded != after:
        disagreements.append(f"platform output: `up` recorded {recorded}, the digest computes {after}")
    assert not disagreements, "\n".join(disagreements)


@pytest.mark.parametrize("name", [case[0] for case in CATALOGUE])
def test_every_catalogue_edit_still_applies(name, tmp_path):
    """Cheap: the catalogue's edits match the code (a refactor that moves them fails here first)."""
    _, edits, _, _ = next(case for case in CATALOGUE if case[0] == name)
    project_copy(tmp_path / "copy", edits)
