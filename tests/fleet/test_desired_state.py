"""The desired-state digest (fleet.desired_state), offline: stable, complete, and never a secret in the clear."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from fleet import desired_state
from fleet.desired_state import SharedInputs, digest_key, source_shape, stack_config, stack_digest, stack_document
from fleet.mock_runtime import Secret
from program import platform_outputs as names
from tenancy.loader import require_tenants

ROOT = Path(__file__).resolve().parents[2]
TENANTS = ROOT / "tenants"
KEY = bytes(range(32))
API_KEY = "acme-real-looking-api-key-0123456789"
DATABASE_URL = "postgresql://provisioner:db-password-5678@127.0.0.1:5432/app"
FERNET = "J3jHcPq0mBqX0Zt3jv0cS8e1hH2lJ4xF3c6k1nYV2bM="
PLATFORM = {
    names.SHARED_NAMESPACE: "production",
    names.INGRESS_NAMESPACE: "ingress-nginx",
    names.MONITORING_NAMESPACE: "monitoring",
    names.WEBHOOK_BASE_URL: "https://api.example.com",
    names.CHECKS_NONCE: "0",
    names.DATABASE_URL: Secret(DATABASE_URL),
    names.APP_DATABASE_URL: Secret(DATABASE_URL.replace("provisioner:", "app:")),
    names.FERNET_KEY: Secret(FERNET),
}
SHARED = SharedInputs(KEY, PLATFORM, {"engine": "v3.276.0", "sdk:pulumi": "3.0"}, "policy-0", "code-0")
STACK = "prod.acme"


def acme_config(api_key: str = API_KEY) -> dict:
    acme = next(t for t in require_tenants(TENANTS) if t.slug == "acme")
    return stack_config({"aws:region": "eu-west-1"}, {"tenantsDir": str(TENANTS)},
                        dict.fromkeys(acme.secret_names, api_key))


def digest(config: dict | None = None, shared: SharedInputs = SHARED) -> str:
    return stack_digest(ROOT, STACK, acme_config() if config is None else config, shared)


def test_an_unchanged_stack_gives_the_same_digest_every_run():
    assert digest() == digest()
    assert digest().startswith(desired_state.DIGEST_PREFIX)


def test_secrets_enter_the_digest_only_as_an_hmac():
    config = acme_config()
    run = desired_state.tenant_run(ROOT, STACK, config, SHARED)
    text = json.dumps(stack_document(STACK, run, config, SHARED), sort_keys=True)
    for secret in (API_KEY, DATABASE_URL, FERNET, "db-password-5678"):
        assert secret not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text
        assert hashlib.sha256(json.dumps(secret).encode()).hexdigest() not in text
    assert "hmac-sha256:" in text
    assert desired_state.PLACEHOLDER_SECRET not in json.dumps(config, default=repr)


def test_the_document_holds_every_resource_with_its_inputs_and_options():
    config = acme_config()
    run = desired_state.tenant_run(ROOT, STACK, config, SHARED)
    document = stack_document(STACK, run, config, SHARED)
    types = {r["type"] for r in document["resources"]}
    assert {"aws:kms/key:Key", "pulumi-python:dynamic/tenant-onboarding:OnboardingCheck",
            "pulumi-python:dynamic/tenant-onboarding:TenantConfigRow"} <= types
    dynamic = [r for r in document["resources"] if r["type"].startswith("pulumi-python:dynamic")]
    assert all("__provider" in r["inputs"] for r in dynamic)  # the serialized provider is an input
    assert all("sourcePosition" not in r["options"] and "stackTrace" not in r["options"]
               for r in document["resources"])
    assert any(r["options"].get("protect") for r in document["resources"])
    assert document["exports"]


def test_dynamic_providers_are_serialized_by_reference_so_their_code_is_not_an_input():
    """The decision in fleet.desired_state's docstring rests on this: a provider's input names its class."""
    import base64

    run = desired_state.tenant_run(ROOT, STACK, acme_config(), SHARED)
    for resource in (r for r in run.resources if r.type.startswith("pulumi-python:dynamic")):
        pickled = base64.b64decode(resource.inputs["__provider"].value)
        assert len(pickled) < 200 and b"components.dynamic." in pickled


def test_a_changed_secret_changes_the_digest():
    assert digest(acme_config("another-api-key")) != digest()


def test_a_changed_key_changes_the_digest():
    assert digest(shared=replace(SHARED, key=bytes(32))) != digest()


@pytest.mark.parametrize("output, value", [(names.WEBHOOK_BASE_URL, "https://api2.example.com"),
                                           (names.CHECKS_NONCE, "1"),
                                           (names.FERNET_KEY, Secret("another-key"))])
def test_a_changed_platform_output_changes_the_digest(output, value):
    assert digest(shared=replace(SHARED, platform_outputs={**PLATFORM, output: value})) != digest()


@pytest.mark.parametrize("change", [{"versions": {"engine": "v3.277.0", "sdk:pulumi": "3.0"}},
                                    {"policy": "policy-1"}, {"engine_code": "code-1"}])
def test_each_shared_input_counts(change):
    assert digest(shared=replace(SHARED, **change)) != digest()


def test_plain_config_counts():
    config = {**acme_config(), "tenant-onboarding:runChecks": "false"}
    assert digest(config) != digest()


def test_source_shape_ignores_comments_and_docstrings_but_not_code():
    code = 'def f(x):\n    """What f does."""\n    return x + 1\n'
    assert source_shape(code) == source_shape('"""Module."""\n# a comment\n\ndef f(x):\n    return x + 1  # why\n')
    assert source_shape(code) != source_shape(code.replace("x + 1", "x + 2"))


def test_the_policy_digest_follows_the_pack_content(tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "policies.py").write_text("LIMIT = 1\n")
    (pack / "__pycache__").mkdir()
    (pack / "__pycache__" / "x.pyc").write_bytes(b"\0")
    first = desired_state.policy_digest([pack])
    (pack / "__pycache__" / "x.pyc").write_bytes(b"\1")
    assert desired_state.policy_digest([pack]) == first
    (pack / "policies.py").write_text("LIMIT = 2\n")
    assert desired_state.policy_digest([pack]) != first


def test_the_digest_key_is_made_once_and_kept(tmp_path):
    assert digest_key(tmp_path, "prod") is None
    made = digest_key(tmp_path, "prod", create=True)
    assert made is not None and len(made) == 32
    assert digest_key(tmp_path, "prod", create=True) == made
    assert digest_key(tmp_path, "dev", create=True) != made


def test_stored_ciphertext_stays_a_secret():
    config = stack_config({"tenant-onboarding:k": {"secure": "v1:abc"}, "aws:region": "eu-west-1"}, {}, {})
    assert isinstance(config["tenant-onboarding:k"], Secret)
    assert config["aws:region"] == "eu-west-1"


def test_the_digest_runs_offline_resolving_no_name(monkeypatch):
    """A DNS answer is not desired state, and one lookup can take seconds (a release computes one digest per
    tenant): the digest's run of the program resolves nothing. The engine's run still does
    (tests/test_program.py: a host resolving to a private address stops the program)."""
    import socket

    from checks.host import resolved_non_public

    looked_up = []

    def resolver(host, *args, **kwargs):
        looked_up.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    assert digest().startswith(desired_state.DIGEST_PREFIX)
    assert looked_up == []
    assert resolved_non_public(["acme.sdpondemand.com"]) != {}  # outside the digest, names are resolved again
    assert looked_up == ["acme.sdpondemand.com"]
