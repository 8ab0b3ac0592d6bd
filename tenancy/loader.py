"""Reads tenant files into `Tenant` models, reporting every problem with its file, line and field.

Both `tenantctl validate` and the Pulumi program (`__main__.py`) go through `load_tenants`,
so a file the CLI accepts is exactly a file the program deploys.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent

from tenancy.model import Tenant, literal_secret_message, literal_secret_paths

MAX_FILE_BYTES = 256 * 1024
TENANT_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, order=True)
class Problem:
    """One located error in a tenant file; prints as `file:line: field.path: message`."""

    file: str
    line: int | None = None
    field: str = ""
    message: str = ""

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class LoadedTenant:
    path: Path
    tenant: Tenant


@dataclass
class LoadResult:
    tenants: list[LoadedTenant] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def by_slug(self) -> dict[str, Tenant]:
        return {loaded.tenant.slug: loaded.tenant for loaded in self.tenants}

    def copy(self) -> LoadResult:
        return LoadResult(list(self.tenants), list(self.problems), self.files_checked)


class TenantLoadError(Exception):
    """Raised by `require_tenants` when any tenant file is invalid; carries every problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    return yaml


def _safe_yaml() -> YAML:
    yaml = YAML(typ="safe")
    yaml.allow_duplicate_keys = False
    return yaml


# The editor schema lives beside the tenant files; dotfiles (.gitkeep, editor droppings) are not files of ours.
NOT_TENANT_FILES = {"schema.json"}


def tenant_files(tenants_dir: Path) -> tuple[list[Path], list[Problem]]:
    """The tenant files of a folder, and a problem for everything else in it: nothing is skipped unsaid."""
    shown = _display_name(tenants_dir)
    if not tenants_dir.exists():
        return [], [Problem(shown, None, "", "no such folder (check --tenants-dir or the stack's tenantsDir)")]
    if not tenants_dir.is_dir():
        return [], [Problem(shown, None, "", "is not a folder of tenant files")]
    files, problems = [], []
    names = _DisplayNames()
    for entry in sorted(tenants_dir.iterdir()):
        if entry.name.startswith(".") or entry.name in NOT_TENANT_FILES:
            continue
        if entry.is_symlink():
            problems.append(Problem(names(entry), None, "", "symlinks are not read: keep the tenant file in this "
                                                            "folder"))
        elif entry.is_dir():
            problems.append(Problem(names(entry), None, "", f"subfolders are not read: tenant files live directly "
                                                            f"in {shown}"))
        elif entry.suffix not in TENANT_SUFFIXES:
            problems.append(Problem(names(entry), None, "", "not a tenant file: tenant files are <slug>.yaml (or "
                                                            ".yml)"))
        else:
            files.append(entry)
    return files, problems


