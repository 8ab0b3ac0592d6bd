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
COMMAND = re.compile(r"(?:\.venv/bin/)?python -m tenantctl ([^`\n|]+)")
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
    names = {shlex.split(line, comments=True)[0] for _doc, line in documented_commands(repo_root)}
    assert names >= {"new", "validate", "plan", "rehearse", "verify", "handoff", "destroy"}


def test_every_documented_tenantctl_command_parses(repo_root):
    group = typer.main.get_command(app)
    for doc, line in documented_commands(repo_root):
        words = [w for w in shlex.split(line.replace("<", "x").replace(">", "x"), comments=True) if w != "..."]
        if not words:  # "python -m tenantctl ..." as a generic mention
            continue
        command = group.get_command(click.Context(group), words[0])
        assert command is not None, f"{doc}: unknown command in `{line}`"
        try:
            command.make_context(words[0], words[1:], resilient_parsing=False)
        except Exception as exc:  # typer vendors its own click, so match its usage errors by name
            if not any(cls.__name__ == "UsageError" for cls in type(exc).__mro__):
                raise
            pytest.fail(f"{doc}: `{line}` does not parse: {exc}")


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
