"""What a release costs with skipping on: one that changes nothing, and one that changes 10 tenants (issue 22).

One environment (the rehearsal's code path: the real engine, file backend, PostgreSQL, moto, render mode, the
post-deploy checks on, stacks two at a time) grows through the sizes in order: at each size N the tenants
directory holds bench/generate.py's first N files, and the stacks of the new tenants are created first, outside
the timed part (a skip-aware `up`: the converged ones are skipped). Then, at that size, in this order:

- `unit`: one tenant stack's no-change `up`, forced (`rehearse --only SLUG --force`: the engine runs it). The
  tenant stack's own seconds, as the run reports them, are the unit of the ratios; the whole command (services,
  the platform stack's `up`, the one tenant stack) is reported beside it;
- `no_change`: a release that changes nothing, skip-aware (`rehearse`, which is `tenantctl up`'s path): its
  wall time, and how many tenant stacks were skipped and ran. Every digest is computed afresh in every run, so
  a release that touches shared code without changing any desired state (a comment in program/ or components/:
  tests/e2e/test_release_digest.py proves those digests equal) costs what this one costs;
- `ten_changed`: a release after `max_tokens` changed in 10 tenant files, spread over the fleet: its wall time,
  and how many ran and were skipped (10 must run, and change).

Each figure carries the load average before and after (`os.getloadavg()`: the machine is shared), and the
progress lines of the run, stamped, so each phase (services, the platform's `up`, the digests, the waves) can be
read off. The ratios the issue sets are computed from figures of the same run:
no-change release ≤ 10x the unit at 200 tenants and ≤ 30x at 1,000; 10-of-200 ≤ 1.5x 10-of-20.

**The shortcut (`--clone-above R`, bench/release_clones.py).** Creating a stack costs about 15 s of machine time
here, so sizes above R may add their stacks by cloning, outside the timed part, instead of creating them with the
engine. A clone copies a converged real stack of the same tier (bench-00001 basic, bench-00003 premium; never one
of the changed ones): its checkpoint, its newest history entry, its tags and its stack file, with the template's
slug, tenant id (with and without dashes), name and exported file digest rewritten to the clone's. Its
`tenant:applied-digest` tag is then recorded as a successful `up` records it (`fleet.desired_state.applied_digest`:
from the clone's stack file alone, with the environment's shared inputs), its generated secrets are the
template's values (which the copied ciphertext holds), and its `tenant_configs` row is copied from the template's
with the clone's id, name and URL. A clone's tenant id sorts after every real one, in clone order, so adding clones
moves the isolation-check peers (checks/peers.py) of only the last two real tenants by id, which a real `up --only`
then runs, and of the last two earlier clones, which are cloned again.
The skipped path reads, for a clone, exactly what it reads for a real stack: the stack's existence and tags by
the CLI, its stack file and the program offline for the digest, its checkpoint, history and lock files, and the
rows the rehearsal counts. The 10 changed stacks are always real stacks, and really run. What a clone lacks: its
cloud objects (its KMS key and secret in moto: its checkpoint names the template's) and its check's peer list in
the checkpoint's inputs (the template's); nothing on the skipped path reads either, the check's diff ignores the
peers, and the bench never runs a clone. Before any figure is taken, a forced engine preview of one basic and one
premium clone must show no change, and the no-change release must skip every stack; otherwise the run stops and
publishes nothing for that size. Rows measured with clones say so (`clones`).

    .venv/bin/python bench/bench_release.py --sizes 20 50 200 1000 --clone-above 50 --json /tmp/release.json
    .venv/bin/python bench/bench_release.py --sizes 4 6 --clone-above 4 --changed 1  # the shortcut, smallest
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.generate import bench_slug, generate  # noqa: E402
from fleet.rehearse import _state_dir, run_rehearse  # noqa: E402
from services import aws_emulator  # noqa: E402
from services.localpg import LocalPostgres  # noqa: E402

ENV = "rehearsal"
DATABASE = "release"
CHANGED = 10
UNIT_SLUG = bench_slug(2)  # basic, never changed, never a clone's template
TEMPLATES = (1, 3)  # the real stacks clones copy (bench/release_clones.py): basic, premium
AIMS = {"no_change_200": 10.0, "no_change_1000": 30.0, "ten_of_200_vs_20": 1.5}
STACK_SECONDS = re.compile(r"^\s+(?P<stack>\S+): (?P<status>\w+) \(.*; (?P<seconds>[0-9.]+) s\)$")


class Progress:
    """The run's progress lines, stamped with seconds since it started."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.lines: list[tuple[float, str]] = []

    def __call__(self, line: str) -> None:
        self.lines.append((round(time.perf_counter() - self.started, 2), line))

    def stack_seconds(self, stack: str) -> float | None:
        for _, line in self.lines:
            found = STACK_SECONDS.match(line)
            if found and found["stack"] == stack:
                return float(found["seconds"])
        return None

    def phases(self) -> dict[str, float]:
        """When the platform's `up` started, the digests started, and the first and last stack finished."""
        marks: dict[str, float] = {}
        for at, line in self.lines:
            if line.startswith("pulumi up of the platform stack"):
                marks.setdefault("platform_started", at)
            elif line.startswith("desired-state digests of"):
                marks.setdefault("digests_started", at)
            elif line.startswith("wave "):
                marks.setdefault("waves_started", at)
            elif STACK_SECONDS.match(line) and "platform_started" in marks and "platform_done" not in marks:
                marks["platform_done"] = at
        return marks


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed_rehearse(tenants_dir: Path, url: str, state_base: Path, **options) -> tuple[float, object, Progress]:
    progress = Progress()
    started = time.perf_counter()
    result = run_rehearse(tenants_dir, url, None, False, state_base=state_base, progress=progress, **options)
    return round(time.perf_counter() - started, 2), result, progress


