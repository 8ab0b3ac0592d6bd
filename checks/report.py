"""Check results and the report that collects them: JSON for Pulumi outputs, text for operators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass
class CheckReport:
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when at least one check ran and every check passed."""
        return bool(self.results) and all(result.ok for result in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [result for result in self.results if not result.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": {result.name: {"ok": result.ok, "detail": result.detail} for result in self.results},
        }

    def render(self, title: str | None = None) -> str:
        if not self.results:
            summary = "no checks ran"
        elif self.ok:
            summary = f"all {len(self.results)} checks passed"
        else:
            names = ", ".join(result.name for result in self.failed)
            summary = f"{len(self.failed)} of {len(self.results)} checks failed: {names}"
        lines = [f"{title}: {summary}" if title else summary]
        for result in self.results:
            detail_lines = result.detail.splitlines() or [""]
            lines.append(f"  {'ok  ' if result.ok else 'FAIL'}  {result.name}: {detail_lines[0]}")
            lines.extend(f"        {line}" for line in detail_lines[1:])
        return "\n".join(lines)


class CheckFailed(Exception):
    """Raised when a report must stop a deployment; its text is the rendered report."""

    def __init__(self, report: CheckReport, title: str | None = None) -> None:
        super().__init__(report, title)
        self.report = report
        self.title = title

    def __str__(self) -> str:
        return self.report.render(self.title)
