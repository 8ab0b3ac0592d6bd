"""Shared fixtures: the repository root, and a scratch tenants directory seeded with valid files."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3server import DUMMY_CREDENTIALS, new_bucket, s3_server

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = ["tests.pgfixtures"]

EXAMPLE_TENANTS = sorted((ROOT / "tenants").glob("*.yaml"))


@pytest.fixture(scope="session", autouse=True)
def service_watchdog(tmp_path_factory) -> Iterator[Path]:
    """This test process's folder, watched: what its tests leave running there is stopped when the process ends,
    a killed one included (tests/service_watchdog.py)."""
    from tests.service_watchdog import start

    run_dir = tmp_path_factory.getbasetemp()
    watchdog = start(run_dir)
    yield run_dir
    # This process is still running: the watchdog waits for its end, then stops whatever is left, and exits.
    del watchdog


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def tenants_dir(tmp_path: Path) -> Path:
    """A copy of the example tenant files, safe to edit."""
    target = tmp_path / "tenants"
    target.mkdir()
    for path in EXAMPLE_TENANTS:
        shutil.copy(path, target / path.name)
    return target


def pytest_terminal_summary(terminalreporter) -> None:
    """How many kill points each crash-test scenario covered (tests/e2e/test_fault_injection.py): a passed test
    records its scenario; a point the run never reached is skipped, and not counted."""
    covered: dict[str, int] = {}
    for report in terminalreporter.stats.get("passed", []):
        for name, value in getattr(report, "user_properties", []):
            if name == "kill_point":
                covered[value] = covered.get(value, 0) + 1
    if covered:
        terminalreporter.write_sep("-", "kill points covered")
        for scenario, count in sorted(covered.items()):
            terminalreporter.write_line(f"{scenario}: {count}")


# An S3 backend's bucket on moto's server (tests/s3server.py), for the S3 lock and id tests.
@pytest.fixture(scope="module")
def s3_endpoint():
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch):
    """A fresh bucket, with dummy credentials in the environment as boto3 reads them."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return new_bucket(s3_endpoint)
