"""A corrupt checkpoint fails its own stack, named with the backup the backend keeps; the others go on."""

from __future__ import annotations

from tenantctl.rehearsal import STACK


def test_a_corrupt_checkpoint_fails_that_stack_only(rehearsal, app_db):
    assert rehearsal.up().ok
    checkpoint = next(rehearsal.state_dir.glob(f"backend/.pulumi/stacks/*/{STACK}.globex.json"))
    checkpoint.write_text("{ not json")

    result = rehearsal.up()

    statuses = {t.slug: t for t in result.tenants}
    assert not result.ok and statuses["acme"].status == "unchanged"
    assert statuses["globex"].status == "failed"
    (error,) = statuses["globex"].errors
    assert f"checkpoint of stack {STACK}.globex is unreadable" in error and ".json.bak" in error
    assert "Traceback" not in error
