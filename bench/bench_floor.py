"""The engine's floor against our tenant stack: a no-change `up` of each, on the same file:// backend, in one run.

One rehearsal (`fleet.rehearse.run_rehearse`: the real engine, file backend, PostgreSQL, moto, rendered
Kubernetes objects, the post-deploy checks on) creates the platform stack and three generated tenants.
Then, on that backend, stacks that add our program one piece at a time get a no-change `up` each, every
one in a fresh spawned process as `tenantctl` runs a stack (`fleet.stack_run.process_pool`), rounds
interleaved, the median reported:

- `empty`: the empty inline program: the engine's floor, as the Automation API's `up` runs it (after the `up`
  itself, it asks the CLI for the outputs twice and for the history);
- `empty-lean`: the same program through `fleet.engine.up`, which on a file backend reads the summary from the
  event stream and the outputs from the checkpoint instead: the floor of what `tenantctl` runs, and the one the
  `tenant` row is compared with like for like;
- `imports`: the empty program after `import program.tenant` (pulumi_aws, pulumi_kubernetes, ours);
- `providers`: + the explicit AWS and Kubernetes providers the tenant stack registers (their plugins start);
- `reference`: + the StackReference read of the platform stack;
- `dynamic`: + one trivial dynamic resource (the dynamic provider host starts, one serialized provider);
- `tenant-engine`: a tenant stack (basic) as the engine runs it: `open_stack` and `stack.up`, nothing else;
- `tenant-engine-nockpt`: the same with `PULUMI_SKIP_CHECKPOINTS=true` (only the final checkpoint is written);
- `tenant`: the same stack through `fleet.stack_run.run`, as `tenantctl up` and `rehearse` run it (stack lock,
  pending operations, outputs and tags read after the `up`);
- `tenant-nochecks`: another basic tenant whose stack has no OnboardingCheck (`runChecks: false`), through
  `fleet.stack_run.run`: `tenant` minus this is what the post-deploy check costs when nothing changed.

Micro-measurements beside them: Python start-up with `import pulumi.automation` and with `import
program.tenant` (fresh interpreters), the serialization of each dynamic provider (`serialize_provider`, what
every registration of a dynamic resource pays), and the checkpoint's size.

    .venv/bin/python bench/bench_floor.py [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fleet import engine  # noqa: E402
from fleet.stack_run import StackJob, process_pool, run  # noqa: E402

ENV = "rehearsal"
PROGRAM_VARIANTS = ("empty", "empty-lean", "imports", "providers", "reference", "dynamic")
VARIANTS = (*PROGRAM_VARIANTS, "tenant-engine", "tenant-engine-nockpt", "tenant", "tenant-nochecks")


# ---- the programs (run in the worker, by the Automation API's inline language host) ----

def _imports() -> None:
    import program.tenant  # noqa: F401


def _providers() -> None:
    import pulumi

    from components.providers import stack_providers
    from components.settings import read_provider_settings

    _imports()
    stack_providers(read_provider_settings(pulumi.Config()))


def _reference() -> None:
    import pulumi

    from program.platform_outputs import SHARED_NAMESPACE, platform_reference_name

    _providers()
    reference = pulumi.StackReference(platform_reference_name(ENV))
    pulumi.export("shared", reference.require_output(SHARED_NAMESPACE))


def _dynamic() -> None:
    from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

    class NoopProvider(ResourceProvider):  # defined here, so it is serialized by value as a closure would be
        def create(self, props):
            return CreateResult("noop", props)

        def diff(self, _id, olds, news):
            return DiffResult(changes=False)

    class FloorNoop(Resource, module="bench", name="FloorNoop"):
        def __init__(self, name: str) -> None:
            super().__init__(NoopProvider(), name, {"value": "1"})

    _reference()
    FloorNoop("floor-noop")


PROGRAMS = {"empty": lambda: None, "empty-lean": lambda: None, "imports": _imports, "providers": _providers,
            "reference": _reference, "dynamic": _dynamic}


def variant_up(backend: engine.Backend, stack: str, variant: str, config: dict | None = None) -> dict:
    """A no-change `up` (the first one creates the stack), in this process; what it took, from entry."""
    entered = time.time()
    quiet = {"color": "never", "on_output": lambda _line: None}
    if variant in PROGRAM_VARIANTS:
        from pulumi import automation as auto

        opened = time.perf_counter()
        handle = auto.create_or_select_stack(stack_name=stack, project_name="tenant-onboarding",
                                             program=PROGRAMS[variant], opts=engine.workspace_options(backend))
        if config:
            handle.set_all_config({k: auto.ConfigValue(value=v) for k, v in config.items()})
        started = time.perf_counter()
        if variant == "empty-lean":
            summary, _ = engine.up(handle, backend, engine.EngineEvents(), **quiet)
        else:
            summary = (handle.up(**quiet).summary.resource_changes or {})
        changes = {k: v for k, v in summary.items() if k != "same"}
        return {"entered": entered, "open_s": started - opened, "up_s": time.perf_counter() - started,
                "changes": changes}
    if variant.startswith("tenant-engine"):
        opened = time.perf_counter()
        handle = engine.open_stack(engine.StackSpec(backend, stack), create=False)
        started = time.perf_counter()
        result = handle.up(**quiet)
        changes = {k: v for k, v in (result.summary.resource_changes or {}).items() if k != "same"}
        return {"entered": entered, "open_s": started - opened, "up_s": time.perf_counter() - started,
                "changes": changes}
    spec = engine.StackSpec(backend, stack, config=config or {})
    started = time.perf_counter()
    outcome = run(StackJob(spec, "up", create=False))
    if not outcome.ok:
        raise RuntimeError(f"{stack}: {outcome.errors[:1]}")
    changes = {k: v for k, v in outcome.summary.items() if k != "same"}
    return {"entered": entered, "open_s": 0.0, "up_s": time.perf_counter() - started, "changes": changes}


def in_fresh_process(backend: engine.Backend, stack: str, variant: str, config: dict | None = None) -> dict:
    """`variant_up` in a spawned process of its own, as tenantctl runs each stack; wall time from the spawn."""
    started, wall_start = time.perf_counter(), time.time()
    with process_pool(1) as pool:
        measured = pool.submit(variant_up, backend, stack, variant, config).result()
    measured["wall_s"] = time.perf_counter() - started
    measured["start_s"] = measured.pop("entered") - wall_start  # spawn and the worker's imports
    return measured


# ---- micro-measurements ----

def python_start(statement: str, rounds: int = 5) -> float:
    """Median wall time of a fresh interpreter running `statement` (from the project root)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], cwd=ROOT, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def provider_serialization() -> dict[str, dict]:
    from pulumi.dynamic.dynamic import serialize_provider

    from components.dynamic.onboarding_check import OnboardingCheckProvider
    from components.dynamic.tenant_config_row import TenantConfigRowProvider

    measured = {}
    for provider in (TenantConfigRowProvider(), OnboardingCheckProvider()):
        times, text = [], ""
        for _ in range(5):
            started = time.perf_counter()
            text = serialize_provider(provider)
            times.append(time.perf_counter() - started)
        measured[type(provider).__name__] = {"ms": round(statistics.median(times) * 1000, 1), "bytes": len(text)}
    return measured


