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

from fleet.plan import PROGRAM_PATHS
from tenancy.model import SLUG_PATTERN

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
    "tenancy/**",
    "checks/**",
    "fleet/**",
    "services/**",
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
        "classify": {"contents": "read"},
        "validate": {"contents": "read"},
        "preview": {"contents": "read", "id-token": "write"},
        "preview-code": {"contents": "read", "id-token": "write"},
        "comment": {"pull-requests": "write"},
    },
    "deploy.yml": {
        "last-deployed": {"actions": "read"},
        "canary": {"contents": "read", "id-token": "write", "actions": "read"},
        "rollout": {"contents": "read", "id-token": "write", "actions": "read"},
    },
    "drift.yml": {
        "check": {"contents": "read", "id-token": "write"},
        "issue": {"issues": "write"},
    },
    "offboard.yml": {"offboard": {"contents": "read", "id-token": "write", "actions": "read"}},
    "long-tests.yml": {"long-tests": {"contents": "read"}},
}
# The only jobs given a GitHub token (none of them holds cloud credentials).
TOKEN_JOBS = {("preview.yml", "comment"), ("deploy.yml", "last-deployed"), ("drift.yml", "issue")}
# Jobs holding cloud credentials that also get a read-only token (`actions: read`, as GITHUB_TOKEN on the one
# step that runs tenantctl with --wait): the environment lock asks GitHub whether its holder's run is over
# (fleet rule 5).
LOCK_CHECK_JOBS = {("deploy.yml", "canary"), ("deploy.yml", "rollout"), ("offboard.yml", "offboard")}
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


def test_zizmor_auditor_persona_reports_nothing() -> None:
    """Issue 21: clean at zizmor's most pedantic persona too, every severity (a justified finding would carry a
    `# zizmor: ignore[<audit>]` comment with its reason on the line)."""
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--persona", "auditor", "--format", "json", str(WORKFLOWS_DIR.relative_to(ROOT))],
        cwd=ROOT, env=offline_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    findings = json.loads(result.stdout or "[]")
    assert (result.returncode, findings) == (0, []), f"zizmor exit {result.returncode}:\n{describe(findings)}"


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
        if "gh issue" in scripts:
            needed["issues"] = "write"
        lock_check = any(s.get("env", {}).get("GITHUB_TOKEN") == "${{ github.token }}"  # noqa: S105
                         and re.search(r"tenantctl|args=\(", str(s.get("run"))) and "--wait" in str(s.get("run"))
                         for s in job_steps)  # fmt: skip
        if re.search(r"gh api \S*/actions/workflows/", scripts) or lock_check:
            needed["actions"] = "read"
        assert job.get("permissions") == needed, f"{name}: job {job_id}"


@pytest.mark.parametrize("name", [p.name for p in WORKFLOW_FILES])
def test_no_job_holds_both_cloud_credentials_and_a_github_token(name: str) -> None:
    workflow = load_workflow(name)
    for job_id, job in workflow["jobs"].items():
        text = json.dumps(job)
        has_token = "github.token" in text or "secrets.GITHUB_TOKEN" in text
        if (name, job_id) in LOCK_CHECK_JOBS:
            # Read-only, and only where tenantctl waits for the lock.
            assert {k: v for k, v in job["permissions"].items() if k != "id-token"} == {
                "contents": "read", "actions": "read"}, f"{name}: job {job_id}"
            holders = [s for s in job["steps"] if "github.token" in json.dumps(s)]
            assert len(holders) == 1 and "--wait" in holders[0]["run"], f"{name}: job {job_id}"
            assert holders[0]["env"]["GITHUB_TOKEN"] == "${{ github.token }}"  # noqa: S105
            continue
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
        if job.get("environment") not in ("production", "production-release"):
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
    assert len(validations) == len(plans) == 1 and {j for j, _, _ in previews} == {"preview", "preview-code"}
    for p_job, p_index, _ in previews:
        for job_id, index, step in (*validations, *plans):
            assert runs_before(workflow, (job_id, index), (p_job, p_index))
            assert not step.get("continue-on-error")
            assert step["env"]["BASE_REF"] == "${{ github.base_ref }}"
        # A status function such as always() would run the preview even when validation failed.
        assert not re.search(r"always\(\)|failure\(\)|cancelled\(\)", workflow["jobs"][p_job]["if"])
    # The data-only preview validates the PR's files with the base commit's tenantctl before previewing them.
    ((job_id, index, _),) = run_steps(workflow, r"-m tenantctl validate --env prod --changed-since HEAD$")
    assert job_id == "preview" and index < position(workflow, step_named(workflow, "tenantctl preview"))[1]


@pytest.mark.parametrize("job_id", ["validate", "preview-code"])
def test_preview_jobs_fetch_the_base_branch_for_changed_since(job_id: str) -> None:
    workflow = load_workflow("preview.yml")
    (checkout,) = [s for s in workflow["jobs"][job_id]["steps"]
                   if uses(s, "actions/checkout") and "path" not in s.get("with", {})]  # fmt: skip
    assert checkout["with"].get("fetch-depth") == 0


def preview_repo(fake_venv: Path, changes: dict[str, str]) -> Path:
    """The classify job's workspace: the base branch's scripts in base/, a clone of the pull request in pr/."""
    scripts = fake_venv / "base" / ".github" / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "classify_pr.py").write_text((ROOT / ".github/scripts/classify_pr.py").read_text(encoding="utf-8"))
    repo = fake_venv / "pr"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {"tenants/acme.yaml": "slug: acme\n", "components/tenant.py": "# v1\n"}, "base")
    git(repo, "checkout", "-q", "-b", "feature")
    commit_files(repo, changes, "change")
    return fake_venv


def run_classify(fake_venv: Path, base: str = "main") -> Run:
    step = step_named(load_workflow("preview.yml"), "classify")
    assert step["env"] == {"BASE_SHA": "${{ github.event.pull_request.base.sha }}",
                           "HEAD_SHA": "${{ github.event.pull_request.head.sha }}"}  # fmt: skip
    repo = fake_venv / "pr"
    sha = git(repo, "rev-parse", base) if base == "main" else base
    return run_script(step["run"], fake_venv, BASE_SHA=sha, HEAD_SHA=git(repo, "rev-parse", "HEAD"))


@pytest.mark.parametrize(
    ("changes", "data_only"),
    [
        ({"tenants/acme.yaml": "slug: acme\n#x\n", "tenants/newco.yaml": "slug: newco\n"}, "true"),
        ({"tenants/acme.yaml": "slug: acme\n#x\n", "components/tenant.py": "#2\n"}, "false"),
        ({"tenants/newco.yaml": "slug: newco\n", "stacks/Pulumi.prod.newco.yaml": "config: {}\n"}, "false"),
        ({"tenants/schema.json": "{}\n"}, "false"),
        ({"program/tenant.py": "#\n"}, "false"),
        ({"tenants/newco.yaml": "- not a mapping\n"}, "false"),
        ({"tenants/sub/newco.yaml": "slug: newco\n"}, "false"),
    ],
    ids=["tenants-only", "component", "tenant-stack-file", "schema", "program", "not-a-mapping", "nested"],
)
def test_preview_asks_for_review_unless_only_tenant_data_changed(
    fake_venv: Path, changes: dict[str, str], data_only: str
) -> None:
    run = run_classify(preview_repo(fake_venv, changes))
    assert run.returncode == 0, run
    assert run.outputs == {"data_only": data_only}


