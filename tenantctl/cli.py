"""The `tenantctl` entry point: the app with every command group registered, and its global options.

Each command group is a thin module over the fleet, checks and domain packages; nothing imports the CLI.
"""

from __future__ import annotations

from typing import Annotated

import typer

# Importing a command group registers its commands with the app, in this order in `tenantctl --help`:
# the newcomer's path first (tenant files, the rehearsal), then the environment's commands.
# isort: off
from tenantctl import tenant_file_commands, rehearsal_commands, fleet_commands, check_commands  # noqa: F401
from tenantctl import offboarding_commands, export_commands, operator_commands, lifecycle_commands  # noqa: F401
# isort: on
from tenantctl.app import app


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="On an error, show its traceback too.")] = False,
) -> None:
    """Tenant onboarding as code: validate, plan, verify and rehearse MSP client onboarding."""


def main() -> None:
    app(prog_name="tenantctl")