def profiled(path: Path, tenants_dir: Path, url: str, state_base: Path, log) -> None:
    """One more no-change release, untimed, under cProfile (this process only: the digest workers and the
    engine's processes show as the waits on them), written to `path` for `python -m pstats`."""
    import cProfile

    path.parent.mkdir(parents=True, exist_ok=True)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        _, result, _ = timed_rehearse(tenants_dir, url, state_base)
    finally:
        profiler.disable()
        profiler.dump_stats(path)
    require_ok(result, "the profiled no-change release")
    log(f"profile of a no-change release: {path}")


def require_ok(result, what: str) -> None:
    if not result.ok:
        failed = [(t.slug, t.errors[:1]) for t in result.tenants if t.status == "failed"]
        raise SystemExit(f"{what} failed: {result.errors[:3]}; {len(failed)} tenant(s): {failed[:3]}")


def counts(result) -> dict[str, int]:
    ran = [t for t in result.tenants if t.status != "skipped"]
    return {"skipped": len(result.skipped), "ran": len(ran),
            "changed": sum(1 for t in ran if t.status in ("updated", "created")), "changes": result.changes}


def changed_slugs(real: int, count: int) -> list[str]:
    """`count` real tenants spread over 1..real, never the unit's stack nor a clone's template."""
    keep = {UNIT_SLUG, *(bench_slug(i) for i in TEMPLATES)}
    pool = [bench_slug(i) for i in range(1, real + 1) if bench_slug(i) not in keep]
    if len(pool) < count:
        raise SystemExit(f"{count} tenants to change, but only {len(pool)} real ones may change")
    step = len(pool) / count
    return [pool[int(i * step)] for i in range(count)]


def set_max_tokens(path: Path, value: int) -> None:
    text, found = re.subn(r"(?m)^(\s*max_tokens: )\d+$", rf"\g<1>{value}", path.read_text())
    if found != 1:
        raise SystemExit(f"{path}: no single max_tokens line to change")
    path.write_text(text)


# ---- the run ----

