"""The AWS emulator belongs to its state folder: reused, stopped by its owner, never a stranger (rule 6)."""

from __future__ import annotations

import json
import subprocess

from services import aws_emulator, process_records


def test_it_is_started_once_reused_and_stopped_by_its_state_folder(tmp_path):
    first = aws_emulator.ensure_running(tmp_path)
    try:
        again = aws_emulator.ensure_running(tmp_path)
        assert first.fresh and not again.fresh and again.endpoint == first.endpoint
        record = process_records.ProcessRecord.from_dict(json.loads((tmp_path / "aws-emulator").read_text()))
        assert record is not None and process_records.is_running(record)
    finally:
        assert aws_emulator.stop(tmp_path)
    assert not process_records.is_running(record)


def test_a_recorded_pid_that_now_belongs_to_another_process_is_never_signalled(tmp_path):
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        # A record of an emulator long gone whose pid the kernel has since given to `stranger`.
        (tmp_path / "aws-emulator").write_text(json.dumps(
            {"pid": stranger.pid, "started_ticks": 1, "boot_id": process_records.boot_id(), "port": 1}))
        assert aws_emulator.stop(tmp_path)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_rehearse_stop_stops_what_each_state_folder_keeps_running(tmp_path):
    from typer.testing import CliRunner

    from tenantctl.cli import app

    emulator = aws_emulator.ensure_running(tmp_path / "state" / "embedded")
    record = process_records.record_of(emulator.pid)

    result = CliRunner().invoke(app, ["rehearse", "--stop", "--state-dir", str(tmp_path / "state")])

    assert result.exit_code == 0, result.output
    assert "AWS emulator is not running" in result.stderr
    assert not process_records.is_running(record)
