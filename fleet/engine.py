"""The real Pulumi engine, driven through the Automation API (`pulumi.automation`).

The program is `__main__.py`, exactly as `pulumi up` runs it. It runs as the Automation API's inline
program (the SDK's own language server, which the CLI reaches with `--client`) rather than through
the `pulumi-language-python` plugin, because that plugin's Go module is not served where this project
is built; the program's code, its config and the engine's steps are the same either way.

Nothing is downloaded at run time: every engine process gets PULUMI_SKIP_UPDATE_CHECK and
PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION, and finds its plugins next to the CLI in `.venv/bin`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import runpy
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.naming import PROJECT

NO_DOWNLOADS = {"PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true"}
SETUP_HINT = "run `make setup`, which builds it into .venv/bin from Go modules (or install Pulumi)"


class EngineError(Exception):
    """The engine is missing or a run failed; the message says what to do, never a secret."""


def pulumi_binary(project_root: Path) -> Path:
    """The CLI `make setup` built into .venv/bin, else a `pulumi` on PATH; EngineError when neither exists."""
    built = project_root / ".venv" / "bin" / "pulumi"
    if built.is_file() and os.access(built, os.X_OK):
        return built
    found = shutil.which("pulumi")
    if found:
        return Path(found)
    raise EngineError(f"the Pulumi CLI is not installed: {SETUP_HINT}")


def engine_version(project_root: Path) -> str:
    binary = pulumi_binary(project_root)
    result = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=60,
                            env=engine_environment(project_root, {}))
    if result.returncode != 0:
        raise EngineError(f"{binary} version failed: {result.stderr.strip()[-300:]}")
    _remember_version(binary, result.stdout.strip())
    return result.stdout.strip()


def engine_environment(project_root: Path, extra: dict[str, str]) -> dict[str, str]:
    """What every engine process gets: no downloads, the venv's plugins and Python, the project importable
    by the dynamic provider host (it unpickles the providers by module name)."""
    venv_bin = project_root / ".venv" / "bin"
    python = venv_bin / "python" if (venv_bin / "python").exists() else Path(sys.executable)
    # `make setup` registers the plugins it built in the venv's own Pulumi home; a normal install keeps its own.
    home = project_root / ".venv" / "pulumi-home"
    return {
        **os.environ,
        **({"PULUMI_HOME": str(home)} if home.is_dir() and "PULUMI_HOME" not in os.environ else {}),
        **NO_DOWNLOADS,
        # Plugins load as installed, at the versions the SDKs ask for, never whatever is first on PATH.
        "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
        "PATH": f"{pulumi_binary(project_root).parent}{os.pathsep}{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_PYTHON_CMD": str(python),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(project_root), os.environ.get("PYTHONPATH")])),
        **extra,
    }


def program(project_root: Path) -> Callable[[], None]:
    """`__main__.py` as the inline program: the same file `pulumi up` runs, in the project root."""

    def run() -> None:
        if str(project_root) not in sys.path:
            sys.path.insert(0, str(project_root))
        runpy.run_path(str(project_root / "__main__.py"), run_name="__main__")

    return run


@dataclass
class Backend:
    """Where an environment's stacks live and how their secrets are encrypted.

    `backend_dir` set: a local `file://` backend with a work folder of its own (the rehearsal, the
    benchmarks), stack config set by the caller, the passphrase provider. Unset: the project itself,
    as `pulumi` runs it there: its Pulumi.yaml and `stacks/` files, the backend `pulumi login` chose,
    and for a stack created here the secrets provider of the environment's platform stack file."""

    project_root: Path
    backend_dir: Path | None = None
    work_dir: Path | None = None
    passphrase: str | None = None
    secrets_provider: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        return self.backend_dir is not None