@pytest.mark.parametrize(("data_key", "data_only"), [("AQIDAHnew", "true"), ("AQIDAHplatform", "false")])
def test_a_new_stack_file_may_not_borrow_another_stacks_data_key(fake_venv: Path, data_key: str,
                                                                 data_only: str) -> None:
    """With another stack's data key, ciphertexts copied from that stack would decrypt as the tenant's secrets."""
    work = preview_repo(fake_venv, {"tenants/acme.yaml": "slug: acme\n#x\n"})
    repo = work / "pr"
    git(repo, "checkout", "-q", "main")
    commit_files(repo, {"stacks/Pulumi.prod.yaml": "secretsprovider: awskms://alias/k\nencryptedkey: AQIDAHplatform\n",
                        "stacks/Pulumi.prod.acme.yaml": "secretsprovider: awskms://alias/k\nencryptedkey: AQIDAHacme\n"
                        "config:\n  aws:region: eu-west-1\n"}, "platform")  # fmt: skip
    git(repo, "checkout", "-q", "-b", "newco")
    commit_files(repo, {"tenants/newco.yaml": "servicedesk:\n  api_key_secret: newco-servicedesk-api-key\n",
                        "stacks/Pulumi.prod.newco.yaml": "secretsprovider: awskms://alias/k\n"
                        f"encryptedkey: {data_key}\nconfig:\n  aws:region: eu-west-1\n"
                        "  tenant-onboarding:newco-servicedesk-api-key:\n    secure: AQICAHh0\n"}, "newco")  # fmt: skip
    run = run_classify(work)
    assert run.returncode == 0, run
    assert run.outputs == {"data_only": data_only}, run.stdout


def test_classify_is_not_fooled_by_a_symlink_or_a_fake_git_on_path(fake_venv: Path) -> None:
    work = preview_repo(fake_venv, {"tenants/acme.yaml": "slug: acme\n#x\n"})
    repo = work / "pr"
    (repo / "tenants" / "evil.yaml").symlink_to("../components/tenant.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a symlink named like a tenant file")
    evil = work.parent / "bin" / "git"
    evil.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    evil.chmod(0o755)
    run = run_classify(work)
    assert run.returncode == 0, run
    assert run.outputs == {"data_only": "false"} and "not a regular file" in run.stdout


def test_preview_review_check_fails_closed_when_git_cannot_compare(fake_venv: Path) -> None:
    run = run_classify(preview_repo(fake_venv, {"components/tenant.py": "#2\n"}), base="e" * 40)
    assert run.returncode != 0 and run.outputs == {}


def test_code_changes_wait_for_a_reviewer_before_credentials_are_used() -> None:
    workflow = load_workflow("preview.yml")
    jobs = workflow["jobs"]
    credentialed = {j for j, _, _ in action_steps(workflow, "aws-actions/configure-aws-credentials")}
    assert credentialed == {"preview", "preview-code"}
    assert jobs["classify"]["outputs"] == {"data_only": "${{ steps.classify.outputs.data_only }}"}
    assert (jobs["preview"]["environment"], jobs["preview"]["if"]) == (
        "preview", "needs.classify.outputs.data_only == 'true'")
    assert (jobs["preview-code"]["environment"], jobs["preview-code"]["if"]) == (
        "preview-code-review", "needs.classify.outputs.data_only != 'true'")
    for job_id in credentialed:
        assert "classify" in needs_of(workflow, job_id)
    assert "outputs" not in jobs["validate"], "the job that runs PR code decides nothing"
    assert "id-token" not in jobs["validate"]["permissions"] and "id-token" not in jobs["classify"]["permissions"]


def run_preview(fake_venv: Path, **env: str) -> Run:
    script = step_named(load_workflow("preview.yml"), "tenantctl preview of reviewed code")["run"]
    defaults = {"CHANGED_SINCE": "origin/main", "POLICY_PACK": "base/policy",
                "PULUMI_BACKEND_URL": "s3://state?region=eu-west-1"}  # fmt: skip
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


def test_both_previews_run_the_same_script_on_what_they_are_given() -> None:
    workflow = load_workflow("preview.yml")
    data, code = step_named(workflow, "tenantctl preview"), step_named(workflow, "tenantctl preview of reviewed code")
    assert data["run"] == code["run"]
    assert data["env"] == {"CHANGED_SINCE": "HEAD", "POLICY_PACK": "policy"}
    assert code["env"] == {"CHANGED_SINCE": "${{ github.event.pull_request.base.sha }}", "POLICY_PACK": "base/policy"}


