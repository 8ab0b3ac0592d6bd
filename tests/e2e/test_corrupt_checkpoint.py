"""A corrupt checkpoint fails its own stack, named with the backup the backend keeps; the others go on; `status`
shows that stack as broken and how to restore it, and lists the others as usual."""

from __future__ import annotations

import json

from fleet.rehearsal import STACK
from tests.e2e.test_status import cli_status


def test_a_corrupt_checkpoint_fails_that_stack_only_and_status_says_how_to_restore_it(rehearsal, app_db):
    assert rehearsal.up().ok
    checkpoint = next(rehearsal.state_dir.glob(f"backend/.pulumi/stacks/*/{STACK}.globex.json"))
    checkpoint.write_text("{ not json")

    result = rehearsal.up()
    shown = cli_status(rehearsal, "--json")

    statuses = {t.slug: t for t in result.tenants}
    assert not result.ok and statuses["acme"].status == "unchanged"
    assert statuses["globex"].status == "failed"
    (error,) = statuses["globex"].errors
    assert f"checkpoint of stack {STACK}.globex is unreadable" in error and ".json.bak" in error
    assert "Traceback" not in error
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    tenants = {t["tenant"]: t for t in json.loads(shown.stdout)["tenants"]}
    assert (tenants["acme"]["ready"], tenants["acme"]["problems"]) == ("ready", [])
    assert tenants["globex"]["ready"] == "broken"
    (problem,) = tenants["globex"]["problems"]
    assert f"stack broken: the checkpoint of stack {STACK}.globex is unreadable" in problem
    assert f"`cp {checkpoint}.bak {checkpoint}` and `tenantctl up`" in problem, problem
