"""A private PostgreSQL cluster for tests and rehearsals: initdb, start, stop, and delete or keep.

The cluster listens on 127.0.0.1, keeps its unix socket inside its data directory, trusts every
connection and runs with fsync off. By default it lives in a temp dir deleted on stop; given a
`root`, it is kept there between runs (what `tenantctl rehearse` uses) until `destroy()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import psycopg
from psycopg import sql

from services import kept_running, process_records
from services.kept_running import KeptRunning
from services.ports import HOST, answers, free_port
from tenancy import app_schema

SUPERUSER = "postgres"
SERVER_RECORD = "server.json"  # beside data/: the postmaster this class started (pid, start time, boot id)
SERVER_PACKAGE_HINT = "install the PostgreSQL server package (e.g. `apt-get install postgresql`)"
START_ATTEMPTS = 3
COMMAND_TIMEOUT = 120.0


class LocalPostgresError(Exception):
    """The local cluster could not be found, created, started or used; the message says what to fix."""


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb, else the directory of initdb on PATH."""

    def version(bin_dir: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name)) or (0,)

    installed = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()]
    if installed:
        return max(installed, key=version)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise LocalPostgresError(
        f"initdb not found (neither /usr/lib/postgresql/*/bin/initdb nor initdb on PATH): {SERVER_PACKAGE_HINT}"
    )


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A postmaster daemonized by pg_ctl is reparented; where nobody reaps it, it lingers as a zombie.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _read_postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class LocalPostgres(KeptRunning):
    """A private PostgreSQL cluster. Use as a context manager, or call start() and stop()."""

    LEFT_RUNNING_WHAT = "server"
    ERROR = LocalPostgresError

    def __init__(self, bin_dir: Path | str | None = None, *, base_dir: Path | str | None = None,
                 start_timeout: float = 60.0, root: Path | str | None = None, port: int | None = None) -> None:
        self._bin_dir = Path(bin_dir) if bin_dir is not None else None
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self._kept_root = Path(root).resolve() if root is not None else None
        self._preferred_port = port
        self._start_timeout = start_timeout
        self._server_bin: Path | None = None
        self._root: Path | None = None
        self._port: int | None = None
        self._pid: int | None = None
        self._attempt_started: float | None = None  # when this object last ran `pg_ctl start`
        self._adopted = False  # using a server an earlier run left running: stop() leaves it be

    # Lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> LocalPostgres:
        if self._pid is not None:
            return self
        bin_dir = self._server_bin = self._bin_dir or find_bin_dir()
        for tool in ("initdb", "pg_ctl"):
            if not os.access(bin_dir / tool, os.X_OK):
                raise LocalPostgresError(
                    f"{tool} not found in {bin_dir}: {SERVER_PACKAGE_HINT}, or pass the directory holding "
                    "initdb and pg_ctl"
                )
        owner = self._server_owner()
        try:
            self._root = self._make_root(owner)
            kept_running.unmark(self._root)
            if not (self._root / "data" / "PG_VERSION").is_file():
                self._initdb(bin_dir, owner)
            self._stop_our_leftover(bin_dir, owner)
            self._attempt_started = time.time()
            self._start_server(bin_dir, owner)
            self._record_server()
        except BaseException:
            self.stop()
            raise
        return self

    def adopt(self) -> bool:
        """Use the server this class recorded starting on the kept `root` and left running on purpose (`tenantctl
        rehearse --keep-running`), if it is still the recorded one and answers on its port. True when adopted;
        stop() then only lets go of it. False (nothing changed) otherwise."""
        if self._pid is not None:
            return True
        if not kept_running.marked(self._kept_root):
            return False  # a recorded server still running without it was left by a killed run: start() stops it
        self._root = self._kept_root
        record = self._recorded_server()
        data = self._root / "data"
        pid = _read_postmaster_pid(data)
        try:
            port = int((data / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, ValueError, IndexError):
            port = None
        if record is None or record.pid != pid or not process_records.is_running(record) or port is None \
                or not answers(port):
            self._root = None
            return False
        self._pid, self._port, self._adopted = pid, port, True
        return True

    def _is_running(self) -> bool:
        return self._pid is not None

    def _stop_our_leftover(self, bin_dir: Path, owner: tuple[int, int] | None) -> None:
        """A server still running on a kept data folder was left by a run that was killed: stop it cleanly (its
        data stays) if this class recorded starting it; refuse, and leave it alone, if anyone else did."""
        assert self._root is not None
        data = self._root / "data"
        pid = _read_postmaster_pid(data)
        if pid is None or process_records.start_ticks(pid) is None:
            return
        record = self._recorded_server()
        if record is None or record.pid != pid or not process_records.is_running(record):
            raise LocalPostgresError(
                f"a PostgreSQL server that tenantctl did not start (pid {pid}) is running on {data}; it was left "
                "alone: stop it, or use it with --database-url")
        self._run([bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "30", "stop"], "pg_ctl stop", owner)
        self._kill(pid)

    @classmethod
    def stop_recorded(cls, root: Path | str, bin_dir: Path | str | None = None) -> bool:
        """Stop the server this class recorded starting on `root` (left by a killed run), if it still runs;
        anything else is left alone. True when one was stopped."""
        cluster = cls(bin_dir, root=root)
        cluster._root = cluster._kept_root
        kept_running.unmark(root)
        record = cluster._recorded_server()
        if record is None or not process_records.is_running(record):
            return False
        try:
            cluster._stop_our_leftover(cluster._bin_dir or find_bin_dir(), cluster._server_owner())
        finally:
            cluster._root = None
        return True

    def _recorded_server(self) -> process_records.ProcessRecord | None:
        assert self._root is not None
        try:
            return process_records.ProcessRecord.from_dict(json.loads((self._root / SERVER_RECORD).read_text()))
        except (OSError, ValueError):
            return None

    def _record_server(self) -> None:
        """Which postmaster is ours, written as soon as it runs: a later run may then stop it, and nothing else."""
        assert self._root is not None and self._pid is not None
        record = process_records.record_of(self._pid)
        if record is not None:
            temporary = self._root / (SERVER_RECORD + ".tmp")
            temporary.write_text(json.dumps(record.as_dict()))
            temporary.replace(self._root / SERVER_RECORD)

    def stop(self) -> None:
        """Stop the server and delete its directory (a kept `root` stays, cleanly shut down). Idempotent."""
        root, pid, bin_dir = self._root, self._pid, self._server_bin
        self._root = self._port = self._pid = None
        if self._adopted:
            self._adopted = False
            return
        if root is None:
            return
        keep = root == self._kept_root
        try:
            if pid is None:  # start() failed after the server may have come up: stop it only if this start did
                pid = self._started_by_this_attempt(_read_postmaster_pid(root / "data"))
            if pid is not None and process_alive(pid) and bin_dir is not None:
                with contextlib.suppress(LocalPostgresError):
                    self._run([bin_dir / "pg_ctl", "-D", root / "data", "-m", "fast" if keep else "immediate",
                               "-w", "-t", "30", "stop"], "pg_ctl stop", self._server_owner())
            if pid is not None:
                self._kill(pid)
        finally:
            if not keep:
                shutil.rmtree(root, ignore_errors=True)

    def _started_by_this_attempt(self, pid: int | None) -> int | None:
        started = process_records.started_at(pid) if pid is not None else None
        attempt = self._attempt_started
        if started is None or attempt is None or started.timestamp() < attempt - 1:
            return None
        return pid

    def destroy(self) -> None:
        """Stop the server and delete its directory, kept `root` included."""
        self.stop()
        if self._kept_root is not None:
            self.stop_recorded(self._kept_root, self._bin_dir)  # an adopted server is only let go by stop()
            shutil.rmtree(self._kept_root, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._pid is not None

    @property
    def port(self) -> int:
        self._require_running()
        assert self._port is not None
        return self._port

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        self._require_running()
        assert self._pid is not None
        return self._pid

    @property
    def data_dir(self) -> Path:
        self._require_running()
        assert self._root is not None
        return self._root / "data"

    # Using it ----------------------------------------------------------------------------------

    def dsn(self, user: str = SUPERUSER, dbname: str = "postgres") -> str:
        return f"postgresql://{quote(user, safe='')}@{HOST}:{self.port}/{quote(dbname, safe='')}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database (optionally copied from `template`) and return its superuser DSN."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        self._execute(statement, f"creating database {name!r}")
        return self.dsn(dbname=name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting anyone still using it."""
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        self._execute(statement, f"dropping database {name!r}")

    def load_schema(self, dbname: str, path: Path | str = app_schema.SCHEMA_PATH) -> None:
        app_schema.load_schema(self.dsn(dbname=dbname), Path(path))

    # Internals ---------------------------------------------------------------------------------

    def _require_running(self) -> None:
        if self._pid is None:
            raise LocalPostgresError("the local PostgreSQL cluster is not running: call start() first")

    def _execute(self, statement: sql.Composable, what: str) -> None:
        try:
            with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
                conn.execute(statement)
        except psycopg.Error as exc:
            raise LocalPostgresError(f"{what} failed: {str(exc).strip() or type(exc).__name__}") from None

    @staticmethod
    def _server_owner() -> tuple[int, int] | None:
        """(uid, gid) to run the server as: initdb and postgres refuse to run as root."""
        if os.geteuid() != 0:
            return None
        try:
            account = pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise LocalPostgresError(
                "running as root, which initdb and postgres refuse: create a 'postgres' OS user "
                f"({SERVER_PACKAGE_HINT} does) or run as an unprivileged user"
            ) from None
        return account.pw_uid, account.pw_gid

    @staticmethod
    def _run(args: list[str | Path], what: str, owner: tuple[int, int] | None,
             timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        as_owner = {"user": owner[0], "group": owner[1], "extra_groups": []} if owner else {}
        try:
            result = subprocess.run(
                [str(arg) for arg in args], capture_output=True, text=True, timeout=timeout, env=env,
                cwd=tempfile.gettempdir(), check=False, **as_owner,
            )
        except FileNotFoundError:
            raise LocalPostgresError(f"{Path(args[0]).name} not found at {args[0]}: {SERVER_PACKAGE_HINT}") from None
        except subprocess.TimeoutExpired:
            raise LocalPostgresError(f"{what} did not finish within {timeout:.0f}s") from None
        except OSError as exc:
            raise LocalPostgresError(f"{what} could not run: {exc}") from None
        if result.returncode != 0:
            output = _tail(result.stderr or result.stdout) or "(no output)"
            raise LocalPostgresError(f"{what} failed (exit {result.returncode}):\n{output}")
        return result

    def _make_root(self, owner: tuple[int, int] | None) -> Path:
        where = self._base_dir or Path(tempfile.gettempdir())
        try:
            if self._kept_root is not None:
                root = self._kept_root
                root.mkdir(parents=True, exist_ok=True)
                # The postgres OS user must be able to reach a root under root's home directory.
                for parent in root.parents:
                    if owner is not None and parent.stat().st_mode & 0o001 == 0:
                        raise LocalPostgresError(
                            f"{parent} is not searchable by the postgres OS user; choose another location"
                        )
            else:
                root = Path(tempfile.mkdtemp(prefix="localpg-", dir=where))
        except OSError as exc:
            raise LocalPostgresError(f"cannot create the cluster directory under {where}: {exc.strerror}") from None
        if owner is not None:
            try:
                os.chown(root, *owner)
            except OSError as exc:
                shutil.rmtree(root, ignore_errors=True)
                raise LocalPostgresError(f"cannot hand {root} to the postgres OS user: {exc.strerror}") from None
        return root

    def _initdb(self, bin_dir: Path, owner: tuple[int, int] | None) -> None:
        assert self._root is not None
        data = self._root / "data"
        self._run(
            [bin_dir / "initdb", "-D", data, "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            "initdb", owner,
        )
        settings = {
            "listen_addresses": f"'{HOST}'",
            "unix_socket_directories": f"'{data}'",
            # Durability is pointless for a cluster deleted on stop, and fsync dominates test time.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# services.localpg\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _start_server(self, bin_dir: Path, owner: tuple[int, int] | None) -> None:
        assert self._root is not None
        data, log = self._root / "data", self._root / "server.log"
        for attempt in range(1, START_ATTEMPTS + 1):
            # The port is free when chosen but may be taken before the server binds it: retry on a new one.
            port = self._preferred_port if attempt == 1 and self._preferred_port else free_port()
            try:
                self._run(
                    [bin_dir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", str(int(self._start_timeout)),
                     "-o", f"-p {port}", "start"],
                    "pg_ctl start", owner, timeout=self._start_timeout + 10,
                )
            except LocalPostgresError as exc:
                server_log = log.read_text(errors="replace") if log.exists() else ""
                if attempt < START_ATTEMPTS and ("could not bind" in server_log or "could not create" in server_log):
                    log.unlink(missing_ok=True)
                    continue
                raise LocalPostgresError(f"{exc}\nserver log:\n{_tail(server_log) or '(empty)'}") from None
            self._pid = _read_postmaster_pid(data)
            if self._pid is None:
                raise LocalPostgresError(f"pg_ctl reported the server started, but {data}/postmaster.pid is unreadable")
            self._port = port
            return

    def _kill(self, pid: int) -> None:
        """Make sure the postmaster is gone even if pg_ctl could not stop it."""
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            if not process_alive(pid):
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
