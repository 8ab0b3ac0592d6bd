"""LocalPostgres: a real throwaway cluster that leaves nothing behind, and operator-readable failures."""

from __future__ import annotations

import os
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from services.localpg import LocalPostgres, LocalPostgresError
from tests.pgfixtures import cluster_base_dir


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    """A directory the postgres OS user can reach (pytest's tmp_path is private to root when run as root)."""
    with tempfile.TemporaryDirectory(prefix="localpg-test-", dir=cluster_base_dir()) as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


def test_start_and_stop_leave_no_process_and_no_directory(scratch_dir):
    cluster = LocalPostgres(base_dir=scratch_dir)
    with cluster:
        pid, data_dir = cluster.pid, cluster.data_dir
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            assert conn.execute("SELECT current_setting('fsync')").fetchone() == ("off",)
        assert _running(pid)

    assert not _running(pid)
    assert not data_dir.exists()
    assert list(scratch_dir.iterdir()) == []
    cluster.stop()  # idempotent


def test_dsn_names_the_user_and_database(local_pg):
    name = f"dsn_{uuid.uuid4().hex[:12]}"
    local_pg.create_database(name)
    try:
        with psycopg.connect(local_pg.dsn(dbname=name)) as conn:
            row = conn.execute("SELECT current_user, current_database()").fetchone()
    finally:
        local_pg.drop_database(name)

    assert local_pg.dsn(dbname=name) == f"postgresql://postgres@127.0.0.1:{local_pg.port}/{name}"
    assert row == ("postgres", name)


def test_missing_binaries_directory_is_a_clear_error(scratch_dir):
    bogus = scratch_dir / "no-such-postgres" / "bin"

    with pytest.raises(LocalPostgresError, match=r"initdb not found in .*no-such-postgres.*install"):
        LocalPostgres(bin_dir=bogus, base_dir=scratch_dir).start()

    assert [p for p in scratch_dir.iterdir() if p.name.startswith("localpg-")] == []


def test_failing_initdb_is_reported_and_its_directory_removed(scratch_dir):
    bin_dir = scratch_dir / "bin"
    bin_dir.mkdir()
    for tool, script in {"initdb": "echo 'initdb: disk quota exceeded' >&2; exit 1", "pg_ctl": "exit 1"}.items():
        path = bin_dir / tool
        path.write_text(f"#!/bin/sh\n{script}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    clusters = scratch_dir / "clusters"
    clusters.mkdir()

    with pytest.raises(LocalPostgresError, match="initdb failed .*\n.*disk quota exceeded"):
        LocalPostgres(bin_dir=bin_dir, base_dir=clusters).start()

    assert list(clusters.iterdir()) == []


def test_using_a_stopped_cluster_is_a_clear_error():
    with pytest.raises(LocalPostgresError, match="not running"):
        LocalPostgres().dsn()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs the postgres OS user")
def test_as_root_the_server_runs_as_the_postgres_os_user(local_pg):
    assert Path(f"/proc/{local_pg.pid}").stat().st_uid != 0


def test_a_server_left_by_a_killed_run_is_stopped_cleanly_and_its_data_kept(scratch_dir):
    killed = LocalPostgres(root=scratch_dir / "pg")
    killed.start()
    killed.create_database("keepme")
    left_behind = killed.pid  # the run that started it is SIGKILLed: nobody stops it

    again = LocalPostgres(root=scratch_dir / "pg")
    try:
        again.start()
        assert not _running(left_behind) and again.pid != left_behind
        with psycopg.connect(again.dsn(dbname="keepme")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        again.stop()


def test_a_server_someone_else_started_on_the_data_folder_is_never_stopped(scratch_dir):
    theirs = LocalPostgres(root=scratch_dir / "pg")
    theirs.start()
    try:
        (scratch_dir / "pg" / "server.json").unlink()  # not recorded as ours: as if started by hand
        ours = LocalPostgres(root=scratch_dir / "pg")
        with pytest.raises(LocalPostgresError, match="did not start"):
            ours.start()
        assert _running(theirs.pid)
    finally:
        theirs.stop()


def test_a_server_left_running_on_purpose_is_adopted_as_it_is_and_stopped_only_by_stop_recorded(scratch_dir):
    kept = LocalPostgres(root=scratch_dir / "pg")
    kept.start()
    kept.create_database("keepme")
    pid, port = kept.pid, kept.port
    assert not LocalPostgres(root=scratch_dir / "pg").adopt()  # running, but not left running on purpose (yet)
    kept.leave_running()  # `tenantctl rehearse --keep-running`
    assert _running(pid)
    try:
        later = LocalPostgres(root=scratch_dir / "pg")
        assert later.adopt() and later.adopted and (later.pid, later.port) == (pid, port)
        with psycopg.connect(later.dsn(dbname="keepme")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        later.stop()  # only lets go
        assert _running(pid)
        assert not LocalPostgres(root=scratch_dir / "nothing-here").adopt()
    finally:
        assert LocalPostgres.stop_recorded(scratch_dir / "pg")  # `tenantctl rehearse --stop`
    assert not _running(pid)
    assert not LocalPostgres(root=scratch_dir / "pg").adopt()  # nothing left to adopt