@dataclass
class StackSpec:
    """One stack of a backend, with the config the caller sets on it (`secrets` stored encrypted)."""

    backend: Backend
    name: str
    config: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def workspace_options(backend: Backend):
    from pulumi import automation as auto

    extra = dict(backend.env)
    if backend.passphrase is not None:
        extra["PULUMI_CONFIG_PASSPHRASE"] = backend.passphrase
    env = engine_environment(backend.project_root, extra)
    binary = pulumi_binary(backend.project_root)
    command = _pulumi_command(str(binary.parent.parent))
    if not backend.local:
        return auto.LocalWorkspaceOptions(work_dir=str(backend.project_root), pulumi_home=env.get("PULUMI_HOME"),
                                          env_vars=env, pulumi_command=command,
                                          secrets_provider=backend.secrets_provider)
    backend.backend_dir.mkdir(parents=True, exist_ok=True)
    backend.work_dir.mkdir(parents=True, exist_ok=True)
    _write_project_file(backend.work_dir, backend.backend_dir)
    return auto.LocalWorkspaceOptions(work_dir=str(backend.work_dir), pulumi_home=env.get("PULUMI_HOME"), env_vars=env,
                                      pulumi_command=command, secrets_provider="passphrase")


# The CLI's version as this run already asked it: "<binary>|<size>|<mtime_ns>|<inode>|<version>". Set in the process
# that asked, and so inherited by every process it spawns afterwards (each stack's worker), which then need not ask
# again: a `pulumi version` is a process of its own (0.3-1 s on a loaded 2-core machine), once per stack. Keyed by
# the binary's identity: a CLI rebuilt or replaced since is asked again.
KNOWN_VERSION = "TENANTCTL_PULUMI_VERSION"


def _binary_identity(binary: Path) -> str:
    stat = binary.stat()
    return f"{binary}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"


def _remember_version(binary: Path, version: str) -> None:
    with contextlib.suppress(OSError):
        os.environ[KNOWN_VERSION] = f"{_binary_identity(binary)}|{version.strip()}"


def _known_version(binary: Path) -> str | None:
    recorded = os.environ.get(KNOWN_VERSION, "")
    identity, _, version = recorded.rpartition("|")
    try:
        return version if identity and version and identity == _binary_identity(binary) else None
    except OSError:
        return None


@functools.cache
def _pulumi_command(root: str):
    """One per process. The Automation API asks the CLI its version (`pulumi version`) for each one it makes, unless
    this run asked already for the same binary (`KNOWN_VERSION`): then it is told. The version is only used to
    choose features (how the event log is read), and the version check is skipped either way."""
    from pulumi import automation as auto
    from semver import VersionInfo

    binary = Path(root) / "bin" / "pulumi"
    known = _known_version(binary)
    if known is not None:
        with contextlib.suppress(ValueError):
            command = auto.PulumiCommand.__new__(auto.PulumiCommand)
            command.command = str(binary)
            command.version = VersionInfo.parse(known.removeprefix("v"))
            return command
    command = auto.PulumiCommand(root=root, skip_version_check=True)
    if command.version is not None:
        _remember_version(binary, str(command.version))
    return command


