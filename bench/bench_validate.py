"""Benchmark: `tenantctl validate` over generated tenant files.

Two measurements, each repeated in fresh processes:
- in-process: `tenancy.loader.load_tenants(tenants_dir=DIR)`, the function `tenantctl validate` and the
  Pulumi program both call, timed after the imports;
- end to end: `python -m tenantctl validate --tenants-dir DIR` as a subprocess, wall time including
  interpreter start and imports. The same command over a single file gives the fixed cost of a run.

    python bench/bench_validate.py [--files 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
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

TARGET_SECONDS = 1.5  # the target for 1,000 files on a 2-core machine
WORKER_TIMEOUT = 600


def summarize(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "samples": samples}


def run_worker(args: list[str]) -> dict:
    """Run this file as a worker in a fresh interpreter; it prints its measurement as one JSON line."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=WORKER_TIMEOUT, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"worker {args} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def worker_load(tenants_dir: Path) -> dict:
    from tenancy.loader import load_tenants

    start = time.perf_counter()
    result = load_tenants(tenants_dir=tenants_dir)
    seconds = time.perf_counter() - start
    if not result.ok:
        raise SystemExit("generated files did not validate:\n" + "\n".join(map(str, result.problems[:10])))
    return {"seconds": seconds, "files": result.files_checked,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def time_cli(tenants_dir: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "tenantctl", "validate", "--tenants-dir", str(tenants_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=WORKER_TIMEOUT, check=False,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"tenantctl validate failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr}")
    return seconds


def run(files: int = 1000, repeat: int = 5) -> dict:
    """Measure; returns a dict of summaries (seconds) for `run_all.py`."""
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        many, one = Path(tmp) / "many", Path(tmp) / "one"
        generate(files, many)
        generate(1, one)
        in_process, rss, cli, cli_one = [], [], [], []
        for _ in range(repeat):  # interleaved, so a noisy spell hits every series alike
            measured = run_worker(["load", str(many)])
            assert measured["files"] == files
            in_process.append(measured["seconds"])
            rss.append(measured["peak_rss_kib"])
            cli.append(time_cli(many))
            cli_one.append(time_cli(one))
    return {
        "files": files,
        "repeat": repeat,
        "in_process": summarize(in_process),
        "end_to_end": summarize(cli),
        "end_to_end_one_file": summarize(cli_one),
        "peak_rss_kib": max(rss),
        "target_seconds": TARGET_SECONDS,
    }


def markdown(results: dict) -> str:
    files, target = results["files"], results["target_seconds"]
    rows = [
        ("`load_tenants` in-process", results["in_process"]),
        ("`python -m tenantctl validate` end to end", results["end_to_end"]),
        ("end to end, 1 file (fixed cost)", results["end_to_end_one_file"]),
    ]
    per_file = (results["end_to_end"]["median"] - results["end_to_end_one_file"]["median"]) / max(files - 1, 1)
    lines = [
        f"### validate, {files} files ({results['repeat']} runs; target < {target} s)",
        "",
        "| measurement | median s | min s | target met |",
        "|---|---:|---:|---|",
    ]
    for label, summary in rows[:2]:
        met = "yes" if summary["median"] < target else "**no**"
        lines.append(f"| {label} | {summary['median']:.3f} | {summary['min']:.3f} | {met} |")
    label, summary = rows[2]
    lines.append(f"| {label} | {summary['median']:.3f} | {summary['min']:.3f} | |")
    lines += [
        "",
        f"Marginal cost per file (end to end): {per_file * 1000:.2f} ms; "
        f"peak RSS of the in-process run: {results['peak_rss_kib'] / 1024:.0f} MiB.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, directory = args.worker
        assert kind == "load"
        print(json.dumps(worker_load(Path(directory))))
        return
    results = run(args.files, args.repeat)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(markdown(results))


if __name__ == "__main__":
    main()
