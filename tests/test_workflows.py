"""The GitOps workflows in .github/workflows: schema-valid, zizmor-clean, least-privilege, and wired as intended.

Three kinds of test: the two linters run over the real files (offline: the workflow schema is vendored in
check-jsonschema and zizmor runs with --offline, both with a dead proxy so a network attempt fails loudly);
structural assertions on the parsed YAML; and the shell glue of the steps run for real with bash in a scratch
git repository, with a fake `.venv/bin/python` that records how tenantctl was called (and writes its
`--markdown` file) and a fake `gh` that records how GitHub was called. Every tenantctl call a step makes is
also parsed by the real tenantctl command line.

The workflows drive the stacks through tenantctl only: a platform stack `prod` and a tenant stack
`prod.<slug>` per tenant file, previewed (`tenantctl preview`), deployed (`tenantctl up`) and offboarded
(`tenantctl destroy`); pulumi/actions only installs the CLI and `pulumi install` the provider plugins.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tenantctl.model import SLUG_PATTERN
from tenantctl.plan import PROGRAM_PATHS

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")])
TOOLS_DIR = Path(sys.executable).parent
REQUIRED_PATHS = {
    "tenants/**",
    "stacks/**",
    "program/**",
    "components/**",
    "tenantctl/**",
    "policy/**",
    "__main__.py",
    "Pulumi.yaml",
    "requirements.txt",
}
# Inputs of pulumi/actions v6 (its action.yml and README); GitHub only warns about an unknown input,
# so a typo such as `pulumi_version` would silently install whatever version the action picks.
PULUMI_ACTION_INPUTS = {
    "command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr",
    "comment-on-pr-number", "comment-on-summary", "github-token", "cloud-url", "secrets-provider", "parallel",
    "message", "config-map", "expect-no-changes", "diff", "replace", "target", "target-dependents",
    "policyPacks", "policyPackConfigs", "refresh", "upsert", "remove", "edit-pr-comment", "color",
    "exclude-protected", "plan", "suppress-outputs", "suppress-progress", "always-include-summary",
    "log-verbosity", "log-flow", "debug", "omit-stdout", "continue-on-error",
}  # fmt: skip
# Every job's permissions, reviewed: a new job or scope fails here until it is added on purpose.
EXPECTED_PERMISSIONS = {
    "preview.yml": {
        "validate": {"contents": "read"},
        "preview": {"contents": "read", "id-token": "write"},
        "comment": {"pull-requests": "write"},
    },
    "deploy.yml": {
        "last-deployed": {"actions": "read"},
        "deploy": {"contents": "read", "id-token": "write"},
    },
    "offboard.yml": {"offboard": {"contents": "read", "id-token": "write"}},
    "long-tests.yml": {"long-tests": {"contents": "read"}},
}
# The only jobs given a GitHub token (none of them holds cloud credentials).
TOKEN_JOBS = {("preview.yml", "comment"), ("deploy.yml", "last-deployed")}
PLUGIN_INSTALL = "pulumi install --no-dependencies"
# Steps that run tenantctl, except validate and plan (no engine, no credentials).
ENGINE_STEP = r"-m tenantctl\b(?! (validate|plan)\b)"
PREVIEW_SUMMARY = "${{ runner.temp }}/preview-comment/preview.md"
ZERO_SHA = "0" * 40


# --- helpers -------------------------------------------------------------------------------------------


def load_workflow(name: str) -> dict[str, Any]:
    return YAML(typ="safe").load((WORKFLOWS_DIR / name).read_text(encoding="utf-8"))


def all_workflows() -> dict[str, dict[str, Any]]:
    return {path.name: load_workflow(path.name) for path in WORKFLOW_FILES}


def header_comment(name: str) -> str:
    lines = (WORKFLOWS_DIR / name).read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# "))
    return " ".join(header)


def steps_of(workflow: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    return [(job_id, index, step) for job_id, job in workflow["jobs"].items()
            for index, step in enumerate(job.get("steps", []))]  # fmt: skip


def uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def pulumi_steps(workflow: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    return [(j, i, s) for j, i, s in steps_of(workflow) if uses(s, "pulumi/actions")]


def action_steps(workflow: dict[str, Any], action: str) -> list[tuple[str, int, dict[str, Any]]]:
    return [(j, i, s) for j, i, s in steps_of(workflow) if uses(s, action)]


def run_steps(workflow: dict[str, Any], pattern: str) -> list[tuple[str, int, dict[str, Any]]]:
    return [(j, i, s) for j, i, s in steps_of(workflow) if re.search(pattern, str(s.get("run", "")))]


def step_named(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [s for _, _, s in steps_of(workflow) if name in (s.get("name"), s.get("id"))]
    assert len(matches) == 1, f"expected one step named {name!r}, found {len(matches)}"
    return matches[0]


def position(workflow: dict[str, Any], step: dict[str, Any]) -> tuple[str, int]:
    return next((j, i) for j, i, s in steps_of(workflow) if s is step)


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


def path_filter_matches(pattern: str, path: str) -> bool:
    """GitHub's `paths` glob: `**` crosses folders, `*` and `?` do not."""
    regex, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            regex, index = regex + ".*", index + 2
        elif pattern[index] in "*?":
            regex, index = regex + ("[^/]*" if pattern[index] == "*" else "[^/]"), index + 1
        else:
            regex, index = regex + re.escape(pattern[index]), index + 1
    return re.fullmatch(regex, path) is not None


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