def _write_project_file(work_dir: Path, backend_dir: Path) -> None:
    """The local workspace's Pulumi.yaml, replaced in one step: stacks running at once in other processes read
    it while another writes it (the Automation API's own save truncates the file first)."""
    import json
    import tempfile

    text = f"name: {PROJECT}\nruntime: python\nbackend:\n  url: {json.dumps(backend_dir.as_uri())}\n"
    path = work_dir / "Pulumi.yaml"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    with tempfile.NamedTemporaryFile("w", dir=work_dir, prefix=".Pulumi.yaml.", delete=False,
                                     encoding="utf-8") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def open_stack(spec: StackSpec, create: bool = True):
    """Select the stack, or create it (with its tags) when `create`; then set the caller's config.

    On a file backend, a stack whose checkpoint is in the backend's folder is opened without `pulumi stack select`
    (a CLI process that loads the stack only to say it exists, and records it as the workspace's current stack,
    which nothing here uses: every command names its stack). A checkpoint the engine cannot load fails the first
    command that loads it, as the select would have. Plain config the stack file already holds, as the caller
    sets it, is not set again (the file is read, not the CLI asked); secrets are compared through the CLI, which
    decrypts (the file holds only their ciphertext)."""
    from pulumi import automation as auto
    from pulumi.automation.errors import StackNotFoundError

    options = workspace_options(spec.backend)
    run = program(spec.backend.project_root)
    stack = _existing_on_file_backend(spec, options, run)
    if stack is None:
        try:
            stack = auto.select_stack(stack_name=spec.name, project_name=PROJECT, program=run, opts=options)
        except StackNotFoundError:
            if not create:
                raise
            stack = auto.create_stack(stack_name=spec.name, project_name=PROJECT, program=run, opts=options)
            for key, value in spec.tags.items():
                stack.set_tag(key, value)
    values = {f"{PROJECT}:{k}" if ":" not in k else k: auto.ConfigValue(value=v) for k, v in spec.config.items()}
    secrets = {f"{PROJECT}:{k}": v for k, v in spec.secrets.items()}
    if values and not secrets:
        stored = stored_plain_config(spec)
        values = {k: v for k, v in values.items() if stored.get(k) != v.value}
    if secrets:
        # One read (its plaintext on stdout, not argv) instead of a write per value: a stack opened again with
        # the same settings, as every run of the rehearsal does, then costs one CLI call, as set_all_config did.
        current = stack.get_all_config()
        values = {k: v for k, v in values.items()
                  if k not in current or (current[k].value, current[k].secret) != (v.value, False)}
        secrets = {k: v for k, v in secrets.items()
                   if k not in current or (current[k].value, current[k].secret) != (v, True)}
    if values:
        stack.set_all_config(values)
    for key, value in secrets.items():
        set_secret_config(stack, key, value)
    return stack


def _existing_on_file_backend(spec: StackSpec, options, run):
    """The stack, opened without `pulumi stack select`, when a file backend's folder holds its checkpoint and the
    work folder its project file; None otherwise (then it is selected, or created, as on any backend)."""
    from pulumi import automation as auto
    from pulumi.automation._stack import StackInitMode

    paths = stack_paths(spec.backend, spec.name)
    work_dir = Path(options.work_dir or "")
    if paths is None or not (work_dir / "Pulumi.yaml").is_file():
        return None
    checkpoint = paths[0]
    if not (checkpoint.is_file() or checkpoint.with_name(checkpoint.name + ".gz").is_file()):
        return None
    options.program = run
    stack = auto.Stack.__new__(auto.Stack)  # Stack.__init__ would select it: one CLI process
    stack.name, stack.workspace, stack._mode = spec.name, auto.LocalWorkspace(**vars(options)), StackInitMode.SELECT
    return stack


def stored_plain_config(spec: StackSpec) -> dict[str, str]:
    """The plain values the stack's file holds (full keys), as the CLI would set them; nothing when it cannot be
    read (then every value is set, as before)."""
    from fleet.stack_files import StackFileError, read_stack_file

    root = spec.backend.work_dir if spec.backend.local else spec.backend.project_root
    try:
        config = read_stack_file(root, spec.name).config
    except (StackFileError, OSError):
        return {}
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in config.items()
            if not isinstance(v, dict | list)}


