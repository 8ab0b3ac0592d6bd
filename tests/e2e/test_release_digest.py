"""Ground truth for the desired-state digest (fleet.desired_state): a catalogue of code changes, each with the
outcome the digest must give, checked against the real engine where the case needs it.

One rehearsal of the two example tenants (acme: premium, globex: basic), applied once. For each change, a
copy of the project with that change (unchanged folders linked) computes every tenant stack's digest
offline, as `tenantctl status` does, and the stacks whose digest changed are the ones a release would run.
Where the engine is needed, that copy's own `tenantctl rehearse --preview` runs every stack (nothing is
skipped) and the stacks it would change are the ground truth. The platform output change needs the
platform applied: it is a `rehearse` (an `up`) of the copy, last, in the same test (one rehearsal for all).
A stack the engine changes whose digest did not change is a defect: the test fails on it in every case.

The engine runs where the digest's answer is not "every stack" and the change can reach the engine (the
label, the dynamic provider's and the checks' code, the platform output). With
TENANT_DIGEST_GROUND_TRUTH=full (`make test-long`, the weekly long-tests workflow) it runs for every case.
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

OFFLINE_DIGESTS = """
import json, sys
from pathlib import Path
from fleet import desired_state
from fleet.rehearse import rehearsal_sources
from tenancy.loader import require_tenants

tenants_dir, url, state_base = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
with rehearsal_sources(tenants_dir, url, state_base) as (spec_for, _stacks, _url):
    backend = spec_for("rehearsal", None).backend
    key = desired_state.environment_key(backend, "rehearsal")
    shared = desired_state.environment_shared(backend.project_root, "rehearsal", spec_for, key)
    digests = desired_state.run_digests(backend.project_root, "rehearsal", require_tenants(tenants_dir), spec_for,
                                        shared, 2)
print(json.dumps({"root": str(backend.project_root), "digests": digests}))
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


def offline_digests(project: Path, rehearsal) -> dict[str, str | None]:
    done = run_in(project, "-c", OFFLINE_DIGESTS, str(rehearsal.tenants_dir), rehearsal.database_url,
                  str(rehearsal.state_base))
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(found["root"]) == project  # the copy's code computed it
    return found["digests"]


def engine_changes(project: Path, rehearsal, operation: str = "--preview") -> dict[str, int]:
    """The copy's own rehearsal, every stack run: per tenant, how many resources the engine changes."""
    args = ["-m", "tenantctl", "rehearse", "--json", "--tenants-dir", str(rehearsal.tenants_dir),
            "--state-dir", str(rehearsal.state_base), "--database-url", rehearsal.database_url,
            "--app-database-url", rehearsal.app_db.app_dsn]
    done = run_in(project, *args, *([operation] if operation else []))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    result = json.loads(done.stdout)
    return {t["slug"]: sum(n for op, n in t["counts"].items() if op != "unchanged") for t in result["tenants"]}


def test_each_change_in_the_catalogue_runs_exactly_the_stacks_it_must(rehearsal, tmp_path):
    assert rehearsal.up().ok
    applied = {slug: rehearsal.stack(f"rehearsal.{slug}").list_tags().get(DIGEST_TAG) for slug in SLUGS}
    assert all(applied.values()), applied

    baseline = offline_digests(project_copy(tmp_path / "copies" / "baseline", {}), rehearsal)
    assert baseline == applied  # what `up` recorded is what the digest computes offline, as `status` does

    disagreements = []
    for number, (name, edits, expected, needs_engine) in enumerate(CATALOGUE):
        project = project_copy(tmp_path / "copies" / str(number), edits)
        digests = offline_digests(project, rehearsal)
        runs = {slug for slug in SLUGS if digests[slug] is None or digests[slug] != baseline[slug]}
        if runs != expected:
            disagreements.append(f"{name}: the digest runs {sorted(runs)}, the catalogue says {sorted(expected)}")
        if needs_engine or FULL:
            changed = {slug for slug, n in engine_changes(project, rehearsal).items() if n}
            if changed - runs:
                disagreements.append(f"{name}: DEFECT: the engine changes {sorted(changed - runs)}, skipped")
            if name == "label value in a shared component" and changed != runs:
                disagreements.append(f"{name}: the engine changes {sorted(changed)}, the digest runs {sorted(runs)}")

    # Last, as it changes the state: a platform output (the monitoring namespace, which the premium tenant's network
    # policies name). Every tenant stack reads the platform's outputs, so every digest changes; the engine, after
    # the platform is applied, changes what uses it. The copy's `rehearse` applies it and records the new digests.
    project = project_copy(tmp_path / "copies" / "platform", {"stacks/Pulumi.dev.yaml": (
        "tenant-onboarding:monitoringNamespace: monitoring", "tenant-onboarding:monitoringNamespace: monitoring-2")})
    changed = {slug for slug, n in engine_changes(project, rehearsal, operation="").items() if n}
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
