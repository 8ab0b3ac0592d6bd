"""bench/bench_release.py's own logic, without the engine (its real run takes minutes: docs/scaling.md says how
long): it reads each stack's seconds from the lines the rollout prints, picks the changed tenants, rewrites a
clone, and computes the issue's ratios from one run's rows."""

from __future__ import annotations

import json

from bench import bench_release, release_clones
from bench.generate import bench_slug, generate
from fleet import rollout
from fleet.stack_run import StackOutcome


def test_a_stacks_seconds_are_read_from_the_line_the_rollout_prints():
    progress = bench_release.Progress()
    outcome = StackOutcome("rehearsal.bench-00002", "up", summary={"same": 14}, seconds=8.4)
    rollout._report(outcome, progress)
    rollout._report(StackOutcome("rehearsal", "up", summary={"same": 3}, seconds=4.8), progress)
    progress("  rehearsal.bench-00003: skipped (desired state unchanged since 25e8c0a37f88)")
    assert progress.stack_seconds("rehearsal.bench-00002") == 8.4
    assert progress.stack_seconds("rehearsal") == 4.8
    assert progress.stack_seconds("rehearsal.bench-00003") is None  # skipped: no engine run, no seconds


def test_the_changed_tenants_are_real_spread_and_never_the_unit_or_a_template():
    slugs = bench_release.changed_slugs(200, 10)
    assert len(set(slugs)) == 10
    assert not {bench_release.UNIT_SLUG, bench_slug(1), bench_slug(3)} & set(slugs)
    assert max(int(s.rsplit("-", 1)[1]) for s in slugs) > 150  # spread over the fleet, not the first ten
    assert all(int(s.rsplit("-", 1)[1]) <= 200 for s in slugs)


def test_max_tokens_is_changed_in_one_place(tmp_path):
    path = generate(1, tmp_path)[0]
    bench_release.set_max_tokens(path, 530)
    assert "max_tokens: 530" in path.read_text() and "max_tokens: 500" not in path.read_text()


def test_a_clone_carries_its_own_slug_id_and_name_and_nothing_of_the_template(tmp_path):
    text = generate(7, tmp_path)[0].read_text() + json.dumps({"urn": "urn:pulumi:rehearsal.bench-00001::x"})
    rewritten = release_clones._rewrite(text, 1, 7)
    assert bench_slug(1) not in rewritten and release_clones._tenant_id(1) not in rewritten
    assert "Bench Client 00001" not in rewritten
    assert bench_slug(7) in rewritten and release_clones.clone_tenant_id(7) in rewritten
    assert "Bench Client 00007" in rewritten and "urn:pulumi:rehearsal.bench-00007::x" in rewritten


def _row(size, unit, nothing, ten, clones=0):
    load = [1.0, 1.0, 1.0]
    return {"tenants": size, "real_stacks": size - clones, "clones": clones,
            "unit": {"stack_s": unit, "command_s": unit * 2, "load_before": load, "load_after": load},
            "no_change": {"wall_s": nothing, "skipped": size, "ran": 0, "load_before": load, "load_after": load},
            "ten_changed": {"wall_s": ten, "ran": 10, "skipped": size - 10, "load_before": load, "load_after": load}}


def test_the_ratios_are_the_issues_and_say_which_rows_used_clones():
    rows = [_row(20, 10.0, 30.0, 60.0), _row(200, 10.0, 90.0, 100.0), _row(1000, 10.0, 320.0, 200.0, clones=800)]
    found = {r["aim"]: r for r in bench_release.ratios(rows)}
    assert found["no-change release at 200 tenants / one stack's no-change up"]["value"] == 9.0
    assert found["no-change release at 200 tenants / one stack's no-change up"]["met"]
    assert not found["no-change release at 1,000 tenants / one stack's no-change up"]["met"]  # 32x > 30x
    assert found["no-change release at 1,000 tenants / one stack's no-change up"]["clones"] == 800
    assert found["10 of 200 changed / 10 of 20 changed"]["value"] == round(100 / 60, 2)
    assert not found["10 of 200 changed / 10 of 20 changed"]["met"]
    assert found["the same, each over its size's unit (10.0x / 6.0x)"]["value"] == 1.67
    table = bench_release.markdown({"started": "now", "machine": "m", "rows": rows,
                                    "ratios": list(found.values())})
    assert "800 **clones** (shortcut)" in table and "| 200 | 200 real |" in table


def test_clone_ids_sort_after_every_real_tenant_and_in_clone_order():
    """So that adding clones moves the isolation peers of only the last two real tenants and earlier clones."""
    import uuid

    real = [release_clones._tenant_id(i) for i in range(1, 201)]
    clones = [release_clones.clone_tenant_id(i) for i in range(201, 1001)]
    assert sorted(real + clones) == sorted(real) + clones
    assert all(uuid.UUID(c).version == 5 for c in clones)
