"""The CLI's last line of defence: an error nobody caught ends the command with one `error:` line, not a traceback.

Expected failures (no login, no state, a held lock, an unreachable service, bad input) are caught where
they happen and reported by `cli.fail`; this catches the rest. `tenantctl --debug` shows the traceback of
both instead.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import typer
from typer.core import TyperGroup

from fleet.error_lines import one_line

_debug = False


def debugging() -> bool:
    return _debug


def set_debug(on: bool) -> None:
    global _debug
    _debug = on


def print_traceback() -> None:
    """With --debug, the traceback of the exception being handled (if any), on stderr."""
    if _debug and sys.exc_info()[0] is not None:
        traceback.print_exc(file=sys.stderr)


def _is_cli_exit(exc: BaseException) -> bool:
    # typer.Exit, typer.Abort and the usage errors of typer's vendored click: the CLI's own way out.
    return type(exc).__module__.split(".")[0] in ("typer", "click")


class GuardedGroup(TyperGroup):
    def invoke(self, ctx: Any) -> Any:
        set_debug(bool(ctx.params.get("debug")))
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if _is_cli_exit(exc) or _debug:
                raise
            typer.echo(f"error: {one_line(f'{type(exc).__name__}: {exc}' if not str(exc) else str(exc))} "
                       "(tenantctl --debug shows the traceback)", err=True)
            raise typer.Exit(1) from None