def test_the_policy_pack_comes_from_the_base_branch_not_the_pull_request(fake_venv: Path) -> None:
    workflow = load_workflow("preview.yml")
    # Data only: the whole workspace is the base commit.
    (root,) = [s for s in workflow["jobs"]["preview"]["steps"]
               if uses(s, "actions/checkout") and "path" not in s.get("with", {})]  # fmt: skip
    assert root["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    # Reviewed code: the pack from a base checkout, beside the PR's.
    preview = step_named(workflow, "tenantctl preview of reviewed code")
    job_id, index = position(workflow, preview)
    steps = workflow["jobs"][job_id]["steps"]
    [base] = [s for s in steps if s.get("with", {}).get("path") == "base"]
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert base["with"]["persist-credentials"] is False
    assert steps.index(base) < index
    run = run_preview(fake_venv)
    assert run.returncode == 0, run
    (call,) = run.calls
    assert re.findall(r"--policy-pack (\S+)", call) == ["base/policy"]


def test_the_base_pack_runs_in_a_virtualenv_the_base_branch_built(fake_venv: Path) -> None:
    """Not the PR's virtualenv: the PR would decide what the policy code imports."""
    commit_files(fake_venv, {"tenants/acme.yaml": "slug: acme\n"}, "base")
    (fake_venv / "base" / "policy").mkdir(parents=True)
    (fake_venv / "base" / "policy" / "__main__.py").write_text("# base pack\n", encoding="utf-8")
    (fake_venv / "base" / "Makefile").write_text("venv:\n\tmkdir -p .venv/bin && touch .venv/bin/python\n")
    untracked = ["ls-files", "--others", "--exclude-standard"]  # what tenantctl's --changed-since adds
    assert "base/policy/__main__.py" in git(fake_venv, *untracked)
    script = step_named(load_workflow("preview.yml"), "the base pack gets the base branch's own virtualenv "
                        "(its PulumiPolicy.yaml names ../.venv)")["run"]
    run = run_script(script, fake_venv)
    assert run.returncode == 0, run
    assert (fake_venv / "base" / ".venv" / "bin" / "python").is_file()
    assert not (fake_venv / "base" / ".venv").is_symlink()
    assert (fake_venv / "base" / ".venv").resolve() != (fake_venv / ".venv").resolve()
    assert git(fake_venv, *untracked) == ""


def test_preview_summary_is_handed_to_a_comment_job_without_credentials() -> None:
    workflow = load_workflow("preview.yml")
    uploads = action_steps(workflow, "actions/upload-artifact")
    ((down_job, _, download),) = action_steps(workflow, "actions/download-artifact")
    assert {j for j, _, _ in uploads} == {"preview", "preview-code"} and down_job == "comment"
    for _, _, upload in uploads:
        assert upload["if"] == "${{ !cancelled() }}", "a failed preview must still reach the comment"
        assert upload["with"]["name"] == download["with"]["name"]
        assert "${{ github.run_attempt }}" in upload["with"]["name"], "a re-run must not post an earlier summary"
        assert upload["with"]["path"] == PREVIEW_SUMMARY
    assert f"{download['with']['path']}/{Path(PREVIEW_SUMMARY).name}" == PREVIEW_SUMMARY
    comment = workflow["jobs"]["comment"]
    assert set(needs_of(workflow, "comment")) == {"classify", "validate", "preview", "preview-code"}
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


def test_deploy_runs_in_the_production_environments_one_at_a_time() -> None:
    workflow = load_workflow("deploy.yml")
    ups = {job_id: workflow["jobs"][job_id]["environment"]
           for job_id, _, _ in run_steps(workflow, r"-m tenantctl up\b")}
    assert ups == {"canary": "production", "rollout": "production-release"}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert workflow["concurrency"]["group"] != load_workflow("offboard.yml")["concurrency"]["group"]
    assert "environment" not in workflow["jobs"]["last-deployed"]


def test_deploy_wiring_of_the_push_base() -> None:
    workflow = load_workflow("deploy.yml")
    assert workflow["jobs"]["canary"]["needs"] == "last-deployed" and workflow["jobs"]["rollout"]["needs"] == "canary"
    assert workflow["jobs"]["last-deployed"]["outputs"] == {"sha": "${{ steps.last.outputs.sha }}"}
    assert workflow["jobs"]["canary"]["outputs"] == {"base": "${{ steps.base.outputs.sha }}"}
    base = step_named(workflow, "push base")
    assert base["env"] == {"BEFORE": "${{ github.event.before }}", "SHA": "${{ github.sha }}",
                           "LAST_DEPLOYED": "${{ needs.last-deployed.outputs.sha }}"}  # fmt: skip
    canary = step_named(workflow, "tenantctl up --until canary")
    rest = step_named(workflow, "tenantctl up --after canary")
    handoff = step_named(workflow, "handoff for new tenants")
    # The canary, the rest of the rollout and the handoff agree on what this run deploys.
    assert canary["env"]["BASE"] == "${{ steps.base.outputs.sha }}"
    assert rest["env"]["BASE"] == handoff["env"]["BASE"] == "${{ needs.canary.outputs.base }}"
    assert handoff["env"]["SHA"] == "${{ github.sha }}"
    positions = [position(workflow, s) for s in (base, canary, rest, handoff)]
    assert all(runs_before(workflow, a, b) for a, b in zip(positions, positions[1:], strict=False))
    for job_id in ("canary", "rollout"):
        checkout = next(s for s in workflow["jobs"][job_id]["steps"] if uses(s, "actions/checkout"))
        assert checkout["with"].get("fetch-depth") == 0


def test_deploy_bounds_removals_explicitly_with_its_reason() -> None:
    """Fleet rule 3: the deploy names its removal bound, and says why next to it."""
    import re

    for name in ("tenantctl up --until canary", "tenantctl up --after canary"):
        script = step_named(load_workflow("deploy.yml"), name)["run"]
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


def run_up(fake_venv: Path, stage: str = "until", **env: str) -> Run:
    script = step_named(load_workflow("deploy.yml"), f"tenantctl up --{stage} canary")["run"]
    return run_script(script, fake_venv, **{"PULUMI_BACKEND_URL": "s3://state?region=eu-west-1", **env})


@pytest.mark.parametrize(("stage", "markdown_file"), [("until", "up-canary.md"), ("after", "up.md")])
def test_deploy_runs_tenantctl_up_of_prod_since_the_push_base_and_appends_its_summary(
        fake_venv: Path, stage: str, markdown_file: str) -> None:
    summary = fake_venv.parent / "step-summary.md"
    summary.write_text("earlier\n", encoding="utf-8")
    run = run_up(fake_venv, stage, BASE="b" * 40, FAKE_MARKDOWN="### `tenantctl up --env prod`: ok")
    assert run.returncode == 0, run
    markdown = fake_venv.parent / "runner-temp" / markdown_file
    assert run.calls == [f"-m tenantctl up --env prod --changed-since {'b' * 40} --policy-pack policy "
                         f"--max-removals 1 --wait --{stage} canary --markdown {markdown}"]  # fmt: skip
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


# --- the gated release: an approval between the canary and the rest ---------------------------------------

RELEASE_ENVIRONMENT = "production-release"
STATUS_FUNCTIONS = r"always\(\)|failure\(\)|cancelled\(\)"


def gate_violations(workflow: dict[str, Any]) -> list[str]:
    """Every way the deploy lets the rest of the rollout run without the canary or the approval."""
    problems = []
    jobs = workflow["jobs"]
    ups = run_steps(workflow, r"-m tenantctl up\b")
    for job_id, index, step in ups:
        if not re.search(r"--(until|after) canary\b", step["run"]):
            problems.append(f"ungated-up: job {job_id} step {index} runs `tenantctl up` without --until/--after canary")
    canaries = {j for j, _, s in ups if re.search(r"--until canary\b", s["run"])}
    rests = {j for j, _, s in ups if re.search(r"--after canary\b", s["run"])}
    if len(canaries) != 1 or len(rests) != 1 or canaries == rests:
        return [*problems, f"shape: expected one canary job and one other job for the rest, found {canaries}, {rests}"]
    (canary,), (rest,) = canaries, rests
    if canary not in needs_of(workflow, rest):
        problems.append(f"no-canary-first: job {rest} does not need job {canary}")
    if environment_name(jobs[rest]) != RELEASE_ENVIRONMENT:
        problems.append(f"no-approval: job {rest} runs outside the protected environment {RELEASE_ENVIRONMENT}")
    if environment_name(jobs[canary]) == RELEASE_ENVIRONMENT:
        problems.append(f"approval-before-canary: job {canary} waits for the release approval itself")
    if re.search(STATUS_FUNCTIONS, str(jobs[rest].get("if", ""))):
        problems.append(f"runs-after-failure: the if: of job {rest} lets it run after a failed canary")
    # What the rest takes from the canary job is a commit (the push base), never a credential or a verdict.
    taken = set(re.findall(r"needs\.([\w-]+)\.outputs\.([\w-]+)", json.dumps(jobs[rest])))
    if {(job, name) for job, name in taken if job != "last-deployed"} - {(canary, "base")}:
        problems.append(f"tainted-input: job {rest} takes {sorted(taken)} from earlier jobs")
    # The approval stands before every credential of the rest: a job without it that deploys beyond the canary
    # (or a step before the environment) does not exist.
    for job_id, job in jobs.items():
        if job_id != rest and is_credentialed(job) and needs_of(workflow, job_id) & {canary} and \
                environment_name(job) != RELEASE_ENVIRONMENT:
            problems.append(f"credentials-before-approval: job {job_id} holds credentials after the canary "
                            "without the approval")
    return problems


def test_the_rest_of_the_rollout_waits_for_the_canary_and_an_approval() -> None:
    workflow = load_workflow("deploy.yml")
    assert gate_violations(workflow) == []
    jobs = workflow["jobs"]
    assert environment_name(jobs["canary"]) == "production" and environment_name(jobs["rollout"]) == RELEASE_ENVIRONMENT
    assert RELEASE_ENVIRONMENT in REVIEWED_ENVIRONMENTS
    # The rest's only credentials are its own, from the environment it is approved into; none before its steps.
    (credentials,) = [s for s in jobs["rollout"]["steps"] if uses(s, "aws-actions/configure-aws-credentials")]
    assert credentials["with"]["role-to-assume"] == "${{ vars.PULUMI_DEPLOY_ROLE_ARN }}"
    assert "id-token" not in (jobs["last-deployed"].get("permissions") or {})
    header = header_comment("deploy.yml")
    assert "production-release" in header and "required reviewers" in header


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda w: w["jobs"]["rollout"].__setitem__("environment", "production"), "no-approval: job rollout"),
    (lambda w: w["jobs"]["rollout"].pop("environment"), "no-approval: job rollout"),
    (lambda w: w["jobs"]["rollout"].__setitem__("needs", "last-deployed"), "no-canary-first: job rollout"),
    (lambda w: w["jobs"]["rollout"].__setitem__("if", "always() && github.ref == 'refs/heads/main'"),
     "runs-after-failure: the if: of job rollout"),
    (lambda w: w["jobs"]["canary"].__setitem__("environment", "production-release"), "approval-before-canary"),
    (lambda w: step_named(w, "tenantctl up --until canary").__setitem__(
        "run", step_named(w, "tenantctl up --until canary")["run"].replace(" --until canary", "")),
     "ungated-up: job canary"),
    (lambda w: step_named(w, "tenantctl up --after canary").__setitem__(
        "run", step_named(w, "tenantctl up --after canary")["run"].replace(" --after canary", "")),
     "ungated-up: job rollout"),
    (lambda w: step_named(w, "handoff for new tenants")["env"].__setitem__("VERDICT", "${{ needs.canary.outputs.ok }}"),
     "tainted-input: job rollout"),
    (lambda w: w["jobs"].__setitem__("extra", {**w["jobs"]["rollout"], "environment": "production",
                                               "steps": [{"uses": "aws-actions/configure-aws-credentials@v4"}]}),
     "credentials-before-approval: job extra"),
], ids=["unprotected", "no-environment", "no-canary", "always", "approval-first", "plain-up-canary",
        "plain-up-rest", "canary-verdict", "credentials-elsewhere"])
