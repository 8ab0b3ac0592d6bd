"""Fixtures of the tenantctl tests: an S3 backend's bucket on moto's server (tests/s3server.py)."""

from __future__ import annotations

import pytest

from tests.s3server import DUMMY_CREDENTIALS, new_bucket, s3_server


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
