"""Runs every benchmark (`make bench`) and prints the results as Markdown, with a summary of the aims.

    python bench/run_all.py [--validate-repeat 5] [--plan-repeat 5] [--diagnose] [--json results.json]
                            [--release 20 50 [--release-clone-above 50]]

The engine benchmarks take too long for `make bench` and run on their own (docs/benchmarks.md): bench_floor.py,
bench_stacks.py and bench_release.py. `--release SIZES` adds bench_release.py's run at those sizes (a release that
changes nothing and one that changes 10 tenants, skip-aware; 20 and 50 tenants: about 40 minutes on a busy 2-core
machine).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bench_checks, bench_plan, bench_release, bench_validate  # noqa: E402


def machine() -> str:
    return (f"{os.cpu_count()} CPUs, Python {platform.python_version()} ({platform.python_implementation()}), "
            f"{platform.system()} {platform.release()}, {platform.machine()}")


def summary(validate: dict, plan: dict, checks: dict) -> str:
    rows = []
    target = validate["target_seconds"]
    for label, key in (("validate 1,000 files, in-process", "in_process"), ("validate 1,000 files, end to end",
                                                                          "end_to_end")):
        value = validate[key]["median"]
        rows.append((label, f"{value:.2f} s", f"< {target} s", value < target))
    if "linearity" in plan:
        value = plan["linearity"]["plan"]
        rows.append(("plan per-tenant cost, 1,000 over 100", f"{value:.2f}x", f"≤ {bench_plan.LINEARITY_AIM}x",
                     value <= bench_plan.LINEARITY_AIM))
    for size, value in plan["vs_floor"].items():
        rows.append((f"plan per-resource cost over the SDK floor, {size} tenants", f"{value:.2f}x",
                     f"≤ {bench_plan.FLOOR_AIM}x", value <= bench_plan.FLOOR_AIM))
    both = checks["checks"]
    rows.append(("both checks for one tenant (webhook + RLS)", f"{both['both_median_s'] * 1000:.0f} ms",
                 f"< {both['target_s'] * 1000:.0f} ms", both["met"]))
    rehearse = checks["rehearse"]
    rows.append(("rehearse two tenants, PostgreSQL initdb and start included", f"{rehearse['first_s']:.1f} s",
                 f"< {rehearse['target_s']:.0f} s", rehearse["met"]))
    lines = ["| aim | measured (median) | target | met |", "|---|---:|---:|---|"]
    lines += [f"| {label} | {value} | {aim} | {'yes' if met else '**no**'} |" for label, value, aim, met in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validate-repeat", type=int, default=5)
    parser.add_argument("--plan-repeat", type=int, default=5)
    parser.add_argument("--diagnose", action="store_true", help="also run bench_plan's diagnostic variants")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--release", type=int, nargs="+", metavar="SIZE",
                        help="also run bench_release.py at these fleet sizes (the real engine: tens of minutes)")
    parser.add_argument("--release-clone-above", type=int, metavar="N",
                        help="bench_release.py's --clone-above: larger sizes add their stacks by its shortcut")
    args = parser.parse_args(argv)

    started = datetime.datetime.now().astimezone()
    print(f"benchmarking on {machine()}; started {started:%Y-%m-%d %H:%M %Z}", file=sys.stderr, flush=True)
    validate = bench_validate.run(files=1000, repeat=args.validate_repeat)
    print(bench_validate.markdown(validate), file=sys.stderr, flush=True)  # progress: plan takes minutes
    plan = bench_plan.run(sizes=(100, 1000), repeat=args.plan_repeat, diagnose=args.diagnose)
    checks = {"checks": bench_checks.bench_checks(20), "rehearse": bench_checks.bench_rehearse()}
    release = bench_release.run(args.release, clone_above=args.release_clone_above) if args.release else None
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "started": started.isoformat(),
                                         "validate": validate, "plan": plan, "checks": checks, "release": release},
                                        indent=2))
    print(f"## Benchmarks ({started:%Y-%m-%d}; {machine()})\n")
    print(summary(validate, plan, checks))
    print()
    print(bench_validate.markdown(validate))
    print()
    print(bench_plan.markdown(plan))
    if release:
        print()
        print(bench_release.markdown(release))


if __name__ == "__main__":
    main()