def test_the_gate_self_check_bites_on_a_broken_deploy(mutate: Any, expected: str) -> None:
    workflow = load_workflow("deploy.yml")
    mutate(workflow)
    problems = gate_violations(workflow)
    assert any(p.startswith(expected) for p in problems), problems


# --- drift ----------------------------------------------------------------------------------------------


def test_drift_runs_the_read_only_status_on_a_schedule_and_changes_no_stack() -> None:
    workflow = load_workflow("drift.yml")
    assert "schedule" in workflow["on"] and workflow["on"]["schedule"][0]["cron"]
    assert not run_steps(workflow, INFRA_COMMAND) and not run_steps(workflow, r"-m tenantctl (preview|unlock)\b")
    script = step_named(workflow, "status and the issue's action")["run"]
    assert '-m tenantctl status --env prod --refresh --json > "$out/status.json" || status=$?' in script
    assert '-m fleet.drift_report "$out/status.json" --env prod' in script and "--out" in script
    jobs = workflow["jobs"]
    assert environment_name(jobs["check"]) == "drift-check" and "environment" not in jobs["issue"]
    (credentials,) = action_steps(workflow, "aws-actions/configure-aws-credentials")
    assert credentials[0] == "check" and credentials[2]["with"]["role-to-assume"] == "${{ vars.PULUMI_DRIFT_ROLE_ARN }}"
    # The job with the token needs the check (a failed check decides nothing) and runs none of this repository's code.
    assert jobs["issue"]["needs"] == "check" and "if" not in jobs["issue"]
    assert not any(uses(s, "actions/checkout") or "python" in str(s.get("run", "")) for s in jobs["issue"]["steps"])


def drift_venv(fake_venv: Path, status_exit: str) -> Path:
    """A .venv/bin/python whose `-m tenantctl status` writes a report and exits `status_exit`, and whose
    `-m fleet.drift_report` is recorded and writes the action files into its --out folder."""
    python = fake_venv / ".venv" / "bin" / "python"
    python.write_text(f"""#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_CALLS"
if [ "$2" = tenantctl ]; then echo '{{"tenants": [], "refreshed": true, "ok": true}}'; exit {status_exit}; fi
previous=""
for arg in "$@"; do
  if [ "$previous" = "--out" ]; then echo close > "$arg/action"; echo "Fleet drift (prod): clean" > "$arg/title"; \
echo "clean" > "$arg/body.md"; fi
  previous="$arg"
done
exit "${{FAKE_REPORT_EXIT:-0}}"
""", encoding="utf-8")
    return fake_venv


@pytest.mark.parametrize("status_exit", ["0", "1"])
def test_drift_check_reports_whatever_status_exits_with(fake_venv: Path, status_exit: str) -> None:
    script = step_named(load_workflow("drift.yml"), "status and the issue's action")["run"]
    run = run_script(script, drift_venv(fake_venv, status_exit), PULUMI_BACKEND_URL="s3://state",
                     RUN_URL="https://github.com/o/r/actions/runs/1")
    assert run.returncode == 0, run
    out = fake_venv.parent / "runner-temp" / "drift"
    assert run.calls == ["-m tenantctl status --env prod --refresh --json",
                         f"-m fleet.drift_report {out}/status.json --env prod --run-url "
                         f"https://github.com/o/r/actions/runs/1 --out {out}"]
    parses_with_real_tenantctl(run.calls[0])
    assert json.loads((out / "status.json").read_text())["refreshed"] and "clean" in run.summary


def test_drift_check_fails_and_decides_nothing_when_the_report_is_refused(fake_venv: Path) -> None:
    script = step_named(load_workflow("drift.yml"), "status and the issue's action")["run"]
    run = run_script(script, drift_venv(fake_venv, "1"), PULUMI_BACKEND_URL="s3://state", RUN_URL="u",
                     FAKE_REPORT_EXIT="2")
    assert run.returncode == 2
    missing = run_script(script, drift_venv(fake_venv, "0"), PULUMI_BACKEND_URL="", RUN_URL="u")
    assert missing.returncode != 0 and missing.calls == []


def run_issue(fake_venv: Path, action: str, open_issue: str) -> Run:
    folder = fake_venv.parent / "runner-temp" / "drift"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "action").write_text(action + "\n")
    (folder / "title").write_text("Fleet drift (prod): 1 drifted, 0 unverified, 0 other\n")
    (folder / "body.md").write_text("### Drifted (1)\n- `acme`\n")
    script = step_named(load_workflow("drift.yml"), "apply it")["run"]
    return run_script(script, fake_venv, GH_TOKEN="t", RUN_URL="https://github.com/o/r/actions/runs/1",  # noqa: S106
                      FAKE_GH_STDOUT=open_issue)


@pytest.mark.parametrize(("action", "open_issue", "writes"), [
    ("open-or-update", "", ["label create fleet-drift", "issue create --repo octo/tenant-onboarding --title Fleet "
                                                        "drift (prod): 1 drifted, 0 unverified, 0 other --label "
                                                        "fleet-drift --body-file"]),
    ("open-or-update", "12", ["issue edit 12 --repo octo/tenant-onboarding --title Fleet drift (prod): 1 drifted, "
                              "0 unverified, 0 other --body-file"]),
    ("close", "12", ["issue close 12 --repo octo/tenant-onboarding --comment The drift check found the fleet clean: "
                     "https://github.com/o/r/actions/runs/1"]),
    ("close", "", []),
], ids=["open", "update", "close", "clean-and-none-open"])
def test_drift_keeps_one_issue(fake_venv: Path, action: str, open_issue: str, writes: list[str]) -> None:
    run = run_issue(fake_venv, action, open_issue)
    assert run.returncode == 0, run
    listing, *rest = run.gh_calls
    assert listing.startswith("issue list --repo octo/tenant-onboarding --label fleet-drift --state open --limit 1")
    assert len(rest) == len(writes) and all(call.startswith(w) for call, w in zip(rest, writes, strict=True)), rest
    if action == "open-or-update":
        assert run.gh_body == "### Drifted (1)\n- `acme`\n"


def test_drift_refuses_an_unknown_action_and_writes_nothing(fake_venv: Path) -> None:
    run = run_issue(fake_venv, "delete-everything", "12")
    assert run.returncode == 1 and run.gh_calls == []


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
    export = fake_venv.parent / "runner-temp" / "tenant-export" / "acme.export"
    assert run.calls == [f"-m tenantctl destroy acme --env prod --yes --wait --export {export}{extra}"]
    parses_with_real_tenantctl(run.calls[0])


RECIPIENT = ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEAq8mJ0OTeO1pBRpHJmhPz0ohkH0VqJmhcm/ZTaRk3qU0=\n"
             "-----END PUBLIC KEY-----")