def measure_size(size: int, files: Path, tenants_dir: Path, url: str, admin_url: str, state_base: Path,
                 real: int, changed: int, round_number: int, log, measure: bool = True,
                 profile: Path | None = None) -> dict:
    state_dir = _state_dir(state_base, url)
    present = {p.name for p in tenants_dir.glob("*.yaml")}
    for path in sorted(files.glob("*.yaml"))[:size]:
        if path.name not in present:
            shutil.copy(path, tenants_dir / path.name)
    row: dict = {"tenants": size, "real_stacks": min(size, real), "clones": max(0, size - real)}
    # Untimed: the new tenants' stacks, created by the engine (or cloned, above `real`).
    started = time.perf_counter()
    if size <= real or not any(state_dir.glob("backend")):
        _, created, _ = timed_rehearse(tenants_dir, url, state_base)
        require_ok(created, f"creating the stacks of {size} tenants")
    else:
        import importlib

        clones = importlib.import_module("bench.release_clones")  # only now: a size that uses the shortcut
        row.update(clones.add(state_dir, tenants_dir, url, admin_url, state_base, real, size, timed_rehearse))
    row["setup_s"] = round(time.perf_counter() - started, 1)
    log(f"{size} tenants: stacks ready in {row['setup_s']} s")
    if not measure:
        return row

    # The unit: one stack's no-change up, forced (the engine runs it).
    before = load()
    wall, unit, progress = timed_rehearse(tenants_dir, url, state_base, only={UNIT_SLUG}, force=True)
    require_ok(unit, "the unit's forced up")
    row["unit"] = {"stack": f"{ENV}.{UNIT_SLUG}", "stack_s": progress.stack_seconds(f"{ENV}.{UNIT_SLUG}"),
                   "command_s": wall, "platform_s": progress.stack_seconds(ENV), "changes": unit.changes,
                   "load_before": before, "load_after": load()}
    log(f"{size} tenants: unit {row['unit']}")

    # A release that changes nothing.
    before = load()
    wall, nothing, progress = timed_rehearse(tenants_dir, url, state_base)
    require_ok(nothing, "the no-change release")
    row["no_change"] = {"wall_s": wall, **counts(nothing), "phases": progress.phases(),
                        "load_before": before, "load_after": load()}
    if nothing.changes or row["no_change"]["ran"]:
        ran = [(t.slug, t.reason) for t in nothing.tenants if t.status != "skipped"][:5]
        raise SystemExit(f"the no-change release at {size} ran {row['no_change']['ran']} stack(s) "
                         f"({nothing.changes} change(s)): {ran}" + (" (shortcut unsound)" if row["clones"] else ""))
    log(f"{size} tenants: no-change release {row['no_change']}")
    if profile is not None:
        profiled(profile / f"no-change-{size}.prof", tenants_dir, url, state_base, log)

    if not changed:
        return row
    # A release that changes `changed` tenants.
    slugs = changed_slugs(min(size, real), changed)
    for slug in slugs:
        set_max_tokens(tenants_dir / f"{slug}.yaml", 500 + 10 * round_number)
    before = load()
    wall, ten, progress = timed_rehearse(tenants_dir, url, state_base)
    require_ok(ten, f"the release changing {changed}")
    row["ten_changed"] = {"wall_s": wall, **counts(ten), "slugs": slugs, "phases": progress.phases(),
                          "stack_s": sorted(s for s in (progress.stack_seconds(f"{ENV}.{x}") for x in slugs) if s),
                          "load_before": before, "load_after": load()}
    ran = {t.slug for t in ten.tenants if t.status != "skipped"}
    if ran != set(slugs) or row["ten_changed"]["changed"] != len(slugs):
        raise SystemExit(f"the release changing {slugs} ran {sorted(ran)}, {row['ten_changed']['changed']} changed")
    log(f"{size} tenants: {changed}-changed release {row['ten_changed']}")
    return row


def ratios(rows: list[dict]) -> list[dict]:
    """The issue's ratios from rows of one run: no-change release over the unit; 10 of N over 10 of the smallest."""
    found = []
    for row in rows:
        unit = row["unit"]["stack_s"]
        row["no_change_x_unit"] = round(row["no_change"]["wall_s"] / unit, 2) if unit else None
        row["ten_changed_x_unit"] = round(row["ten_changed"]["wall_s"] / unit, 2) if unit and "ten_changed" in row \
            else None
    by_size = {r["tenants"]: r for r in rows}
    for size, aim in ((200, AIMS["no_change_200"]), (1000, AIMS["no_change_1000"])):
        if size in by_size and by_size[size]["no_change_x_unit"] is not None:
            value = by_size[size]["no_change_x_unit"]
            found.append({"aim": f"no-change release at {size:,} tenants / one stack's no-change up",
                          "value": value, "target": aim, "met": value <= aim,
                          "clones": by_size[size]["clones"]})
    if "ten_changed" in by_size.get(20, {}):
        for size in (200, 1000):
            if "ten_changed" in by_size.get(size, {}):
                value = round(by_size[size]["ten_changed"]["wall_s"] / by_size[20]["ten_changed"]["wall_s"], 2)
                found.append({"aim": f"10 of {size:,} changed / 10 of 20 changed", "value": value,
                              "target": AIMS["ten_of_200_vs_20"], "met": value <= AIMS["ten_of_200_vs_20"],
                              "clones": by_size[size]["clones"]})
                # The same, each release over its own size's unit: what is left when the load moved between them.
                first, other = by_size[20]["ten_changed_x_unit"], by_size[size]["ten_changed_x_unit"]
                if first and other:
                    value = round(other / first, 2)
                    found.append({"aim": f"the same, each over its size's unit ({other}x / {first}x)", "value": value,
                                  "target": AIMS["ten_of_200_vs_20"], "met": value <= AIMS["ten_of_200_vs_20"],
                                  "clones": by_size[size]["clones"]})
    return found


