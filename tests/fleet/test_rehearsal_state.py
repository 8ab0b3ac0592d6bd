"""The rehearsal's generated secrets are on disk before anything uses them (write before you need it)."""

from __future__ import annotations

import os

from fleet.rehearsal import STATE_FILE, RehearsalState, spec_maker
from tests.conftest import ROOT


def test_the_passphrase_is_saved_before_any_stack_can_use_it(tmp_path, tenants_dir):
    state = RehearsalState.load(tmp_path / STATE_FILE)

    spec = spec_maker(ROOT, tenants_dir, state, tmp_path, None)("rehearsal", None)

    # A run killed right here (before its own save) must leave the passphrase its stacks will be encrypted with.
    on_disk = RehearsalState.load(tmp_path / STATE_FILE).environment["secrets"]["passphrase"]
    assert on_disk == spec.backend.passphrase


def test_a_generated_secret_is_never_regenerated_and_the_file_stays_private(tmp_path):
    state = RehearsalState.load(tmp_path / STATE_FILE)
    first = state.secret("fernetKey", lambda: "one")
    again = RehearsalState.load(tmp_path / STATE_FILE).secret("fernetKey", lambda: "two")

    assert first == again == "one"
    assert oct(os.stat(tmp_path / STATE_FILE).st_mode & 0o777) == "0o600"