def set_secret_config(stack, key: str, value: str) -> None:
    """`pulumi config set --secret` with the value on stdin. The Automation API's set_config and set_all_config
    put the plaintext in argv, which any user of the machine can read (ps, /proc/<pid>/cmdline); the CLI reads
    the value from stdin when none is given (`--raw` keeps it byte for byte)."""
    workspace = stack.workspace
    command = [workspace.pulumi_command.command, "--non-interactive", "config", "set", key, "--secret", "--raw",
               "--stack", stack.name]
    done = subprocess.run(command, input=value, cwd=workspace.work_dir, env={**os.environ, **workspace.env_vars},
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise EngineError(f"pulumi config set --secret {key} failed: {lines[-1] if lines else done.returncode}")


def existing_stacks(backend: Backend, names: list[str]) -> list[str]:
    """Which of these stacks exist, asked one by one: listing every stack reads every stack's checkpoint on a
    self-managed backend, which a one-tenant change must not pay for. Changes nothing (not even the selection)."""
    options = workspace_options(backend)
    binary = str(pulumi_binary(backend.project_root))
    found = []
    for name in dict.fromkeys(names):
        result = subprocess.run([binary, "stack", "output", "--json", "--stack", name], cwd=options.work_dir,
                                env=dict(options.env_vars), capture_output=True, text=True, timeout=120)
        if result.returncode == 0:
            found.append(name)
        elif "no stack named" not in result.stderr and "not found" not in result.stderr:
            raise EngineError(f"cannot tell whether stack {name} exists: {result.stderr.strip()[-300:]}")
    return sorted(found)


def list_stacks(backend: Backend) -> list[str]:
    """The project's stacks on the backend (their short names). On a file backend they are read from its
    folder: `pulumi stack ls` parses every checkpoint, so one corrupt checkpoint would fail the whole fleet
    (and listing by name is cheaper); that stack fails alone when it runs."""
    from pulumi import automation as auto
    from pulumi.automation.errors import CommandError

    folder = file_backend_dir(backend)
    if folder is not None:
        stacks = folder / ".pulumi" / "stacks" / PROJECT
        names = {p.name.removesuffix(".gz").removesuffix(".json") for p in stacks.glob("*.json*")
                 if p.name.endswith((".json", ".json.gz"))} if stacks.is_dir() else set()
        return sorted(names)
    workspace = auto.LocalWorkspace(**vars(workspace_options(backend)))
    try:
        return sorted(summary.name.rsplit("/", 1)[-1] for summary in workspace.list_stacks())
    except CommandError as exc:
        raise EngineError(f"cannot list the stacks of this backend: {str(exc).strip().splitlines()[-1]}") from None


def runs_dir(backend: Backend) -> Path:
    """Where a run records the sessions of its engine processes (services.run_sessions): the rehearsal's state
    folder, else this user's local state (never a backend folder another host may share)."""
    if backend.work_dir is not None:
        return backend.work_dir.parent / "runs"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "tenantctl" / "runs"


def file_backend_dir(backend: Backend) -> Path | None:
    """The folder of a `file://` backend: the rehearsal's own, or the project's (PULUMI_BACKEND_URL, its
    Pulumi.yaml's `backend.url`, or the login), read as fleet.state_folder reads it. None for any other."""
    from fleet import state_folder

    if backend.backend_dir is not None:
        return backend.backend_dir
    url = backend.env.get("PULUMI_BACKEND_URL") or state_folder.backend_url(backend.project_root)
    return state_folder.file_backend_dir(url, backend.project_root)


def checkpoint_problem(backend: Backend, stack: str) -> str | None:
    """On a file backend, why the stack's checkpoint cannot be read (naming the backup the backend keeps, if
    any); None when it parses or is not on a file backend."""
    import json

    folder = file_backend_dir(backend)
    if folder is None:
        return None
    path = folder / ".pulumi" / "stacks" / PROJECT / f"{stack}.json"
    if not path.is_file():
        return None
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        backup = path.with_name(path.name + ".bak")
        restore = (f"; the backend keeps the previous checkpoint at {backup}: check it, then, with no run going, "
                   f"`cp {backup} {path}` and `tenantctl up` (it redoes what the lost save held)"
                   ) if backup.is_file() else "; the backend keeps no backup of it: restore the folder from a backup"
        return f"the checkpoint of stack {stack} is unreadable ({path}: {type(exc).__name__}){restore}"
    return None


def stack_paths(backend: Backend, stack: str) -> tuple[Path, Path] | None:
    """A stack's checkpoint and history folder on a file backend; None on any other."""
    folder = file_backend_dir(backend)
    if folder is None:
        return None
    return (folder / ".pulumi" / "stacks" / PROJECT / f"{stack}.json",
            folder / ".pulumi" / "history" / PROJECT / stack)


def read_checkpoint(backend: Backend, stack: str) -> dict | None:
    """A stack's checkpoint (`pulumi stack export`'s deployment: secrets stay ciphertext) read from a file backend's
    folder, without starting the CLI; None when the stack has none there or the backend is not a file backend.
    ValueError or OSError when it cannot be read."""
    import gzip
    import json

    paths = stack_paths(backend, stack)
    if paths is None:
        return None
    path = paths[0]
    if path.is_file():
        document = json.loads(path.read_text(encoding="utf-8"))
    elif path.with_name(path.name + ".gz").is_file():
        document = json.loads(gzip.decompress(path.with_name(path.name + ".gz").read_bytes()))
    else:
        return None
    return (document.get("checkpoint") or {}).get("latest") or {}


def last_history(backend: Backend, stack: str) -> dict | None:
    """The newest entry of a stack's update history (kind, result, times) from a file backend's folder; None when
    there is none there or the backend is not a file backend."""
    import json

    paths = stack_paths(backend, stack)
    if paths is None or not paths[1].is_dir():
        return None

    def stamp(path: Path) -> int:
        number = path.name.removesuffix(".history.json").rsplit("-", 1)[-1]
        return int(number) if number.isdigit() else -1

    entries = list(paths[1].glob("*.history.json"))
    if not entries:
        return None
    return json.loads(max(entries, key=stamp).read_text(encoding="utf-8"))


@dataclass
class EngineEvents:
    """What the engine said about each resource during one operation, from its event stream."""

    ops: dict[str, str] = field(default_factory=dict)  # urn -> op of the final step
    errors: dict[str, list[str]] = field(default_factory=dict)  # urn -> error diagnostics
    general_errors: list[str] = field(default_factory=list)
    fault: Callable[[Any], None] | None = None  # the crash tests' kill point (fleet.stack_run.FAULT_ENV)
    summary: dict[str, int] | None = None  # the engine's summary of the operation (op -> count), at its end

    def __call__(self, event: Any) -> None:
        if self.fault is not None:
            self.fault(event)
        summary = getattr(event, "summary_event", None)
        if summary is not None:
            changes = summary.resource_changes or {}
            self.summary = {getattr(op, "value", str(op)): count for op, count in changes.items()}
        if event.res_outputs_event is not None:
            self.ops[event.res_outputs_event.metadata.urn] = event.res_outputs_event.metadata.op.value
        elif event.resource_pre_event is not None and event.resource_pre_event.metadata.urn not in self.ops:
            self.ops[event.resource_pre_event.metadata.urn] = event.resource_pre_event.metadata.op.value
        elif event.res_op_failed_event is not None:
            self.ops[event.res_op_failed_event.metadata.urn] = "failed"
        elif event.diagnostic_event is not None and event.diagnostic_event.severity == "error":
            message = event.diagnostic_event.message.strip()
            urn = event.diagnostic_event.urn
            if urn:
                self.errors.setdefault(urn, []).append(message)
            else:
                self.general_errors.append(message)


def resource_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def resource_type(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


def export_state(stack) -> dict:
    """`pulumi stack export` as a reviewer or backup job sees it: secrets stay ciphertext.

    (The Automation API's own `export_stack` passes --show-secrets.)
    """
    import json

    workspace = stack.workspace
    result = workspace.pulumi_command.run(["stack", "export", "--stack", stack.name], workspace.work_dir,
                                          workspace.env_vars)
    return json.loads(result.stdout)


def import_state(stack, deployment: dict) -> None:
    """`pulumi stack import` of an exported deployment (`export_state`'s, secrets still ciphertext), from a file
    only this user can read. The engine clears pending operations on import."""
    import json
    import tempfile

    workspace = stack.workspace
    with tempfile.TemporaryDirectory(prefix="tenantctl-state-") as folder:
        path = Path(folder) / "state.json"
        path.write_text(json.dumps(deployment), encoding="utf-8")
        path.chmod(0o600)
        workspace.pulumi_command.run(["stack", "import", "--file", str(path), "--stack", stack.name],
                                     workspace.work_dir, workspace.env_vars)
    forget_applied_digest(stack)


# The desired-state digest the last successful `up` applied (fleet.desired_state). Whatever else changes a stack's
# state (an import, a refresh, an interrupted or failed `up`, an offboarding) removes it first, so that a recorded
# digest always describes the state as it is; an `up` of the very desired state it names keeps it (fleet.stack_run,
# `_forget_unless_reapplied`, says why that keeps the promise).
APPLIED_DIGEST_TAG = "tenant:applied-digest"


def forget_applied_digest(stack) -> None:
    from pulumi.automation import errors as auto_errors

    try:
        stack.remove_tag(APPLIED_DIGEST_TAG)
    except auto_errors.CommandError:
        pass


def up(stack, backend: Backend, events: EngineEvents, **options) -> tuple[dict[str, int], dict[str, Any]]:
    """`stack.up`, returning its summary (op -> count) and the stack's outputs that are not secret.

    After the `up` itself, the Automation API makes three more CLI calls: `stack output` twice (masked, then with
    the secrets in the clear, to tell which outputs are secret) and `stack history` (for the summary). On a file
    backend they are not made: the summary is the one the engine sent at the end of the `up` (its event stream's
    summary event, what it records in the history too), and the outputs are read from the checkpoint the `up`
    saved, where a secret is its ciphertext envelope: an output with a secret anywhere in it counts as secret, and
    is left out (stricter than `stack output`, which marks only a wholly secret one). Either missing or unusual
    (no summary event; an asset, archive or resource reference in an output), the CLI is asked, as before."""
    from pulumi import automation as auto

    if file_backend_dir(backend) is None:
        result = stack.up(on_event=events, **options)
        return dict(result.summary.resource_changes or {}), _plain_outputs(result.outputs)
    placeholder = auto.UpdateSummary(kind="update", start_time=None, message="", environment={}, config={},
                                     result="succeeded")
    stack.outputs = dict  # instance attributes, for this call only: the Automation API's reads after the `up`
    stack.info = lambda *_args, **_kwargs: placeholder
    try:
        stack.up(on_event=events, **options)
    finally:
        del stack.outputs, stack.info
    summary = events.summary
    if summary is None:
        summary = dict(stack.info().resource_changes or {})
    outputs = outputs_from_checkpoint(backend, stack.name)
    if outputs is None:
        outputs = _plain_outputs(stack.outputs())
    return summary, outputs


def _plain_outputs(outputs: dict) -> dict[str, Any]:
    return {k: v.value for k, v in outputs.items() if not v.secret}


SIGNATURE_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIGNATURE = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 (the SDK's marker of a secret value)


def outputs_from_checkpoint(backend: Backend, stack: str) -> dict[str, Any] | None:
    """The root stack's outputs that hold no secret, from a file backend's checkpoint; None when they cannot be
    read from it (no checkpoint, no root stack, a value of a special kind other than a secret)."""
    try:
        deployment = read_checkpoint(backend, stack)
    except (OSError, ValueError):
        return None
    root = next((r for r in (deployment or {}).get("resources") or [] if r.get("type") == "pulumi:pulumi:Stack"),
                None)
    if root is None:
        return None
    plain = {}
    for key, value in (root.get("outputs") or {}).items():
        kinds = _signatures(value)
        if kinds - {SECRET_SIGNATURE}:
            return None
        if not kinds:
            plain[key] = value
    return plain


def _signatures(value: Any) -> set[str]:
    """The special kinds (secret, asset, archive, resource reference, output) anywhere in a checkpoint value."""
    if isinstance(value, dict):
        found = {str(value[SIGNATURE_KEY])} if SIGNATURE_KEY in value else set()
        for item in value.values():
            found |= _signatures(item)
        return found
    if isinstance(value, list):
        return set().union(*(_signatures(item) for item in value)) if value else set()
    return set()


def read_tags(stack, backend: Backend) -> dict[str, str]:
    """The stack's tags: on a file backend from the file beside its checkpoint (`<stack>.pulumi-tags`, where the
    engine keeps them), else `pulumi stack tag ls`. A file that is missing or not in the form known here is asked
    of the CLI."""
    import json

    try:
        paths = stack_paths(backend, stack.name)
    except Exception:  # noqa: BLE001 (a backend whose folder cannot be told: the CLI answers)
        paths = None
    if paths is not None:
        path = paths[0].with_name(f"{stack.name}.pulumi-tags")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            document = None
        if isinstance(document, dict) and document.get("version") == 1 and isinstance(document.get("tags"), dict):
            return {str(k): str(v) for k, v in document["tags"].items()}
    return stack.list_tags()