def markdown(result: dict) -> str:
    lines = [f"Run started {result['started']} on {result['machine']}, engine {result.get('engine', '?')}.", "",
             "| tenants | stacks | one stack's no-change `up` (unit): stack / whole command | no-change release: "
             "wall (skipped/ran) | x unit | 10 changed: wall (ran/skipped) | x unit | load average (1 min) "
             "unit / no-change / 10 changed |",
             "|---:|---|---:|---:|---:|---:|---:|---|"]
    for row in result["rows"]:
        stacks = f"{row['real_stacks']} real" + (f" + {row['clones']} **clones** (shortcut)" if row["clones"] else "")
        none = {"wall_s": "-", "ran": "-", "skipped": "-", "load_before": ["-"], "load_after": ["-"]}
        unit, nothing, ten = row["unit"], row["no_change"], row.get("ten_changed", none)
        lines.append(
            f"| {row['tenants']:,} | {stacks} | {unit['stack_s']} s / {unit['command_s']} s | "
            f"{nothing['wall_s']} s ({nothing['skipped']}/{nothing['ran']}) | {row['no_change_x_unit']}x | "
            f"{ten['wall_s']} s ({ten['ran']}/{ten['skipped']}) | {row['ten_changed_x_unit']}x | "
            f"{unit['load_before'][0]}-{unit['load_after'][0]} / {nothing['load_before'][0]}-"
            f"{nothing['load_after'][0]} / {ten['load_before'][0]}-{ten['load_after'][0]} |")
    if result["ratios"]:
        lines += ["", "| aim | measured | target | met | clones |", "|---|---:|---:|---|---:|"]
        lines += [f"| {r['aim']} | {r['value']}x | ≤ {r['target']}x | {'yes' if r['met'] else '**no**'} | "
                  f"{r['clones']} |" for r in result["ratios"]]
    return "\n".join(lines)


def machine() -> str:
    return (f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()} "
            f"{platform.machine()}")


def run(sizes: list[int], changed: int = CHANGED, clone_above: int | None = None, json_path: Path | None = None,
        log=lambda line: print(line, file=sys.stderr, flush=True), keep: Path | None = None,
        measure: set[int] | None = None, profile: Path | None = None) -> dict:
    """Every size in one environment, in ascending order; the result so far is written to `json_path` after each."""
    from fleet import engine

    sizes = sorted(set(sizes))
    real = clone_above if clone_above is not None else sizes[-1]
    if real < max(3, min(sizes)):
        raise SystemExit("--clone-above must leave at least the smallest size (and 3 tenants) real")
    result = {"started": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"), "machine": machine(),
              "engine": engine.engine_version(ROOT), "changed": changed, "clone_above": clone_above, "rows": [],
              "ratios": []}
    work = Path(tempfile.mkdtemp(prefix="bench-release-", dir=keep))
    os.chmod(work, 0o755)  # noqa: S103 (the postgres OS user must reach the cluster directory)
    files, tenants_dir, state_base = work / "all", work / "tenants", work / "state"
    generate(sizes[-1], files)
    tenants_dir.mkdir()
    try:
        with LocalPostgres(base_dir=work) as postgres:
            postgres.create_database(DATABASE)
            postgres.load_schema(DATABASE)
            url = postgres.dsn(user="tenant_provisioner", dbname=DATABASE)
            try:
                for number, size in enumerate(sizes, start=1):
                    row = measure_size(size, files, tenants_dir, url, postgres.dsn(dbname=DATABASE), state_base,
                                       real, min(changed, max(1, min(size, real) - 3)) if changed else 0, number, log,
                                       measure=measure is None or size in measure, profile=profile)
                    if "unit" not in row:
                        continue  # grown only
                    result["rows"].append(row)
                    result["ratios"] = ratios(result["rows"])
                    if json_path:
                        json_path.write_text(json.dumps(result, indent=1))
            finally:
                aws_emulator.stop(_state_dir(state_base, url))
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 200, 1000])
    parser.add_argument("--changed", type=int, default=CHANGED, help="tenants the second release changes (0: none, "
                                                                      "no second release)")
    parser.add_argument("--measure", type=int, nargs="+", metavar="SIZE",
                        help="measure only these sizes (the others are only grown through); default: every size")
    parser.add_argument("--clone-above", type=int, help="sizes above this add their stacks by the documented "
                                                        "shortcut (cloned, outside the timed part)")
    parser.add_argument("--json", type=Path, help="write the results here (after each size)")
    parser.add_argument("--keep", type=Path, help="work in a new folder under this one, and leave it there (its "
                                                  "PostgreSQL and AWS emulator are stopped all the same)")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="after each measured no-change release, run "
                                                                    "one more, untimed, under cProfile, into DIR")
    args = parser.parse_args(argv)
    result = run(args.sizes, args.changed, args.clone_above, args.json, keep=args.keep,
                 measure=set(args.measure) if args.measure else None, profile=args.profile)
    print(markdown(result))


if __name__ == "__main__":
    main()
