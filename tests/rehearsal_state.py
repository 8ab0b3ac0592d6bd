"""A rehearsal's state as `tenantctl rehearse --database-url` leaves it, written without an engine run: what the
commands that act on the rehearsal (`--rehearsal`) read. Import the fixture where it is used:
`from tests.rehearsal_state import rehearsed  # noqa: F401`."""

from __future__ import annotations

import socket

import pytest

from fleet.rehearsal import STATE_FILE, RehearsalState
from fleet.rehearse import _state_dir
from tests.tenant_text import tenant_yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Nothing listens on `port` any more (a closed server's connections may linger: SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


@pytest.fixture
def rehearsed(app_db, tmp_path):
    """A rehearsal's state on app_db (as `rehearse --database-url` leaves it), and its tenant acme, whose row
    app_db holds. Returns the folder of tenants/ and state/ (the project is this repository's, as for the
    end-to-end tests' rehearsals) and the receiver's recorded port."""
    tenant = app_db.add_tenant()
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "acme.yaml").write_text(tenant_yaml("acme", tenant_id=str(tenant.tenant_id)))
    state = RehearsalState(_state_dir(tmp_path / "state", app_db.provisioner_dsn) / STATE_FILE)
    state.environment.update(receiver_port=free_port(),
                             secrets={"passphrase": "rehearsal-passphrase", "fernetKey": app_db.fernet_key})
    state.save()
    return tmp_path, state.environment["receiver_port"]
