"""How hints name the rehearsal (fleet.rehearse.rehearsal_option): a command that works as printed, and never the
database URL itself."""

from __future__ import annotations

from fleet.rehearse import REHEARSAL_DIR, _state_dir, rehearsal_option

SECRET_URL = "postgresql://tenant_provisioner:pw-s3cret@db.example.com:5432/app"  # noqa: S105 (a test value)


def test_the_default_rehearsal_is_named_by_the_option_alone(tmp_path):
    assert rehearsal_option(tmp_path, _state_dir(tmp_path / REHEARSAL_DIR, None)) == "--rehearsal"


def test_another_state_folder_is_named_too(tmp_path):
    option = rehearsal_option(tmp_path, _state_dir(tmp_path / "my state", None))
    assert option == f"--rehearsal --state-dir '{tmp_path / 'my state'}'"


def test_an_external_database_is_asked_for_without_its_url(tmp_path):
    option = rehearsal_option(tmp_path, _state_dir(tmp_path / REHEARSAL_DIR, SECRET_URL))
    assert option == "--rehearsal --database-url <the rehearsal's database URL>"
    assert "pw-s3cret" not in option
