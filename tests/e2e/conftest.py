"""End-to-end fixtures: the real Pulumi engine (built by `make setup`) on a local file backend.

Every test here runs the engine for real: a missing engine is a failure that says how to get it, never
a skip. Each test gets its own backend, AWS emulator and database, through `tenantctl rehearse`'s own
code path (`run_rehearse`), so what is tested is what an operator runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet import engine, rehearsal_cluster
from fleet.rehearsal import STACK
from fleet.rehearse import _state_dir, existing_stack, run_rehearse
from services import aws_emulator
from services.kube_apiserver import BINARIES, BUILD_HINT, default_bin_dir
from tests.conftest import ROOT


@pytest.fixture(scope="session", autouse=True)
def real_engine() -> str:
    try:
        version = engine.engine_version(ROOT)
    except engine.EngineError as exc:
        pytest.fail(f"the end-to-end tests need the real Pulumi engine: {exc}", pytrace=False)
    # Every rehearsal applies its Kubernetes objects to a local API server of its own (fleet.rehearsal_cluster).
    missing = [name for name in BINARIES if not (default_bin_dir() / name).is_file()]
    if missing:
        pytest.fail(f"the end-to-end tests need the local Kubernetes control plane: {', '.join(missing)} not found "
                    f"in {default_bin_dir()}; {BUILD_HINT}", pytrace=False)
    return version


@dataclass
class Rehearsal:
    app_db: object
    tenants_dir: Path
    state_base: Path
    database_url: str

    # Every stack runs unless a test asks for skipping (force=False): what these tests assert after a change, a
    # recovery or a migration is the engine's own word (fleet rule 7), never a digest's. The rehearsal's Kubernetes
    # API server is kept running from one run of a test to the next (`--keep-running`; the fixture stops it): a
    # start and a stop each run would cost seconds, many times over (fleet rule 8). Starting and stopping it with
    # the run is tested in tests/fleet/test_rehearsal_cluster.py and by tests/tenantctl/test_rehearse.py's commands.
    def up(self, **kwargs):
        kwargs.setdefault("force", True)
        kwargs.setdefault("keep_running", True)
        return run_rehearse(self.tenants_dir, kwargs.pop("database_url", self.database_url), self.app_db.app_dsn,
                            False, state_base=self.state_base, **kwargs)

    def preview(self, force: bool = True):
        return run_rehearse(self.tenants_dir, self.database_url, self.app_db.app_dsn, False,
                            state_base=self.state_base, preview=True, force=force, keep_running=True)

    def stack(self, name: str = STACK):
        """A stack of the rehearsal environment: its platform stack, or `rehearsal.<slug>`."""
        return existing_stack(self.tenants_dir, self.database_url, self.state_base, name)

    @property
    def state_dir(self) -> Path:
        return _state_dir(self.state_base, self.database_url)

    def leave_pending(self, stack_name: str, suffix: str, operation: str | None = "creating") -> dict:
        """The stack's checkpoint as an interruption leaves it for its resource whose URN ends with `suffix`
        (returned as it was): "creating", a kill between the engine's request and the provider's answer (the
        object exists, the checkpoint holds only a pending create); None, a provider stopped under a live engine
        (issue 19: the checkpoint holds nothing of it); "deleting", a kill during its delete (the checkpoint
        still holds it, and a pending delete). Written into the file backend's checkpoint, because `pulumi stack
        import` clears pending operations."""
        import json

        [path] = self.state_dir.glob(f"backend/.pulumi/stacks/*/{stack_name}.json")
        checkpoint = json.loads(path.read_text())
        deployment = checkpoint["checkpoint"]["latest"]
        [resource] = [r for r in deployment["resources"] if r["urn"].endswith(suffix)]
        if operation != "deleting":
            deployment["resources"] = [r for r in deployment["resources"] if r is not resource]
            for other in deployment["resources"]:
                other["dependencies"] = [d for d in other.get("dependencies", []) if d != resource["urn"]]
                for key, deps in list((other.get("propertyDependencies") or {}).items()):
                    other["propertyDependencies"][key] = [d for d in deps if d != resource["urn"]]
        if operation is not None:
            pending = resource if operation == "deleting" else {k: v for k, v in resource.items()
                                                               if k not in ("outputs", "id")}
            deployment["pending_operations"] = [*(deployment.get("pending_operations") or []),
                                                {"resource": pending, "type": operation}]
        path.write_text(json.dumps(checkpoint))
        return resource


@pytest.fixture
def rehearsal(app_db, tenants_dir, tmp_path, request) -> Iterator[Rehearsal]:
    """A rehearsal environment on `app_db`, sharing its Fernet key so the checks can read the rows.

    A test marked `kubernetes_api` gets what `tenantctl rehearse` does: its stacks apply to the rehearsal's own
    Kubernetes API server. The others (the fleet's mechanics: locks, crashes, digests, removals, offboarding) render
    their Kubernetes objects to files, as a state folder begun that way does (rehearsal_cluster.kubernetes_mode): a
    control plane per test would put `make test` far past its 15 minutes (fleet rule 8, which the page settles over
    issue 23's "the end-to-end suite runs on it"), and what they prove does not depend on where the objects go."""
    from fleet.rehearsal import STATE_FILE, RehearsalState

    rehearsal = Rehearsal(app_db, tenants_dir, tmp_path / "state", app_db.provisioner_dsn)
    state = RehearsalState.load(rehearsal.state_dir / STATE_FILE)
    state.secret("fernetKey", lambda: app_db.fernet_key)
    if request.node.get_closest_marker("kubernetes_api") is None:
        state.environment[rehearsal_cluster.MODE_KEY] = rehearsal_cluster.RENDERED
    state.save()
    try:
        yield rehearsal
    finally:
        aws_emulator.stop(rehearsal.state_dir)
        # The API servers kept running (`keep_running`), of every state folder a test's runs used.
        for state_dir in [rehearsal.state_dir, *rehearsal.state_base.glob("*/")]:
            rehearsal_cluster.stop_kept(state_dir)


def linked_project(tmp_path: Path, tenants_dir: Path) -> Path:
    """This project as an operator has it (linked), with its own tenants and an empty `stacks/`: only the backend
    holds the stacks."""
    import shutil

    project = tmp_path / "project"
    project.mkdir()
    for name in ("__main__.py", "program", "components", "tenantctl",
                 "tenancy", "checks", "fleet", "services", ".venv"):
        (project / name).symlink_to(ROOT / name)
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "stacks").mkdir()
    shutil.copytree(tenants_dir, project / "tenants")
    return project
