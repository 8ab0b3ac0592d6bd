"""The shortcut of bench/bench_release.py (`--clone-above`): tenant stacks added by cloning a converged real stack,
outside the timed part. What it copies and rewrites, and why the skipped path reads a clone exactly as it reads
a real stack, is in bench_release's docstring and docs/scaling.md. Imported only when a size uses it."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path

from bench.generate import BENCH_NAMESPACE, bench_slug

ROOT = Path(__file__).resolve().parent.parent
ENV = "rehearsal"
TEMPLATES = {"basic": 1, "premium": 3}  # tier -> index of the real stack clones copy


def _tenant_id(index: int) -> str:
    """A real bench tenant's id (bench/generate.py's)."""
    return str(uuid.uuid5(BENCH_NAMESPACE, bench_slug(index)))


def clone_tenant_id(index: int) -> str:
    """A clone's tenant id: after every real tenant's, and in the order of the clones, so that each isolation check's
    peers (the next two tenants by id, checks/peers.py) change for as few stacks as a growth can change them:
    the last two real tenants and the last two earlier clones (their peers wrap around to the new clones)."""
    return f"ffffffff-ffff-5fff-8fff-{index:012d}"


def tenant_file(text: str, index: int) -> str:
    """bench/generate.py's file for tenant `index`, with the clone's tenant id."""
    return text.replace(_tenant_id(index), clone_tenant_id(index))


def _rewrite(text: str, template: int, clone: int, also: dict[str, str] | None = None) -> str:
    """The template's slug, tenant id (with and without dashes) and index (names, URLs, e-mail) as the clone's."""
    text = text.replace(_tenant_id(template), clone_tenant_id(clone))
    text = text.replace(uuid.UUID(_tenant_id(template)).hex, uuid.UUID(clone_tenant_id(clone)).hex)  # dashboard uids
    text = text.replace(bench_slug(template), bench_slug(clone))
    for old, new in (also or {}).items():  # the exported digest of the tenant's file
        text = text.replace(old, new)
    return text.replace(f"Bench Client {template:05d}", f"Bench Client {clone:05d}")


def _put(path: Path, text: str) -> None:
    """A backend file as the engine's blob store writes it: the content, and its `.attrs` beside it (its MD5)."""
    data = text.encode("utf-8")
    path.write_bytes(data)
    attrs = {"user.cache_control": "", "user.content_disposition": "", "user.content_encoding": "",
             "user.content_language": "", "user.content_type": "text/plain; charset=utf-8", "user.metadata": None,
             "md5": base64.b64encode(hashlib.md5(data).digest()).decode()}  # noqa: S324 (the blob store's checksum)
    path.with_name(path.name + ".attrs").write_text(json.dumps(attrs, separators=(",", ":")))


def clone_stacks(state_dir: Path, tenants_dir: Path, indices: list[int], admin_url: str, shared) -> None:
    """Clones of the template stacks for `indices` (see the module's docstring), their digests recorded as `up`
    records them, their generated secrets and their rows."""
    from bench.generate import tier_of
    from fleet import engine
    from fleet.desired_state import DIGEST_TAG, applied_digest
    from fleet.rehearsal import STATE_FILE, RehearsalState, rehearsal_backend
    from fleet.stack_run import process_pool
    from tenancy import db
    from tenancy.loader import require_tenants

    state = RehearsalState.load(state_dir / STATE_FILE)
    backend = rehearsal_backend(ROOT, state_dir, state.environment["secrets"]["passphrase"])
    folder = engine.file_backend_dir(backend)
    stacks = folder / ".pulumi" / "stacks" / "tenant-onboarding"
    history = folder / ".pulumi" / "history" / "tenant-onboarding"
    generated = state.environment["secrets"]
    tags = {}
    file_digests = {t.slug: t.digest for t in require_tenants(tenants_dir)}
    for index in indices:
        template = TEMPLATES[tier_of(index).value]
        also = {file_digests[bench_slug(template)]: file_digests[bench_slug(index)]}
        source, target = f"{ENV}.{bench_slug(template)}", f"{ENV}.{bench_slug(index)}"
        _put(stacks / f"{target}.json", _rewrite((stacks / f"{source}.json").read_text(), template, index, also))
        tags[target] = json.loads(_rewrite((stacks / f"{source}.pulumi-tags").read_text(), template, index))
        entries = sorted((history / source).glob("*.history.json"),
                         key=lambda p: int(p.name.removesuffix(".history.json").rsplit("-", 1)[-1]))
        stamp = entries[-1].name.removesuffix(".history.json").rsplit("-", 1)[-1]
        (history / target).mkdir(parents=True, exist_ok=True)
        for kind in ("history", "checkpoint"):
            found = history / source / f"{source}-{stamp}.{kind}.json"
            if found.is_file():
                _put(history / target / f"{target}-{stamp}.{kind}.json",
                     _rewrite(found.read_text(), template, index, also))
        stack_file = backend.work_dir / f"Pulumi.{source}.yaml"
        (backend.work_dir / f"Pulumi.{target}.yaml").write_text(_rewrite(stack_file.read_text(), template, index))
        # The rehearsal's generated secrets are kept by name: the clone's are the template's values, which its
        # copied ciphertext holds (so the run sets none, as for a converged real stack).
        for name in [n for n in generated if n.startswith(bench_slug(template) + "-")]:
            generated[_rewrite(name, template, index)] = generated[name]
    state.save()
    # The digest each clone's `up` would have recorded, as stack_run records it (from its stack file alone).
    specs = [engine.StackSpec(backend, f"{ENV}.{bench_slug(i)}") for i in indices]
    with process_pool(2) as pool:
        digests = list(pool.map(applied_digest, specs, [shared] * len(specs), chunksize=25))
    missing = [s.name for s, d in zip(specs, digests, strict=True) if d is None]
    if missing:
        raise SystemExit(f"shortcut unsound: no digest for {len(missing)} clone(s), e.g. {missing[:3]}")
    for spec, digest in zip(specs, digests, strict=True):
        tags[spec.name]["tags"][DIGEST_TAG] = digest
        _put(stacks / f"{spec.name}.pulumi-tags", json.dumps(tags[spec.name], separators=(",", ":")))
    with db.connect(admin_url, autocommit=True) as connection:
        for index in indices:
            template = TEMPLATES[tier_of(index).value]
            connection.execute(
                "INSERT INTO tenant_configs (tenant_id, name, servicedesk_url, servicedesk_api_key_encrypted,"
                " webhook_signing_secret_encrypted, enhancement_preferences, provisioning_owner,"
                " llm_api_key_encrypted) SELECT %s, replace(name, %s, %s), replace(servicedesk_url, %s, %s),"
                " servicedesk_api_key_encrypted, webhook_signing_secret_encrypted, enhancement_preferences,"
                " provisioning_owner, llm_api_key_encrypted FROM tenant_configs WHERE tenant_id = %s"
                " ON CONFLICT (tenant_id) DO NOTHING",
                (clone_tenant_id(index), f"{template:05d}", f"{index:05d}", bench_slug(template), bench_slug(index),
                 _tenant_id(template)))


