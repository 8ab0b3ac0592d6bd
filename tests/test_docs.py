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


def test_runbook_resource_counts_match_the_program(repo_root):
    from tests.components.test_tenant_stack import BASIC_TYPES, PREMIUM_TYPES

    runbook = (repo_root / "docs/onboarding-runbook.md").read_text()
    assert f"premium tenant: {len(PREMIUM_TYPES)} resources" in runbook
    assert f"for basic: {len(BASIC_TYPES)}" in runbook
