"""Benchmark: `tenantctl plan` at 100 and 1,000 tenants, against the Pulumi SDK's own floor.

Each measurement runs in a fresh interpreter that imports everything first and then times only the work:
- plan: `fleet.plan.build_plan(ROOT, DIR, "dev")`, i.e. loading the tenant files and running the real
  program (`__main__.py`) under the mock runtime. Time spent parsing tenant files is reported on its own.
- floor: a minimal program registering the same resources under `pulumi.runtime.set_mocks`: for each
  tenant one ComponentResource with as many children of a trivial `pulumi.CustomResource` as the real plan
  gave that tenant, a Mocks that echoes inputs, and the same `wait_for_rpcs()` wait.
Plan and floor runs alternate, so a noisy spell on the machine hits both.

`--diagnose` adds one run of each, per size, of: plan and floor with Python's cyclic garbage collector
off, and a third program ("floor+inputs") registering the plan's own resources (types, names and plain
input values, same parents) as trivial custom resources, with and without GC. Together they split plan's
excess over the floor into GC, input payload and the rest (Output graph, secrets, simulated cloud, parsing).

    python bench/bench_plan.py [--sizes 100 1000] [--repeat 5] [--diagnose]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.generate import generate  # noqa: E402

LINEARITY_AIM = 1.3  # per-tenant cost at 1,000 over per-tenant cost at 100
FLOOR_AIM = 1.5  # plan's per-resource cost over the floor's
WORKER_TIMEOUT = 1800
TRIVIAL_TYPE = "bench:index:Trivial"


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker_plan(tenants_dir: Path, dump_inputs: Path | None = None) -> dict:
    import components.tenant_stack  # noqa: F401 (import pulumi_aws/kubernetes/random before the clock starts)
    import tenancy.loader
    from fleet.mock_runtime import unwrap_secrets
    from fleet.plan import build_plan

    parse_file = tenancy.loader.parse_tenant_file
    parsing = {"seconds": 0.0, "calls": 0}

    def timed_parse(*args, **kwargs):
        start = time.perf_counter()
        try:
            return parse_file(*args, **kwargs)
        finally:
            parsing["seconds"] += time.perf_counter() - start
            parsing["calls"] += 1

    tenancy.loader.parse_tenant_file = timed_parse  # measurement only; sees every caller of the loader
    baseline_rss, cpu = _rss_kib(), _cpu_seconds()
    start = time.perf_counter()
    plan = build_plan(ROOT, tenants_dir, "dev")
    seconds = time.perf_counter() - start
    measured = {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu,
        "parse_seconds": parsing["seconds"],
        "files_parsed": parsing["calls"],
        "tenants": len(plan.tenants),
        "resources": len(plan.run.resources),
        "children": [len(tenant.resources) for tenant in plan.tenants],
        "baseline_rss_kib": baseline_rss,
        "peak_rss_kib": _rss_kib(),
    }
    if dump_inputs is not None:
        dump_inputs.write_text(json.dumps({"resources": [
            [[r.type, r.name, unwrap_secrets(r.inputs)] for r in tenant.resources] for tenant in plan.tenants
        ]}))
    return measured


def worker_floor(spec: dict) -> dict:
    """`spec` is {"children": [count per tenant]} for the floor, or {"resources": [[[type, name, inputs], ...]
    per tenant]} for the floor+inputs diagnostic."""
    import pulumi
    from pulumi.runtime.stack import wait_for_rpcs
    from pulumi.runtime.sync_await import _sync_await

    class EchoMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            return f"{args.name}-id", args.inputs

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
            return {}, None

    class Trivial(pulumi.CustomResource):
        def __init__(self, typ: str, name: str, props: dict, opts: pulumi.ResourceOptions) -> None:
            super().__init__(typ, name, props, opts)

    class Tenant(pulumi.ComponentResource):
        def __init__(self, name: str, children: list) -> None:
            super().__init__("bench:index:Tenant", name, None, None)
            for typ, child, props in children:
                Trivial(typ, child, props, pulumi.ResourceOptions(parent=self))
            self.register_outputs({})

    if "resources" in spec:
        tenants = spec["resources"]
    else:
        tenants = [
            [(TRIVIAL_TYPE, f"tenant-{t:05d}-child-{i}", {"value": i}) for i in range(count)]
            for t, count in enumerate(spec["children"])
        ]
    baseline_rss, cpu = _rss_kib(), _cpu_seconds()
    # Same conditions as fleet.mock_runtime.run_program, which pauses the cyclic GC during a run:
    # the floor measures the SDK's registration cost, not how the harness tunes the collector.
    gc.disable()
    start = time.perf_counter()
    pulumi.runtime.set_mocks(EchoMocks(), project="bench-floor", stack="dev", preview=False)
    for number, children in enumerate(tenants):
        Tenant(f"tenant-{number:05d}", children)
    _sync_await(wait_for_rpcs())
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu,
        "tenants": len(tenants),
        "resources": len(tenants) + sum(len(children) for children in tenants),
        "baseline_rss_kib": baseline_rss,
        "peak_rss_kib": _rss_kib(),
    }


def run_worker(kind: str, path: Path, *extra: str) -> dict:
    """Run this file as a worker in a fresh interpreter; it prints its measurement as one JSON line."""
    args = ["--worker", kind, str(path), *extra]
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=WORKER_TIMEOUT, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"worker {args} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _series(runs: list[dict]) -> dict:
    first = runs[0]
    seconds = [run["seconds"] for run in runs]
    summary = {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "samples": seconds,
        "cpu_median": statistics.median(run["cpu_seconds"] for run in runs),
        "tenants": first["tenants"],
        "resources": first["resources"],
        "peak_rss_kib": max(run["peak_rss_kib"] for run in runs),
        "rss_growth_kib": max(run["peak_rss_kib"] - run["baseline_rss_kib"] for run in runs),
    }
    if "parse_seconds" in first:
        summary["parse_median"] = statistics.median(run["parse_seconds"] for run in runs)
        summary["files_parsed"] = first["files_parsed"]
    summary["per_tenant"] = summary["median"] / summary["tenants"]
    summary["per_resource"] = summary["median"] / summary["resources"]
    return summary


def _diagnose(tenants_dir: Path, counts_file: Path, work: Path) -> dict:
    """One run each of the GC-off and floor+inputs variants (see the module docstring)."""
    inputs_file = work / f"{tenants_dir.name}-inputs.json"
    runs = {
        ("plan", "off"): run_worker("plan", tenants_dir, "--no-gc", "--dump-inputs", str(inputs_file)),
        ("floor", "off"): run_worker("floor", counts_file, "--no-gc"),
        ("floor+inputs", "on"): run_worker("floor", inputs_file),
        ("floor+inputs", "off"): run_worker("floor", inputs_file, "--no-gc"),
    }
    return {f"{kind} gc-{state}": _series([measured]) for (kind, state), measured in runs.items()}


def run(sizes: tuple[int, ...] = (100, 1000), repeat: int = 5, diagnose: bool = False) -> dict:
    """Measure; returns per-size plan and floor summaries and the ratios, for `run_all.py`."""
    results: dict = {"repeat": repeat, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        work = Path(tmp)
        for size in sizes:
            tenants_dir = work / f"tenants-{size}"
            generate(size, tenants_dir)
            counts_file = work / f"children-{size}.json"
            plans, floors = [], []
            for _ in range(repeat):
                plan = run_worker("plan", tenants_dir)
                if plan["tenants"] != size:
                    raise RuntimeError(f"plan covered {plan['tenants']} tenants, expected {size}")
                counts_file.write_text(json.dumps({"children": plan["children"]}))
                plans.append(plan)
                floors.append(run_worker("floor", counts_file))
            entry = {"plan": _series(plans), "floor": _series(floors)}
            if entry["plan"]["resources"] != entry["floor"]["resources"]:
                raise RuntimeError("floor registered a different number of resources than the plan")
            if diagnose:
                entry["diagnostics"] = _diagnose(tenants_dir, counts_file, work)
            results["sizes"][size] = entry
    by_size = results["sizes"]
    small, large = min(sizes), max(sizes)
    if small != large:
        results["linearity"] = {
            kind: by_size[large][kind]["per_tenant"] / by_size[small][kind]["per_tenant"] for kind in ("plan", "floor")
        }
    results["vs_floor"] = {
        size: by_size[size]["plan"]["per_resource"] / by_size[size]["floor"]["per_resource"] for size in sizes
    }
    results["vs_floor_without_parsing"] = {
        size: (by_size[size]["plan"]["median"] - by_size[size]["plan"]["parse_median"])
        / by_size[size]["plan"]["resources"] / by_size[size]["floor"]["per_resource"]
        for size in sizes
    }
    return results


def _met(value: float, aim: float) -> str:
    return "yes" if value <= aim else "**no**"


def markdown(results: dict) -> str:
    lines = [
        f"### plan vs the SDK floor ({results['repeat']} runs each, fresh process per run)",
        "",
        "| tenants | resources | program | median s | min s | CPU s | ms/tenant | ms/resource "
        "| parsing s (files parsed) | peak RSS MiB | RSS growth MiB |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, entry in results["sizes"].items():
        for kind in ("plan", "floor"):
            s = entry[kind]
            parsing = f"{s['parse_median']:.2f} ({s['files_parsed']})" if "parse_median" in s else ""
            lines.append(
                f"| {size} | {s['resources']} | {kind} | {s['median']:.2f} | {s['min']:.2f} | {s['cpu_median']:.2f} "
                f"| {s['per_tenant'] * 1000:.1f} | {s['per_resource'] * 1000:.2f} | {parsing} "
                f"| {s['peak_rss_kib'] / 1024:.0f} | {s['rss_growth_kib'] / 1024:.0f} |"
            )
    lines += ["", "| ratio | value | aim | met |", "|---|---:|---:|---|"]
    if "linearity" in results:
        sizes = list(results["sizes"])
        label = f"per-tenant cost, {max(sizes)} over {min(sizes)} tenants"
        for kind, value in results["linearity"].items():
            if kind == "plan":
                lines.append(f"| {label} (plan) | {value:.2f}x | ≤ {LINEARITY_AIM} | {_met(value, LINEARITY_AIM)} |")
            else:
                lines.append(f"| {label} (floor, for reference) | {value:.2f}x | | |")
    for size, value in results["vs_floor"].items():
        lines.append(f"| plan per-resource over floor, {size} tenants | {value:.2f}x | ≤ {FLOOR_AIM} "
                     f"| {_met(value, FLOOR_AIM)} |")
    for size, value in results["vs_floor_without_parsing"].items():
        lines.append(f"| same, tenant-file parsing excluded, {size} tenants | {value:.2f}x | (diagnostic) | |")
    diagnosed = {size: entry["diagnostics"] for size, entry in results["sizes"].items() if "diagnostics" in entry}
    if diagnosed:
        lines += [
            "",
            "### diagnostics (one run each; gc-on rows are the medians above)",
            "",
            "| tenants | program | GC | s | ms/resource | x floor (same GC) | parsing s | peak RSS MiB |",
            "|---:|---|---|---:|---:|---:|---:|---:|",
        ]
        for size, variants in diagnosed.items():
            entry = results["sizes"][size]
            rows = {"plan gc-on": entry["plan"], "floor gc-on": entry["floor"], **variants}
            for name in ("plan", "floor+inputs", "floor"):
                for state in ("on", "off"):
                    s, floor = rows[f"{name} gc-{state}"], rows[f"floor gc-{state}"]
                    parsing = f"{s['parse_median']:.2f}" if "parse_median" in s else ""
                    lines.append(
                        f"| {size} | {name} | {state} | {s['median']:.2f} | {s['per_resource'] * 1000:.2f} "
                        f"| {s['per_resource'] / floor['per_resource']:.2f}x | {parsing} "
                        f"| {s['peak_rss_kib'] / 1024:.0f} |"
                    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--diagnose", action="store_true", help="also run the GC-off and floor+inputs variants")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--no-gc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dump-inputs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, path = args.worker
        if args.no_gc:
            gc.disable()
        if kind == "plan":
            measured = worker_plan(Path(path), args.dump_inputs)
        elif kind == "floor":
            measured = worker_floor(json.loads(Path(path).read_text()))
        else:
            raise SystemExit(f"unknown worker {kind!r}")
        print(json.dumps(measured))
        return
    results = run(tuple(args.sizes), args.repeat, args.diagnose)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(markdown(results))


if __name__ == "__main__":
    main()
