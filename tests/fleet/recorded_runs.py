"""A stand-in for the fleet's stack runs (rollout.run_in_process), shared by the rollout tests."""

from __future__ import annotations

from concurrent.futures import Future

from fleet import rollout
from fleet.stack_run import StackOutcome


class RecordedRuns:
    """Records each job and answers at once: `changes`, the updates a stack reports (else `changed`); `fail`,
    the stacks that fail (saying "boom")."""

    def __init__(self, monkeypatch, changes: dict[str, int] | None = None, fail: set[str] = frozenset(),
                 changed: int = 0) -> None:
        self.jobs = []
        self.changes, self.fail, self.changed = changes or {}, fail, changed
        monkeypatch.setattr(rollout, "run_in_process", self.run)

    def run(self, _pool, job) -> Future:
        self.jobs.append(job)
        failed = job.spec.name in self.fail
        outcome = StackOutcome(job.spec.name, job.operation, reason=job.reason, status="failed" if failed else "ok",
                               errors=["boom"] if failed else [],
                               summary={"update": self.changes.get(job.spec.name, self.changed), "same": 10})
        future: Future = Future()
        future.set_result(outcome)
        return future

    @property
    def ran(self) -> list[str]:
        return [job.spec.name for job in self.jobs]