def _line_of(node: object, key: object | None = None) -> int | None:
    """1-based line of `key` in a ruamel mapping/sequence, or of the node itself."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is not None:
            if isinstance(key, int):
                return lc.item(key)[0] + 1
            return lc.key(key)[0] + 1
        return lc.line + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return lc.line + 1 if lc.line is not None else None


def _locate(document: object, loc: tuple) -> int | None:
    """Walk a pydantic error location through the parsed document to the deepest line we know."""
    node, line = document, _line_of(document)
    for part in loc:
        if isinstance(node, dict) and part in node:
            line = _line_of(node, part) or line
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            line = _line_of(node, part) or line
            node = node[part]
        else:
            break
    return line


def _reject_aliases(node: object, seen: set[int], path: str = "") -> str | None:
    """Anchors and aliases are refused outright: they are how YAML 'billion laughs' bombs are built,
    and a tenant file has no use for them."""
    anchor = getattr(getattr(node, "anchor", None), "value", None)
    if anchor:
        return anchor
    if isinstance(node, dict | list):
        if id(node) in seen:
            return "*"
        seen.add(id(node))
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            found = _reject_aliases(child, seen)
            if found:
                return found
    return None


def line_of_key(path: Path, key: str) -> int | None:
    """The line of a key (dotted for nested ones) in a valid tenant file, for messages about the whole file."""
    try:
        document = _yaml().load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError, ValueError):
        return None
    return _locate(document, tuple(key.split("."))) if isinstance(document, dict) else None


def _field_path(loc: Iterable) -> str:
    return ".".join(str(part) for part in loc)


# What each pattern-checked field must look like, in words (pydantic would quote the regular expression).
PATTERN_MESSAGES = {
    "slug": "must be 3-40 lowercase letters, digits or '-', starting and ending with a letter or digit",
    "previous_slugs": "each must be 3-40 lowercase letters, digits or '-', starting and ending with a letter or digit",
    "llm_model": "must be <provider>/<model>, for example openai/gpt-4o-mini",
    "cpu": "must be a Kubernetes quantity, for example 2 or 500m",
    "memory": "must be a Kubernetes quantity, for example 4Gi or 512Mi",
}


def _pydantic_message(error: dict) -> str:
    loc = [part for part in error["loc"] if isinstance(part, str)]
    if error["type"] == "extra_forbidden":
        known = _known_keys(tuple(error["loc"][:-1]))
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1, cutoff=0.7)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key ({hint}see tenants/schema.json for the allowed keys)"
    if error["type"] == "missing":
        return "required key is missing"
    if error["type"] == "string_pattern_mismatch" and loc and loc[-1] in PATTERN_MESSAGES:
        return PATTERN_MESSAGES[loc[-1]]
    message = error["msg"]
    return message.removeprefix("Value error, ")


def _known_keys(section: tuple) -> list[str]:
    """The keys allowed at a location of a tenant file, from the model."""
    model: Any = Tenant
    for part in section:
        field_info = getattr(model, "model_fields", {}).get(part)
        if field_info is None:
            return []
        annotation = field_info.annotation
        model = next((arg for arg in (*getattr(annotation, "__args__", ()), annotation)
                      if hasattr(arg, "model_fields")), None)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def parse_tenant_file(path: Path, display: str | None = None) -> tuple[Tenant | None, list[Problem]]:
    """Parse one file; never raises for bad content. An unchanged file is parsed once per process
    (`tenantctl plan` loads the files, then the program it runs loads them again)."""
    name = display or str(path)
    try:
        stat = path.stat()
    except OSError as exc:
        return None, [Problem(name, None, "", f"cannot read file: {exc.strerror or exc}")]
    tenant, problems = _parse_unchanged_file(os.path.abspath(path), name, stat.st_ino, stat.st_ctime_ns,
                                             stat.st_mtime_ns, stat.st_size)
    return tenant, list(problems)


@functools.lru_cache(maxsize=4096)
def _parse_unchanged_file(
    path: str, name: str, _inode: int, _ctime_ns: int, _mtime_ns: int, _size: int
) -> tuple[Tenant | None, tuple[Problem, ...]]:
    # The inode and change time too: a file replaced by a rename, or written with its old modification time put
    # back, is another file.
    tenant, problems = _read_and_parse(Path(path), name)
    return tenant, tuple(problems)


def _read_and_parse(path: Path, name: str) -> tuple[Tenant | None, list[Problem]]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, [Problem(name, None, "", f"file is {size} bytes; tenant files are limited to 256 KiB")]
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(name, None, "", f"cannot read file: {exc.strerror or exc}")]
    return parse_tenant_bytes(raw, name, expected_slug=path.stem)


def parse_tenant_bytes(raw: bytes, name: str, expected_slug: str) -> tuple[Tenant | None, list[Problem]]:
    """Parse a tenant document; `expected_slug` is the file's stem, which the slug must equal."""
    if len(raw) > MAX_FILE_BYTES:
        return None, [Problem(name, None, "", f"file is {len(raw)} bytes; tenant files are limited to 256 KiB")]
    tenant = _valid_tenant_fast(raw, expected_slug)
    if tenant is not None:
        return tenant, []
    return _parse_with_locations(raw, name, expected_slug)