def test_offboard_exports_to_the_operators_key_before_the_destroy_which_checks_that_export(fake_venv: Path) -> None:
    workflow = load_workflow("offboard.yml")
    export_step, destroy_step = step_named(workflow, "tenantctl export"), step_named(workflow, "tenantctl destroy")
    run = run_script(export_step["run"], fake_venv, TENANT="acme", PULUMI_BACKEND_URL="s3://state",
                     TENANT_EXPORT_RECIPIENT=RECIPIENT)
    destroy = run_script(destroy_step["run"], fake_venv, TENANT="acme", PURGE_DATA="false",
                         PULUMI_BACKEND_URL="s3://state")
    assert run.returncode == 0, run
    temp = fake_venv.parent / "runner-temp"
    out = temp / "tenant-export" / "acme.export"
    assert run.calls == [f"-m tenantctl export acme --env prod --recipient {temp / 'export-recipient.pub'} "
                         f"--out {out}"]
    parses_with_real_tenantctl(run.calls[0])
    assert (temp / "export-recipient.pub").read_text() == RECIPIENT + "\n"
    assert f"--export {out}" in destroy.calls[0]
    assert export_step["env"] == {"TENANT_EXPORT_RECIPIENT": "${{ vars.TENANT_EXPORT_RECIPIENT }}"}
    credentials = [position(workflow, s) for _, _, s in action_steps(workflow, "aws-actions/configure-aws-credentials")]
    assert runs_before(workflow, credentials[0], position(workflow, export_step))
    assert runs_before(workflow, position(workflow, export_step), position(workflow, destroy_step))


def test_offboard_without_an_export_key_exports_and_destroys_nothing(fake_venv: Path) -> None:
    run = run_script(step_named(load_workflow("offboard.yml"), "tenantctl export")["run"], fake_venv, TENANT="acme",
                     PULUMI_BACKEND_URL="s3://state", TENANT_EXPORT_RECIPIENT="")
    assert run.returncode != 0 and run.calls == []
    assert "TENANT_EXPORT_RECIPIENT" in run.stdout and "nothing was exported or destroyed" in run.stdout


def test_offboard_uploads_only_the_encrypted_export_and_before_the_destroy() -> None:
    """The artifact is the file `tenantctl export` wrote encrypted: no folder, no other file, nothing in clear."""
    workflow = load_workflow("offboard.yml")
    ((job, index, upload),) = action_steps(workflow, "actions/upload-artifact")
    export_step = step_named(workflow, "tenantctl export")
    out = re.search(r"--out \"([^\"]+)\"", export_step["run"]).group(1)
    assert upload["with"]["path"] == out.replace("$RUNNER_TEMP", "${{ runner.temp }}").replace(
        "$TENANT", "${{ inputs.tenant }}")
    assert upload["with"]["if-no-files-found"] == "error"
    assert runs_before(workflow, position(workflow, export_step), (job, index))
    assert runs_before(workflow, (job, index), position(workflow, step_named(workflow, "tenantctl destroy")))


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


def test_the_weekly_sweep_has_a_job_for_every_crash_test_scenario() -> None:
    """A scenario added to the crash tests but missing from the matrix would never be swept."""
    from tests.e2e.test_fault_injection import TARGETS

    parts = load_workflow("long-tests.yml")["jobs"]["long-tests"]["strategy"]["matrix"]["part"]
    assert set(TARGETS) <= set(parts), sorted(set(TARGETS) - set(parts))


# --- the PR trust boundary (issue 21): what a pull request's code can reach ------------------------------
#
# "Runs PR code": a job that checks the pull request's commit out into the workspace root (every later
# `run:`, `make`, `.venv` and local action then comes from the pull request), or checks it out elsewhere and
# runs something from that folder. A side checkout that only the base branch's scripts read as data
# (`--repo pr`) is not running PR code. "Credentialed": the job can mint an OIDC token or configures AWS
# credentials. Only workflows triggered by pull_request run PR code.

REVIEWED_ENVIRONMENTS = {"preview-code-review", "production", "production-release"}
CACHING_ACTIONS = {"actions/cache", "actions/cache/restore", "actions/cache/save"}
# Commands that change infrastructure: a run of these is never cancelled by another run.
INFRA_COMMAND = r"-m tenantctl (up|destroy|import|restore|rotate-signing-secret|migrate-stacks)\b"
PR_REFS = ("github.event.pull_request.head.", "github.head_ref", "github.sha", "github.ref")


def checks_out_the_pr(step: dict[str, Any]) -> bool:
    if not uses(step, "actions/checkout"):
        return False
    ref = str(step.get("with", {}).get("ref", ""))
    # No ref: on pull_request, the PR's merge commit.
    return ref == "" or any(name in ref for name in PR_REFS)


def runs_pr_code(workflow: dict[str, Any], job_id: str) -> bool:
    if "pull_request" not in workflow["on"]:
        return False
    steps = workflow["jobs"][job_id].get("steps", [])
    pr_folders = set()
    for step in steps:
        if checks_out_the_pr(step):
            pr_folders.add(str(step.get("with", {}).get("path", ".")).strip("/") or ".")
            continue
        if "." in pr_folders and ("run" in step or str(step.get("uses", "")).startswith("./")):
            return True
        for folder in pr_folders - {"."}:
            script = str(step.get("run", ""))
            under = rf"(^|[\s;&|(=]){re.escape(folder)}/\S"
            if (str(step.get("uses", "")).startswith(f"./{folder}")
                    or str(step.get("working-directory", "")).strip("./").startswith(folder)
                    or re.search(under, script) or re.search(rf"\b(cd|-C)\s+{re.escape(folder)}\b", script)):
                return True  # fmt: skip
    return False


def is_credentialed(job: dict[str, Any]) -> bool:
    return (job.get("permissions") or {}).get("id-token") == "write" or any(
        uses(s, "aws-actions/configure-aws-credentials") for s in job.get("steps", []))  # fmt: skip


def environment_name(job: dict[str, Any]) -> Any:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


def expression_reads(text: str) -> set[str]:
    """Jobs whose outputs an expression reads (needs.<job>.outputs / needs['<job>'].outputs)."""
    return {a or b for a, b in re.findall(r"needs(?:\.([\w-]+)|\[['\"]([\w-]+)['\"]\])\.outputs", text)}


def trust_violations(workflow: dict[str, Any]) -> list[str]:
    """Every way this workflow lets unreviewed code near credentials, or cancels a change in flight."""
    problems = []
    jobs = workflow["jobs"]
    for job_id, job in jobs.items():
        environment = environment_name(job)
        if environment is not None and (not isinstance(environment, str) or "${{" in environment):
            problems.append(f"environment-expression: job {job_id} picks its environment with an expression")
        if not is_credentialed(job):
            continue
        if runs_pr_code(workflow, job_id) and environment not in REVIEWED_ENVIRONMENTS:
            problems.append(f"unreviewed-pr-code: job {job_id} runs PR code with credentials and no reviewer")
        def pr_code_jobs(text: str) -> set[str]:
            return {j for j in expression_reads(text) if j not in jobs or runs_pr_code(workflow, j)}

        rest = {k: v for k, v in job.items() if k != "if"}
        if pr_code_jobs(json.dumps(rest)):
            problems.append(f"tainted-input: job {job_id} takes outputs of {sorted(pr_code_jobs(json.dumps(rest)))}, "
                            "which run PR code")
        tainted = pr_code_jobs(str(job.get("if", "")))
        if tainted:
            problems.append(f"tainted-if: the if: of job {job_id} reads outputs of {sorted(tainted)}, "
                            "which run PR code")
        for step in job.get("steps", []):
            with_ = step.get("with", {})
            if str(step.get("uses", "")).split("@")[0] in CACHING_ACTIONS or (
                    str(step.get("uses", "")).startswith("actions/setup-")
                    and (with_.get("cache") not in (None, False, "false", "")
                         or ("cache" not in with_ and uses(step, "actions/setup-go")))):  # fmt: skip
                problems.append(f"shared-cache: credentialed job {job_id} restores a cache ({step.get('uses')})")
    # The deploy role lives in `production`; offboard builds its command in an array.
    changes_infra = bool(run_steps(workflow, INFRA_COMMAND) or run_steps(workflow, r"\bargs=\((up|destroy)\b")
                         or any(environment_name(j) == "production" for j in jobs.values()))
    if changes_infra:
        levels = [("workflow", workflow.get("concurrency"))]
        levels += [(f"job {j}", job.get("concurrency")) for j, job in jobs.items() if "concurrency" in job]
        for where, concurrency in levels:
            if concurrency is None and where == "workflow":
                problems.append("cancels: a workflow that changes infrastructure has no concurrency group")
            elif isinstance(concurrency, str) or (concurrency or {}).get("cancel-in-progress", False) is not False:
                problems.append(f"cancels: the {where} concurrency group may cancel a run that changes infrastructure")
    return problems