def parses_with_real_tenantctl(call: str) -> None:
    """A recorded `-m tenantctl ...` call parses with the real command line (unknown options fail)."""
    import typer

    from tenantctl.cli import app

    argv = shlex.split(call)
    assert argv[:2] == ["-m", "tenantctl"], call
    argv = argv[2:]
    group = typer.main.get_command(app)
    context = group.make_context("tenantctl", list(argv))
    command = group.get_command(context, argv[0])
    assert command is not None, f"tenantctl has no command {argv[0]!r}"
    # Parses without running; an unknown option or a missing argument raises a UsageError.
    command.make_context(argv[0], argv[1:], parent=context)


FAKE_PYTHON = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_CALLS"
if [ -n "${FAKE_MARKDOWN:-}" ]; then
  previous=""
  for arg in "$@"; do
    if [ "$previous" = "--markdown" ]; then printf '%s\\n' "$FAKE_MARKDOWN" > "$arg"; fi
    previous="$arg"
  done
fi
if [ -n "${FAKE_STDOUT:-}" ]; then printf '%s\\n' "$FAKE_STDOUT"; else echo "ran: $*"; fi
exit "${FAKE_EXIT:-0}"
"""

FAKE_GH = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_GH_CALLS"
previous=""
for arg in "$@"; do
  if [ "$previous" = "--body-file" ]; then cat "$arg" > "$FAKE_GH_BODY"; fi
  previous="$arg"
done
case " $* " in
  *" --edit-last "*) exit "${FAKE_GH_EDIT_EXIT:-0}" ;;
esac
if [ -n "${FAKE_GH_STDOUT:-}" ]; then printf '%s\\n' "$FAKE_GH_STDOUT"; fi
exit "${FAKE_GH_EXIT:-0}"
"""


@pytest.fixture
def fake_venv(tmp_path: Path) -> Path:
    """A work tree whose .venv/bin/python logs its arguments, writes $FAKE_MARKDOWN to its --markdown file
    and prints $FAKE_STDOUT (or `ran: <args>`); a fake `gh` sits in ../bin."""
    work = tmp_path / "work"
    python = work / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON, encoding="utf-8")
    python.chmod(0o755)
    gh = tmp_path / "bin" / "gh"
    gh.parent.mkdir()
    gh.write_text(FAKE_GH, encoding="utf-8")
    gh.chmod(0o755)
    (tmp_path / "runner-temp").mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / ".gitignore").write_text(".venv/\n", encoding="utf-8")
    return work


