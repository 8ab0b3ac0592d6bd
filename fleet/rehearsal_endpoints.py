"""The rehearsal environment as `verify --rehearsal` and `handoff --rehearsal` reach it (fleet rule 1).

The state a rehearsal left names its services: its database, its Fernet key, the receiver's port (the
tenants' webhook URLs), the AWS emulator and the region. PostgreSQL and the receiver are started for the
while when nothing runs them (`rehearsal_sources`, the receiver on its recorded port) and stopped again;
the AWS emulator is only used if its state folder keeps it running (a restarted one holds nothing). Where the
rehearsal applies to a Kubernetes API server of its own, that is up for the while too (verify's Kubernetes checks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from components.providers import LOCAL_AWS_ACCESS_KEY, LOCAL_AWS_SECRET_KEY
from fleet.rehearsal import STACK
from fleet.rehearse import _receiver, _recorded_rehearsal, rehearsal_cluster_sources
from services import aws_emulator
from services.kube_apiserver import LocalKubeApiServer
from tenancy import app_schema, db

RECEIVER_HOST = "127.0.0.1"


@dataclass(frozen=True)
class RehearsalEndpoints:
    database_url: str | None  # the provisioner's (None: only the handoff's static facts were asked for)
    app_database_url: str | None
    fernet_key: str
    webhook_base_url: str
    aws_endpoint: str | None  # None: the emulator is not running, and the secrets it held are gone
    region: str
    shared_namespace: str
    env: str = STACK
    kube: LocalKubeApiServer | None = None  # the rehearsal's API server, up for the while (verify)

    def aws_environment(self) -> dict[str, str]:
        """The aws CLI's environment for the emulator: the placeholders the program's own provider uses."""
        import os

        return {**os.environ, "AWS_ACCESS_KEY_ID": LOCAL_AWS_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": LOCAL_AWS_SECRET_KEY}


def _recorded(tenants_dir: Path, database_url: str | None, state_base: Path | None):
    from fleet.rehearsal import _plain_stack_config

    root, state_dir, state = _recorded_rehearsal(tenants_dir, database_url, state_base)
    plain = _plain_stack_config(root)
    return state_dir, state, plain.get("aws:region", "us-east-1"), plain.get("sharedNamespace", "production")


def recorded_endpoints(tenants_dir: Path, database_url: str | None, state_base: Path | None) -> RehearsalEndpoints:
    """What the last rehearsal recorded, with no service started (the handoff). EngineError when there is none."""
    state_dir, state, region, shared = _recorded(tenants_dir, database_url, state_base)
    port = state.environment.get("receiver_port")
    return RehearsalEndpoints(None, None, state.environment["secrets"].get("fernetKey", ""),
                              f"http://{RECEIVER_HOST}:{port}", aws_emulator.running_endpoint(state_dir), region,
                              shared)


@contextlib.contextmanager
def running_endpoints(tenants_dir: Path, database_url: str | None, app_database_url: str | None,
                      state_base: Path | None, say: Callable[[str], None]) -> Iterator[RehearsalEndpoints]:
    """The rehearsal's database and receiver, up for the while (verify). EngineError when there is no rehearsal,
    RehearseFailure when a service cannot start."""
    state_dir, state, region, shared = _recorded(tenants_dir, database_url, state_base)
    fernet_key = state.environment["secrets"].get("fernetKey", "")
    with rehearsal_cluster_sources(tenants_dir, database_url, state_base, say) as (_spec_for, _stacks, url, kube):
        app_url = app_database_url or db.with_user(url, app_schema.APP_ROLE)
        with _receiver(app_url, fernet_key, state.environment.get("receiver_port", 0), say) as receiver:
            yield RehearsalEndpoints(url, app_url, fernet_key, receiver.base_url,
                                     aws_emulator.running_endpoint(state_dir), region, shared, kube=kube)