@pytest.mark.parametrize("name", [p.name for p in WORKFLOW_FILES])
def test_workflow_keeps_the_trust_boundary(name: str) -> None:
    assert trust_violations(load_workflow(name)) == []


def test_classify_runs_no_pr_code_and_feeds_every_credentialed_if() -> None:
    workflow = load_workflow("preview.yml")
    assert not runs_pr_code(workflow, "classify") and not is_credentialed(workflow["jobs"]["classify"])
    assert runs_pr_code(workflow, "validate") and runs_pr_code(workflow, "preview-code")
    assert not runs_pr_code(workflow, "preview"), "the data-only preview runs the base branch's code"
    credentialed = {j: job for j, job in workflow["jobs"].items() if is_credentialed(job)}
    assert {j: environment_name(job) for j, job in credentialed.items()} == {
        "preview": "preview", "preview-code": "preview-code-review"}
    for job in credentialed.values():
        assert expression_reads(job["if"]) == {"classify"}
        assert not any(uses(s, "actions/setup-python") and "cache" in s.get("with", {}) for s in job["steps"])


def broken(name: str, mutate: Any) -> list[str]:
    workflow = load_workflow(name)
    mutate(workflow)
    return trust_violations(workflow)


def test_self_check_bites_when_a_credentialed_job_runs_pr_code_without_a_reviewer() -> None:
    def run_pr_code_in_the_data_preview(w: dict[str, Any]) -> None:
        steps = w["jobs"]["preview"]["steps"]
        steps.insert(0, {"uses": "actions/checkout@v4", "with": {"persist-credentials": False}})
    assert any(p.startswith("unreviewed-pr-code: job preview ") for p in broken("preview.yml",
                                                                               run_pr_code_in_the_data_preview))

    def unprotect(w: dict[str, Any]) -> None:
        w["jobs"]["preview-code"]["environment"] = "preview"
    assert any(p.startswith("unreviewed-pr-code: job preview-code ") for p in broken("preview.yml", unprotect))

    def run_from_the_pr_folder(w: dict[str, Any]) -> None:
        steps = w["jobs"]["preview"]["steps"]
        steps.append({"run": "bash pr/scripts/setup.sh"})
    assert any(p.startswith("unreviewed-pr-code: job preview ") for p in broken("preview.yml", run_from_the_pr_folder))


def test_self_check_bites_on_an_environment_expression() -> None:
    def pick_by_expression(w: dict[str, Any]) -> None:
        w["jobs"]["preview"]["environment"] = "${{ needs.classify.outputs.data_only == 'true' && 'preview' }}"
    assert any(p.startswith("environment-expression: job preview ") for p in broken("preview.yml", pick_by_expression))

    def named_by_expression(w: dict[str, Any]) -> None:
        w["jobs"]["rollout"]["environment"] = {"name": "${{ inputs.environment }}"}
    assert any(p.startswith("environment-expression: job rollout ") for p in broken("deploy.yml", named_by_expression))


def test_self_check_bites_when_a_credentialed_if_reads_a_pr_code_job() -> None:
    def gate_on_validate(w: dict[str, Any]) -> None:
        w["jobs"]["validate"]["outputs"] = {"data_only": "${{ steps.x.outputs.data_only }}"}
        w["jobs"]["preview"]["if"] = "needs.validate.outputs.data_only == 'true'"
    assert any(p.startswith("tainted-if: the if: of job preview ") for p in broken("preview.yml", gate_on_validate))

    def classify_runs_pr_code(w: dict[str, Any]) -> None:
        w["jobs"]["classify"]["steps"][:0] = [{"uses": "actions/checkout@v4"}, {"run": "make venv"}]
    problems = broken("preview.yml", classify_runs_pr_code)
    assert any(p.startswith("tainted-if: the if: of job preview ") for p in problems)
    assert any(p.startswith("tainted-if: the if: of job preview-code ") for p in problems)

    def step_reads_validate(w: dict[str, Any]) -> None:
        w["jobs"]["preview"]["steps"][-2]["env"]["CHANGED_SINCE"] = "${{ needs.validate.outputs.base }}"
    assert any(p.startswith("tainted-input: job preview ") for p in broken("preview.yml", step_reads_validate))


@pytest.mark.parametrize(
    ("job_id", "step"),
    [("preview", {"uses": "actions/cache@v4", "with": {"path": "~/.cache/pip", "key": "pip"}}),
     ("preview-code", {"uses": "actions/setup-python@v5", "with": {"python-version": "3.11", "cache": "pip"}}),
     ("preview", {"uses": "actions/setup-go@v5", "with": {"go-version": "1.26"}})],
    ids=["actions-cache", "setup-python-cache", "setup-go-default-cache"],
)  # fmt: skip
def test_self_check_bites_on_a_cache_in_a_credentialed_job(job_id: str, step: dict[str, Any]) -> None:
    problems = broken("preview.yml", lambda w: w["jobs"][job_id]["steps"].insert(0, step))
    assert any(p.startswith(f"shared-cache: credentialed job {job_id} ") for p in problems)


@pytest.mark.parametrize("name", ["deploy.yml", "offboard.yml"])
def test_self_check_bites_on_a_concurrency_group_that_cancels(name: str) -> None:
    def cancel(w: dict[str, Any]) -> None:
        w["concurrency"]["cancel-in-progress"] = True
    assert any(p.startswith("cancels: the workflow ") for p in broken(name, cancel))

    def job_level(w: dict[str, Any]) -> None:
        next(iter(w["jobs"].values()))["concurrency"] = {"group": "x", "cancel-in-progress": "${{ true }}"}
    assert any(p.startswith("cancels: the job ") for p in broken(name, job_level))
    assert any(p.startswith("cancels: a workflow ") for p in broken(name, lambda w: w.pop("concurrency")))


def test_deploy_and_offboard_never_replace_or_cancel_each_other() -> None:
    """Separate groups: a pending offboard is never replaced by a deploy push (GitHub keeps one pending run
    per group), and the environment lock, taken with --wait, orders the two (fleet rule 5)."""
    deploy, offboard = load_workflow("deploy.yml"), load_workflow("offboard.yml")
    assert deploy["concurrency"]["group"] != offboard["concurrency"]["group"]
    for workflow in (deploy, offboard):
        assert workflow["concurrency"]["cancel-in-progress"] is False
    for name in ("tenantctl up --until canary", "tenantctl up --after canary"):
        assert re.search(r"-m tenantctl up\b(?:[^\n]|\\\n)*--wait", step_named(deploy, name)["run"])
    assert re.search(r"args=\(destroy [^)]*--wait", step_named(offboard, "tenantctl destroy")["run"])


# --- playing the pull request: the workflow's jobs run locally, in order ---------------------------------