def _valid_tenant_fast(raw: bytes, expected_slug: str) -> Tenant | None:
    """The tenant when the file is entirely valid, else None.

    Uses the C-accelerated safe loader, which is several times faster than the round-trip one but
    keeps no line numbers: any doubt sends the file to `_parse_with_locations`, which reports it.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    yaml = _safe_yaml()
    try:
        # Anchors and aliases are refused, with their location, by the locating parser.
        if any(isinstance(event, AliasEvent) or getattr(event, "anchor", None) for event in yaml.parse(text)):
            return None
        document = yaml.load(text)
    except (YAMLError, ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or _reject_aliases(document, set()) or literal_secret_paths(document):
        return None
    try:
        tenant = Tenant.model_validate(document)
    except ValidationError:
        return None
    return tenant if tenant.slug == expected_slug else None


def _parse_with_locations(raw: bytes, name: str, expected_slug: str) -> tuple[Tenant | None, list[Problem]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [Problem(name, line, "", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})")]

    try:
        document = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        detail = " ".join(part for part in (exc.context, exc.problem) if part) or "malformed YAML"
        if "duplicate key" in str(exc).lower():
            detail = "duplicate key " + (exc.problem or "").strip()
        return None, [Problem(name, line, "", f"invalid YAML: {detail.strip()}")]
    except (YAMLError, ValueError, RecursionError) as exc:
        return None, [Problem(name, None, "", f"invalid YAML: {exc}")]

    if document is None:
        return None, [Problem(name, 1, "", "file is empty; expected a mapping of tenant fields")]
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"a {type(document).__name__}"
        return None, [Problem(name, _line_of(document) or 1, "", f"expected a mapping of tenant fields, got {kind}")]

    anchor = _reject_aliases(document, set())
    if anchor:
        message = f"YAML anchors/aliases are not allowed in tenant files (found &{anchor})"
        return None, [Problem(name, None, "", message)]

    problems: list[Problem] = []
    plain = json.loads(json.dumps(document, default=str))
    slug_hint = plain.get("slug") if isinstance(plain.get("slug"), str) else expected_slug
    secret_paths = literal_secret_paths(plain)
    for secret_path in secret_paths:
        problems.append(Problem(name, _locate(document, secret_path), _field_path(secret_path),
                                literal_secret_message(slug_hint)))
    secret_set = set(secret_paths)

    tenant: Tenant | None = None
    try:
        tenant = Tenant.model_validate(plain)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            if loc in secret_set:
                continue
            message = _pydantic_message(error)
            if not loc and (named := re.match(r"([a-z_]+(?:\.[a-z_]+)*): (.+)", message, re.S)):
                # A whole-file rule names the field it is about: report it there.
                loc, message = tuple(named.group(1).split(".")), named.group(2)
            problems.append(Problem(name, _locate(document, loc), _field_path(loc), message))

    if tenant is not None and tenant.slug != expected_slug:
        problems.append(Problem(
            name, _locate(document, ("slug",)), "slug",
            f"slug {tenant.slug!r} must equal the file name ({expected_slug!r}); rename the file or fix the slug",
        ))
    return (tenant if not problems else None), problems


def _cross_file_problems(parsed: list[tuple[Path, str, Tenant]]) -> list[Problem]:
    problems: list[Problem] = []
    for attribute in ("tenant_id", "slug"):
        first_seen: dict[str, str] = {}
        for _path, display, tenant in parsed:
            value = str(getattr(tenant, attribute))
            if value in first_seen:
                problems.append(Problem(display, None, attribute, f"{value} is already used by {first_seen[value]}"))
            else:
                first_seen[value] = display
    # A previous slug is an alias of this tenant's resources: another tenant must not hold that name.
    current = {tenant.slug: display for _path, display, tenant in parsed}
    for _path, display, tenant in parsed:
        for old in tenant.previous_slugs:
            if old in current:
                problems.append(Problem(display, None, "previous_slugs",
                                        f"{old} is the slug of {current[old]}; a previous slug must be free"))
    return problems


def load_tenants(paths: Iterable[Path] | None = None, tenants_dir: Path | None = None) -> LoadResult:
    """Load and check the given files (or every file in `tenants_dir`), each alone and all together."""
    if paths:
        return _load(list(paths), [])
    folder = tenants_dir or Path("tenants")
    fingerprint = _folder_fingerprint(folder)
    key = (os.path.abspath(folder), os.getcwd())
    remembered = _LOADED_FOLDERS.get(key)
    if fingerprint is not None and remembered is not None and remembered[0] == fingerprint:
        return remembered[1].copy()
    result = _load(*tenant_files(folder))
    if fingerprint is not None:
        if len(_LOADED_FOLDERS) >= 8:
            _LOADED_FOLDERS.pop(next(iter(_LOADED_FOLDERS)))
        _LOADED_FOLDERS[key] = (fingerprint, result.copy())
    return result


# A folder loaded before, unchanged since: every stack's program loads the whole folder (identities must stay
# unique; the checks probe peers), and a digest worker runs the program once per tenant. Without this, a fleet
# of N tenants costs N loads of N files per release.
_LOADED_FOLDERS: dict[tuple[str, str], tuple[tuple, LoadResult]] = {}


def _folder_fingerprint(folder: Path) -> tuple | None:
    """Every entry of the folder with its inode, type, size, change and modification times: equal fingerprints,
    equal files (the test `parse_tenant_file` trusts for one file); None when the folder cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            listed = []
            for entry in entries:
                stat = entry.stat(follow_symlinks=False)
                listed.append((entry.name, entry.inode(), stat.st_mode, stat.st_size, stat.st_ctime_ns,
                               stat.st_mtime_ns))
    except OSError:
        return None
    return tuple(sorted(listed))


