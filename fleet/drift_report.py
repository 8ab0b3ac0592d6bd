"""The scheduled drift check's issue: what `tenantctl status --refresh --json` found, as ONE GitHub issue.

`python -m fleet.drift_report STATUS.json --env prod` reads the report and decides:

- a tenant drifted (or whose drift could not be checked), unverified (never verified, its last check failed, or
  last verified too long ago), or failing the status otherwise (a pending or failed stack, a missing row), or a
  stack without a tenant file: `open-or-update` the issue, its body listing each of them;
- a clean fleet: `close` the issue.

A file that is not a refreshed status report (`status` failed before it reported: no backend, a held lock) is an
error, exit 2, and no action: a broken check never closes the issue. `--dry-run` prints the action and the body
and writes nothing; `--out DIR` writes them (`action`, `title`, `body.md`) for the workflow's issue job, which
holds the GitHub token and runs no code of this repository (.github/workflows/drift.yml).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from fleet.status import DRIFTED, UNKNOWN

LABEL = "fleet-drift"
OPEN, CLOSE = "open-or-update", "close"
UNVERIFIED_PROBLEMS = ("never verified", "its last check failed", "last verified more than")


class ReportError(Exception):
    """The input is not a refreshed status report: nothing is decided."""


@dataclass(frozen=True)
class IssueAction:
    action: str  # open-or-update | close
    title: str
    body: str

    def describe(self) -> str:
        verb = "open/update issue" if self.action == OPEN else "close issue"
        return f"{verb} [{LABEL}] {self.title!r}"


def load_report(text: str) -> dict:
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"not JSON ({exc.msg} at line {exc.lineno}): did `tenantctl status --json` run?") from None
    if not isinstance(report, dict) or not isinstance(report.get("tenants"), list):
        errors = report.get("errors") if isinstance(report, dict) else None
        raise ReportError("`tenantctl status` reported no tenants" + (f": {'; '.join(map(str, errors))}" if errors
                                                                      else ": not a status report"))
    if report.get("refreshed") is not True:
        raise ReportError("the status was not refreshed: run `tenantctl status --refresh --json` (drift is only "
                          "known after a refresh)")
    return report


def decide(report: dict, env: str, run_url: str | None = None) -> IssueAction:
    drifted, unverified, other = [], [], []
    for tenant in report["tenants"]:
        problems = [str(p) for p in tenant.get("problems") or []]
        name = f"`{tenant.get('tenant')}` ({tenant.get('stack')})"
        if tenant.get("drift") in (DRIFTED, UNKNOWN):
            detail = next((p for p in problems if p.startswith("drift ")), f"drift {tenant.get('drift')}")
            drifted.append(f"- {name}: {detail}")
        if any(p.startswith(UNVERIFIED_PROBLEMS) for p in problems):
            last = f", last verified {tenant['verified_at']}" if tenant.get("verified_at") else ""
            unverified.append(f"- {name}: {tenant.get('verified')}{last}")
        rest = [p for p in problems if not p.startswith(("drift ", *UNVERIFIED_PROBLEMS))]
        if rest:
            other.append(f"- {name}: {'; '.join(rest)}")
    orphans = (report.get("orphans") or {}).get("stacks_without_file") or []
    other += [f"- `{stack}`: a stack without a tenant file (an orphan, left alone)" for stack in orphans]
    clean = not (drifted or unverified or other) and report.get("ok") is True
    if clean:
        return IssueAction(CLOSE, f"Fleet drift ({env}): clean",
                           f"The scheduled drift check found every tenant of `{env}` in sync and verified."
                           + (f"\n\n[run]({run_url})" if run_url else "") + "\n")
    title = f"Fleet drift ({env}): {len(drifted)} drifted, {len(unverified)} unverified, {len(other)} other"
    lines = [f"The scheduled drift check (`tenantctl status --env {env} --refresh`) found tenants that need "
             "attention. This issue is updated on each check and closed when the fleet is clean.", ""]
    for heading, entries, hint in (
            ("Drifted", drifted, f"changed outside the engine: `tenantctl preview --env {env} --refresh` shows "
                                 f"what `tenantctl up --env {env} --refresh --only SLUG` would repair"),
            ("Unverified", unverified, f"`tenantctl verify SLUG --env {env}` checks a tenant now; the stacks' "
                                       "own checks run again with the platform's `checksNonce` "
                                       "(docs/onboarding-runbook.md)"),
            ("Other problems", other, f"`tenantctl status --env {env}` says more")):
        if entries:
            lines += [f"### {heading} ({len(entries)})", "", f"_{hint}_", "", *entries, ""]
    if run_url:
        lines.append(f"[run]({run_url})")
    return IssueAction(OPEN, title, "\n".join(lines).rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.drift_report", description=__doc__.splitlines()[0])
    parser.add_argument("status", type=Path, help="the output of `tenantctl status --refresh --json`")
    parser.add_argument("--env", required=True, help="the environment the status is of")
    parser.add_argument("--run-url", help="the workflow run, linked from the issue")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="print the action and the body; write nothing")
    mode.add_argument("--out", type=Path, help="write `action`, `title` and `body.md` here")
    args = parser.parse_args(argv)
    try:
        report = load_report(args.status.read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"error: cannot read {args.status}: {exc.strerror}", file=sys.stderr)
        return 2
    except ReportError as exc:
        print(f"error: {args.status}: {exc}; the issue is left as it is", file=sys.stderr)
        return 2
    action = decide(report, args.env, args.run_url)
    print(f"action: {action.describe()}")
    if args.dry_run:
        print("---")
        print(action.body, end="")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "action").write_text(action.action + "\n", encoding="utf-8")
    (args.out / "title").write_text(action.title + "\n", encoding="utf-8")
    (args.out / "body.md").write_text(action.body, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
