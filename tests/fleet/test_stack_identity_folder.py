"""A stack's identity read from a file backend's folder (fleet.stack_identity._from_folder): what `stack tag ls`
would say, without a CLI process per stack; anything it cannot read as the CLI would is left to the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from components.naming import PROJECT
from fleet import engine, stack_identity

STACK = "prod.acme"
TENANT_ID = "0b8e6c1e-5c1b-4c5e-9d5a-1f6c2e7a9b10"


def backend_with(tmp_path: Path, checkpoint: str | None, tags: object) -> engine.Backend:
    folder = tmp_path / "backend" / ".pulumi" / "stacks" / PROJECT
    folder.mkdir(parents=True)
    if checkpoint is not None:
        (folder / f"{STACK}.json").write_text(checkpoint)
    if tags is not None:
        (folder / f"{STACK}.pulumi-tags").write_text(json.dumps(tags))
    return engine.Backend(project_root=tmp_path, backend_dir=tmp_path / "backend")


def checkpoint(outputs: dict | None = None) -> str:
    resources = [{"urn": f"urn:pulumi:{STACK}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{STACK}",
                  "type": "pulumi:pulumi:Stack", "outputs": outputs or {}}]
    return json.dumps({"version": 3, "checkpoint": {"latest": {"resources": resources}}})


def test_the_tags_beside_the_checkpoint_give_the_identity(tmp_path):
    tags = {stack_identity.TAG_TENANT_ID: TENANT_ID, stack_identity.TAG_OFFBOARDED_AT: "2026-12-01T00:00:00Z",
            "pulumi:project": PROJECT}
    found = stack_identity._from_folder(backend_with(tmp_path, checkpoint(), {"version": 1, "tags": tags}), STACK)
    assert found is not None and found.tenant_id == TENANT_ID and found.tags == tags
    assert found.offboarded_at == "2026-12-01T00:00:00Z"


def test_an_older_stack_without_the_tag_is_known_by_its_exported_tenant_id(tmp_path):
    backend = backend_with(tmp_path, checkpoint({"tenant": {"tenant_id": TENANT_ID}}), {"version": 1, "tags": {}})
    assert stack_identity._from_folder(backend, STACK).tenant_id == TENANT_ID


def test_a_corrupt_checkpoint_is_unreadable_saying_why(tmp_path):
    found = stack_identity._from_folder(backend_with(tmp_path, "{not json", {"version": 1, "tags": {}}), STACK)
    assert found is not None and found.tenant_id is None
    assert found.unreadable and "unreadable" in found.unreadable and STACK in found.unreadable


def test_what_is_not_in_the_known_form_is_left_to_the_cli(tmp_path):
    for tags in (None, {"version": 2, "tags": {}}, {"version": 1, "tags": []}):
        assert stack_identity._from_folder(backend_with(tmp_path / str(tags and tags["version"]), checkpoint(), tags),
                                           STACK) is None
    assert stack_identity._from_folder(backend_with(tmp_path / "none", None, {"version": 1, "tags": {}}), STACK) is None
    assert stack_identity._from_folder(engine.Backend(project_root=tmp_path, env={"PULUMI_BACKEND_URL": "s3://b"}),
                                       STACK) is None
