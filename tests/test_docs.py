"""The README and operator documents only name commands and options that exist."""

from __future__ import annotations

import re
import shlex

import click
import pytest
import typer

from tenantctl.cli import app

DOCS = ["README.md", "docs/onboarding-runbook.md", "docs/troubleshooting.md", "docs/handoff-guide.md",
        "docs/scaling.md", "docs/observability.md", "docs/operations.md"]
# A command as the docs give it (fleet rule 9: `tenantctl ...`): in backticks, or at the start of a code line.
COMMAND = re.compile(r"(?:`|^\s*(?:\$ )?)tenantctl ((?:--debug )?[a-z][^`\n|]*)", re.M)
OLD_FORM = re.compile(r"(?:\.venv/bin/)?python -m tenantctl ")
PULUMI_COMMAND = re.compile(r"`(pulumi [a-z][^`]*)`|^\s*(pulumi [a-z].*)$", re.M)
PULUMI_SUBCOMMANDS = {"config", "preview", "up", "destroy", "refresh", "cancel", "stack", "state", "install", "login",
                      "deployment"}


def documented_commands(repo_root):
    found = []
    for name in DOCS:
        text = (repo_root / name).read_text()
        for match in COMMAND.finditer(text):
            found.append((name, match.group(1).strip()))
    return found


def test_docs_mention_tenantctl_commands(repo_root):
    names = {line.split()[0] for _doc, line in documented_commands(repo_root)}
    assert names >= {"new", "validate", "plan", "rehearse", "verify", "handoff", "destroy"}


def test_every_documented_tenantctl_command_parses(repo_root):
    group = typer.main.get_command(app)
    for doc, line in documented_commands(repo_root):
        name = line.replace("--debug ", "").split()[0]
        if name == "...":  # "tenantctl ..." as a generic mention
            continue
        command = group.get_command(click.Context(group), name)
        assert command is not None, f"{doc}: unknown command in `{line}`"
        if len(line.split()) == 1 or "[" in line or line.endswith("\\"):  # a mention, or a synopsis: the name is
            continue  # enough
        words = [w for w in shlex.split(line.replace("<", "x").replace(">", "x"), comments=True)
                 if w not in ("...", "--debug")]
        try:
            command.make_context(words[0], words[1:], resilient_parsing=False)
        except Exception as exc:  # typer vendors its own click, so match its usage errors by name
            if not any(cls.__name__ == "UsageError" for cls in type(exc).__mro__):
                raise
            pytest.fail(f"{doc}: `{line}` does not parse: {exc}")


def test_docs_say_tenantctl_not_python_m(repo_root):
    for name in DOCS:
        assert not OLD_FORM.search((repo_root / name).read_text()), f"{name}: say `tenantctl ...` (fleet rule 9)"


def test_documented_pulumi_commands_are_real_subcommands(repo_root):
    for name in DOCS:
        for match in PULUMI_COMMAND.finditer((repo_root / name).read_text()):
            command = (match.group(1) or match.group(2)).split()
            assert command[1] in PULUMI_SUBCOMMANDS, f"{name}: {' '.join(command)}"


def _engine_creates(repo_root, tenants_dir, slug: str, **local: str) -> int:
    """What the engine counts as created for a new tenant stack: the stack itself and every resource the program
    registers (the TenantStack, its children, explicit providers). Default providers are not counted."""
    from tests.program_runs import run_stack, stack_config

    config, secret_keys = stack_config(repo_root, tenants_dir, "prod", **local)
    return 1 + len(run_stack(repo_root, f"prod.{slug}", config, secret_keys).resources)


def test_runbook_resource_counts_are_the_engines(repo_root, tenants_dir, tmp_path):
    """The figures a reviewer checks a preview against, computed from the program under mocks."""
    from tests.components.test_tenant_stack import BASIC_TYPES, PREMIUM_TYPES

    runbook = " ".join((repo_root / "docs/onboarding-runbook.md").read_text().split())
    rehearsal = {"awsEndpoint": "http://127.0.0.1:1", "kubernetesRenderDir": str(tmp_path / "manifests")}
    premium, basic = (_engine_creates(repo_root, tenants_dir, slug) for slug in ("acme", "globex"))
    assert f"The engine counts {premium} created for a premium tenant, {basic} for basic" in runbook
    assert f"the tenant's own {len(PREMIUM_TYPES)} (basic: {len(BASIC_TYPES)}) resources" in runbook
    local = [_engine_creates(repo_root, tenants_dir, slug, **rehearsal) for slug in ("acme", "globex")]
    assert f"{local[0]} and {local[1]};" in runbook


def test_the_readme_explains_every_status_column_and_marker(repo_root):
    from datetime import timedelta

    from fleet.status import StatusReport, status_table

    readme = " ".join((repo_root / "README.md").read_text().split())
    explained = readme[readme.index("### Fleet status at a glance"):readme.index("## What runs for real here")]
    for column in status_table(StatusReport("dev", [], [], [], False, timedelta(days=7))).columns:
        assert f"{column.header} is" in explained or f"{column.header} (" in explained, column.header
    assert "`+`" in explained and "`(+)`" in explained


# Options every command shares, stated once under the README's command table instead of in each row.
SHARED_OPTIONS = {"--tenants-dir", "--stack", "--help"}


def _readme_rows(repo_root) -> dict[str, str]:
    rows = {}
    for line in (repo_root / "README.md").read_text().splitlines():
        match = re.match(r"\| `tenantctl ([a-z-]+)([^`]*)` \|", line)
        if match:
            rows.setdefault(match.group(1), match.group(2).replace("\\|", "|"))
    return rows


def test_the_readme_command_table_agrees_with_the_help(repo_root):
    """`tenantctl --help` and each command's `--help` name what the README's table names, both ways."""
    group = typer.main.get_command(app)
    rows = _readme_rows(repo_root)
    assert set(rows) == set(group.commands)
    for name, command in group.commands.items():
        options = {o for p in command.params for o in [*p.opts, *p.secondary_opts] if o.startswith("--")}
        documented = set(re.findall(r"--[a-z][a-z-]*", rows[name]))
        assert options - SHARED_OPTIONS - documented == set(), f"{name}: options the README's row leaves out"
        assert documented - options == set(), f"{name}: the README's row names options the command lacks"
    readme = (repo_root / "README.md").read_text()
    assert all(option in readme for option in SHARED_OPTIONS - {"--help"} | {"--debug"})
