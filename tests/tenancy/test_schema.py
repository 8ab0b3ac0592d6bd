"""tenants/schema.json is generated from the pydantic model and must stay in sync with it."""

from __future__ import annotations

import json

import jsonschema
from ruamel.yaml import YAML

from tenancy.model import tenant_json_schema


def test_committed_schema_matches_model(repo_root):
    committed = json.loads((repo_root / "tenants" / "schema.json").read_text())
    assert committed == tenant_json_schema(), "run `make schema` and commit tenants/schema.json"


def test_examples_validate_against_json_schema(repo_root):
    schema = tenant_json_schema()
    for path in (repo_root / "tenants").glob("*.yaml"):
        data = json.loads(json.dumps(YAML(typ="safe").load(path.read_text())))
        jsonschema.validate(data, schema)


def test_examples_point_editors_at_schema(repo_root):
    for path in (repo_root / "tenants").glob("*.yaml"):
        assert path.read_text().startswith("# yaml-language-server: $schema=schema.json")


def test_json_schema_rejects_unknown_keys():
    schema = tenant_json_schema()
    assert schema["additionalProperties"] is False
