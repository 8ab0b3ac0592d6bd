"""Writes N valid tenant files, in the format `tenantctl new` writes, for the benchmarks.

Files come from the same template as `tenantctl new` (`tenancy.scaffold.TEMPLATE`), with unique slugs
(`bench-00001`, ...) and unique tenant ids. Ids are UUIDs derived from the slug (uuid5), so a given N
always produces the same files and two runs benchmark the same input. Every `premium_every`-th tenant is
premium (its own namespace, quota, network policies and RBAC); the rest are basic.

    python bench/generate.py 1000 /tmp/tenants
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tenancy.model import Tier  # noqa: E402
from tenancy.scaffold import PREMIUM_RESOURCES, TEMPLATE  # noqa: E402

# Fixed namespace so generated tenant ids are stable across runs but unlike any real tenant's.
BENCH_NAMESPACE = uuid.UUID("6f1c5d0e-8a51-4c52-9a3e-2f6d7b1e0b51")
DEFAULT_PREMIUM_EVERY = 3


def bench_slug(index: int) -> str:
    return f"bench-{index:05d}"


def tenant_text(index: int, tier: Tier) -> str:
    """One tenant file, exactly as `tenantctl new` would write it (string values JSON-quoted)."""
    slug = bench_slug(index)
    return TEMPLATE.format(
        tenant_id=uuid.uuid5(BENCH_NAMESPACE, slug),
        slug=slug,
        name=json.dumps(f"Bench Client {index:05d} Managed Services", ensure_ascii=False),
        tier=tier.value,
        url=json.dumps(f"https://{slug}.sdpondemand.example.com"),
        secret_key=f"{slug}-servicedesk-api-key",
        resources=PREMIUM_RESOURCES if tier is Tier.PREMIUM else "",
        admin_email=json.dumps(f"it-admin@{slug}.example.com"),
    )


def tier_of(index: int, premium_every: int = DEFAULT_PREMIUM_EVERY) -> Tier:
    return Tier.PREMIUM if premium_every > 0 and index % premium_every == 0 else Tier.BASIC


def generate(count: int, directory: Path, premium_every: int = DEFAULT_PREMIUM_EVERY) -> list[Path]:
    """Write `count` tenant files into `directory` (created if needed); refuses one that already holds tenant files."""
    directory.mkdir(parents=True, exist_ok=True)
    existing = [p for p in directory.iterdir() if p.suffix in (".yaml", ".yml")]
    if existing:
        raise SystemExit(f"{directory} already holds {len(existing)} tenant file(s); use an empty directory")
    paths = []
    for index in range(1, count + 1):
        path = directory / f"{bench_slug(index)}.yaml"
        path.write_text(tenant_text(index, tier_of(index, premium_every)), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="number of tenant files")
    parser.add_argument("directory", type=Path, help="where to write them (empty or missing)")
    parser.add_argument("--premium-every", type=int, default=DEFAULT_PREMIUM_EVERY,
                        help="every Nth tenant is premium (0: all basic); default %(default)s")
    args = parser.parse_args(argv)
    paths = generate(args.count, args.directory, args.premium_every)
    premium = sum(1 for i in range(1, args.count + 1) if tier_of(i, args.premium_every) is Tier.PREMIUM)
    print(f"wrote {len(paths)} tenant files ({premium} premium, {len(paths) - premium} basic) to {args.directory}")


if __name__ == "__main__":
    main()