class Expression:
    """GitHub's expression language, as much of it as these workflows' `if:` and `environment:` use."""

    TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*')|(==|!=|&&|\|\||!|\(|\)|,)|([A-Za-z_][\w.\-\[\]']*)(\(\))?)")

    def __init__(self, text: str, context: dict[str, Any]) -> None:
        text = text.strip()
        if text.startswith("${{") and text.endswith("}}"):
            text = text[3:-2]
        self.tokens, position = [], 0
        while position < len(text.rstrip()):
            match = self.TOKEN.match(text, position)
            assert match and match.end() > position, f"cannot read {text[position:]!r}"
            self.tokens.append(match.groups())
            position = match.end()
        self.context, self.index = context, 0

    def value(self) -> Any:
        result = self.disjunction()
        assert self.index == len(self.tokens), self.tokens[self.index:]
        return result

    def peek(self, operator: str) -> bool:
        return self.index < len(self.tokens) and self.tokens[self.index][1] == operator

    def disjunction(self) -> Any:
        left = self.conjunction()
        while self.peek("||"):
            self.index += 1
            right = self.conjunction()
            left = left if left not in ("", None, False, 0) else right
        return left

    def conjunction(self) -> Any:
        left = self.comparison()
        while self.peek("&&"):
            self.index += 1
            right = self.comparison()
            left = right if left not in ("", None, False, 0) else left
        return left

    def comparison(self) -> Any:
        left = self.unary()
        while self.peek("==") or self.peek("!="):
            operator = self.tokens[self.index][1]
            self.index += 1
            right = self.unary()
            same = str(left).lower() == str(right).lower()
            left = same if operator == "==" else not same
        return left

    def unary(self) -> Any:
        literal, operator, name, call = self.tokens[self.index]
        self.index += 1
        if operator == "!":
            return self.unary() in ("", None, False, 0)
        if operator == "(":
            inner = self.disjunction()
            assert self.peek(")")
            self.index += 1
            return inner
        if literal is not None:
            return literal[1:-1].replace("''", "'")
        if call:
            return {"success": self.context["__success__"], "always": True, "cancelled": False,
                    "failure": not self.context["__success__"]}[name]  # fmt: skip
        if name in ("true", "false"):
            return name == "true"
        value: Any = self.context
        for part in re.findall(r"[\w-]+", name.replace("['", ".").replace("']", "")):
            value = value.get(part, "") if isinstance(value, dict) else ""
        return value


def evaluate(text: Any, context: dict[str, Any]) -> Any:
    """A value with ${{ }} parts, or an `if:` (an expression with or without ${{ }})."""
    text = str(text)
    if "${{" not in text:
        return text
    if text.strip().startswith("${{") and text.strip().endswith("}}") and text.count("${{") == 1:
        return Expression(text, context).value()
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(Expression(m.group(1), context).value()), text)


class PullRequest:
    """A GitHub repository with a base branch and a pull request's head (refs/pull/1/head), in a bare repo."""

    def __init__(self, tmp_path: Path, changes: dict[str, str | None]) -> None:
        self.tmp = tmp_path
        self.remote = tmp_path / "github.git"
        seed = tmp_path / "seed"
        seed.mkdir()
        git(seed, "init", "-q", "-b", "main")
        base_files = {
            "Pulumi.yaml": (ROOT / "Pulumi.yaml").read_text(encoding="utf-8"),
            ".github/scripts/classify_pr.py": (ROOT / ".github/scripts/classify_pr.py").read_text(encoding="utf-8"),
            "tenants/acme.yaml": (ROOT / "tenants/acme.yaml").read_text(encoding="utf-8"),
            "stacks/Pulumi.prod.yaml": (ROOT / "stacks/Pulumi.prod.yaml").read_text(encoding="utf-8"),
            "stacks/Pulumi.prod.acme.yaml": (ROOT / "stacks/Pulumi.prod.acme.yaml").read_text(encoding="utf-8"),
            "components/tenant.py": "# the base branch's component\n",
            # `make venv` here builds the fake virtualenv that records how tenantctl is called.
            "Makefile": "venv:\n\tmkdir -p .venv/bin && cp \"$$FAKE_PYTHON_SOURCE\" .venv/bin/python"
                        " && chmod +x .venv/bin/python\n",
            ".gitignore": ".venv/\n",
        }  # fmt: skip
        self.base = commit_files(seed, base_files, "base")
        git(seed, "checkout", "-q", "-b", "feature")
        for path, text in changes.items():
            if text is None:
                git(seed, "rm", "-q", path)
        self.head = commit_files(seed, {p: t for p, t in changes.items() if t is not None}, "the pull request")
        git(tmp_path, "clone", "-q", "--bare", str(seed), str(self.remote))
        git(self.remote, "update-ref", "refs/pull/1/head", self.head)
        git(self.remote, "branch", "-q", "-D", "feature")
        fake = tmp_path / "fake-python"
        fake.write_text(FAKE_PYTHON, encoding="utf-8")
        self.fake_python = fake
        self.context = {"github": {"base_ref": "main", "event": {"pull_request": {
            "number": 1, "base": {"sha": self.base}, "head": {"sha": self.head}}}}}  # fmt: skip
        self.calls: dict[str, list[str]] = {}

    def checkout(self, step: dict[str, Any], work: Path, context: dict[str, Any]) -> None:
        """actions/checkout: a fresh clone of the repository at `ref` (the PR's head when none is given)."""
        with_ = step.get("with", {})
        ref = evaluate(with_.get("ref", ""), context) or self.head
        destination = work / str(with_.get("path", "."))
        destination.mkdir(parents=True, exist_ok=True)
        git(destination, "init", "-q")
        git(destination, "remote", "add", "origin", str(self.remote))
        git(destination, "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*", "refs/pull/1/head")
        git(destination, "checkout", "-q", "--detach", ref)

    def run_job(self, workflow: dict[str, Any], job_id: str, outputs: dict[str, dict[str, Any]]) -> tuple[bool, dict]:
        """The job's steps in order on a fresh runner, the runner's files ($GITHUB_PATH, $GITHUB_ENV,
        $GITHUB_OUTPUT) honoured between steps as GitHub does. Actions other than checkout do nothing."""
        job = workflow["jobs"][job_id]
        runner = self.tmp / f"runner-{job_id}"
        work = runner / "work"
        (runner / "bin").mkdir(parents=True)
        work.mkdir()
        github_path, github_env = runner / "github-path", runner / "github-env"
        github_path.write_text("", encoding="utf-8")
        github_env.write_text("", encoding="utf-8")
        context = {**self.context, "needs": outputs, "steps": {}, "env": {},
                   "vars": {"PULUMI_BACKEND_URL": "s3://state"}, "runner": {"temp": str(runner)},
                   "__success__": True}  # fmt: skip
        self.calls[job_id] = []
        for step in job["steps"]:
            if "uses" in step:
                if uses(step, "actions/checkout"):
                    self.checkout(step, work, context)
                continue
            added_path = [line for line in github_path.read_text(encoding="utf-8").splitlines() if line]
            added_env = dict(line.split("=", 1) for line in github_env.read_text(encoding="utf-8").splitlines()
                             if "=" in line)  # fmt: skip
            env = {name: str(evaluate(value, context)) for name, value in
                   {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}.items()}  # fmt: skip
            path = os.pathsep.join([*reversed(added_path), str(runner / "bin"), os.environ["PATH"]])
            run = run_script(step["run"], work, GITHUB_PATH=str(github_path), GITHUB_ENV=str(github_env),
                             FAKE_PYTHON_SOURCE=str(self.fake_python), **added_env, **env, PATH=path)  # fmt: skip
            self.calls[job_id] += run.calls
            if "id" in step:
                context["steps"][step["id"]] = {"outputs": run.outputs}
            if run.returncode != 0:
                return False, {}
        return True, {name: evaluate(value, context) for name, value in job.get("outputs", {}).items()}

    def play(self, workflow: dict[str, Any]) -> list[str]:
        """Run every job without credentials in the order of `needs`; return the environments GitHub would
        then give to credentialed jobs (whose `if:` holds and whose needs all succeeded)."""
        results: dict[str, dict[str, Any]] = {}
        pending = list(workflow["jobs"])
        environments = []
        while pending:
            job_id = next(j for j in pending if needs_of(workflow, j) <= set(results))
            pending.remove(job_id)
            job = workflow["jobs"][job_id]
            context = {**self.context, "needs": results,
                       "__success__": all(results[n]["result"] == "success" for n in needs_of(workflow, job_id))}
            runs = bool(evaluate("${{ " + str(job.get("if", "success()")).replace("${{", "").replace("}}", "") + " }}",
                                 context)) and (context["__success__"] or "always()" in str(job.get("if", ""))
                                                or "cancelled()" in str(job.get("if", "")))  # fmt: skip
            if not runs:
                results[job_id] = {"result": "skipped", "outputs": {}}
                continue
            if is_credentialed(job):
                environments.append(evaluate(environment_name(job), context))
                results[job_id] = {"result": "success", "outputs": {}}
                continue
            if "github.token" in json.dumps(job):
                results[job_id] = {"result": "success", "outputs": {}}  # the comment: no effect on the gate
                continue
            ok, outputs = self.run_job(workflow, job_id, results)
            results[job_id] = {"result": "success" if ok else "failure", "outputs": outputs}
        return environments