def shared_inputs(state_dir: Path) -> object:
    """The digests' shared inputs as the release computes them (the platform's outputs, versions, the key)."""
    from fleet import desired_state
    from fleet.rehearsal import STATE_FILE, RehearsalState, rehearsal_backend

    state = RehearsalState.load(state_dir / STATE_FILE)
    backend = rehearsal_backend(ROOT, state_dir, state.environment["secrets"]["passphrase"])
    from fleet import engine

    key = desired_state.environment_key(backend, ENV)
    spec_for = lambda name, _tenant: engine.StackSpec(backend, name)  # noqa: E731 (the platform's outputs only)
    shared, why = desired_state.shared_or_why(ROOT, ENV, spec_for, key)
    if shared is None:
        raise SystemExit(f"shortcut: no shared digest inputs: {why}")
    return shared


def add(state_dir: Path, tenants_dir: Path, url: str, admin_url: str, state_base: Path, real: int, size: int,
        rehearse) -> dict:
    """Clones for tenants real+1..size, outside the timed part: the new ones, and the last two earlier clones again
    (their peers moved); then a skip-aware `up --only` the real stacks whose peers moved (the last two by id);
    then the check that the clones agree with their program: a forced engine preview
    of one basic and one premium clone changes nothing. SystemExit when anything of that fails."""
    from bench.generate import tier_of

    files = tenants_dir.parent / "all"
    for index in range(real + 1, size + 1):
        name = f"{bench_slug(index)}.yaml"
        (tenants_dir / name).write_text(tenant_file((files / name).read_text(), index))
    stacks = engine_folder(state_dir)
    earlier = [i for i in range(real + 1, size + 1) if (stacks / f"{ENV}.{bench_slug(i)}.json").is_file()]
    new = [i for i in range(real + 1, size + 1) if i not in earlier]
    indices = earlier[-2:] + new
    clone_stacks(state_dir, tenants_dir, indices, admin_url, shared_inputs(state_dir))
    # The real stacks whose peers moved: the last two real tenants by id (the no-change release then proves that
    # nothing else moved: it must run no stack at all).
    moved = {bench_slug(i) for i in sorted(range(1, real + 1), key=_tenant_id)[-2:]}
    _, settled, _ = rehearse(tenants_dir, url, state_base, only=moved)
    ran = sorted(t.slug for t in settled.tenants if t.status != "skipped")
    if not settled.ok:
        raise SystemExit(f"the settling up of {sorted(moved)} after cloning failed: {settled.errors[:2]}")
    probes = {bench_slug(next(i for i in new if tier_of(i).value == tier)) for tier in TEMPLATES
              if any(tier_of(i).value == tier for i in new)}
    _, previewed, _ = rehearse(tenants_dir, url, state_base, preview=True, force=True, only=probes)
    if not previewed.ok or previewed.changes:
        raise SystemExit(f"shortcut unsound: the forced preview of clones {sorted(probes)} shows "
                         f"{previewed.changes} change(s) ({previewed.errors[:2]}): no figure published for {size} "
                         "tenants")
    return {"clone_preview": {"stacks": sorted(probes), "changes": previewed.changes},
            "settling_up": {"ran": ran, "recloned": [bench_slug(i) for i in earlier[-2:]]}}


def engine_folder(state_dir: Path) -> Path:
    return state_dir / "backend" / ".pulumi" / "stacks" / "tenant-onboarding"