def _load(files: list[Path], problems: list[Problem]) -> LoadResult:
    result = LoadResult(files_checked=len(files), problems=list(problems))
    parsed: list[tuple[Path, str, Tenant]] = []
    names = _DisplayNames()
    for path in files:
        display = names(path)
        tenant, problems = parse_tenant_file(path, display)
        result.problems.extend(problems)
        if tenant is not None:
            parsed.append((path, display, tenant))
    cross = _cross_file_problems(parsed)
    result.problems.extend(cross)
    clashing = {p.file for p in cross}
    result.tenants = [LoadedTenant(path, tenant) for path, display, tenant in parsed if display not in clashing]
    return result


def require_tenants(tenants_dir: Path, allow_none: bool = False) -> list[Tenant]:
    """All tenants in `tenants_dir`, or `TenantLoadError` listing every problem.

    No tenant at all is an error unless `allow_none`: for a deployment, an empty or mistyped folder would
    otherwise mean "remove every tenant".
    """
    result = load_tenants(tenants_dir=tenants_dir)
    if not result.ok:
        raise TenantLoadError(result.problems)
    if not result.tenants and not allow_none:
        raise TenantLoadError([Problem(_display_name(tenants_dir), None, "", (
            "no tenant files: check the folder. An empty folder never removes tenants; each is offboarded by "
            "name (`tenantctl destroy SLUG`) or by removing its file in a reviewed change"
        ))])
    return [loaded.tenant for loaded in result.tenants]


def _display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class _DisplayNames:
    """`_display_name` for many files, resolving each folder once rather than every file (for a folder of 1,000
    files, resolving each path was most of the load's time). A symlink is resolved on its own, as before."""

    def __init__(self) -> None:
        self._cwd = Path.cwd().resolve()
        self._bases: dict[Path, Path | None] = {}

    def __call__(self, path: Path) -> str:
        if path.name in ("", ".", "..") or path.is_symlink():
            return _display_name(path)
        if path.parent not in self._bases:
            try:
                self._bases[path.parent] = path.parent.resolve().relative_to(self._cwd)
            except ValueError:
                self._bases[path.parent] = None
        base = self._bases[path.parent]
        return str(path) if base is None else str(base / path.name)
