"""The GitOps workflows in .github/workflows: schema-valid, zizmor-clean, least-privilege, and wired as intended.

Three kinds of test: the two linters run over the real files (offline: the workflow schema is vendored in
check-jsonschema and zizmor runs with --offline, both with a dead proxy so a network attempt fails loudly);
structural assertions on the parsed YAML; and the shell glue of a few steps run for real with bash in a
scratch git repository, with a fake `.venv/bin/python` that records how tenantctl was called.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tenantctl.model import SLUG_PATTERN

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")])
TOOLS_DIR = Path(sys.executable).parent
REQUIRED_PATHS = {
    "tenants/**",
    "components/**",
    "tenantctl/**",
    "__main__.py",
    "Pulumi*.yaml",
    "requirements.txt",
    "policy/**",
}
# Inputs of pulumi/actions v6 (its action.yml and README); GitHub only warns about an unknown input,
# so a typo such as `policy-packs` would silently run without the policy pack.
PULUMI_ACTION_INPUTS = {
    "command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr",
    "comment-on-pr-number", "comment-on-summary", "github-token", "cloud-url", "secrets-provider", "parallel",
    "message", "config-map", "expect-no-changes", "diff", "replace", "target", "target-dependents",
    "policyPacks", "policyPackConfigs", "refresh", "upsert", "remove", "edit-pr-comment", "color",
    "exclude-protected", "plan", "suppress-outputs", "suppress-progress", "always-include-summary",
    "log-verbosity", "log-flow", "debug", "omit-stdout", "continue-on-error",
}  # fmt: skip
TENANT_URN = "urn:pulumi:prod::tenant-onboarding::tenant-onboarding:index:TenantStack::{}"
ZERO_SHA = "0" * 40


# --- helpers -------------------------------------------------------------------------------------------


def load_workflow(name: str) -> dict[str, Any]:
    return YAML(typ="safe").load((WORKFLOWS_DIR / name).read_text(encoding="utf-8"))


def all_workflows() -> dict[str, dict[str, Any]]:
    return {path.name: load_workflow(path.name) for path in WORKFLOW_FILES}


def steps_of(workflow: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    return [(job_id, index, step) for job_id, job in workflow["jobs"].items()
            for index, step in enumerate(job.get("steps", []))]  # fmt: skip


def uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def pulumi_steps(workflow: dict[str, Any], command: str | None = None) -> list[tuple[str, int, dict[str, Any]]]:
    found = [(j, i, s) for j, i, s in steps_of(workflow) if uses(s, "pulumi/actions")]
    if command is not None:
        found = [(j, i, s) for j, i, s in found if s.get("with", {}).get("command") == command]
    return found


def run_steps(workflow: dict[str, Any], pattern: str) -> list[tuple[str, int, dict[str, Any]]]:
    return [(j, i, s) for j, i, s in steps_of(workflow) if re.search(pattern, str(s.get("run", "")))]


def step_named(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [s for _, _, s in steps_of(workflow) if name in (s.get("name"), s.get("id"))]
    assert len(matches) == 1, f"expected one step named {name!r}, found {len(matches)}"
    return matches[0]


def needs_of(workflow: dict[str, Any], job_id: str) -> set[str]:
    """Every job that job_id transitively waits for."""
    direct = workflow["jobs"][job_id].get("needs", [])
    direct = [direct] if isinstance(direct, str) else list(direct)
    return set(direct).union(*(needs_of(workflow, j) for j in direct)) if direct else set()


def runs_before(workflow: dict[str, Any], first: tuple[str, int], second: tuple[str, int]) -> bool:
    (job_a, index_a), (job_b, index_b) = first, second
    if job_a == job_b:
        return index_a < index_b
    return job_a in needs_of(workflow, job_b)


def offline_env() -> dict[str, str]:
    """The test's environment with no GitHub token and a proxy that refuses, so any network use fails."""
    env = {k: v for k, v in os.environ.items() if k not in {"GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN"}}
    dead = "http://127.0.0.1:9"
    env.update(HTTP_PROXY=dead, HTTPS_PROXY=dead, ALL_PROXY=dead, http_proxy=dead, https_proxy=dead, NO_PROXY="")
    return env


def tool(name: str) -> str:
    path = TOOLS_DIR / name
    assert path.is_file(), f"{name} is not installed next to {sys.executable}; run `make setup`"
    return str(path)


