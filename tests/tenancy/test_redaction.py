"""Every error text that reaches a stack tag, a log line or a status line passes tenancy.redaction.redact."""

from __future__ import annotations

import pytest

from fleet import engine, stack_run
from fleet import status as fleet_status
from tenancy.redaction import redact

PASSWORD = "Hunter2-dsn-pw"  # noqa: S105 (a test's own)
API_KEY = "sdp-key-6f1c2a9e"
FERNET = "Q2lXk8vJ0b1F3yH5mN7pR9tV2wZ4aC6eQ2lXk8vJ0b1=" # a Fernet key's shape: 43 url-safe characters, '='
DSN_ERROR = (f'connection to postgresql://tenant_provisioner:{PASSWORD}@db.internal:5432/app?sslmode=verify-full '
             f"failed; retried with host=db.internal password={PASSWORD}x user=app; api key {API_KEY} refused")


@pytest.mark.parametrize("text, hidden", [
    (f"postgresql://app:{PASSWORD}@127.0.0.1/app", PASSWORD),
    (f"host=db user=app password='{PASSWORD}' dbname=app", PASSWORD),
    (f"Authorization: Bearer {API_KEY}abcdef", API_KEY),
    (f'{{"token": "{API_KEY}"}}', API_KEY),
    ("ghs_" + "a" * 36, "a" * 36),
    ("key AKIAABCDEFGHIJKLMNOP in use", "AKIAABCDEFGHIJKLMNOP"),
    (f"bad fernet key {FERNET}: invalid", FERNET),
])
def test_redact_removes_each_kind_of_secret(text, hidden):
    assert hidden not in redact(text)
    assert "***" in redact(text)


def test_redact_keeps_what_an_operator_needs():
    text = "postgresql://app@db.internal:5432/app: password authentication failed for user \"app\""
    assert redact(text) == text
    assert redact(DSN_ERROR).startswith("connection to postgresql://tenant_provisioner:***@db.internal:5432/app")


def test_a_known_secret_is_removed_whatever_its_shape():
    assert redact(f"the API rejected {API_KEY}", [API_KEY, None, "x"]) == "the API rejected ***"


class FakeStack:
    name = "dev.acme"

    def __init__(self, failure: Exception | None = None):
        self.failure, self.tags = failure, {}

    def up(self, on_event, **_kwargs):
        """The engine's own way: the error is a diagnostic event, then the command fails."""
        from types import SimpleNamespace

        diagnostic = SimpleNamespace(severity="error", message=DSN_ERROR, urn="urn:pulumi:dev.acme::p::t::acme")
        on_event(SimpleNamespace(res_outputs_event=None, resource_pre_event=None, res_op_failed_event=None,
                                 diagnostic_event=diagnostic))
        raise self.failure

    def set_tag(self, key, value):
        self.tags[key] = value

    def remove_tag(self, key):
        self.tags.pop(key, None)

    def list_tags(self):
        return dict(self.tags)


def _job(secret: str) -> stack_run.StackJob:
    backend = engine.Backend(project_root=engine.Path("."))
    return stack_run.StackJob(engine.StackSpec(backend, "dev.acme", secrets={"acme-servicedesk-api-key": secret}), "up")


def test_a_failed_up_records_a_redacted_error_in_its_tag_and_outcome(monkeypatch):
    from pulumi.automation import errors as auto_errors
    from pulumi.automation._cmd import CommandResult

    failure = auto_errors.CommandError(CommandResult(stdout="", stderr="update failed", code=1))
    stack = FakeStack(failure)
    monkeypatch.setattr(stack_run.stack_locks, "recover", lambda *_a, **_k: [])
    monkeypatch.setattr(stack_run.pending_operations, "recover", lambda *_a, **_k: [])
    monkeypatch.setattr(stack_run.tier_change, "find", lambda *_a, **_k: None)
    monkeypatch.setattr(engine, "open_stack", lambda _spec, create=True: stack)
    monkeypatch.setattr(engine, "checkpoint_problem", lambda *_a: None)

    outcome = stack_run._run(_job(API_KEY))

    tag = stack.tags[stack_run.LAST_ERROR_TAG]
    assert "db.internal" in tag  # still says what failed
    for shown in (tag, *outcome.errors):
        assert PASSWORD not in shown and API_KEY not in shown, shown


def test_an_engine_error_outcome_is_redacted(monkeypatch):
    def broken(_spec, create=True):
        raise engine.EngineError(DSN_ERROR)

    monkeypatch.setattr(stack_run.stack_locks, "recover", lambda *_a, **_k: [])
    monkeypatch.setattr(engine, "open_stack", broken)

    outcome = stack_run._run(_job(API_KEY))

    assert outcome.errors and not any(PASSWORD in e or API_KEY in e for e in outcome.errors)


def test_status_shows_a_recorded_error_redacted(monkeypatch):
    """A tag written before redaction existed, or by hand, is redacted when status reads it."""
    stack = FakeStack()
    stack.tags[stack_run.LAST_ERROR_TAG] = DSN_ERROR
    stack.outputs = lambda: {}
    stack.history = lambda page_size: []
    monkeypatch.setattr(engine, "open_stack", lambda _spec, create=True: stack)

    facts = fleet_status.read_stack(_job(API_KEY).spec, refresh=False)

    assert facts.last_error and PASSWORD not in facts.last_error and API_KEY not in facts.last_error


def test_a_tenant_file_problem_is_logged_redacted(monkeypatch, tenants_dir):
    import pulumi

    from program import tenant as tenant_program

    (tenants_dir / "broken.yaml").write_text(f"slug: broken\nservicedesk:\n  url: https://u:{PASSWORD}@x.example\n")
    logged = []
    monkeypatch.setattr(pulumi.log, "error", lambda message, *a, **k: logged.append(message))
    with pytest.raises(pulumi.RunError) as info:
        tenant_program._load(tenants_dir)
    assert logged and not any(PASSWORD in line for line in logged)
    assert PASSWORD not in str(info.value)


def test_a_command_error_line_is_redacted(monkeypatch):
    import io

    from rich.console import Console

    from tenantctl import app as cli

    printed = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=printed, highlight=False, soft_wrap=True))
    cli.fail(DSN_ERROR, details=[f"detail postgresql://u:{PASSWORD}@h/db"])
    assert "db.internal" in printed.getvalue() and PASSWORD not in printed.getvalue()
