"""Cost of one stack per tenant under the real engine at several fleet sizes.

For each size N: N generated tenants (bench/generate.py), each in its own stack, through `tenantctl
rehearse`'s own path (real engine, file backend, embedded PostgreSQL, moto, render mode, the post-deploy
checks on, stacks two at a time: this machine has two cores):
- full_up_s: the first `up` of the platform stack and all N tenant stacks, in waves;
- one_edit_s: `up --only <slug>` after one tenant's file changed (max_tokens): what `tenantctl up
  --changed-since` runs for a one-tenant pull request; it updates 1 row and 1 check;
- one_preview_s: `preview --only <slug>` of that tenant's stack (the pull request's preview);
- no_change_all_s: `up` of every stack with nothing changed (a shared-code change that changes nothing);
- tenant_state_bytes: one tenant stack's checkpoint; state_bytes: all checkpoints of the environment.
The figure that matters is one_edit_s against N: with a stack per tenant it should not grow.
The single-stack figures it is compared with (docs/benchmarks.md) came from this file's previous version.

    .venv/bin/python bench/bench_stacks.py --sizes 4 24 10 50 200
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
from fleet.rehearse import _state_dir, run_rehearse  # noqa: E402
from services import aws_emulator  # noqa: E402
from services.localpg import LocalPostgres  # noqa: E402


def _checkpoints(backend: Path, stack: str | None = None) -> int:
    pattern = f"{stack}.json" if stack else "*.json"
    return sum(p.stat().st_size for p in backend.rglob(pattern)
               if ".history" not in p.parts and "backups" not in p.parts and "stacks" in p.parts)


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
        preview = run_rehearse(tenants_dir, url, None, False, state_base=state_base, preview=True, only={edited.stem})
        one_preview = time.perf_counter() - start
        start = time.perf_counter()
        second = run_rehearse(tenants_dir, url, None, False, state_base=state_base, only={edited.stem})
        one_edit = time.perf_counter() - start
        start = time.perf_counter()
        third = run_rehearse(tenants_dir, url, None, False, state_base=state_base)
        no_change = time.perf_counter() - start
        backend = _state_dir(state_base, url) / "backend"
        return {
            "tenants": size,
            "resources": sum(first.summary.values()),
            "full_up_s": round(full_up, 1),
            "one_preview_s": round(one_preview, 1),
            "one_preview_changes": preview.changes,
            "one_edit_s": round(one_edit, 1),
            "one_edit_changes": second.changes,
            "no_change_all_s": round(no_change, 1),
            "no_change_all_changes": third.changes,
            "tenant_state_bytes": _checkpoints(backend, f"rehearsal.{edited.stem}"),
            "state_bytes": _checkpoints(backend),
        }
    finally:
        aws_emulator.stop(_state_dir(state_base, url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 24, 10, 50, 200])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-stacks-"))
    os.chmod(work, 0o755)  # noqa: S103 (the postgres OS user must reach the cluster directory)
    results = []
    try:
        with LocalPostgres(base_dir=work) as postgres:
            for size in args.sizes:
                results.append(measure(size, postgres, work))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    by_size = {r["tenants"]: r for r in results}
    if 4 in by_size and 24 in by_size:
        print(f"one-tenant edit, 24 vs 4 tenants: {by_size[24]['one_edit_s'] / by_size[4]['one_edit_s']:.2f}x",
              file=sys.stderr)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
