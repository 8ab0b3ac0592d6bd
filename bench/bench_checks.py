"""Benchmark: the post-deploy checks for one tenant, and a whole rehearsal of two tenants.

- checks: `run_webhook_checks` + `run_rls_checks` for one onboarded tenant against a local PostgreSQL
  and the reference webhook receiver (both already running), repeated; aim < 500 ms each round.
- rehearse: `python -m tenantctl rehearse` for the two example tenants in a fresh process with an
  empty state directory, so PostgreSQL's initdb and start are included; then the second (no-change)
  run and `--destroy`. Aim: the first run < 15 s.

    python bench/bench_checks.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHECKS_TARGET_S = 0.5
REHEARSE_TARGET_S = 15.0


def bench_checks(repeat: int) -> dict:
    import secrets

    from cryptography.fernet import Fernet

    from checks.rls import run_rls_checks
    from checks.webhook import run_webhook_checks
    from components.dynamic.tenant_config_row import TenantConfigRowProvider
    from services.localpg import LocalPostgres
    from services.receiver import WebhookReceiver

    with LocalPostgres() as postgres:
        postgres.create_database("app")
        postgres.load_schema("app")
        fernet_key = Fernet.generate_key().decode()
        tenant_id, signing_secret = str(uuid.uuid4()), secrets.token_urlsafe(36)
        TenantConfigRowProvider().create({
            "tenant_id": tenant_id, "name": "Bench", "servicedesk_url": "https://bench.example.com",
            "enhancement_preferences": {}, "servicedesk_api_key": "k", "webhook_signing_secret": signing_secret,
            "fernet_key": fernet_key, "database_url": postgres.dsn("tenant_provisioner", "app"),
        })
        app_dsn = postgres.dsn("app_user", "app")
        with WebhookReceiver(app_dsn, fernet_key) as receiver:
            url = receiver.webhook_url(tenant_id)
            webhook, rls, total = [], [], []
            for _ in range(repeat):
                start = time.perf_counter()
                assert run_webhook_checks(url, signing_secret, tenant_id).ok
                middle = time.perf_counter()
                assert run_rls_checks(app_dsn, tenant_id).ok
                end = time.perf_counter()
                webhook.append(middle - start)
                rls.append(end - middle)
                total.append(end - start)
    return {
        "webhook_median_s": statistics.median(webhook),
        "rls_median_s": statistics.median(rls),
        "both_median_s": statistics.median(total),
        "both_max_s": max(total),
        "target_s": CHECKS_TARGET_S,
        "met": statistics.median(total) < CHECKS_TARGET_S,
    }


def bench_rehearse() -> dict:
    base = Path(tempfile.mkdtemp(prefix="bench-rehearse-"))
    os.chmod(base, 0o755)  # noqa: S103 (the postgres OS user must reach the cluster directory)
    command = [sys.executable, "-m", "tenantctl", "rehearse", "--json", "--state-dir", str(base)]
    timings = {}
    try:
        for label, extra in (("first_s", []), ("second_s", []), ("destroy_s", ["--destroy"])):
            start = time.perf_counter()
            result = subprocess.run([*command, *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)
            timings[label] = time.perf_counter() - start
            if result.returncode != 0:
                raise SystemExit(f"rehearse {label} failed:\n{result.stderr}")
            if label == "second_s":
                timings["second_changes"] = json.loads(result.stdout)["changes"]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    timings.update(target_s=REHEARSE_TARGET_S, met=timings["first_s"] < REHEARSE_TARGET_S)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps({"checks": bench_checks(args.repeat), "rehearse": bench_rehearse()}, indent=2))


if __name__ == "__main__":
    main()