def checkpoint_facts(backend: engine.Backend, stack: str) -> dict:
    handle = engine.open_stack(engine.StackSpec(backend, stack), create=False)
    resources = engine.export_state(handle).get("deployment", {}).get("resources") or []
    files = [p for p in backend.backend_dir.rglob(f"{stack}.json") if ".history" not in p.parts
             and "backups" not in p.parts]
    dynamic = [r for r in resources if r["type"].startswith("pulumi-python:dynamic")]
    return {"resources": len(resources), "dynamic_resources": len(dynamic),
            "checkpoint_bytes": sum(p.stat().st_size for p in files)}


# ---- the run ----

def measure(rounds: int, work: Path) -> dict:
    from bench.generate import generate
    from fleet.rehearsal import STATE_FILE, RehearsalState, rehearsal_backend
    from fleet.rehearse import _state_dir, run_rehearse
    from services import aws_emulator
    from services.localpg import LocalPostgres

    tenants_dir = work / "tenants"
    generate(3, tenants_dir)  # bench-00001, bench-00002 basic; bench-00003 premium
    a_stack, b_stack = f"{ENV}.bench-00001", f"{ENV}.bench-00002"
    with LocalPostgres(base_dir=work) as postgres:
        postgres.create_database("floor")
        postgres.load_schema("floor")
        url = postgres.dsn(user="tenant_provisioner", dbname="floor")
        state_base = work / "state"
        state_dir = _state_dir(state_base, url)
        try:
            first = run_rehearse(tenants_dir, url, None, False, state_base=state_base)
            if not first.ok:
                raise SystemExit(f"the rehearsal failed: {first.errors[:3]} "
                                 f"{[(t.slug, t.errors[:1]) for t in first.tenants if t.errors]}")
            state = RehearsalState.load(state_dir / STATE_FILE)
            backend = rehearsal_backend(ROOT, state_dir, state.environment["secrets"]["passphrase"])
            stored = engine.open_stack(engine.StackSpec(backend, a_stack), create=False).get_all_config()
            plain = {k: v.value for k, v in stored.items() if not v.secret and ("awsEndpoint" in k or
                     "kubernetesRenderDir" in k or k == "aws:region")}
            no_checkpoints = replace(backend, env={**backend.env, "PULUMI_SKIP_CHECKPOINTS": "true"})
            # Untimed: create each variant's stack, and take tenant B's OnboardingCheck out.
            for variant in PROGRAM_VARIANTS:
                in_fresh_process(backend, f"floor-{variant}", variant, plain)
            in_fresh_process(backend, b_stack, "tenant-nochecks", {"runChecks": "false"})
            targets = {"tenant-engine": (backend, a_stack), "tenant-engine-nockpt": (no_checkpoints, a_stack),
                       "tenant": (backend, a_stack), "tenant-nochecks": (backend, b_stack)}
            samples: dict[str, list[dict]] = {v: [] for v in VARIANTS}
            for number in range(rounds):
                for variant in VARIANTS:
                    where, stack = targets.get(variant, (backend, f"floor-{variant}"))
                    sample = in_fresh_process(where, stack, variant)
                    if sample["changes"]:
                        raise SystemExit(f"{variant}: not a no-change up: {sample['changes']}")
                    samples[variant].append(sample)
                    print(f"round {number + 1} {variant}: {sample['wall_s']:.2f} s", file=sys.stderr, flush=True)
            facts = {"tenant": checkpoint_facts(backend, a_stack),
                     "tenant-nochecks": checkpoint_facts(backend, b_stack),
                     "empty": checkpoint_facts(backend, "floor-empty")}
        finally:
            aws_emulator.stop(state_dir)
    medians = {v: {key: round(statistics.median(s[key] for s in runs), 3)
                   for key in ("wall_s", "start_s", "open_s", "up_s")} for v, runs in samples.items()}
    return {"medians": medians, "samples": samples, "checkpoints": facts}