ATTACKING_MAKEFILE = """venv:
\tmkdir -p .venv/bin && cp "$$FAKE_PYTHON_SOURCE" .venv/bin/python && chmod +x .venv/bin/python
\t# The attack: the base ref now points at this commit, so `origin/main...HEAD` is empty,
\tgit update-ref refs/remotes/origin/main HEAD
\t# and a `git` and a `grep` that say only a tenant file changed come first on every later step's PATH.
\tmkdir -p "$$RUNNER_TEMP/evil"
\tprintf '#!/bin/sh\\necho tenants/acme.yaml\\n' > "$$RUNNER_TEMP/evil/git"
\tprintf '#!/bin/sh\\ncat >/dev/null; exit 1\\n' > "$$RUNNER_TEMP/evil/grep"
\tchmod +x "$$RUNNER_TEMP/evil/git" "$$RUNNER_TEMP/evil/grep"
\techo "$$RUNNER_TEMP/evil" >> "$$GITHUB_PATH"
"""
NEW_TENANT = (ROOT / "tenants/acme.yaml").read_text(encoding="utf-8").replace("acme", "newco").replace(
    "20ab6862-0914-44a5-8827-42ff80980e24", "4f7c1c6e-7f0a-4b8e-9a51-3f1e2b7c9d10")
NEW_STACK = ("secretsprovider: awskms://alias/tenant-onboarding-pulumi?region=eu-west-1\nconfig:\n"
             "  aws:region: eu-west-1\n  tenant-onboarding:newco-servicedesk-api-key:\n    secure: AQICAHh0ZXh0\n")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"tenants/newco.yaml": NEW_TENANT, "stacks/Pulumi.prod.newco.yaml": NEW_STACK}, "preview"),
        ({"tenants/acme.yaml": (ROOT / "tenants/acme.yaml").read_text(encoding="utf-8") + "# edited\n"}, "preview"),
        ({"tenants/acme.yaml": None, "stacks/Pulumi.prod.acme.yaml": None}, "preview"),
        ({"components/tenant.py": "# exfiltrate\n", "Makefile": ATTACKING_MAKEFILE}, "preview-code-review"),
        ({"tenants/newco.yaml": NEW_TENANT, "Makefile": ATTACKING_MAKEFILE}, "preview-code-review"),
        ({"tenants/newco.yaml": NEW_TENANT, "stacks/Pulumi.prod.newco.yaml": NEW_STACK
          + "  aws:endpoints:\n    - sts: https://attacker.example\n"}, "preview-code-review"),
        ({"tenants/newco.yaml": NEW_TENANT, "stacks/Pulumi.prod.newco.yaml": NEW_STACK.replace(
            "alias/tenant-onboarding-pulumi", "alias/mine")}, "preview-code-review"),
        ({"stacks/Pulumi.prod.acme.yaml": "config:\n  tenant-onboarding:fernetKey:\n    secure: x\n"},
         "preview-code-review"),
        ({"tenants/schema.json": "{}\n"}, "preview-code-review"),
        ({"stacks/Pulumi.prod.yaml": "config: {}\n"}, "preview-code-review"),
        ({"stacks/Pulumi.prod.acme.yaml": (ROOT / "stacks/Pulumi.prod.acme.yaml").read_text(encoding="utf-8")
          + "  tenant-onboarding:acme-servicedesk-api-key:\n    secure: AQICAHh0ZXh0\n"}, "preview"),
        ({"stacks/Pulumi.prod.acme.yaml": (ROOT / "stacks/Pulumi.prod.acme.yaml").read_text(encoding="utf-8")
          + "  tenant-onboarding:acme-servicedesk-api-key: plaintext\n"}, "preview-code-review"),
        ({"stacks/Pulumi.prod.acme.yaml": None}, "preview-code-review"),
        ({"tenants/newco.yaml": NEW_TENANT, "stacks/Pulumi.prod.newco.yaml": NEW_STACK + "encryptedkey: AQIDAHnew\n"},
         "preview"),
        ({"stacks/Pulumi.staging.acme.yaml": NEW_STACK.replace("newco", "acme")}, "preview-code-review"),
    ],
    ids=["new-tenant-with-its-secret", "tenant-edit", "tenant-removal", "code-that-rewrites-origin-and-path",
         "tenant-plus-attacking-makefile", "stack-file-with-provider-config", "stack-file-own-secrets-provider",
         "stack-file-foreign-secret", "schema", "platform-stack", "secret-set", "secret-in-plain-text",
         "stack-file-removed-tenant-stays", "new-stack-own-data-key",
         "environment-without-platform-stack"],
)  # fmt: skip
def test_the_pull_request_cannot_choose_its_own_environment(
    tmp_path: Path, changes: dict[str, str | None], expected: str
) -> None:
    """Issue 21, done when: the PR's own code rewrites origin/<base> and puts a fake `git` and `grep` first on
    $GITHUB_PATH; the workflow's jobs run in order, and the credentialed job is still the reviewed one."""
    pr = PullRequest(tmp_path, changes)
    assert pr.play(load_workflow("preview.yml")) == [expected]
    if "Makefile" in changes:
        # The attack did run: the PR's job saw the base ref moved and the fake git first on its PATH.
        assert pr.calls.get("validate") is not None
        assert (tmp_path / "runner-validate" / "runner-temp" / "evil" / "git").exists()


def test_the_data_only_preview_runs_base_code_on_the_pull_requests_files(tmp_path: Path) -> None:
    pr = PullRequest(tmp_path, {"tenants/newco.yaml": NEW_TENANT, "stacks/Pulumi.prod.newco.yaml": NEW_STACK})
    workflow = load_workflow("preview.yml")
    classify_ok, classify_outputs = pr.run_job(workflow, "classify", {})
    assert classify_ok and classify_outputs == {"data_only": "true"}
    job = workflow["jobs"]["preview"]
    job["steps"] = [s for s in job["steps"] if s.get("run") != PLUGIN_INSTALL]  # no pulumi CLI here
    ok, _ = pr.run_job(workflow, "preview", {"classify": {"result": "success", "outputs": classify_outputs}})
    work = tmp_path / "runner-preview" / "work"
    assert ok, pr.calls
    assert git(work, "rev-parse", "HEAD") == pr.base, "the code is the base branch's"
    assert (work / "tenants" / "newco.yaml").read_text(encoding="utf-8") == NEW_TENANT
    assert not (work / "pr").exists(), "the pull request's clone is gone before anything runs"
    commands = [c.split()[2] for c in pr.calls["preview"]]
    assert commands == ["validate", "preview"]
    assert all("--changed-since HEAD" in c for c in pr.calls["preview"])
    assert "--policy-pack policy " in pr.calls["preview"][1]
