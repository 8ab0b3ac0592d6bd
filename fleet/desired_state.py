"""A tenant stack's desired state as one digest, computed offline: no engine, no cloud, no decrypted config.

The digest is taken over the mock-engine run of the program for that one stack (`fleet.mock_runtime`, with
generated values made stable), and over everything outside the program that decides what the engine would
do with it:

- every resource the program registers: its URN (type, name, parent), its inputs (a dynamic resource's
  serialized provider included) and its options exactly as the SDK sends them to the engine (provider,
  plugin version, protect, dependencies, aliases, ignoreChanges, ...), the outputs each component registers,
  and the stack's exports;
- the stack's config: plain values as they are, secrets as an HMAC (never the plaintext, never a plain hash);
- the platform outputs the stack can read through its StackReference (secret ones as an HMAC);
- the engine's version, the Pulumi SDKs' versions, the pins (requirements.txt) and the plugin binaries;
- the content of the project's policy pack (`policy/`), whether or not the run uses it: a policy change runs every
  stack (the pack checks each, and none changes). A run with a pack from anywhere else records no digest;
- the code the engine itself runs for a stack when nothing changed: the dynamic providers (`components/dynamic/`)
  and the domain modules their `check`, `diff` and `read` import (`tenancy/`).

What it leaves out, and why:

- where a resource is declared (source positions, stack traces): a comment or a moved line in `program/` or
  `components/` changes them and nothing the engine compares;
- comments and docstrings of the engine-run code: it is compared as its syntax tree without them;
- `checks/`, the post-deploy checks. **This is where the check logic lives**, on purpose: a dynamic provider is
  serialized by reference (its class is importable), so what a stack's inputs hold is the provider's name, not its
  code, and the provider host imports the code of the checkout it runs in. The OnboardingCheck runs the checks
  only when its diff says a trigger changed (components/dynamic/onboarding_check.py), and its `check`/`diff`
  never import `checks/`: a change to a check changes no stack, the engine forced to run every stack agrees, and
  the new checks reach a tenant the next time its triggers change, with `tenantctl verify`, or for every tenant
  at once when the platform's `checksNonce` changes (a platform output: every stack runs). The providers' own
  lifecycle code (`components/dynamic/`, `tenancy/`) is in every stack's digest: a mock run cannot tell what a
  changed `diff` would answer, so a change there runs every stack that has a dynamic resource (all of them).

Any doubt runs the stack: a program that registers transforms or hooks (their callbacks carry a fresh token
each run) never gets the same digest twice, and a stack whose digest cannot be computed gets none.

The HMAC key is the environment's own, made once and kept in its record store beside its id
(`digest-keys/<env>.json`, fleet.record_store): as private as the state it sits beside.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from components.naming import PROJECT
from fleet.engine import APPLIED_DIGEST_TAG
from fleet.mock_runtime import Secret, run_program, unwrap_secrets
from fleet.record_store import RecordStore, RecordStoreError, as_store

DIGEST_TAG = APPLIED_DIGEST_TAG
COMMIT_TAG = "tenant:deployed-commit"
# Bumped whenever what the digest covers changes: every stack then runs once.
DIGEST_VERSION = 1
DIGEST_PREFIX = f"v{DIGEST_VERSION}:"
# The code the engine runs for a stack whose inputs did not change (the dynamic providers' check, diff, read).
ENGINE_RUN_CODE = ("components/dynamic", "tenancy")
SDKS = ("pulumi", "pulumi-aws", "pulumi-kubernetes", "pulumi-random", "dill", "protobuf", "grpcio")
PLACEHOLDER_SECRET = "digest-placeholder-not-a-real-secret"  # noqa: S105 (a placeholder, by definition)
KEYS = "digest-keys"


class DigestError(Exception):
    """The digest cannot be computed: the stack runs."""


@dataclass(frozen=True)
class SharedInputs:
    """What every tenant stack of one run shares: computed once per run."""

    key: bytes
    platform_outputs: dict[str, Any]  # as the StackReference reads them, secret ones as `Secret`
    versions: dict[str, str]
    policy: str
    engine_code: str


def keyed(key: bytes, value: Any) -> str:
    """A secret as it enters the digest: an HMAC under the environment's key, never the value or its plain hash."""
    text = json.dumps(unwrap_secrets(value), sort_keys=True, separators=(",", ":"), default=str)
    return "hmac-sha256:" + hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def canonical(value: Any, key: bytes) -> Any:
    if isinstance(value, Secret):
        return {"secret": keyed(key, value.value)}
    if isinstance(value, dict):
        if value.get("4dabf18193072939515e22adb298388d") == "1b47061264138c4ac30d75fd1eb44270":  # a secret envelope
            return {"secret": keyed(key, value.get("value"))}
        return {str(k): canonical(v, key) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [canonical(v, key) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _options(options: dict, key: bytes) -> dict:
    """The options, with the URN lists the SDK fills in resolution order sorted."""
    ordered = dict(options)
    for name in ("dependencies", "aliasURNs"):
        if isinstance(ordered.get(name), list):
            ordered[name] = sorted(ordered[name])
    if isinstance(ordered.get("propertyDependencies"), dict):
        ordered["propertyDependencies"] = {
            k: {**v, "urns": sorted(v.get("urns", []))} if isinstance(v, dict) else v
            for k, v in ordered["propertyDependencies"].items()
        }
    return canonical(ordered, key)


def stack_document(stack: str, run, config: dict[str, Any], shared: SharedInputs) -> dict:
    """Everything the digest covers, for one stack, as plain JSON (secrets already keyed)."""
    key = shared.key
    return {
        "digest_version": DIGEST_VERSION,
        "stack": stack,
        "resources": sorted(({
            "urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent_urn, "custom": r.custom,
            "inputs": canonical(r.inputs, key), "options": _options(r.options, key),
        } for r in run.resources), key=lambda r: r["urn"]),
        "component_outputs": canonical(run.component_outputs, key),
        "exports": canonical(run.exports, key),
        "config": canonical(config, key),
        "platform_outputs": canonical(shared.platform_outputs, key),
        "versions": dict(sorted(shared.versions.items())),
        "policy": shared.policy,
        "engine_code": shared.engine_code,
    }


def digest_of(document: dict) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return DIGEST_PREFIX + hashlib.sha256(text.encode()).hexdigest()


def stack_digest(project_root: Path, stack: str, config: dict[str, Any], shared: SharedInputs) -> str:
    """The digest of one tenant stack: the program run for `stack` under the mocks, with `config` (full keys;
    a secret value is a `Secret` holding its plaintext or its ciphertext: it reaches the digest keyed, and the
    program sees a placeholder)."""
    document = stack_document(stack, tenant_run(project_root, stack, config, shared), config, shared)
    return digest_of(document)


def tenant_run(project_root: Path, stack: str, config: dict[str, Any], shared: SharedInputs):
    from checks.host import names_unresolved
    from fleet.mock_runtime import ProgramError

    plain = {k: str(v) for k, v in config.items() if not isinstance(v, Secret)}
    secret_keys = [k for k, v in config.items() if isinstance(v, Secret)]
    program_config = {**plain, **dict.fromkeys(secret_keys, PLACEHOLDER_SECRET)}
    try:
        with names_unresolved():  # offline: a DNS answer is not desired state, and one lookup can take seconds
            return run_program(project_root, stack, program_config, secret_keys,
                               platform_outputs=shared.platform_outputs, stable_outputs=True)
    except ProgramError as exc:
        raise DigestError(f"{stack}: the program does not run offline: {exc}") from None


# ---- what every stack of a run shares ----

POLICY_PACK = "policy"


def shared_inputs(project_root: Path, key: bytes, platform_outputs: dict[str, Any],
                  engine_version: str) -> SharedInputs:
    return SharedInputs(key, platform_outputs, versions(project_root, engine_version),
                        policy_digest([project_root / POLICY_PACK]), engine_code_digest(project_root))


def covers_packs(project_root: Path, policy_packs: list[str] | None) -> bool:
    """Whether the digest covers these packs: none, or the project's own."""
    own = (project_root / POLICY_PACK).resolve()
    return all(Path(p).resolve() == own for p in policy_packs or [])


def environment_shared(project_root: Path, env: str, spec_for, key: bytes | None) -> SharedInputs | None:
    """What every tenant stack of `env` shares, read now (the platform's outputs: one CLI call; the engine's
    version: another); None when there is no key or no platform outputs to read (no digest then)."""
    return shared_or_why(project_root, env, spec_for, key)[0]


def shared_or_why(project_root: Path, env: str, spec_for,
                  key: bytes | None) -> tuple[SharedInputs | None, str | None]:
    """`environment_shared`, and when there is none, why (what a run that cannot skip says)."""
    from fleet import engine

    if key is None:
        return None, f"environment {env} has no digest key yet (its first `up` makes it)"
    try:
        platform = read_platform_outputs(spec_for(env, None))
        return shared_inputs(project_root, key, platform, engine.engine_version(project_root)), None
    except (DigestError, engine.EngineError) as exc:
        return None, str(exc)


def environment_key(backend, env: str, create: bool = False) -> bytes | None:
    """The environment's key, from the record store beside its state (the rehearsal's state folder, or a project
    `file://` or `s3://` backend's); None on any other backend: its stacks record no digest, and always run."""
    from fleet.state_folder import UnsupportedBackend, project_store, rehearsal_records

    try:
        records = (rehearsal_records(backend.backend_dir.parent) if backend.local
                   else project_store(backend.project_root))
        return digest_key(records, env, create=create)
    except (UnsupportedBackend, DigestError):
        return None


def versions(project_root: Path, engine_version: str) -> dict[str, str]:
    found = {"engine": engine_version}
    for name in SDKS:
        try:
            found[f"sdk:{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[f"sdk:{name}"] = "absent"
    pins = project_root / "requirements.txt"
    found["requirements.txt"] = hashlib.sha256(pins.read_bytes()).hexdigest() if pins.is_file() else "absent"
    for binary in sorted(_plugin_binaries(project_root)):
        stat = binary.stat()
        found[f"plugin:{binary.name}"] = f"{stat.st_size}:{int(stat.st_mtime)}"
    return found


def _plugin_binaries(project_root: Path) -> list[Path]:
    """The engine's plugins: next to the CLI in .venv/bin, and those registered in the venv's Pulumi home."""
    venv = project_root / ".venv"
    found = [p for p in (venv / "bin").glob("pulumi-*") if p.is_file()]
    found += [p for p in (venv / "pulumi-home" / "plugins").glob("*/pulumi-*") if p.is_file()]
    return [p.resolve() for p in found]


def policy_digest(packs: list[Path]) -> str:
    """Every file of each policy pack (its code, its PulumiPolicy.yaml, its pins), caches left out."""
    digest = hashlib.sha256()
    for pack in sorted(packs):
        digest.update(f"pack:{pack.resolve()}\n".encode())
        for path in sorted(p for p in pack.rglob("*") if p.is_file()):
            relative = path.relative_to(pack)
            if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
                continue
            digest.update(f"{relative.as_posix()}\n".encode() + path.read_bytes() + b"\n")
    return digest.hexdigest()


def engine_code_digest(project_root: Path) -> str:
    """The engine-run code as syntax trees: comments, blank lines and docstrings do not count."""
    digest = hashlib.sha256()
    for folder in ENGINE_RUN_CODE:
        for path in sorted((project_root / folder).glob("*.py")):
            digest.update(f"{folder}/{path.name}\n".encode() + source_shape(path.read_text(encoding="utf-8")).encode())
    return digest.hexdigest()


def source_shape(source: str) -> str:
    """A module's code without its comments and docstrings (and without line numbers)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


# ---- the environment's key ----

def key_name(env: str) -> str:
    return f"{KEYS}/{env}.json"


def digest_key(records: Path | RecordStore, env: str, create: bool = False) -> bytes | None:
    """The environment's HMAC key; made once (the store's atomic create) when `create` and there is none."""
    store = as_store(records)
    try:
        found = store.read(key_name(env))
        if found is None and create:
            store.create(key_name(env), json.dumps({"key": secrets.token_hex(32)}) + "\n")
            found = store.read(key_name(env))
    except (OSError, RecordStoreError) as exc:
        raise DigestError(f"cannot read or record the digest key: {exc}") from None
    if found is None:
        return None
    try:
        return bytes.fromhex(json.loads(found.text)["key"])
    except (ValueError, KeyError, TypeError):
        raise DigestError(f"{store.where(key_name(env))} is not a digest key") from None


# ---- a stack's config, as the digest sees it ----

def stack_config(stored: dict[str, Any], plain: dict[str, str], secret: dict[str, str]) -> dict[str, Any]:
    """The config the stack will run with: what is stored (a `secure:` value as its ciphertext), overlaid with
    what the run sets (`plain`, `secret`: short or full keys). Secret values become `Secret`s.

    A secret enters as the ciphertext its stack stores, so that a digest taken after the run (from the stack
    file alone, as `status` takes it) equals the one taken before. A secret the run sets and the stack does
    not hold yet enters as its HMAC, which differs from anything recorded: the stack runs. `tenantctl up`
    sets no secrets (operators do, with `pulumi config set --secret`, which changes the ciphertext); the
    rehearsal sets its generated ones, made once and kept in its state."""
    config: dict[str, Any] = {}
    for name, value in stored.items():
        if isinstance(value, dict) and "secure" in value:
            config[name] = Secret({"ciphertext": value["secure"]})
        elif not isinstance(value, dict | list):
            config[name] = str(value).lower() if isinstance(value, bool) else str(value)
    config.update({_full(k): str(v) for k, v in plain.items()})
    config.update({_full(k): Secret(v) for k, v in secret.items() if _full(k) not in stored})
    return config


def _full(name: str) -> str:
    return name if ":" in name else f"{PROJECT}:{name}"


# ---- a run's digests ----

def stored_config(backend, stack: str) -> dict[str, Any]:
    """The config a stack's file holds (a rehearsal's in its workspace, a project's in `stackConfigDir`)."""
    from fleet.stack_files import StackFileError, read_stack_file

    root = backend.work_dir if backend.local else backend.project_root
    try:
        return dict(read_stack_file(root, stack).config)
    except StackFileError:
        return {}


def read_platform_outputs(spec) -> dict[str, Any]:
    """The platform stack's outputs as a StackReference reads them (secret ones as `Secret`): one CLI call."""
    from pulumi.automation import errors as auto_errors

    from fleet import engine

    try:
        stack = engine.open_stack(spec, create=False)
        return {k: Secret(v.value) if v.secret else v.value for k, v in stack.outputs().items()}
    except (auto_errors.CommandError, engine.EngineError) as exc:
        raise DigestError(f"cannot read the platform stack {spec.name}'s outputs: {exc}") from None


@dataclass(frozen=True)
class Desired:
    """A tenant stack's desired-state digest, or why there is none (then the stack always runs); and the
    fingerprint of the config it was computed with (`config_fingerprint`): the stack's `up` reuses the digest as
    the one it applied when the stack's file holds that config then (fleet.stack_run)."""

    digest: str | None
    problem: str | None = None
    config: str | None = None


def config_fingerprint(config: dict[str, Any], key: bytes) -> str:
    """A stack's config as its digest covers it (secrets keyed), as one value: equal fingerprints, equal config."""
    return digest_of({"config": canonical(config, key)})


def digest_chunk(project_root: Path, jobs: list[tuple[str, Any, dict[str, str], dict[str, str]]],
                 shared: SharedInputs) -> list[Desired]:
    """Digests of several stacks, in this process (a worker: the mock runtime's settings stay in it). Each job is
    a stack, its backend and what the run sets on it (plain values, secrets); the stack file is read here, so that
    the workers read the fleet's stack files side by side."""
    digests: list[Desired] = []
    for stack, backend, plain, secret in jobs:
        try:
            config = stack_config(stored_config(backend, stack), plain, secret)
            digests.append(Desired(stack_digest(project_root, stack, config, shared),
                                   config=config_fingerprint(config, shared.key)))
        except DigestError as exc:
            digests.append(Desired(None, str(exc)))
        except Exception as exc:  # noqa: BLE001 (any failure means no digest, and the stack runs; never a crash)
            digests.append(Desired(None, f"{stack}: the digest failed: {type(exc).__name__}: {exc}"))
    return digests


def run_digests(project_root: Path, env: str, tenants, spec_for, shared: SharedInputs | None,
                concurrency: int = 2) -> dict[str, str | None]:
    """Each tenant stack's desired-state digest, by slug, from its stack file overlaid with what the run sets;
    None where it cannot be computed (no shared inputs, a program that fails offline): such a stack always runs.
    Computed in worker processes, `concurrency` at a time (the mock runtime's settings stay in them)."""
    return {slug: found.digest for slug, found in
            desired_digests(project_root, env, tenants, spec_for, shared, concurrency).items()}


def desired_digests(project_root: Path, env: str, tenants, spec_for, shared: SharedInputs | None,
                    concurrency: int = 2, no_shared: str = "no digest inputs") -> dict[str, Desired]:
    """`run_digests`, with why each missing digest is missing (`no_shared`: why there are no shared inputs)."""
    from components.naming import tenant_stack_name
    from fleet.stack_run import process_pool

    if shared is None or not tenants:
        return {t.slug: Desired(None, no_shared) for t in tenants}
    jobs = []
    for tenant in tenants:
        stack = tenant_stack_name(env, tenant.slug)
        spec = spec_for(stack, tenant)
        jobs.append((tenant.slug, (stack, spec.backend, spec.config, spec.secrets)))
    workers = max(1, min(concurrency, len(jobs)))
    chunks = [jobs[i::workers] for i in range(workers)]
    with process_pool(workers) as pool:
        futures = [pool.submit(digest_chunk, project_root, [job for _, job in chunk], shared) for chunk in chunks]
        results = []
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                results.append(future.result())
            except Exception as exc:  # noqa: BLE001 (a worker that died: no digest, and those stacks run)
                results.append([Desired(None, f"the digest worker failed: {type(exc).__name__}: {exc}")] * len(chunk))
    return {slug: digest for chunk, found in zip(chunks, results, strict=True)
            for (slug, _), digest in zip(chunk, found, strict=True)}


def applied_config(spec) -> dict[str, Any]:
    """The config a tenant stack's `up` runs with: its stack file as the run left it (the `up` changes no config)."""
    return stack_config(stored_config(spec.backend, spec.name), {}, {})


def applied_digest(spec, shared: SharedInputs) -> str | None:
    """The digest of what a tenant stack was just updated with: its stack file as the run left it. Called in the
    worker that ran the `up`, after it (the program's modules are loaded there already)."""
    try:
        return stack_digest(spec.backend.project_root, spec.name, applied_config(spec), shared)
    except DigestError:
        return None


def known_digest(spec, shared: SharedInputs | None, desired: Desired | None) -> str | None:
    """The digest of what a tenant stack's `up` applies, known before it runs: the run's desired digest for it
    (computed by the skip plan from the same program, `shared` inputs and stack name), when the config it was
    computed with is the config the stack's file holds now; None otherwise (then it is computed after the `up`,
    `applied_digest`). The same inputs give the same digest: no second mock run."""
    if shared is None or desired is None or not desired.digest or not desired.config:
        return None
    try:
        return desired.digest if config_fingerprint(applied_config(spec), shared.key) == desired.config else None
    except Exception:  # noqa: BLE001 (a config that cannot be read or keyed: computed after the up, as before)
        return None


def deployed_commit(project_root: Path) -> str | None:
    """HEAD's commit, with `+dirty` when the working tree differs from it; None outside git."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root, capture_output=True, text=True,
                              timeout=60)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project_root,
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
