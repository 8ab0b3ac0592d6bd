"""The metric contract is one: the module, docs/observability.md and what scheduled verification prints
agree; and the tenant file's `observability` section is validated with clear messages."""

from __future__ import annotations

import re
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from components.observability import metrics as m
from components.observability import rules
from tenancy.model import Tenant
from tests.conftest import ROOT

DOC = ROOT / "docs" / "observability.md"


def doc_rows() -> dict[str, list[str]]:
    """`| `series` | type | `label`, `label` | ...` rows of the contract table, by series name."""
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"`[a-z_:]+`", cells[0]) and cells[1] in ("counter", "gauge", "histogram"):
            rows[cells[0].strip("`")] = cells
    return rows


def test_the_documented_contract_is_the_modules():
    rows = doc_rows()
    assert set(rows) == set(m.BY_NAME)
    for name, (_name, kind, labels, source, meaning) in ((n, rows[n][:5]) for n in rows):
        metric = m.BY_NAME[name]
        assert kind == metric.kind and source == metric.source, name
        assert labels == ", ".join(f"`{label}`" for label in metric.labels), name
        for values in metric.values.values():
            assert all(f"`{value}`" in meaning for value in values), name
        if metric.buckets:
            assert " ".join(format(b, "g") for b in metric.buckets) in meaning, name


def test_every_alert_is_documented_with_its_urgency_and_a_runbook_section():
    text = DOC.read_text()
    for name, urgency in rules.ALERT_URGENCY.items():
        assert re.search(rf"^\| `{name}` \|.*\| {urgency} \|$", text, re.M), name
        assert f"\n### {name}\n" in text, name  # the `runbook` annotation's anchor


def test_scheduled_verification_prints_the_contracts_series():
    from checks.report import CheckReport, CheckResult
    from fleet.probe_metrics import exposition_text, registry_for
    from fleet.verification import VerifyOutcome

    tenant = Tenant.model_validate({
        "tenant_id": str(uuid.uuid4()), "slug": "acme", "name": "Acme", "tier": "premium",
        "servicedesk": {"url": "https://acme.sdpondemand.com", "api_key_secret": "acme-servicedesk-api-key"},
        "contacts": {"admin_email": "a@acme.example.com"},
    })
    report = CheckReport([CheckResult("webhook_signed_probe_accepted", True, ""),
                          CheckResult("cross_tenant_isolation", False, "")])
    text = exposition_text(registry_for([VerifyOutcome(tenant, report, 1.5)]))
    printed = {family.name: family for family in text_string_to_metric_families(text)}
    for metric in (m.PROBE_SUCCESS, m.PROBE_DURATION, m.PROBE_LAST_RUN):
        [family] = [f for name, f in printed.items() if name == metric.name]
        assert family.type == metric.kind
        for sample in family.samples:
            assert set(sample.labels) == set(metric.labels)
            assert sample.labels[m.TENANT_ID] == str(tenant.tenant_id)
    checks = {s.labels["check"]: s.value for s in printed[m.PROBE_SUCCESS.name].samples}
    assert checks == {"webhook_signed_probe_accepted": 1, "cross_tenant_isolation": 0}


# --- the tenant file's `observability` section ----------------------------------------------------


def tenant(tier: str = "premium", **observability) -> Tenant:
    return Tenant.model_validate({
        "tenant_id": str(uuid.uuid4()), "slug": "acme", "name": "Acme", "tier": tier,
        "servicedesk": {"url": "https://acme.sdpondemand.com", "api_key_secret": "acme-servicedesk-api-key"},
        "contacts": {"admin_email": "a@acme.example.com"},
        **({"observability": observability} if observability else {}),
    })


def test_tier_defaults_apply_when_the_file_says_nothing():
    premium, basic = tenant().effective_observability, tenant("basic").effective_observability
    assert (premium.slo_objective, premium.enhancement_p95_seconds, premium.queue_age_seconds) == (0.999, 60, 300)
    assert (basic.slo_objective, basic.enhancement_p95_seconds, basic.queue_age_seconds) == (0.995, 120, 900)
    assert premium.silent_after_hours is None and basic.silent_after_hours is None


def test_the_file_overrides_each_threshold():
    given = tenant("basic", slo_objective=0.999, silent_after_hours=6, enhancement_p95_seconds=30,
                   queue_age_seconds=120).effective_observability
    assert (given.slo_objective, given.silent_after_hours, given.enhancement_p95_seconds,
            given.queue_age_seconds) == (0.999, 6, 30, 120)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("slo_objective", 99.9, "must be a fraction between 0.95 and 0.9999: write 0.999 for 99.9%, not 99.9"),
    ("slo_objective", 0.9, "must be between 0.95 and 0.9999"),
    ("slo_objective", 1, "must be between 0.95 and 0.9999"),
    ("slo_objective", "0.999", "must be a number between 0.95 and 0.9999"),
    ("silent_after_hours", 0, "must be from 1 to 168 hours, got 0"),
    ("silent_after_hours", 6.5, "must be a whole number of hours from 1 to 168"),
    ("silent_after_hours", True, "must be a whole number of hours"),
    ("enhancement_p95_seconds", 4000, "must be from 5 to 3600 seconds"),
    ("queue_age_seconds", 30, "must be from 60 to 86400 seconds"),
])
def test_out_of_range_values_are_refused_with_the_range(field, value, message):
    with pytest.raises(ValidationError) as error:
        tenant(**{field: value})
    [problem] = error.value.errors()
    assert problem["loc"] == ("observability", field) and message in problem["msg"]


def test_tenantctl_validate_locates_a_bad_value_and_an_unknown_key(tmp_path):
    from tenancy.loader import parse_tenant_file
    from tests.tenant_text import tenant_yaml

    path = tmp_path / "acme.yaml"
    path.write_text(tenant_yaml("acme", extra="observability:\n  slo_objective: 99.9\n  silent_after: 6\n"))
    _tenant, problems = parse_tenant_file(path)
    shown = sorted(str(p) for p in problems)
    assert len(shown) == 2
    assert any("observability.slo_objective" in p and "not 99.9" in p for p in shown)
    assert any("observability.silent_after" in p and "did you mean 'silent_after_hours'" in p for p in shown)


def test_the_json_schema_carries_the_ranges():
    from tenancy.model import tenant_json_schema

    schema = tenant_json_schema()
    section = schema["$defs"]["Observability"]
    assert section["additionalProperties"] is False
    assert (section["properties"]["slo_objective"]["minimum"], section["properties"]["slo_objective"]["maximum"]) \
        == (0.95, 0.9999)
    assert section["properties"]["silent_after_hours"]["maximum"] == 168
