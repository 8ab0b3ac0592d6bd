"""Reads the series selectors out of PromQL expressions, to prove each one is scoped to one tenant.

Not a PromQL parser: enough for the expressions this project renders (selectors with double-quoted matchers),
and strict about the rest: a series name of the contract outside a selector is reported too.
"""

from __future__ import annotations

import re

from components.observability import metrics as m
from components.observability import rules

NAME = r"[A-Za-z_:][A-Za-z0-9_:]*"
SELECTOR = re.compile(rf"({NAME})\{{([^{{}}]*)\}}")
MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

KNOWN_SERIES = frozenset(
    {name for metric in m.CONTRACT for name in metric.series_names}
    | {m.error_ratio_record(window) for window in rules.RECORD_WINDOWS}
    | {"ALERTS"}
)


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    found = []
    for match in SELECTOR.finditer(expr):
        body, matchers, position = match.group(2), [], 0
        while position < len(body):
            matcher = MATCHER.match(body, position)
            assert matcher, f"cannot read the matchers of {match.group(0)!r}"
            matchers.append(matcher.groups())
            position = matcher.end()
        found.append((match.group(1), matchers))
    return found


def scoping_problems(expr: str, tenant_id: str) -> list[str]:
    """Why `expr` could read a series of another tenant (empty when every selector is pinned to `tenant_id`)."""
    problems = []
    for name, matchers in selectors(expr):
        if name not in KNOWN_SERIES:
            problems.append(f"{name} is no series of the metric contract or its recording rules")
        tenant_matchers = [(op, value) for label, op, value in matchers if label == m.TENANT_ID]
        if tenant_matchers != [("=", tenant_id)]:
            problems.append(f"{name} is selected with tenant_id matchers {tenant_matchers}, not ='{tenant_id}'")
    unquoted = QUOTED.sub('""', expr)
    for match in re.finditer(NAME, unquoted):
        if match.group(0) in KNOWN_SERIES and not unquoted[match.end():].startswith("{"):
            problems.append(f"{match.group(0)} is used without a selector, so it reads every tenant")
    for other in set(UUID.findall(expr)) - {tenant_id}:
        problems.append(f"names another tenant id {other}")
    return problems
