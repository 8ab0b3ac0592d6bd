"""`tenantctl up` on an S3 backend with the real engine (fleet rules 1 and 5): the bucket is moto's, the same
server the AWS stand-in talks to; one tenant, so that it stays short. It runs in the weekly long profile
(TENANT_S3_E2E=1, .github/workflows/long-tests.yml), not in `make test`, which is at its time budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest

from fleet.engine import engine_environment, pulumi_binary
from services import aws_emulator
from services.receiver import WebhookReceiver
from tests.conftest import ROOT
from tests.e2e.conftest import linked_project
from tests.s3server import DUMMY_CREDENTIALS

PASSPHRASE = "tenantctl-s3-test"  # noqa: S105 (a throwaway local passphrase)

pytestmark = pytest.mark.skipif(os.environ.get("TENANT_S3_E2E") != "1",
                                reason="the weekly long profile: TENANT_S3_E2E=1")


def test_up_on_an_s3_backend_takes_the_lock_in_the_bucket_and_records_the_id_there(tmp_path, tenants_dir, app_db):
    project = linked_project(tmp_path, tenants_dir)
    (project / "tenants" / "globex.yaml").unlink()
    aws = aws_emulator.ensure_running(tmp_path / "aws")
    try:
        s3 = boto3.client("s3", endpoint_url=aws.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106
        s3.create_bucket(Bucket="fleet-state")
        url = f"s3://fleet-state/envs?region=us-east-1&endpoint={aws.endpoint}&s3ForcePathStyle=true"
        env = engine_environment(ROOT, {"PULUMI_BACKEND_URL": url, "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
                                        **DUMMY_CREDENTIALS})
        pulumi = str(pulumi_binary(ROOT))

        def run(*args):
            result = subprocess.run([pulumi, *args], cwd=project, env=env, capture_output=True, text=True,
                                    timeout=120)
            assert result.returncode == 0, result.stderr
            return result

        manifests = tmp_path / "manifests"
        with WebhookReceiver(app_db.app_dsn, app_db.fernet_key) as receiver:
            run("stack", "init", "test", "--secrets-provider", "passphrase")
            for key, value in (("webhookBaseUrl", receiver.base_url), ("kubernetesRenderDir", str(manifests))):
                run("config", "set", key, value, "--stack", "test")
            for key, value in (("databaseUrl", app_db.provisioner_dsn), ("appDatabaseUrl", app_db.app_dsn),
                               ("fernetKey", app_db.fernet_key)):
                run("config", "set", "--secret", key, value, "--stack", "test")
            run("stack", "init", "test.acme", "--secrets-provider", "passphrase")
            for key, value in (("aws:region", "us-east-1"), ("awsEndpoint", aws.endpoint),
                               ("kubernetesRenderDir", str(manifests))):
                run("config", "set", key, value, "--stack", "test.acme")
            run("config", "set", "--secret", "acme-servicedesk-api-key", "acme-key-1", "--stack", "test.acme")
            up = subprocess.run([sys.executable, "-m", "tenantctl", "up", "--env", "test", "--json"], cwd=project,
                                env=env, capture_output=True, text=True, timeout=900)
            keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="fleet-state")["Contents"])
            recorded = json.loads(s3.get_object(Bucket="fleet-state",
                                                Key="envs/.tenantctl/environments/test.json")["Body"].read())
            exported = run("config", "get", "environmentId", "--stack", "test").stdout.strip()
    finally:
        aws_emulator.stop(tmp_path / "aws")

    report = json.loads(up.stdout)
    assert up.returncode == 0, up.stdout + up.stderr
    assert report["platform"]["status"] == "ok" and [t["status"] for t in report["tenants"]] == ["ok"]
    assert "envs/.pulumi/stacks/tenant-onboarding/test.acme.json" in keys or any(
        k.startswith("envs/.pulumi/stacks/") and k.endswith("test.acme.json") for k in keys)
    assert "envs/.tenantctl/locks/test.json" not in keys  # released at the end of the run
    assert exported == recorded["environment_id"]
    assert app_db.execute("SELECT environment_id::text FROM tenantctl_environments") == [(exported,)]
    assert "testing" not in up.stdout + up.stderr and PASSPHRASE not in up.stdout + up.stderr