class Run:
    def __init__(self, result: subprocess.CompletedProcess[str], calls: list[str], gh_calls: list[str],
                 outputs: dict[str, str], summary: str, gh_body: str) -> None:
        self.returncode, self.stdout, self.stderr = result.returncode, result.stdout, result.stderr
        self.calls, self.gh_calls, self.outputs, self.summary, self.gh_body = calls, gh_calls, outputs, summary, gh_body

    def __repr__(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def run_script(script: str, cwd: Path, **env: str) -> Run:
    """Run a step's `run:` the way an ubuntu runner runs it without `shell:` (bash -e), with the runner's
    files ($GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY, $RUNNER_TEMP) in the scratch directory."""
    scratch = cwd.parent
    files = {name: scratch / name for name in ("calls.log", "gh-calls.log", "gh-body.md", "github-output")}
    for path in files.values():
        path.write_text("", encoding="utf-8")
    full_env = {
        "PATH": f"{scratch / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(scratch),
        "FAKE_CALLS": str(files["calls.log"]),
        "FAKE_GH_CALLS": str(files["gh-calls.log"]),
        "FAKE_GH_BODY": str(files["gh-body.md"]),
        "GITHUB_OUTPUT": str(files["github-output"]),
        "GITHUB_STEP_SUMMARY": str(scratch / "step-summary.md"),
        "RUNNER_TEMP": str(scratch / "runner-temp"),
        "GITHUB_WORKSPACE": str(cwd),
        "GITHUB_REPOSITORY": "octo/tenant-onboarding",
        **env,
    }
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-c", script],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    summary = Path(full_env["GITHUB_STEP_SUMMARY"])
    return Run(
        result,
        files["calls.log"].read_text(encoding="utf-8").splitlines(),
        files["gh-calls.log"].read_text(encoding="utf-8").splitlines(),
        parse_github_output(files["github-output"].read_text(encoding="utf-8")),
        summary.read_text(encoding="utf-8") if summary.exists() else "",
        files["gh-body.md"].read_text(encoding="utf-8"),
    )


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
def test_permissions_are_the_reviewed_least_privilege_ones(name: str) -> None:
    workflow = load_workflow(name)
    assert workflow.get("permissions") == {}, f"{name}: top-level permissions must be {{}}"
    assert name in EXPECTED_PERMISSIONS, f"{name}: review its jobs' permissions and add them to EXPECTED_PERMISSIONS"
    granted = {job_id: job.get("permissions") for job_id, job in workflow["jobs"].items()}
    assert granted == EXPECTED_PERMISSIONS[name]


@pytest.mark.parametrize("name", [p.name for p in WORKFLOW_FILES])
def test_each_scope_is_needed_by_a_step_of_its_job(name: str) -> None:
    for job_id, job in load_workflow(name)["jobs"].items():
        job_steps = job.get("steps", [])
        scripts = "\n".join(str(s.get("run", "")) for s in job_steps)
        needed = {}
        if any(uses(s, "actions/checkout") for s in job_steps):
            needed["contents"] = "read"
        if any(uses(s, "aws-actions/configure-aws-credentials") for s in job_steps):
            needed["id-token"] = "write"
        if "gh pr comment" in scripts:
            needed["pull-requests"] = "write"
        if re.search(r"gh api \S*/actions/workflows/", scripts):
            needed["actions"] = "read"
        assert job.get("permissions") == needed, f"{name}: job {job_id}"


@pytest.mark.parametrize("name", [p.name for p in WORKFLOW_FILES])
def test_no_job_holds_both_cloud_credentials_and_a_github_token(name: str) -> None:
    workflow = load_workflow(name)
    for job_id, job in workflow["jobs"].items():
        text = json.dumps(job)
        has_token = "github.token" in text or "secrets.GITHUB_TOKEN" in text
        assert has_token == ((name, job_id) in TOKEN_JOBS), f"{name}: job {job_id}"
        if has_token:
            assert "id-token" not in job["permissions"] and "environment" not in job, f"{name}: job {job_id}"
            assert not any(uses(s, "actions/checkout") for s in job["steps"]), f"{name}: {job_id} runs repo code"
            for step in job["steps"]:
                if "github.token" in json.dumps(step):
                    assert step["env"]["GH_TOKEN"] == "${{ github.token }}" and "run" in step  # noqa: S105


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
def test_stacks_are_only_ever_driven_through_tenantctl(name: str) -> None:
    workflow = load_workflow(name)
    for job_id, _, step in pulumi_steps(workflow):
        # No `command`: the action installs the CLI and nothing else; tenantctl picks and runs the stacks.
        assert set(step.get("with", {})) == {"pulumi-version"}, f"{name}: job {job_id}"
    direct = run_steps(workflow, r"(^|[\s;&|(])pulumi\s+(up|preview|destroy|refresh|import|state|stack|cancel)\b")
    assert not direct, f"{name}: runs pulumi on a stack itself at {[(j, i) for j, i, _ in direct]}"


def test_pulumi_cli_version_matches_the_sdk_pin() -> None:
    pin = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(encoding="utf-8"), re.M)
    assert pin
    workflows = all_workflows()
    installing = {name for name, workflow in workflows.items() if pulumi_steps(workflow)}
    assert {"preview.yml", "deploy.yml", "offboard.yml"} <= installing
    for name in installing:
        workflow = workflows[name]
        assert workflow.get("env", {}).get("PULUMI_VERSION") == pin.group(1), name
        for job_id, _, step in pulumi_steps(workflow):
            assert step["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}", f"{name}: {job_id}"


@pytest.mark.parametrize("name", [p.name for p in WORKFLOW_FILES])
def test_cli_and_plugins_are_installed_before_tenantctl_runs_the_engine(name: str) -> None:
    workflow = load_workflow(name)
    engine_steps = run_steps(workflow, ENGINE_STEP)
    for job_id, index, _ in engine_steps:
        job_steps = list(enumerate(workflow["jobs"][job_id]["steps"]))
        venv = [i for i, s in job_steps if s.get("run") == "make venv"]
        cli = [i for i, s in job_steps if uses(s, "pulumi/actions")]
        plugins = [i for i, s in job_steps if s.get("run") == PLUGIN_INSTALL]
        credentials = [i for i, s in job_steps if uses(s, "aws-actions/configure-aws-credentials")]
        assert len(venv) == len(cli) == len(plugins) == len(credentials) == 1, f"{name}: job {job_id}"
        # The plugins are those the venv's SDK packages name, so the venv comes first; no credential is needed.
        assert venv[0] < plugins[0] and cli[0] < plugins[0] < credentials[0] < index, f"{name}: job {job_id}"
        assert "working-directory" not in job_steps[plugins[0]][1], "pulumi install runs in the project root"
    if name in {"preview.yml", "deploy.yml", "offboard.yml"}:
        assert engine_steps, f"{name} runs no tenantctl engine command"


def test_plugin_versions_have_a_single_source() -> None:
    # `pulumi install` asks the project's language host, which reads the SDK packages in the project's
    # virtualenv: the one `make venv` builds from requirements.txt. No second list of versions to drift.
    for name, workflow in all_workflows().items():
        assert not run_steps(workflow, r"pulumi\s+plugin\s+install"), name
    project = YAML(typ="safe").load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    providers = re.findall(r"^pulumi-(aws|kubernetes|random|postgresql)==", (ROOT / "requirements.txt").read_text(
        encoding="utf-8"), re.M)
    assert sorted(providers) == ["aws", "kubernetes", "postgresql", "random"]


@pytest.mark.parametrize("name", [p.name for p in WORKFLOW_FILES])
def test_production_jobs_install_without_a_dependency_cache(name: str) -> None:
    workflow = load_workflow(name)
    for job_id, job in workflow["jobs"].items():
        if job.get("environment") != "production":
            continue
        setups = [s for s in job["steps"] if uses(s, "actions/setup-python")]
        assert setups, f"{name}: job {job_id}"
        for step in setups:
            assert not {"cache", "cache-dependency-path"} & set(step.get("with", {})), f"{name}: job {job_id}"


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_path_filters_cover_every_input_of_the_stacks(name: str) -> None:
    (event,) = load_workflow(name)["on"].values()
    filters = event["paths"]
    assert set(filters) == REQUIRED_PATHS
    inputs = [p + "x.py" if p.endswith("/") else p for p in PROGRAM_PATHS]
    inputs += ["tenants/acme.yaml", "stacks/Pulumi.prod.yaml", "stacks/Pulumi.prod.acme.yaml", "Pulumi.yaml"]
    for path in inputs:
        assert any(path_filter_matches(f, path) for f in filters), f"{name}: a change to {path} runs nothing"
    for path in ("docs/security.md", "README.md", "tests/test_program.py"):
        assert not any(path_filter_matches(f, path) for f in filters), f"{name}: {path} is not a stack input"


# --- preview -------------------------------------------------------------------------------------------


def test_preview_runs_on_pull_requests_only() -> None:
    assert set(load_workflow("preview.yml")["on"]) == {"pull_request"}


def test_preview_validates_and_plans_against_prod_before_previewing() -> None:
    workflow = load_workflow("preview.yml")
    validations = run_steps(workflow, r'-m tenantctl validate --env prod --changed-since "origin/\$BASE_REF"')
    plans = run_steps(workflow, r'-m tenantctl plan --env prod --changed-since "origin/\$BASE_REF"')
    previews = run_steps(workflow, r"-m tenantctl preview\b")
    assert len(validations) == len(plans) == len(previews) == 1
    (p_job, p_index, _) = previews[0]
    for job_id, index, step in (*validations, *plans):
        assert runs_before(workflow, (job_id, index), (p_job, p_index))
        assert not step.get("continue-on-error")
        assert step["env"]["BASE_REF"] == "${{ github.base_ref }}"
    # A job condition such as always() would run the preview even when validation failed.
    assert "if" not in workflow["jobs"][p_job]


@pytest.mark.parametrize("job_id", ["validate", "preview"])
def test_preview_jobs_fetch_the_base_branch_for_changed_since(job_id: str) -> None:
    workflow = load_workflow("preview.yml")
    (checkout,) = [s for s in workflow["jobs"][job_id]["steps"]
                   if uses(s, "actions/checkout") and "path" not in s.get("with", {})]  # fmt: skip
    assert checkout["with"].get("fetch-depth") == 0


def preview_repo(fake_venv: Path, changes: dict[str, str]) -> Path:
    commit_files(fake_venv, {"tenants/acme.yaml": "slug: acme\n", "components/tenant.py": "# v1\n"}, "base")
    git(fake_venv, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(fake_venv, "checkout", "-q", "-b", "feature")
    commit_files(fake_venv, changes, "change")
    return fake_venv


@pytest.mark.parametrize(
    ("changes", "code_changed"),
    [
        ({"tenants/acme.yaml": "slug: acme\n#x\n", "tenants/newco.yaml": "n\n"}, "false"),
        ({"tenants/acme.yaml": "slug: acme\n#x\n", "components/tenant.py": "#2\n"}, "true"),
        ({"tenants/newco.yaml": "n\n", "stacks/Pulumi.prod.newco.yaml": "config: {}\n"}, "true"),
        ({"tenants/schema.json": "{}\n"}, "true"),
        ({"program/tenant.py": "#\n"}, "true"),
    ],
    ids=["tenants-only", "component", "tenant-stack-file", "schema", "program"],
)
def test_preview_asks_for_review_unless_only_tenant_files_changed(
    fake_venv: Path, changes: dict[str, str], code_changed: str
) -> None:
    script = step_named(load_workflow("preview.yml"), "changes")["run"]
    run = run_script(script, preview_repo(fake_venv, changes), BASE_REF="main")
    assert run.returncode == 0, run
    assert run.outputs == {"code_changed": code_changed}


def test_preview_review_check_fails_closed_when_git_cannot_compare(fake_venv: Path) -> None:
    script = step_named(load_workflow("preview.yml"), "changes")["run"]
    run = run_script(script, preview_repo(fake_venv, {"components/tenant.py": "#2\n"}), BASE_REF="no-such-branch")
    assert run.returncode != 0 and run.outputs == {}


def test_code_changes_wait_for_a_reviewer_before_credentials_are_used() -> None:
    workflow = load_workflow("preview.yml")
    ((job_id, _, _step),) = action_steps(workflow, "aws-actions/configure-aws-credentials")
    job = workflow["jobs"][job_id]
    assert job["needs"] == "validate"
    assert job["environment"] == ("${{ needs.validate.outputs.code_changed == 'true' "
                                  "&& 'preview-code-review' || 'preview' }}")
    assert workflow["jobs"]["validate"]["outputs"]["code_changed"] == "${{ steps.changes.outputs.code_changed }}"
    assert "id-token" not in workflow["jobs"]["validate"]["permissions"]


def run_preview(fake_venv: Path, **env: str) -> Run:
    script = step_named(load_workflow("preview.yml"), "tenantctl preview")["run"]
    defaults = {"BASE_REF": "main", "PULUMI_BACKEND_URL": "s3://state?region=eu-west-1"}
    return run_script(script, fake_venv, **{**defaults, **env})


def summary_path(fake_venv: Path) -> Path:
    return fake_venv.parent / "runner-temp" / "preview-comment" / "preview.md"


def test_preview_previews_the_affected_stacks_with_bounded_concurrency(fake_venv: Path) -> None:
    run = run_preview(fake_venv, FAKE_MARKDOWN="### `tenantctl preview --env prod`: ok")
    assert run.returncode == 0, run
    assert run.calls == [
        "-m tenantctl preview --env prod --changed-since origin/main --concurrency 8 --policy-pack base/policy "
        f"--markdown {summary_path(fake_venv)}"
    ]
    parses_with_real_tenantctl(run.calls[0])
    assert summary_path(fake_venv).read_text(encoding="utf-8").startswith("### `tenantctl preview --env prod`: ok")
    assert "tenantctl preview --env prod`: ok" in run.summary
    # The header documents the decision (all stacks on a shared change, bounded) with the same number.
    concurrency = re.search(r"--concurrency (\d+)", run.calls[0])
    assert concurrency and f"--concurrency {concurrency.group(1)}" in header_comment("preview.yml")
    assert "read-only" in header_comment("preview.yml")


def test_a_failed_preview_still_leaves_a_summary_for_the_comment(fake_venv: Path) -> None:
    run = run_preview(fake_venv, FAKE_EXIT="1", FAKE_MARKDOWN="### `tenantctl preview --env prod`: FAILED")
    assert run.returncode == 1
    assert "FAILED" in summary_path(fake_venv).read_text(encoding="utf-8")


def test_a_preview_failing_before_any_stack_still_says_so(fake_venv: Path) -> None:
    run = run_preview(fake_venv, FAKE_EXIT="2")
    assert run.returncode == 2
    text = summary_path(fake_venv).read_text(encoding="utf-8")
    assert "FAILED" in text and "exit 2" in text and text in run.summary


def test_preview_refuses_to_run_without_a_backend(fake_venv: Path) -> None:
    run = run_preview(fake_venv, PULUMI_BACKEND_URL="")
    assert run.returncode != 0 and run.calls == []


def test_the_policy_pack_comes_from_the_base_branch_not_the_pull_request(fake_venv: Path) -> None:
    workflow = load_workflow("preview.yml")
    preview = step_named(workflow, "tenantctl preview")
    job_id, index = position(workflow, preview)
    steps = workflow["jobs"][job_id]["steps"]
    [base] = [s for s in steps if s.get("with", {}).get("path") == "base"]
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert base["with"]["sparse-checkout"] == "policy" and base["with"]["persist-credentials"] is False
    assert steps.index(base) < index
    run = run_preview(fake_venv)
    assert run.returncode == 0, run
    (call,) = run.calls
    assert re.findall(r"--policy-pack (\S+)", call) == ["base/policy"]


def test_the_base_checkout_is_not_counted_as_part_of_the_change(fake_venv: Path) -> None:
    commit_files(fake_venv, {"tenants/acme.yaml": "slug: acme\n"}, "base")
    (fake_venv / "base" / "policy").mkdir(parents=True)
    (fake_venv / "base" / "policy" / "__main__.py").write_text("# base pack\n", encoding="utf-8")
    untracked = ["ls-files", "--others", "--exclude-standard"]  # what tenantctl's --changed-since adds
    assert git(fake_venv, *untracked) == "base/policy/__main__.py"
    script = step_named(load_workflow("preview.yml"), "the base pack runs in the program's virtualenv "
                        "(its PulumiPolicy.yaml names ../.venv)")["run"]
    run = run_script(script, fake_venv)
    assert run.returncode == 0, run
    assert (fake_venv / "base" / ".venv").resolve() == (fake_venv / ".venv").resolve()
    assert git(fake_venv, *untracked) == ""


def test_preview_summary_is_handed_to_a_comment_job_without_credentials() -> None:
    workflow = load_workflow("preview.yml")
    ((up_job, _, upload),) = action_steps(workflow, "actions/upload-artifact")
    ((down_job, _, download),) = action_steps(workflow, "actions/download-artifact")
    assert up_job == "preview" and down_job == "comment"
    assert upload["if"] == "${{ !cancelled() }}", "a failed preview must still reach the comment"
    assert upload["with"]["name"] == download["with"]["name"]
    assert "${{ github.run_attempt }}" in upload["with"]["name"], "a re-run must not post an earlier summary"
    assert upload["with"]["path"] == PREVIEW_SUMMARY
    assert f"{download['with']['path']}/{Path(upload['with']['path']).name}" == PREVIEW_SUMMARY
    comment = workflow["jobs"]["comment"]
    assert set(needs_of(workflow, "comment")) == {"validate", "preview"}
    assert comment["if"] == "${{ !cancelled() }}"
    assert not any(uses(s, "actions/checkout") or uses(s, "aws-actions/configure-aws-credentials")
                   for s in comment["steps"])  # fmt: skip


def test_only_the_comment_job_comments_and_only_once() -> None:
    sites = [(name, j) for name, w in all_workflows().items()
             for j, _, s in steps_of(w) if "gh pr comment" in str(s.get("run", ""))]  # fmt: skip
    assert sites == [("preview.yml", "comment")]
    assert len(run_steps(load_workflow("preview.yml"), r"gh pr comment")) == 1


def run_comment(fake_venv: Path, **env: str) -> Run:
    step = step_named(load_workflow("preview.yml"), "post or update the combined comment")
    assert step["env"]["GH_TOKEN"] == "${{ github.token }}"  # noqa: S105
    assert step["env"]["PR_NUMBER"] == "${{ github.event.pull_request.number }}"
    defaults = {
        "GH_TOKEN": "t", "PR_NUMBER": "42", "HEAD_SHA": "abc1234", "VALIDATE_RESULT": "success",
        "PREVIEW_RESULT": "success", "RUN_URL": "https://github.com/octo/tenant-onboarding/actions/runs/7",
    }  # fmt: skip
    return run_script(step["run"], fake_venv, **{**defaults, **env})


def test_preview_posts_one_combined_comment_editing_the_last_one(fake_venv: Path) -> None:
    assert run_preview(fake_venv, FAKE_MARKDOWN="| `prod.acme` | ok | 8 | 0 | 0 | 0 |").returncode == 0
    run = run_comment(fake_venv)
    assert run.returncode == 0, run
    body_file = fake_venv.parent / "runner-temp" / "comment.md"
    assert run.gh_calls == [
        f"pr comment 42 --repo octo/tenant-onboarding --edit-last --create-if-none --body-file {body_file}"
    ]
    assert "| `prod.acme` | ok | 8 | 0 | 0 | 0 |" in run.gh_body
    assert "abc1234" in run.gh_body and "actions/runs/7" in run.gh_body


def test_preview_comment_falls_back_to_a_new_comment(fake_venv: Path) -> None:
    assert run_preview(fake_venv, FAKE_MARKDOWN="| `prod` | ok |").returncode == 0
    run = run_comment(fake_venv, FAKE_GH_EDIT_EXIT="1")
    assert run.returncode == 0, run
    assert len(run.gh_calls) == 2 and "--edit-last" in run.gh_calls[0]
    assert run.gh_calls[1].startswith("pr comment 42 --repo octo/tenant-onboarding --body-file ")
    assert "--edit-last" not in run.gh_calls[1] and "| `prod` | ok |" in run.gh_body


def test_preview_comment_fails_the_job_when_github_refuses_it(fake_venv: Path) -> None:
    assert run_preview(fake_venv, FAKE_MARKDOWN="ok").returncode == 0
    run = run_comment(fake_venv, FAKE_GH_EDIT_EXIT="1", FAKE_GH_EXIT="1")
    assert run.returncode != 0 and len(run.gh_calls) == 2


@pytest.mark.parametrize(
    ("validate", "preview", "expected"),
    [("failure", "skipped", "`tenantctl validate --env prod`: failure"),
     ("success", "failure", "`tenantctl preview --env prod`: failure")],
)  # fmt: skip
def test_preview_comment_replaces_a_stale_result_when_nothing_was_previewed(
    fake_venv: Path, validate: str, preview: str, expected: str
) -> None:
    run = run_comment(fake_venv, VALIDATE_RESULT=validate, PREVIEW_RESULT=preview)
    assert run.returncode == 0, run
    assert len(run.gh_calls) == 1 and expected in run.gh_body


def test_preview_comment_stays_under_githubs_size_limit(fake_venv: Path) -> None:
    assert run_preview(fake_venv, FAKE_MARKDOWN="x" * 70_000).returncode == 0
    run = run_comment(fake_venv)
    assert run.returncode == 0, run
    assert len(run.gh_body) < 65_536 and "truncated" in run.gh_body


# --- deploy --------------------------------------------------------------------------------------------


def test_deploy_runs_only_on_pushes_to_main() -> None:
    workflow = load_workflow("deploy.yml")
    assert set(workflow["on"]) == {"push"}
    push = workflow["on"]["push"]
    assert push["branches"] == ["main"] and "tags" not in push and "branches-ignore" not in push
    for job_id, job in workflow["jobs"].items():
        assert job.get("if") == "github.ref == 'refs/heads/main'", job_id


def test_deploy_runs_in_the_production_environment_one_at_a_time() -> None:
    workflow = load_workflow("deploy.yml")
    ((job_id, _, _),) = run_steps(workflow, r"-m tenantctl up\b")
    assert workflow["jobs"][job_id]["environment"] == "production"
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert workflow["concurrency"]["group"] == load_workflow("offboard.yml")["concurrency"]["group"]
    assert "environment" not in workflow["jobs"]["last-deployed"]


def test_deploy_wiring_of_the_push_base() -> None:
    workflow = load_workflow("deploy.yml")
    assert workflow["jobs"]["deploy"]["needs"] == "last-deployed"
    assert workflow["jobs"]["last-deployed"]["outputs"] == {"sha": "${{ steps.last.outputs.sha }}"}
    base = step_named(workflow, "push base")
    assert base["env"] == {"BEFORE": "${{ github.event.before }}", "SHA": "${{ github.sha }}",
                           "LAST_DEPLOYED": "${{ needs.last-deployed.outputs.sha }}"}  # fmt: skip
    up, handoff = step_named(workflow, "tenantctl up"), step_named(workflow, "handoff for new tenants")
    # The rollout and the handoff agree on what this run deploys.
    assert up["env"]["BASE"] == handoff["env"]["BASE"] == "${{ steps.base.outputs.sha }}"
    assert handoff["env"]["SHA"] == "${{ github.sha }}"
    positions = [position(workflow, s) for s in (base, up, handoff)]
    assert runs_before(workflow, positions[0], positions[1]) and runs_before(workflow, positions[1], positions[2])
    checkout = next(s for s in workflow["jobs"]["deploy"]["steps"] if uses(s, "actions/checkout"))
    assert checkout["with"].get("fetch-depth") == 0


def test_deploy_bounds_removals_explicitly_with_its_reason() -> None:
    """Fleet rule 3: the deploy names its removal bound, and says why next to it."""
    import re

    script = step_named(load_workflow("deploy.yml"), "tenantctl up")["run"]
    command = script[script.index("tenantctl up"):]
    assert re.search(r"--max-removals \d+", command)
    comment = script[:script.index("tenantctl up")]
    assert "# --max-removals" in comment


@pytest.mark.parametrize(
    ("stdout", "exit_code", "expected"),
    [("a" * 40, "0", "a" * 40), ("", "1", ""), ("null", "0", ""), ("a" * 39, "0", "")],
    ids=["found", "api-failed", "none", "not-a-sha"],
)
def test_deploy_finds_the_last_successful_deploy(fake_venv: Path, stdout: str, exit_code: str, expected: str) -> None:
    script = step_named(load_workflow("deploy.yml"), "last successful deploy")["run"]
    run = run_script(
        script, fake_venv, GH_TOKEN="t", FAKE_GH_STDOUT=stdout, FAKE_GH_EXIT=exit_code,  # noqa: S106
        GITHUB_WORKFLOW_REF="octo/tenant-onboarding/.github/workflows/deploy.yml@refs/heads/main",
    )  # fmt: skip
    assert run.returncode == 0, run
    assert run.outputs == {"sha": expected}
    (call,) = run.gh_calls
    url = call.split()[1]
    assert url.startswith("repos/octo/tenant-onboarding/actions/workflows/deploy.yml/runs?")
    assert {"branch=main", "event=push", "status=success", "per_page=1"} <= set(url.split("?", 1)[1].split("&"))


@pytest.fixture
def pushes(fake_venv: Path) -> dict[str, str]:
    """Four commits on main: c0..c3."""
    return {f"c{i}": commit_files(fake_venv, {f"tenants/t{i}.yaml": f"{i}\n"}, f"c{i}") for i in range(4)}


def run_push_base(fake_venv: Path, **env: str) -> Run:
    return run_script(step_named(load_workflow("deploy.yml"), "push base")["run"], fake_venv, **env)


@pytest.mark.parametrize(
    ("before", "last", "sha", "expected"),
    [
        ("c2", "", "c3", "c2"),  # the push's own before
        (ZERO_SHA, "", "c3", "c2"),  # new branch: the parent commit
        ("f" * 40, "", "c3", "c2"),  # force push: before is not in history, the parent commit
        ("c2", "c1", "c3", "c1"),  # c2's deploy failed or was replaced while pending: from c1
        ("c2", "e" * 40, "c3", "c2"),  # the last deployed commit is not in history any more
        ("c2", "c3", "c3", "c2"),  # this very commit deployed already: redo this push's changes
    ],
    ids=["before", "new-branch", "force-push", "since-last-deploy", "last-deploy-gone", "same-commit"],
)
def test_deploy_push_base(fake_venv: Path, pushes: dict[str, str], before: str, last: str, sha: str,
                          expected: str) -> None:
    run = run_push_base(fake_venv, BEFORE=pushes.get(before, before), LAST_DEPLOYED=pushes.get(last, last),
                        SHA=pushes[sha])  # fmt: skip
    assert run.returncode == 0, run
    assert run.outputs == {"sha": pushes[expected]}


def test_deploy_refuses_to_roll_back_a_later_deployed_commit(fake_venv: Path, pushes: dict[str, str]) -> None:
    run = run_push_base(fake_venv, BEFORE=pushes["c1"], LAST_DEPLOYED=pushes["c3"], SHA=pushes["c2"])
    assert run.returncode == 1 and run.outputs == {}
    assert "roll it back" in run.stdout


def run_up(fake_venv: Path, **env: str) -> Run:
    script = step_named(load_workflow("deploy.yml"), "tenantctl up")["run"]
    return run_script(script, fake_venv, **{"PULUMI_BACKEND_URL": "s3://state?region=eu-west-1", **env})


def test_deploy_runs_tenantctl_up_of_prod_since_the_push_base_and_appends_its_summary(fake_venv: Path) -> None:
    summary = fake_venv.parent / "step-summary.md"
    summary.write_text("earlier\n", encoding="utf-8")
    run = run_up(fake_venv, BASE="b" * 40, FAKE_MARKDOWN="### `tenantctl up --env prod`: ok")
    assert run.returncode == 0, run
    markdown = fake_venv.parent / "runner-temp" / "up.md"
    assert run.calls == [f"-m tenantctl up --env prod --changed-since {'b' * 40} --policy-pack policy "
                         f"--max-removals 1 --markdown {markdown}"]  # fmt: skip
    parses_with_real_tenantctl(run.calls[0])
    assert run.summary == "earlier\n### `tenantctl up --env prod`: ok\n"


def test_deploy_fails_when_a_stack_fails_and_still_shows_the_summary(fake_venv: Path) -> None:
    run = run_up(fake_venv, BASE="b" * 40, FAKE_EXIT="1", FAKE_MARKDOWN="### `tenantctl up --env prod`: FAILED")
    assert run.returncode == 1
    assert "FAILED" in run.summary


@pytest.mark.parametrize("missing", ["PULUMI_BACKEND_URL", "BASE"])
def test_deploy_refuses_to_run_without_a_backend_or_a_base(fake_venv: Path, missing: str) -> None:
    run = run_up(fake_venv, **{"BASE": "b" * 40, missing: ""})
    assert run.returncode != 0 and run.calls == []


def test_deploy_falls_back_to_the_parent_commit_on_a_bad_before(fake_venv: Path, pushes: dict[str, str]) -> None:
    base = run_push_base(fake_venv, BEFORE=ZERO_SHA, LAST_DEPLOYED="", SHA=pushes["c3"])
    assert base.returncode == 0, base
    assert "not in history" in base.stdout
    run = run_up(fake_venv, BASE=base.outputs["sha"])
    assert run.returncode == 0, run
    assert run.calls[0].startswith(f"-m tenantctl up --env prod --changed-since {pushes['c2']} ")


@pytest.mark.parametrize("base", ["parent", "last-deployed"])
def test_deploy_hands_off_each_added_tenant_file_only(fake_venv: Path, base: str) -> None:
    script = step_named(load_workflow("deploy.yml"), "handoff for new tenants")["run"]
    first = commit_files(fake_venv, {"tenants/acme.yaml": "a\n", "tenants/schema.json": "{}\n"}, "base")
    parent = commit_files(fake_venv, {"tenants/initech.yaml": "i\n"}, "add initech")
    sha = commit_files(
        fake_venv,
        {"tenants/acme.yaml": "a2\n", "tenants/globex.yaml": "g\n", "tenants/schema.json": "{ }\n", "README": "x\n"},
        "add globex",
    )
    run = run_script(script, fake_venv, BASE=parent if base == "parent" else first, SHA=sha)
    assert run.returncode == 0, run
    expected = ["globex"] if base == "parent" else ["globex", "initech"]
    assert run.calls == [f"-m tenantctl handoff {slug} --env prod" for slug in expected]
    for call in run.calls:
        parses_with_real_tenantctl(call)
        assert f"ran: {call}" in run.summary


def test_deploy_handoff_fails_the_job_when_tenantctl_fails(fake_venv: Path) -> None:
    script = step_named(load_workflow("deploy.yml"), "handoff for new tenants")["run"]
    parent = commit_files(fake_venv, {"tenants/acme.yaml": "a\n"}, "base")
    sha = commit_files(fake_venv, {"tenants/globex.yaml": "g\n", "tenants/initech.yaml": "i\n"}, "add two")
    run = run_script(script, fake_venv, BASE=parent, SHA=sha, FAKE_EXIT="1")
    assert run.returncode == 1
    assert len(run.calls) == 2, "one failing handoff must not skip the others"


def test_deploy_handoff_fails_when_git_cannot_compare(fake_venv: Path) -> None:
    script = step_named(load_workflow("deploy.yml"), "handoff for new tenants")["run"]
    sha = commit_files(fake_venv, {"tenants/acme.yaml": "a\n"}, "base")
    run = run_script(script, fake_venv, BASE="e" * 40, SHA=sha)
    assert run.returncode != 0 and run.calls == []


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
    assert job["env"]["PURGE_DATA"] == "${{ inputs.purge_data }}"


def test_offboard_checks_inputs_before_anything_else() -> None:
    workflow = load_workflow("offboard.yml")
    check = position(workflow, step_named(workflow, "check inputs"))
    assert check[1] == 0, "inputs are checked before anything is installed or any credential requested"
    credentials = [(j, i) for j, i, s in steps_of(workflow) if uses(s, "aws-actions/configure-aws-credentials")]
    destroy = position(workflow, step_named(workflow, "tenantctl destroy"))
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
    run = run_script(script, fake_venv, TENANT=tenant, CONFIRM=confirm, GITHUB_REF=ref)
    assert (run.returncode == 0) is accepted, run


@pytest.mark.parametrize(("purge", "extra"), [("false", ""), ("true", " --purge-data")])
def test_offboard_destroys_one_tenant_stack_through_tenantctl(fake_venv: Path, purge: str, extra: str) -> None:
    script = step_named(load_workflow("offboard.yml"), "tenantctl destroy")["run"]
    run = run_script(script, fake_venv, TENANT="acme", PURGE_DATA=purge, PULUMI_BACKEND_URL="s3://state")
    assert run.returncode == 0, run
    assert run.calls == [f"-m tenantctl destroy acme --env prod --yes{extra}"]
    parses_with_real_tenantctl(run.calls[0])


def test_offboard_refuses_to_destroy_without_a_backend(fake_venv: Path) -> None:
    script = step_named(load_workflow("offboard.yml"), "tenantctl destroy")["run"]
    run = run_script(script, fake_venv, TENANT="acme", PURGE_DATA="false")
    assert run.returncode != 0 and run.calls == []


def test_offboard_mismatched_confirmation_destroys_nothing(fake_venv: Path) -> None:
    # The job's steps in order, stopping at the first failure as the runner does.
    workflow = load_workflow("offboard.yml")
    env = {"TENANT": "acme", "CONFIRM": "acne", "PURGE_DATA": "false", "GITHUB_REF": "refs/heads/main",
           "PULUMI_BACKEND_URL": "s3://state"}  # fmt: skip
    calls = []
    for step in workflow["jobs"]["offboard"]["steps"]:
        if "run" not in step or step["run"] == "make venv" or step["run"] == PLUGIN_INSTALL:
            continue
        run = run_script(step["run"], fake_venv, **env)
        calls += run.calls
        if run.returncode != 0:
            assert step["name"] == "check inputs" and "confirm does not match" in run.stdout
            break
    else:
        pytest.fail("a mismatched confirmation ran every step")
    assert calls == []


@pytest.mark.parametrize("present", [True, False])
def test_offboard_warns_while_the_tenant_file_is_on_main(fake_venv: Path, present: bool) -> None:
    if present:
        commit_files(fake_venv, {"tenants/acme.yaml": "a\n"}, "acme")
    script = step_named(load_workflow("offboard.yml"), "warn if the tenant file is still present")["run"]
    run = run_script(script, fake_venv, TENANT="acme")
    assert run.returncode == 0, run
    assert ("::warning::tenants/acme.yaml is still on main" in run.stdout) is present


# --- review ownership ------------------------------------------------------------------------------------


def test_codeowners_put_code_and_policy_under_platform_review() -> None:
    rules = [line.split() for line in (ROOT / ".github" / "CODEOWNERS").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    owners = {rule[0]: rule[1:] for rule in rules}
    assert "@ai-agents/platform-engineering" in owners["*"]
    assert "@ai-agents/security" in owners["/policy/"] and "@ai-agents/security" in owners["/.github/"]


def test_a_scheduled_workflow_runs_the_long_profiles_of_the_property_tests() -> None:
    """Fleet rule 8: the bounded profiles run in `make test`, the long ones on a schedule."""
    workflow = load_workflow("long-tests.yml")
    assert "schedule" in workflow["on"]
    step = step_named(workflow, "long profiles")
    assert step["env"]["TENANT_FAULT_SWEEP"] == "full"
    assert int(step["env"]["TENANT_MODEL_EXAMPLES"]) > 1 and int(step["env"]["TENANT_MODEL_STEPS"]) > 6
    assert "tests/e2e/test_operator_model.py" in step["run"] and "tests/e2e/test_fault_injection.py" in step["run"]
