"""The Tenant model on its own: defaults, bounds and the rules that are not plain types."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from tenancy.model import Tenant, Tier, looks_like_literal_secret


def base(**overrides) -> dict:
    data = {
        "tenant_id": str(uuid.uuid4()),
        "slug": "acme",
        "name": "Acme",
        "tier": "premium",
        "servicedesk": {"url": "https://acme.sdpondemand.com", "api_key_secret": "acme-servicedesk-api-key"},
        "contacts": {"admin_email": "a@acme.example.com"},
    }
    data.update(overrides)
    return data


def test_defaults_are_filled_in():
    tenant = Tenant.model_validate(base())
    prefs = tenant.enhancement_preferences
    assert [s.value for s in prefs.context_sources] == ["ticket_history", "kb", "monitoring"]
    assert prefs.output_format.value == "markdown"
    assert prefs.max_tokens == 500
    assert prefs.llm_model == "openai/gpt-4o-mini"
    assert prefs.rate_limits.webhooks_per_minute == 60
    assert tenant.webhook.signing_secret_version == 1


def test_premium_without_resources_gets_tier_defaults():
    tenant = Tenant.model_validate(base())
    assert tenant.effective_resources.model_dump() == {"cpu": "2", "memory": "4Gi", "pods": 20}


def test_partial_resources_keep_given_values():
    tenant = Tenant.model_validate(base(resources={"cpu": "500m"}))
    assert tenant.effective_resources.cpu == "500m"
    assert tenant.effective_resources.memory == "4Gi"


def test_basic_tenant_may_not_set_resources():
    with pytest.raises(ValidationError, match="only premium"):
        Tenant.model_validate(base(tier="basic", resources={"cpu": "1"}))


@pytest.mark.parametrize("tokens", [49, 4001])
def test_max_tokens_bounds(tokens):
    with pytest.raises(ValidationError):
        Tenant.model_validate(base(enhancement_preferences={"max_tokens": tokens}))


def test_max_tokens_rejects_string_numbers():
    with pytest.raises(ValidationError):
        Tenant.model_validate(base(enhancement_preferences={"max_tokens": "500"}))


def test_context_sources_must_be_known_and_unique():
    with pytest.raises(ValidationError):
        Tenant.model_validate(base(enhancement_preferences={"context_sources": ["email"]}))
    with pytest.raises(ValidationError, match="twice"):
        Tenant.model_validate(base(enhancement_preferences={"context_sources": ["kb", "kb"]}))


@pytest.mark.parametrize("url", ["http://acme.example.com", "https://user:pw@acme.example.com", "ftp://x", "acme"])
def test_servicedesk_url_must_be_plain_https(url):
    with pytest.raises(ValidationError):
        Tenant.model_validate(base(servicedesk={"url": url, "api_key_secret": "k"}))


@pytest.mark.parametrize("slug", ["ab", "Acme", "-acme", "acme-", "a" * 41, "ac_me"])
def test_slug_must_be_dns_label(slug):
    with pytest.raises(ValidationError):
        Tenant.model_validate(base(slug=slug))


@pytest.mark.parametrize("quantity", ["2", "500m", "4Gi", "1.5"])
def test_resource_quantities_accepted(quantity):
    assert Tenant.model_validate(base(resources={"cpu": quantity})).resources.cpu == quantity


@pytest.mark.parametrize("quantity", ["two", "4 Gi", ""])
def test_resource_quantities_rejected(quantity):
    with pytest.raises(ValidationError):
        Tenant.model_validate(base(resources={"memory": quantity}))


def test_unknown_keys_are_errors():
    with pytest.raises(ValidationError, match="Extra inputs"):
        Tenant.model_validate(base(teir="premium"))


def test_tier_enum():
    assert Tenant.model_validate(base(tier="basic")).tier is Tier.BASIC


@pytest.mark.parametrize(
    "value",
    ["sk_live_4eC39HqLyjWDarjtT1zdp7dc8a9f", "0123456789abcdef0123456789abcdef", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"],
)
def test_generated_keys_look_like_literal_secrets(value):
    assert looks_like_literal_secret(value)


@pytest.mark.parametrize("value", ["acme-servicedesk-api-key", "acmeApiKey", "globex_sdp_key"])
def test_config_key_names_do_not_look_like_secrets(value):
    assert not looks_like_literal_secret(value)


@pytest.mark.parametrize("named", ["fernetKey", "databaseUrl", "globex-servicedesk-api-key"])
def test_api_key_secret_must_be_the_tenants_own(tmp_path, named):
    from tenancy.loader import parse_tenant_file
    from tests.tenant_text import tenant_yaml

    path = tmp_path / "acme.yaml"
    path.write_text(tenant_yaml("acme").replace("api_key_secret: acme-servicedesk-api-key",
                                                f"api_key_secret: {named}"))

    tenant, problems = parse_tenant_file(path)

    assert tenant is None
    assert [(p.line, p.field) for p in problems] == [(7, "servicedesk.api_key_secret")]
    assert "'acme-servicedesk-api-key'" in problems[0].message


def test_a_renamed_tenant_may_keep_its_old_key_name(tmp_path):
    from tenancy.loader import parse_tenant_file
    from tests.tenant_text import tenant_yaml

    path = tmp_path / "acme-corp.yaml"
    path.write_text(tenant_yaml("acme-corp").replace("acme-corp-servicedesk-api-key", "acme-servicedesk-api-key")
                    + "previous_slugs: [acme]\n")

    tenant, problems = parse_tenant_file(path)

    assert problems == [] and tenant.servicedesk.api_key_secret == "acme-servicedesk-api-key"  # noqa: S105


@pytest.mark.parametrize("url", [
    "https://localhost/", "https://127.0.0.1/", "https://[::1]/", "https://10.1.2.3/", "https://192.168.0.10/",
    "https://172.16.5.4/", "https://169.254.169.254/latest/meta-data/", "https://[fd00:ec2::254]/",
    "https://metadata.google.internal/", "https://servicedesk/", "https://sdp.corp/", "https://2130706433/",
    "https://0x7f.1/", "https://0177.0.0.1/", "https://[::ffff:127.0.0.1]/", "https://0.0.0.0/",
])
def test_servicedesk_url_must_name_a_public_host(tmp_path, url):
    from tenancy.loader import parse_tenant_file
    from tests.tenant_text import tenant_yaml

    path = tmp_path / "acme.yaml"
    path.write_text(tenant_yaml("acme").replace("https://acme.sdpondemand.com", url))

    tenant, problems = parse_tenant_file(path)

    assert tenant is None and [(p.line, p.field) for p in problems] == [(6, "servicedesk.url")]
    assert "public ServiceDesk Plus host" in problems[0].message


@pytest.mark.parametrize("url", ["https://acme.sdpondemand.com", "https://sdp.acme-msp.co.uk:8443/app",
                                 "https://93.184.216.34/", "https://abc1.de/", "https://cafe.de/"])
def test_public_servicedesk_urls_pass(tmp_path, url):
    from tenancy.loader import parse_tenant_file
    from tests.tenant_text import tenant_yaml

    path = tmp_path / "acme.yaml"
    path.write_text(tenant_yaml("acme").replace("https://acme.sdpondemand.com", url))

    assert parse_tenant_file(path)[1] == []


@pytest.mark.parametrize("named,ok", [("acme-llm-api-key", True), ("openaiKey", False),
                                      ("acme-servicedesk-api-key", False),
                                      ("sk-proj-3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c", False)])
def test_llm_key_is_optional_and_only_the_tenants_own(tmp_path, named, ok):
    from tenancy.loader import parse_tenant_file
    from tests.tenant_text import tenant_yaml

    path = tmp_path / "acme.yaml"
    path.write_text(tenant_yaml("acme", extra=f"llm:\n  api_key_secret: {named}\n"))

    tenant, problems = parse_tenant_file(path)

    assert (tenant is not None) is ok, problems
    if ok:
        assert tenant.secret_names == ["acme-servicedesk-api-key", "acme-llm-api-key"]
    else:
        assert problems[0].field.startswith("llm") and problems[0].line == 11
