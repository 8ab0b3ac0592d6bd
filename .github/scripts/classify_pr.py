"""Decide whether a pull request changes data only, reading its commits as data with git plumbing.

Run by preview.yml from the BASE branch's checkout, with the runner's system python, on a clone of the pull
request that no code of the pull request has run in. It never imports the project, never executes a file
of the pull request, and calls git by its absolute path from the system's default PATH (not $PATH), so a
`git` or `python` the pull request might have put first on $GITHUB_PATH in another job cannot answer for it.

Data only means every path that the pull request changes since its merge base is
- `tenants/<slug>.yaml`, a regular file holding a YAML mapping (or its removal), or
- `stacks/Pulumi.<env>.<slug>.yaml` for an environment the base branch has a platform stack for, whose only
  differences from the base version are that tenant's own `secure:` secrets: the config keys its tenant file
  names (`servicedesk.api_key_secret`, `llm.api_key_secret`), each holding `{secure: <ciphertext>}`. A new
  stack file may hold, besides those, only the platform stack's `secretsprovider`, an `encryptedkey` of its
  own (what `pulumi stack init` writes for a KMS provider) and an `aws:region` already used by a tenant
  stack of that environment on the base branch. Provider configuration (endpoints,
  profiles, a secrets provider of its own) is code: it waits for a reviewer.
Anything else, or anything that cannot be read, is not data only. Whether the secret names are the tenant's
own is then judged by the base branch's `tenantctl validate`, which the data-only preview runs first.

    classify_pr.py --repo DIR --base SHA --head SHA [--apply-to DIR]

Writes `data_only=true|false` to $GITHUB_OUTPUT (when set) and says why on stdout. With --apply-to, a
data-only change is written into DIR (a checkout of the base commit): its changed files from the head
commit, its removed files removed; anything else refuses with exit 1. Exit 2: git could not answer.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

SLUG = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
TENANT_FILE = re.compile(rf"tenants/(?P<slug>{SLUG})\.yaml")
TENANT_STACK_FILE = re.compile(rf"stacks/Pulumi\.(?P<env>{SLUG})\.(?P<slug>{SLUG})\.yaml")
REGULAR_FILE, DELETED = "100644", "000000"


class GitError(Exception):
    pass


def load_yaml(text: str) -> object:
    """Parse YAML as data only (no tags that build objects)."""
    try:
        import yaml  # PyYAML: on GitHub's Ubuntu images with the system python
    except ImportError:
        from ruamel.yaml import YAML

        return YAML(typ="safe", pure=True).load(text)
    return yaml.safe_load(text)


class Repo:
    def __init__(self, path: Path) -> None:
        git = shutil.which("git", path=os.confstr("CS_PATH") if hasattr(os, "confstr") else "/usr/bin:/bin")
        if git is None:
            raise GitError("git is not installed in the system's default PATH")
        self.git, self.path = git, path

    def run(self, *args: str) -> bytes:
        result = subprocess.run([self.git, "-C", str(self.path), *args], capture_output=True, check=False)
        if result.returncode != 0:
            raise GitError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout

    def blob(self, commit: str, path: str) -> bytes | None:
        """The file at commit:path, or None when it does not exist there."""
        entry = self.run("ls-tree", "-z", commit, "--", path).split(b"\0")[0]
        if not entry:
            return None
        mode, kind, sha = entry.split(b"\t", 1)[0].split(b" ")
        if kind != b"blob" or mode.decode() != REGULAR_FILE:
            return None
        return self.run("cat-file", "blob", sha.decode())

    def names(self, commit: str, folder: str) -> list[str]:
        return [p.decode() for p in self.run("ls-tree", "-z", "--name-only", commit, "--", f"{folder}/").split(b"\0")
                if p]  # fmt: skip

    def changes(self, base: str, head: str) -> list[tuple[str, str]]:
        """(new mode, path) of every path changed between base and head; mode 000000 for a removal."""
        raw = self.run("diff-tree", "-r", "-z", "--no-renames", "--raw", base, head).split(b"\0")
        entries = []
        for meta, path in zip(raw[0::2], raw[1::2], strict=False):
            if not meta.startswith(b":"):
                raise GitError(f"unexpected diff-tree output: {meta!r}")
            entries.append((meta[1:].split(b" ")[1].decode(), path.decode()))
        return entries


def mapping(data: bytes | None, what: str) -> dict:
    if data is None:
        return {}
    try:
        value = load_yaml(data.decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - any parse failure is "not data only", never a crash
        raise ValueError(f"{what}: not readable YAML ({type(exc).__name__})") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{what}: not a YAML mapping")
    return value


def tenant_secret_names(tenant: dict) -> set[str]:
    names = set()
    for section in ("servicedesk", "llm"):
        value = tenant.get(section)
        if isinstance(value, dict) and isinstance(value.get("api_key_secret"), str):
            names.add(value["api_key_secret"])
    return names


def without_secrets(stack: dict, secret_keys: set[str], what: str) -> dict:
    """The stack file minus the tenant's own secrets, each of which must be a `secure:` value."""
    config = stack.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"{what}: config is not a mapping")
    rest = {k: v for k, v in stack.items() if k != "config"}
    kept = {}
    for key, value in config.items():
        if key in secret_keys:
            if not (isinstance(value, dict) and set(value) == {"secure"} and isinstance(value["secure"], str)
                    and value["secure"]):  # fmt: skip
                raise ValueError(f"{what}: {key} is not a `secure:` value")
            continue
        kept[key] = value
    if kept or "config" in stack:
        rest["config"] = kept
    return rest


