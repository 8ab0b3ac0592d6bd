"""What the engine did to a stack, as the summaries show it: the count columns of the terminal tables and the
pull-request comment. Replacements and deletions stand out: bold red in a terminal, a warning in Markdown."""

from __future__ import annotations

from rich.text import Text

COLUMNS = ("created", "updated", "replaced", "deleted", "unchanged")
ALARMING = ("replaced", "deleted")


def terminal_cells(counts: dict[str, int]) -> list[Text]:
    return [Text(str(counts.get(k, 0)), style="bold red" if k in ALARMING and counts.get(k, 0) else "")
            for k in COLUMNS]


def markdown_cells(counts: dict[str, int]) -> list[str]:
    return [f":warning: **{counts.get(k, 0)}**" if k in ALARMING and counts.get(k, 0) else str(counts.get(k, 0))
            for k in COLUMNS]
