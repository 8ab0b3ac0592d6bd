"""`tenantctl render-operator`: an environment's Pulumi Kubernetes Operator objects, written for a GitOps tool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenantctl.app import (
    EnvName,
    TenantsDir,
    app,
    err,
    fail,
    out,
)


@app.command("render-operator")
def render_operator(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the Stack objects (one file each).")],
    repo: Annotated[str, typer.Option("--repo", help="Git URL of this repository, as the operator clones it.")],
    namespace: Annotated[str, typer.Option("--namespace", help="Namespace the operator runs the stacks in.")],
    service_account: Annotated[str, typer.Option(
        "--service-account", help="Prefix of each Stack's own workspace ServiceAccount (<prefix>-<stack object>).")],
    env: EnvName = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    branch: Annotated[str | None, typer.Option(
        "--branch", help="Refused: a branch moves without review; give --commit.")] = None,
    commit: Annotated[str | None, typer.Option(
        "--commit", help="The 40-hex sha to pin: one whose CI run passed the policy pack (the operator runs none).")
    ] = None,
    repo_dir: Annotated[str | None, typer.Option("--repo-dir", help="Folder of Pulumi.yaml in the repo.")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="Self-managed backend (else Pulumi Cloud).")] = None,
    env_secret: Annotated[list[str] | None, typer.Option(
        "--env-secret", help="NAME=SECRET/KEY: a workspace variable from a Kubernetes Secret.")] = None,
    stack_secret: Annotated[list[str] | None, typer.Option(
        "--stack-secret", help="NAME=KEY: a workspace variable from each Stack's own Secret <stack object>-secrets.")
    ] = None,
    git_token: Annotated[str | None, typer.Option("--git-token", help="SECRET/KEY of a private repo's token.")] = None,
    resync_seconds: Annotated[int, typer.Option("--resync-seconds", help="How often each stack is re-applied.")] = 600,
    crds: Annotated[Path | None, typer.Option(
        "--crds", help="Folder of the operator's CRDs (kubectl get crd stacks.pulumi.com -o yaml).")] = None,
) -> None:
    """Pulumi Kubernetes Operator `Stack` objects pinned to one commit, in `up`'s canary-first order, each with a
    workspace ServiceAccount of its own that reaches only its own Secrets."""
    from fleet.operator_crds import CrdFolderError
    from fleet.operator_render import OperatorOptionsError, operator_source_from_options, render_operator_files
    from tenancy.loader import TenantLoadError

    try:
        source = operator_source_from_options(
            repo_url=repo, namespace=namespace, service_account=service_account, branch=branch, commit=commit,
            repo_dir=repo_dir, backend=backend, env_secrets=env_secret or (), stack_secrets=stack_secret or (),
            git_token=git_token,
            resync_seconds=resync_seconds)
        result = render_operator_files(tenants_dir, env, out_dir, source, crds)
    except OperatorOptionsError as exc:
        raise fail(f"{len(exc.problems)} problem(s) with the options", details=list(exc.problems)) from None
    except TenantLoadError as exc:
        raise fail(f"{len(exc.problems)} error(s) in tenant files", details=[str(p) for p in exc.problems]) from None
    except (CrdFolderError, FileExistsError, ValueError) as exc:
        raise fail(str(exc)) from None
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    if not result.ok:
        raise fail(f"{len(result.problems)} object(s) do not match the operator's CRDs; nothing was written",
                   details=result.problems)
    for path in result.written:
        out.print(str(path), markup=False)
    err.print(f"validated against {result.validated_against}" if result.validated_against else
              "not validated: give --crds DIR with the operator's CRDs to check the objects first", markup=False)