def classify(repo: Repo, base: str, head: str) -> tuple[bool, list[str], list[tuple[str, str]]]:
    """(data only, reasons it is not, the changes)."""
    merge_base = repo.run("merge-base", base, head).decode().strip()
    changes = repo.changes(merge_base, head)
    project = str(mapping(repo.blob(merge_base, "Pulumi.yaml"), "Pulumi.yaml").get("name") or "tenant-onboarding")
    removed = {path for mode, path in changes if mode == DELETED}
    reasons = []
    for mode, path in changes:
        try:
            if mode not in (REGULAR_FILE, DELETED):
                raise ValueError(f"{path}: not a regular file (mode {mode})")
            if TENANT_FILE.fullmatch(path):
                if mode != DELETED:
                    mapping(repo.blob(head, path), path)
                continue
            stack_file = TENANT_STACK_FILE.fullmatch(path)
            if not stack_file:
                raise ValueError(f"{path}: code or configuration, not a tenant file or a tenant's stack file")
            env, slug = stack_file["env"], stack_file["slug"]
            tenant_path = f"tenants/{slug}.yaml"
            platform = mapping(repo.blob(merge_base, f"stacks/Pulumi.{env}.yaml"), f"stacks/Pulumi.{env}.yaml")
            if not platform:
                raise ValueError(f"{path}: the base branch has no platform stack for {env!r}")
            if mode == DELETED:
                if tenant_path not in removed:
                    raise ValueError(f"{path}: removed while {tenant_path} stays")
                continue
            tenant = mapping(repo.blob(head, tenant_path), tenant_path)
            if not tenant:
                raise ValueError(f"{path}: no {tenant_path} names this stack's secrets")
            secret_keys = {f"{project}:{name}" for name in tenant_secret_names(tenant)}
            new = without_secrets(mapping(repo.blob(head, path), path), secret_keys, path)
            old_file = repo.blob(merge_base, path)
            if old_file is not None:
                old = without_secrets(mapping(old_file, path), secret_keys, f"{path} (base)")
                if new != old:
                    raise ValueError(f"{path}: changes more than {slug}'s own secure: secrets")
                continue
            regions, data_keys = set(), set()
            for other in repo.names(merge_base, "stacks"):
                other_stack = mapping(repo.blob(merge_base, other), other)
                data_keys.add(other_stack.get("encryptedkey"))
                if TENANT_STACK_FILE.fullmatch(other) and TENANT_STACK_FILE.fullmatch(other)["env"] == env:
                    region = (other_stack.get("config") or {}).get("aws:region")
                    if isinstance(region, str):
                        regions.add(region)
            # `pulumi stack init` with a KMS provider writes the stack's own data key, encrypted by that KMS
            # key. Another stack's data key would let copied ciphertexts decrypt as this tenant's secrets.
            data_key = new.pop("encryptedkey", None)
            if data_key is not None and (not isinstance(data_key, str) or not data_key or data_key in data_keys):
                raise ValueError(f"{path}: encryptedkey is not a data key of its own")
            region = new.get("config", {}).get("aws:region") if isinstance(new.get("config"), dict) else None
            skeleton = {"secretsprovider": platform.get("secretsprovider"), "config": {"aws:region": region}}
            if region not in regions or new != skeleton:
                raise ValueError(f"{path}: a new stack file may hold only {slug}'s secure: secrets, the platform "
                                 f"stack's secretsprovider and an aws:region in use ({sorted(regions)})")
        except ValueError as exc:
            reasons.append(str(exc))
    return not reasons, reasons, changes


def apply(repo: Repo, head: str, changes: list[tuple[str, str]], target: Path) -> None:
    for mode, path in changes:
        destination = target / path
        if mode == DELETED:
            destination.unlink(missing_ok=True)
            continue
        data = repo.blob(head, path)
        assert data is not None, path
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.is_symlink():
            destination.unlink()
        destination.write_bytes(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--head", required=True)
    parser.add_argument("--apply-to", type=Path)
    args = parser.parse_args(argv)
    for name in ("base", "head"):
        if not re.fullmatch(r"[0-9a-f]{40}", getattr(args, name)):
            print(f"--{name} must be a full commit SHA", file=sys.stderr)
            return 2
    try:
        repo = Repo(args.repo)
        data_only, reasons, changes = classify(repo, args.base, args.head)
        if args.apply_to is not None:
            if not data_only:
                print("refusing to apply a change that is not data only:", *reasons, sep="\n  ")
                return 1
            apply(repo, args.head, changes, args.apply_to)
    except GitError as exc:
        print(f"::error::{exc}", file=sys.stderr)
        return 2
    if data_only:
        print("Data only:", *(path for _, path in changes), sep="\n  ")
    else:
        print("Not data only; a credentialed preview waits for a reviewer:", *reasons, sep="\n  ")
    output = os.environ.get("GITHUB_OUTPUT")
    if output and args.apply_to is None:
        with open(output, "a", encoding="utf-8") as handle:
            handle.write(f"data_only={'true' if data_only else 'false'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