def zizmor(*args: str, cwd: Path) -> tuple[int, list[dict[str, Any]], str]:
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--min-severity", "medium", "--format", "json", *args],
        cwd=cwd, env=offline_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    try:
        findings = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        pytest.fail(f"zizmor did not print JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.returncode, findings, result.stderr


def describe(findings: list[dict[str, Any]]) -> str:
    lines = []
    for finding in findings:
        severity = finding["determinations"]["severity"]
        for location in finding["locations"]:
            if location["symbolic"].get("kind") != "Primary":
                continue
            path = location["symbolic"]["key"].get("Local", {}).get("verbatim_path", "?")
            row = location["concrete"]["location"]["start_point"]["row"] + 1
            note = location["symbolic"].get("annotation", "")
            lines.append(f"{path}:{row}: {finding['ident']} ({severity}): {finding['desc']}: {note}")
    return "\n".join(lines)


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip()


def commit_files(repo: Path, files: dict[str, str], message: str) -> str:
    for relative, text in files.items():
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def parse_github_output(text: str) -> dict[str, str]:
    """Read $GITHUB_OUTPUT the way the runner does: name=value lines and name<<DELIMITER blocks."""
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            block = []
            for inner in lines:
                if inner == delimiter:
                    break
                block.append(inner)
            else:
                raise AssertionError(f"unterminated {name}<<{delimiter} block in GITHUB_OUTPUT")
            values[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


@pytest.fixture
def fake_venv(tmp_path: Path) -> Path:
    """A work tree whose .venv/bin/python logs its arguments and prints $FAKE_STDOUT (or `ran: <args>`)."""
    work = tmp_path / "work"
    python = work / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(
        '#!/bin/sh\nprintf \'%s\\n\' "$*" >> "$FAKE_CALLS"\n'
        'if [ -n "${FAKE_STDOUT:-}" ]; then printf \'%s\\n\' "$FAKE_STDOUT"; else echo "ran: $*"; fi\n'
        'exit "${FAKE_EXIT:-0}"\n',
        encoding="utf-8",
    )
    python.chmod(0o755)
    git(work, "init", "-q", "-b", "main")
    (work / ".gitignore").write_text(".venv/\n", encoding="utf-8")
    return work


def run_script(script: str, cwd: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run a step's `run:` the way an ubuntu runner runs it without `shell:` (bash -e)."""
    calls = cwd.parent / "calls.log"
    calls.write_text("", encoding="utf-8")
    full_env = {"PATH": os.environ["PATH"], "HOME": str(cwd.parent), "FAKE_CALLS": str(calls), **env}
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-c", script],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result, calls.read_text(encoding="utf-8").splitlines()


# --- linters -------------------------------------------------------------------------------------------


def test_the_three_delivery_workflows_exist() -> None:
    assert {"preview.yml", "deploy.yml", "offboard.yml"} <= {p.name for p in WORKFLOW_FILES}


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_matches_github_schema_and_sets_timeouts(path: Path) -> None:
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        result = subprocess.run(
            [tool("check-jsonschema"), "--builtin-schema", schema, str(path)],
            env=offline_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, f"{path.name} fails {schema}:\n{result.stdout}\n{result.stderr}"


def test_zizmor_reports_nothing_at_medium_or_above() -> None:
    # Directory input, so zizmor discovers .github/zizmor.yml (the tag-pin allowance) on its own.
    code, findings, stderr = zizmor(str(WORKFLOWS_DIR.relative_to(ROOT)), cwd=ROOT)
    assert (code, findings) == (0, []), f"zizmor exit {code}:\n{describe(findings)}\n{stderr}"


def test_zizmor_flags_a_deliberately_bad_workflow(tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(
        "name: bad\n"
        "on: pull_request\n"
        "jobs:\n"
        "  greet:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n',
        encoding="utf-8",
    )
    code, findings, stderr = zizmor("--no-config", str(workflows), cwd=tmp_path)
    reported = {f["ident"] for f in findings}
    assert code != 0, stderr
    assert {"template-injection", "artipacked", "excessive-permissions"} <= reported, describe(findings)


# --- structure common to every workflow ------------------------------------------------------------------


@pytest.mark.parametrize("name", [p.name for p in WORKFLOW_FILES])
def test_every_checkout_drops_its_credentials(name: str) -> None:
    workflow = load_workflow(name)
    checkouts = [(j, s) for j, _, s in steps_of(workflow) if uses(s, "actions/checkout")]
    assert checkouts, f"{name} has no checkout step"
    for job_id, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") in (False, "false"), f"{name}: {job_id} persists"


@pytest.mark.parametrize("name", [p.name for p in WORKFLOW_FILES])
def test_permissions_are_least_privilege(name: str) -> None:
    workflow = load_workflow(name)
    top = workflow.get("permissions")
    top_is_minimal = top == {} or (isinstance(top, dict) and set(top.items()) <= {("contents", "read")})
    assert top_is_minimal, f"{name}: top-level permissions must be {{}} or contents: read, not {top!r}"
    for job_id, job in workflow["jobs"].items():
        granted = job.get("permissions")
        assert isinstance(granted, dict), f"{name}: job {job_id} must list its permissions, got {granted!r}"
        writes = {scope for scope, level in granted.items() if level == "write"}
        job_steps = job.get("steps", [])
        uses_oidc = any(uses(s, "aws-actions/configure-aws-credentials") for s in job_steps)
        comments = any(uses(s, "pulumi/actions") and s.get("with", {}).get("comment-on-pr") for s in job_steps)
        expected = ({"id-token"} if uses_oidc else set()) | ({"pull-requests"} if comments else set())
        assert writes == expected, f"{name}: job {job_id} writes {sorted(writes)}, needs {sorted(expected)}"


@pytest.mark.parametrize("name", [p.name for p in WORKFLOW_FILES])
def test_no_privileged_triggers(name: str) -> None:
    assert not {"pull_request_target", "workflow_run"} & set(load_workflow(name)["on"]), name


@pytest.mark.parametrize("name", [p.name for p in WORKFLOW_FILES])
def test_run_scripts_take_context_values_from_env_only(name: str) -> None:
    offenders = [f"{j}[{i}]" for j, i, s in steps_of(load_workflow(name)) if "${{" in str(s.get("run", ""))]
    assert not offenders, f"{name}: expressions interpolated into run: scripts at {offenders}"


@pytest.mark.parametrize("name", [p.name for p in WORKFLOW_FILES])
def test_pulumi_action_gets_only_inputs_it_knows(name: str) -> None:
    for job_id, _, step in pulumi_steps(load_workflow(name)):
        unknown = set(step.get("with", {})) - PULUMI_ACTION_INPUTS
        assert not unknown, f"{name}: job {job_id} passes unknown pulumi/actions inputs {sorted(unknown)}"


@pytest.mark.parametrize("name", [p.name for p in WORKFLOW_FILES])
def test_no_workflow_destroys_the_whole_stack(name: str) -> None:
    assert not pulumi_steps(load_workflow(name), "destroy"), f"{name}: use tenantctl destroy, which targets"


def test_pulumi_cli_version_matches_the_sdk_pin() -> None:
    pin = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(encoding="utf-8"), re.M)
    assert pin
    for name, workflow in all_workflows().items():
        if pulumi_steps(workflow):
            assert workflow.get("env", {}).get("PULUMI_VERSION") == pin.group(1), name
            for job_id, _, step in pulumi_steps(workflow):
                assert step["with"].get("pulumi-version") == "${{ env.PULUMI_VERSION }}", f"{name}: {job_id}"


# --- preview -------------------------------------------------------------------------------------------


def test_preview_runs_on_pull_requests_touching_the_stack_inputs() -> None:
    triggers = load_workflow("preview.yml")["on"]
    assert set(triggers) == {"pull_request"}
    assert set(triggers["pull_request"]["paths"]) == REQUIRED_PATHS


def test_preview_validates_against_prod_before_pulumi_preview() -> None:
    workflow = load_workflow("preview.yml")
    validations = run_steps(workflow, r"-m tenantctl validate --stack prod\b")
    previews = pulumi_steps(workflow, "preview")
    assert len(validations) == 1 and len(previews) == 1
    (v_job, v_index, v_step), (p_job, p_index, _) = validations[0], previews[0]
    assert runs_before(workflow, (v_job, v_index), (p_job, p_index))
    assert not v_step.get("continue-on-error")
    # A job condition such as always() would run the preview even when validation failed.
    assert "if" not in workflow["jobs"][p_job]


def test_preview_plans_against_the_pull_request_base() -> None:
    workflow = load_workflow("preview.yml")
    plans = run_steps(workflow, r'-m tenantctl plan --stack prod --changed-since "origin/\$BASE_REF"')
    assert plans
    for _, _, step in plans:
        assert step["env"]["BASE_REF"] == "${{ github.base_ref }}"
    checkout = next(s for j, _, s in steps_of(workflow) if j == plans[0][0] and uses(s, "actions/checkout"))
    assert checkout["with"].get("fetch-depth") == 0


def test_preview_comments_on_the_pr_with_the_policy_pack_and_tenant_targets() -> None:
    workflow = load_workflow("preview.yml")
    ((job_id, _, step),) = pulumi_steps(workflow, "preview")
    inputs = step["with"]
    assert inputs["stack-name"] == "prod"
    assert inputs["comment-on-pr"] in (True, "true")
    targets_job = next(iter(needs_of(workflow, job_id)))
    assert inputs["target"] == f"${{{{ needs.{targets_job}.outputs.targets }}}}"
    assert inputs["target-dependents"] == f"${{{{ needs.{targets_job}.outputs.targets != '' }}}}"


def preview_targets_repo(fake_venv: Path, changes: dict[str, str]) -> Path:
    commit_files(fake_venv, {"tenants/acme.yaml": "slug: acme\n", "components/tenant.py": "# v1\n"}, "base")
    git(fake_venv, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(fake_venv, "checkout", "-q", "-b", "feature")
    commit_files(fake_venv, changes, "change")
    return fake_venv


def test_preview_targets_only_changed_tenants_when_only_tenant_files_changed(fake_venv: Path) -> None:
    script = step_named(load_workflow("preview.yml"), "targets")["run"]
    repo = preview_targets_repo(fake_venv, {"tenants/acme.yaml": "slug: acme\n#x\n", "tenants/newco.yaml": "n\n"})
    urns = f"{TENANT_URN.format('acme')}\n{TENANT_URN.format('newco')}"
    output = repo.parent / "github_output"
    result, calls = run_script(script, repo, BASE_REF="main", GITHUB_OUTPUT=str(output), FAKE_STDOUT=urns)
    assert result.returncode == 0, result.stderr
    assert calls == ["-m tenantctl plan --stack prod --changed-since origin/main --targets"]
    assert parse_github_output(output.read_text(encoding="utf-8")) == {"targets": urns, "code_changed": "false"}


def test_preview_covers_everything_when_a_non_tenant_file_changed(fake_venv: Path) -> None:
    script = step_named(load_workflow("preview.yml"), "targets")["run"]
    repo = preview_targets_repo(fake_venv, {"tenants/acme.yaml": "slug: acme\n#x\n", "components/tenant.py": "#2\n"})
    output = repo.parent / "github_output"
    result, calls = run_script(script, repo, BASE_REF="main", GITHUB_OUTPUT=str(output))
    assert result.returncode == 0, result.stderr
    assert calls == []
    assert parse_github_output(output.read_text(encoding="utf-8")) == {"targets": "", "code_changed": "true"}


# --- deploy --------------------------------------------------------------------------------------------


def test_deploy_runs_only_on_pushes_to_main() -> None:
    workflow = load_workflow("deploy.yml")
    assert set(workflow["on"]) == {"push"}
    push = workflow["on"]["push"]
    assert push["branches"] == ["main"] and "tags" not in push and "branches-ignore" not in push
    assert set(push["paths"]) == REQUIRED_PATHS
    for job_id, job in workflow["jobs"].items():
        assert job.get("if") == "github.ref == 'refs/heads/main'", job_id


def test_deploy_runs_pulumi_up_of_prod_in_the_production_environment_one_at_a_time() -> None:
    workflow = load_workflow("deploy.yml")
    ((job_id, _, step),) = pulumi_steps(workflow, "up")
    assert step["with"]["stack-name"] == "prod" and step["with"]["policyPacks"] == "policy"
    assert workflow["jobs"][job_id]["environment"] == "production"
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert workflow["concurrency"]["group"] == load_workflow("offboard.yml")["concurrency"]["group"]


def test_deploy_hands_off_after_the_update() -> None:
    workflow = load_workflow("deploy.yml")
    handoff = step_named(workflow, "handoff for new tenants")
    assert handoff["env"] == {"BEFORE": "${{ github.event.before }}", "SHA": "${{ github.sha }}"}
    assert "--diff-filter=A" in handoff["run"] and "$GITHUB_STEP_SUMMARY" in handoff["run"]
    ((up_job, up_index, _),) = pulumi_steps(workflow, "up")
    ((h_job, h_index, _),) = run_steps(workflow, r"tenantctl handoff")
    assert runs_before(workflow, (up_job, up_index), (h_job, h_index))


@pytest.mark.parametrize("before", ["parent", ZERO_SHA], ids=["push-base", "unknown-push-base"])
def test_deploy_hands_off_each_added_tenant_file_only(fake_venv: Path, before: str) -> None:
    script = step_named(load_workflow("deploy.yml"), "handoff for new tenants")["run"]
    parent = commit_files(fake_venv, {"tenants/acme.yaml": "a\n", "tenants/schema.json": "{}\n"}, "base")
    sha = commit_files(
        fake_venv,
        {"tenants/acme.yaml": "a2\n", "tenants/globex.yaml": "g\n", "tenants/schema.json": "{ }\n", "README": "x\n"},
        "add globex",
    )
    summary = fake_venv.parent / "summary.md"
    result, calls = run_script(
        script, fake_venv, BEFORE=parent if before == "parent" else before, SHA=sha, GITHUB_STEP_SUMMARY=str(summary)
    )
    assert result.returncode == 0, result.stderr
    assert calls == ["-m tenantctl handoff globex --stack prod"]
    assert "ran: -m tenantctl handoff globex --stack prod" in summary.read_text(encoding="utf-8")


def test_deploy_handoff_fails_the_job_when_tenantctl_fails(fake_venv: Path) -> None:
    script = step_named(load_workflow("deploy.yml"), "handoff for new tenants")["run"]
    parent = commit_files(fake_venv, {"tenants/acme.yaml": "a\n"}, "base")
    sha = commit_files(fake_venv, {"tenants/globex.yaml": "g\n", "tenants/initech.yaml": "i\n"}, "add two")
    summary = fake_venv.parent / "summary.md"
    result, calls = run_script(
        script, fake_venv, BEFORE=parent, SHA=sha, GITHUB_STEP_SUMMARY=str(summary), FAKE_EXIT="1"
    )
    assert result.returncode == 1
    assert len(calls) == 2, "one failing handoff must not skip the others"


# --- offboard ------------------------------------------------------------------------------------------


def test_offboard_is_manual_and_asks_for_confirmation() -> None:
    workflow = load_workflow("offboard.yml")
    assert set(workflow["on"]) == {"workflow_dispatch"}
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["tenant"]["required"] is True and inputs["tenant"]["type"] == "string"
    assert inputs["confirm"]["required"] is True and inputs["confirm"]["type"] == "string"
    assert inputs["purge_data"]["type"] == "boolean" and inputs["purge_data"]["default"] is False
    (job,) = workflow["jobs"].values()
    assert job["environment"] == "production"
    assert job["env"]["TENANT"] == "${{ inputs.tenant }}" and job["env"]["CONFIRM"] == "${{ inputs.confirm }}"


def test_offboard_checks_inputs_before_credentials_and_destroy() -> None:
    workflow = load_workflow("offboard.yml")
    position = {id(s): (j, i) for j, i, s in steps_of(workflow)}
    check = position[id(step_named(workflow, "check inputs"))]
    credentials = [(j, i) for j, i, s in steps_of(workflow) if uses(s, "aws-actions/configure-aws-credentials")]
    destroy = position[id(step_named(workflow, "tenantctl destroy"))]
    assert credentials and all(runs_before(workflow, check, later) for later in [*credentials, destroy])
    assert SLUG_PATTERN in step_named(workflow, "check inputs")["run"], "slug check must match the model"


@pytest.mark.parametrize(
    ("tenant", "confirm", "ref", "accepted"),
    [
        ("acme", "acme", "refs/heads/main", True),
        ("acme", "acm", "refs/heads/main", False),
        ("acme", "", "refs/heads/main", False),
        ("acme", "acme", "refs/heads/feature", False),
        ("ac", "ac", "refs/heads/main", False),
        ("Acme", "Acme", "refs/heads/main", False),
        ("acme;id", "acme;id", "refs/heads/main", False),
        ("-acme", "-acme", "refs/heads/main", False),
        ("a" * 41, "a" * 41, "refs/heads/main", False),
    ],
)
def test_offboard_input_check(fake_venv: Path, tenant: str, confirm: str, ref: str, accepted: bool) -> None:
    script = step_named(load_workflow("offboard.yml"), "check inputs")["run"]
    result, _ = run_script(script, fake_venv, TENANT=tenant, CONFIRM=confirm, GITHUB_REF=ref)
    assert (result.returncode == 0) is accepted, result.stdout + result.stderr


@pytest.mark.parametrize(("purge", "extra"), [("false", ""), ("true", " --purge-data")])
def test_offboard_destroys_one_tenant_through_tenantctl(fake_venv: Path, purge: str, extra: str) -> None:
    script = step_named(load_workflow("offboard.yml"), "tenantctl destroy")["run"]
    result, calls = run_script(script, fake_venv, TENANT="acme", PURGE_DATA=purge, PULUMI_BACKEND_URL="s3://state")
    assert result.returncode == 0, result.stderr
    assert calls == [f"-m tenantctl destroy acme --stack prod --yes{extra}"]


def test_offboard_refuses_to_destroy_without_a_backend(fake_venv: Path) -> None:
    script = step_named(load_workflow("offboard.yml"), "tenantctl destroy")["run"]
    result, calls = run_script(script, fake_venv, TENANT="acme", PURGE_DATA="false")
    assert result.returncode != 0 and calls == []


# --- the tenantctl command lines the workflows run ---------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "--stack", "prod"],
        ["plan", "--stack", "prod", "--changed-since", "origin/main"],
        ["plan", "--stack", "prod", "--changed-since", "origin/main", "--targets"],
        ["handoff", "acme", "--stack", "prod"],
        ["destroy", "acme", "--stack", "prod", "--yes"],
        ["destroy", "acme", "--stack", "prod", "--yes", "--purge-data"],
    ],
    ids=" ".join,
)
def test_workflow_command_line_parses_with_the_real_tenantctl(argv: list[str]) -> None:
    import typer

    from tenantctl.cli import app

    group = typer.main.get_command(app)
    context = group.make_context("tenantctl", list(argv))
    command = group.get_command(context, argv[0])
    if command is None:
        pytest.skip(f"tenantctl {argv[0]} is not built yet")
    # Parses without running; an unknown option or a missing argument raises a UsageError.
    command.make_context(argv[0], argv[1:], parent=context)


# --- a pipeline that cannot leak ------------------------------------------------------------------------


def test_the_policy_pack_comes_from_the_base_branch_not_the_pull_request() -> None:
    workflow = load_workflow("preview.yml")
    ((job_id, _, step),) = pulumi_steps(workflow, "preview")
    steps = workflow["jobs"][job_id]["steps"]
    [base] = [s for s in steps if s.get("with", {}).get("path") == "base"]
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert base["with"]["sparse-checkout"] == "policy" and base["with"]["persist-credentials"] is False
    assert step["with"]["policyPacks"] == "base/policy"


def test_code_changes_wait_for_a_reviewer_before_credentials_are_used() -> None:
    workflow = load_workflow("preview.yml")
    ((job_id, _, _step),) = pulumi_steps(workflow, "preview")
    job = workflow["jobs"][job_id]
    targets_job = next(iter(needs_of(workflow, job_id)))
    assert job["environment"] == (f"${{{{ needs.{targets_job}.outputs.code_changed == 'true' "
                                  "&& 'preview-code-review' || 'preview' }}")
    assert "code_changed" in workflow["jobs"][targets_job]["outputs"]
    assert "id-token" not in workflow["jobs"][targets_job].get("permissions", {})


def test_codeowners_put_code_and_policy_under_platform_review() -> None:
    rules = [line.split() for line in (ROOT / ".github" / "CODEOWNERS").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    owners = {rule[0]: rule[1:] for rule in rules}
    assert "@ai-agents/platform-engineering" in owners["*"]
    assert "@ai-agents/security" in owners["/policy/"] and "@ai-agents/security" in owners["/.github/"]
