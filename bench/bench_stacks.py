"""Cost of the single-stack layout under the real engine at several fleet sizes (stack-per-tenant baseline).

For each size N: N generated tenants (bench/generate.py) in ONE stack, through `tenantctl rehearse`'s own
path (real engine, file backend, embedded PostgreSQL, moto, render mode, the post-deploy checks on):
- full_up_s: the first `pulumi up` of all N tenants;
- one_edit_s: `pulumi up` after one tenant's file changed (max_tokens), which updates 1 row and 1 check;
- targeted_preview_s: `pulumi preview --target <one TenantStack> --target-dependents`;
- state_bytes: the stack's checkpoint on disk; resources: what the engine counted.
The interesting figure is how one_edit_s and targeted_preview_s grow with N: a one-tenant change should
not cost more as the fleet grows, and in one stack it does.

    .venv/bin/python bench/bench_stacks.py --sizes 10 50 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.generate import generate  # noqa: E402
from components.naming import tenant_stack_urn  # noqa: E402
from tenantctl import aws_emulator  # noqa: E402
from tenantctl.localpg import LocalPostgres  # noqa: E402
from tenantctl.rehearsal import STACK  # noqa: E402
from tenantctl.rehearse_command import _state_dir, existing_stack, run_rehearse  # noqa: E402


def measure(size: int, postgres: LocalPostgres, work: Path) -> dict:
    tenants_dir = work / f"tenants-{size}"
    generate(size, tenants_dir)
    database = f"bench_{size}"
    postgres.create_database(database)
    postgres.load_schema(database)
    url = postgres.dsn(user="tenant_provisioner", dbname=database)
    state_base = work / f"state-{size}"
    try:
        start = time.perf_counter()
        first = run_rehearse(tenants_dir, url, None, False, state_base=state_base)
        full_up = time.perf_counter() - start
        if not first.ok:
            failed = [(t.slug, t.errors[:1]) for t in first.tenants if t.status == "failed"]
            raise SystemExit(f"up of {size} tenants failed: {first.errors[:3]}; {len(failed)} tenant(s): {failed[:3]}")
        edited = sorted(tenants_dir.glob("*.yaml"))[size // 2]
        edited.write_text(edited.read_text().replace("max_tokens: 500", "max_tokens: 700"))
        start = time.perf_counter()
        second = run_rehearse(tenants_dir, url, None, False, state_base=state_base)
        one_edit = time.perf_counter() - start
        stack = existing_stack(tenants_dir, url, state_base)
        start = time.perf_counter()
        stack.preview(color="never", target=[tenant_stack_urn(STACK, edited.stem)], target_dependents=True)
        targeted = time.perf_counter() - start
        state_bytes = sum(p.stat().st_size for p in (_state_dir(state_base, url) / "backend").rglob("*.json")
                          if ".history" not in p.parts and "backups" not in p.parts)
        return {
            "tenants": size,
            "resources": sum(first.summary.values()),
            "full_up_s": round(full_up, 1),
            "one_edit_s": round(one_edit, 1),
            "one_edit_changes": second.changes,
            "targeted_preview_s": round(targeted, 1),
            "state_bytes": state_bytes,
        }
    finally:
        aws_emulator.stop(_state_dir(state_base, url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-stacks-"))
    os.chmod(work, 0o755)  # noqa: S103 (the postgres OS user must reach the cluster directory)
    try:
        with LocalPostgres(base_dir=work) as postgres:
            results = [measure(size, postgres, work) for size in args.sizes]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