def breakdown(medians: dict) -> list[tuple[str, float]]:
    wall = {v: m["wall_s"] for v, m in medians.items()}
    return [
        ("engine floor: the empty program (spawn, Automation API, engine, empty checkpoint)", wall["empty"]),
        ("the Automation API's reads after the up (outputs twice, history), which tenantctl skips on a file backend: "
         "empty minus empty-lean", wall["empty"] - wall["empty-lean"]),
        ("Python imports of the program (pulumi_aws, pulumi_kubernetes, ours)", wall["imports"] - wall["empty"]),
        ("plugin start-up: the AWS and Kubernetes providers", wall["providers"] - wall["imports"]),
        ("the StackReference read of the platform stack", wall["reference"] - wall["providers"]),
        ("dynamic provider host start-up, one trivial dynamic resource", wall["dynamic"] - wall["reference"]),
        ("the tenant's own resources (registrations, dynamic providers, diffs, state)",
         wall["tenant-engine"] - wall["dynamic"]),
        ("of which checkpoint writes (tenant-engine minus PULUMI_SKIP_CHECKPOINTS)",
         wall["tenant-engine"] - wall["tenant-engine-nockpt"]),
        ("tenantctl's bookkeeping around the up (lock, pending operations, outputs, tags)",
         wall["tenant"] - wall["tenant-engine"]),
        ("the post-deploy check when nothing changed (tenant minus tenant-nochecks)",
         wall["tenant"] - wall["tenant-nochecks"]),
    ]


def machine() -> str:
    return (f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()} "
            f"{platform.machine()}")


def markdown(result: dict) -> str:
    medians = result["medians"]
    floor = medians["empty"]["wall_s"]
    lines = [f"Measured {result['date']} on {result['machine']}, {result['rounds']} rounds, medians.", "",
             "| stack | wall s | of which spawn+imports of the worker s | up s | x floor |",
             "|---|---:|---:|---:|---:|"]
    for variant in VARIANTS:
        m = medians[variant]
        lines.append(f"| {variant} | {m['wall_s']:.2f} | {m['start_s']:.2f} | {m['up_s']:.2f} | "
                     f"{m['wall_s'] / floor:.2f}x |")
    lean = medians["empty-lean"]["wall_s"]
    lines += ["", "Like for like: the `tenant` row (through `fleet.stack_run.run`, which skips the Automation API's "
              f"reads after the `up` on a file backend) over `empty-lean` (the empty program the same way): "
              f"**{medians['tenant']['wall_s'] / lean:.2f}x**; `tenant-engine` over `empty` (both through the "
              f"Automation API's `up`): **{medians['tenant-engine']['wall_s'] / floor:.2f}x**."]
    lines += ["", "| step (each row: one variant minus the one before it) | s |", "|---|---:|"]
    for label, seconds in breakdown(medians)[1:]:
        lines.append(f"| {label} | {seconds:.2f} |")
    micro = result["micro"]
    lines += ["", f"Fresh interpreter: `import pulumi.automation` {micro['python_automation_s']:.2f} s, "
              f"`import program.tenant` {micro['python_program_s']:.2f} s. Dynamic providers serialized: "
              + ", ".join(f"{name} {v['ms']} ms ({v['bytes']:,} bytes)" for name, v in micro['serialization'].items())
              + ". Checkpoints: " + ", ".join(f"{k} {v['resources']} resources, {v['checkpoint_bytes']:,} bytes"
                                               for k, v in result["checkpoints"].items()) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    now = datetime.datetime.now(datetime.UTC)
    work = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    os.chmod(work, 0o755)  # noqa: S103 (the postgres OS user must reach the cluster directory)
    try:
        result = measure(args.rounds, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.update(date=now.isoformat(timespec="minutes"), machine=machine(), rounds=args.rounds, micro={
        "python_automation_s": round(python_start("import pulumi.automation"), 3),
        "python_program_s": round(python_start("import pulumi.automation, program.tenant"), 3),
        "serialization": provider_serialization(),
    })
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    print(markdown(result))


if __name__ == "__main__":
    main()
