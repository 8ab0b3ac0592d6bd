"""`tenantctl render-operator`: an environment's Pulumi Kubernetes Operator Stacks, written for a GitOps tool.

`operator_source_from_options` turns the command's plain option values into an `OperatorSource`, reporting
every problem at once. `render_operator_files` loads the tenants, renders one Stack per stack, checks them
against the operator's CRDs when a CRD folder is given, and writes them; when a check fails nothing is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleet.operator_access import render_workspace_access
from fleet.operator_crds import load_crds, validate_objects
from fleet.operator_manifests import (
    DEFAULT_RESYNC_SECONDS,
    DEFAULT_WORKSPACE_IMAGE,
    OperatorSource,
    SecretEnv,
    SecretKeyRef,
    SourceError,
    render_operator,
    write_operator,
)
from tenancy.loader import require_tenants

# How OperatorSource's messages name its fields, and the options that set them.
OPTION_NAMES = {
    "OperatorSource.backend": "--backend",
    "branch and commit": "--branch and --commit",
    "pin commit": "pin --commit",
    "repo_url": "--repo",
    "repo_dir": "--repo-dir",
    "env_secrets": "--env-secret",
    "stack secret": "--stack-secret",
    "git_token": "--git-token",
    "resync_seconds": "--resync-seconds",
}
_FIELD_NAMES = re.compile("|".join(rf"\b{re.escape(name)}\b" for name in OPTION_NAMES))
ENV_REF_USAGE = "NAME=SECRET/KEY, e.g. PULUMI_CONFIG_PASSPHRASE=pulumi-passphrase/passphrase"
KEY_REF_USAGE = "SECRET/KEY, e.g. git-credentials/token"


class OperatorOptionsError(ValueError):
    """Options that make no usable `OperatorSource`; `problems` lists every one, in option terms."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class RenderResult:
    written: list[Path] = field(default_factory=list)  # empty when problems stopped the write
    problems: list[str] = field(default_factory=list)  # `<file>: <field>: <what is wrong>`, from the CRD check
    warnings: list[str] = field(default_factory=list)  # CRD rules that could not be checked here
    validated_against: str | None = None  # the CRD folder (and its `.version` stamp); None: not checked

    @property
    def ok(self) -> bool:
        return not self.problems


def render_operator_files(
    tenants_dir: Path, env: str, out_dir: Path, source: OperatorSource, crds_dir: Path | None
) -> RenderResult:
    """Render `env`'s Stacks for the tenants in `tenants_dir` into `out_dir`.

    With `crds_dir`, every object is first checked against the CRDs there; if any problem is found, nothing
    is written or removed and the problems are returned. Raises `TenantLoadError` (tenant files),
    `ValueError` (environment name), `CrdFolderError` (no usable CRDs in `crds_dir`) and `FileExistsError`
    (`out_dir` has a file of the same name that render-operator did not write).
    """
    stacks = render_operator(env, require_tenants(tenants_dir), source)
    objects = stacks + render_workspace_access(stacks, source)
    if crds_dir is None:
        return RenderResult(written=write_operator(objects, out_dir))
    served = load_crds(crds_dir)
    warnings = served.unchecked_rules()
    problems = validate_objects(stacks, served)  # the CRDs serve the Stacks; RBAC objects are core Kubernetes
    if problems:
        return RenderResult(problems=problems, warnings=warnings, validated_against=served.describe())
    return RenderResult(written=write_operator(objects, out_dir), warnings=warnings,
                        validated_against=served.describe())


def operator_source_from_options(
    *,
    repo_url: str,
    namespace: str,
    service_account: str,
    branch: str | None = None,
    commit: str | None = None,
    repo_dir: str | None = None,
    backend: str | None = None,
    env_secrets: Sequence[str] = (),
    stack_secrets: Sequence[str] = (),
    git_token: str | None = None,
    image: str = DEFAULT_WORKSPACE_IMAGE,
    resync_seconds: int = DEFAULT_RESYNC_SECONDS,
    reconcile_drift: bool = True,
    keep_workspaces: bool = True,
) -> OperatorSource:
    """An `OperatorSource` from command-line values, or `OperatorOptionsError` with every problem.

    `env_secrets` are `NAME=SECRET/KEY` strings (the variable NAME of the workspace is read from key KEY of
    the Secret SECRET in `namespace`); `git_token` is `SECRET/KEY`.
    """
    problems: list[str] = []
    envs: list[SecretEnv] = []
    # An entry whose variable is fine but whose Secret is not still counts as given, so that it is not
    # also reported as missing (PULUMI_ACCESS_TOKEN) or as given twice for the wrong reason.
    stand_ins: list[SecretEnv] = []
    for text in env_secrets:
        variable, sep, ref = text.partition("=")
        if not sep:
            problems.append(f"--env-secret {text!r}: expected {ENV_REF_USAGE}")
            continue
        try:
            env = SecretEnv(variable, SecretKeyRef("stand-in", "stand-in"))
        except ValueError as exc:
            problems.append(f"--env-secret {text!r}: {_option_terms(str(exc))}")
            continue
        try:
            envs.append(SecretEnv(variable, _secret_ref(ref, KEY_REF_USAGE)))
        except ValueError as exc:
            problems.append(f"--env-secret {text!r}: {exc}")
            stand_ins.append(env)
    stack_keys = []
    for text in stack_secrets:
        variable, sep, key = text.partition("=")
        if not sep:
            problems.append(f"--stack-secret {text!r}: expected NAME=KEY, e.g. PULUMI_CONFIG_PASSPHRASE=passphrase")
            continue
        stack_keys.append((variable, key))
    token = None
    if git_token is not None:
        try:
            token = _secret_ref(git_token, KEY_REF_USAGE)
        except ValueError as exc:
            problems.append(f"--git-token {git_token!r}: {exc}")
    fields = dict(repo_url=repo_url, namespace=namespace, service_account=service_account, branch=branch,
                  commit=commit, repo_dir=repo_dir, backend=backend, git_token=token, image=image,
                  resync_seconds=resync_seconds, reconcile_drift=reconcile_drift, keep_workspaces=keep_workspaces)
    try:
        source = OperatorSource(env_secrets=tuple(envs + stand_ins), stack_secret_keys=tuple(stack_keys), **fields)
    except SourceError as exc:
        problems.extend(_option_terms(problem) for problem in exc.problems)
    if problems:
        raise OperatorOptionsError(problems)
    return source


def _secret_ref(text: str, form: str) -> SecretKeyRef:
    name, sep, key = text.partition("/")
    if not sep or not name or not key:
        raise ValueError(f"expected {form}")
    return SecretKeyRef(name, key)


def _option_terms(message: str) -> str:
    return _FIELD_NAMES.sub(lambda match: OPTION_NAMES[match.group(0)], message)
