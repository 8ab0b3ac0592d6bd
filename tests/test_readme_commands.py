"""Every shell block of the README (```sh and ```bash), line by line, so that the docs and the code can't drift
(issue 20, item 5).

Each `tenantctl` line is either RUN here against a rehearsal or, where it can't run here, PARSED by the CLI
(click's `make_context` on the typer app); the two tables below say which, and a line in neither fails the
test, so a new block must be classified. `make` lines must name a target of the Makefile, `pulumi` lines a
real subcommand, and the shell's own lines (`export`, `source`) are listed.

- Run: `tenantctl --help`, and `status`, `verify` and `handoff` with `--rehearsal`, against a rehearsal's state as
  `tenantctl rehearse --database-url` leaves it, written without an engine run (tests/rehearsal_state.py, its
  tenant acme's row in a real PostgreSQL). The words are the README's, with where that rehearsal is added
  (`--state-dir`, `--database-url`, `--tenants-dir`).
- Parsed only: the `tenantctl rehearse` lines. Running them is a real `up` of both tenants, a no-change run and a
  destroy, minutes of the 15 that `make test` may take (fleet rule 8); tests/e2e runs the same code path
  (`run_rehearse`) and tests/tenantctl/test_rehearse.py the command itself.
"""

from __future__ import annotations

import re
import shlex

import click
import pytest
import typer
from typer.testing import CliRunner

from tenantctl.cli import app
from tests.rehearsal_state import rehearsed  # noqa: F401 (a fixture)
from tests.test_docs import PULUMI_SUBCOMMANDS

BLOCK = re.compile(r"^```(?:sh|bash)\n(.*?)^```", re.M | re.S)
SHELL = {"export", "source"}

# The README's words -> (the exit code expected here, text the output must show). The rehearsal has no stack yet,
# so `status` lists acme as never applied, and exits 1 as documented.
RUN = {
    "tenantctl --help": (0, "rehearse"),
    "tenantctl status --rehearsal": (1, "Environment rehearsal"),
    "tenantctl verify acme --rehearsal": (0, "all 10 checks passed"),
    "tenantctl handoff acme --rehearsal": (0, "stack `rehearsal.acme`"),
}
REHEARSAL_RUN = "a real engine run of both tenants: minutes (tests/e2e runs run_rehearse)"
PARSED = {
    "tenantctl rehearse --preview": REHEARSAL_RUN,
    "tenantctl rehearse": REHEARSAL_RUN,
    "tenantctl rehearse --force": REHEARSAL_RUN,
    "tenantctl rehearse --destroy": REHEARSAL_RUN,
    "tenantctl rehearse --keep-running": REHEARSAL_RUN,
    "tenantctl rehearse --stop": "stops what a real rehearsal left running (tests/e2e/test_kubernetes_rehearsal.py)",
}

runner = CliRunner()


def shell_lines(repo_root) -> list[list[str]]:
    """The words of every command line of the README's shell blocks (comments and continuations handled as the
    shell does)."""
    found = []
    for block in BLOCK.finditer((repo_root / "README.md").read_text()):
        text = block.group(1).replace("\\\n", " ")
        found += [words for line in text.splitlines() if (words := shlex.split(line, comments=True))]
    return found


def makefile_targets(repo_root) -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (repo_root / "Makefile").read_text(), re.M))


def test_every_readme_shell_line_is_classified(repo_root):
    lines = shell_lines(repo_root)
    tenantctl = set()
    for words in lines:
        if words[0] == "tenantctl":
            tenantctl.add(" ".join(words))
        elif words[0] == "make":
            assert set(words[1:]) <= makefile_targets(repo_root), f"README: `{' '.join(words)}`: no such target"
        elif words[0] == "pulumi":
            assert words[1] in PULUMI_SUBCOMMANDS, f"README: `{' '.join(words)}`"
        else:
            assert words[0] in SHELL, f"README: `{' '.join(words)}` is neither run, parsed nor a known command"
    assert tenantctl == set(RUN) | set(PARSED), "classify each README `tenantctl` line as RUN or PARSED"
    assert not set(RUN) & set(PARSED)
    assert {words[0] for words in lines} >= {"make", "export", "tenantctl"}


@pytest.mark.parametrize("line", sorted(set(RUN) | set(PARSED)))
def test_each_readme_tenantctl_line_parses(line):
    words = shlex.split(line)[1:]
    group = typer.main.get_command(app)
    if words[0].startswith("--"):  # an option of tenantctl itself (`--help`): run below
        assert words[0] in {o for p in group.params for o in p.opts} | {"--help"}
        return
    command = group.get_command(click.Context(group), words[0])
    assert command is not None, f"README: unknown command in `{line}`"
    command.make_context(words[0], words[1:], resilient_parsing=False)


@pytest.mark.parametrize("line", sorted(RUN))
def test_each_readme_line_that_can_run_here_runs_against_a_rehearsal(line, rehearsed, app_db):  # noqa: F811
    project, _port = rehearsed
    words = shlex.split(line)[1:]
    if "--rehearsal" in words:
        words += ["--state-dir", str(project / "state"), "--database-url", app_db.provisioner_dsn,
                  "--tenants-dir", str(project / "tenants")]
    code, shows = RUN[line]

    result = runner.invoke(app, words)

    shown = result.stdout + result.stderr
    assert result.exit_code == code, shown
    assert shows in result.stdout, shown
    assert "Traceback" not in shown and app_db.provisioner_dsn not in shown
