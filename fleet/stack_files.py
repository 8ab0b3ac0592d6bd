"""Reads the project's `Pulumi.yaml` and its stack files (without the Pulumi CLI).

Stack files live in the project's `stackConfigDir` (`stacks/`): `Pulumi.<env>.yaml` for an
environment's platform stack and `Pulumi.<env>.<slug>.yaml` for each tenant stack. Used to check,
before review, that every config secret a tenant file names exists as a `secure:` value in its
tenant stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from tenancy.loader import Problem, line_of_key
from tenancy.model import SECRET_SET_COMMAND, Tenant

DEFAULT_PROJECT = "tenant-onboarding"


class StackFileError(Exception):
    pass


@dataclass(frozen=True)
class StackFile:
    project: str
    stack: str
    path: Path
    config: dict
    secrets_provider: str | None = None

    def key(self, name: str) -> str:
        return name if ":" in name else f"{self.project}:{name}"

    def is_secure(self, name: str) -> bool:
        value = self.config.get(self.key(name))
        return isinstance(value, dict) and isinstance(value.get("secure"), str) and bool(value["secure"])

    def plain(self, name: str, default: object = None) -> object:
        value = self.config.get(self.key(name), default)
        return default if isinstance(value, dict) and "secure" in value else value


CODE_ROOT = Path(__file__).resolve().parents[1]


def find_project_root(start: Path) -> Path:
    """The Pulumi project holding `start`, else the project this code belongs to (tenant dirs elsewhere)."""
    for candidate in (start, *start.parents):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate
    return CODE_ROOT


def _project_file(root: Path) -> dict:
    path = root / "Pulumi.yaml"
    if not path.is_file():
        return {}
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}


def project_name(root: Path) -> str:
    return str(_project_file(root).get("name", DEFAULT_PROJECT))


def stack_file_path(root: Path, stack: str) -> Path:
    return root / str(_project_file(root).get("stackConfigDir") or ".") / f"Pulumi.{stack}.yaml"


def read_stack_file(root: Path, stack: str) -> StackFile:
    path = stack_file_path(root, stack)
    if not path.is_file():
        raise StackFileError(f"{path}: no such stack file (create it with `pulumi stack init {stack}`)")
    try:
        data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    except (YAMLError, UnicodeDecodeError) as exc:
        raise StackFileError(f"{path}: cannot parse stack file: {exc}") from exc
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path}: 'config' must be a mapping")
    return StackFile(project_name(root), stack, path, config, data.get("secretsprovider"))


def missing_secret_problems(root: Path, env: str, tenants: list[tuple[Path, str, Tenant]]) -> list[Problem]:
    """Each tenant's secrets, looked up in its own tenant stack file `Pulumi.<env>.<slug>.yaml`."""
    from components.naming import tenant_stack_name

    problems = []
    for path, display, tenant in tenants:
        try:
            stack_file = read_stack_file(root, tenant_stack_name(env, tenant.slug))
        except StackFileError as exc:
            problems.append(Problem(display, None, "", str(exc)))
            continue
        named = [("servicedesk.api_key_secret", tenant.servicedesk.api_key_secret)]
        if tenant.llm is not None:
            named.append(("llm.api_key_secret", tenant.llm.api_key_secret))
        for field, name in named:
            if not stack_file.is_secure(name):
                problems.append(Problem(
                    display, line_of_key(path, field), field,
                    f"stack {stack_file.stack!r} has no secure config value {stack_file.key(name)!r}; set it with "
                    + SECRET_SET_COMMAND.format(key=name).replace("<stack>", stack_file.stack),
                ))
    return problems


def tenant_region(root: Path, env: str, slug: str) -> str | None:
    """The AWS region of a tenant's stack <env>.<slug>: its own stack file's `aws:region`, else its platform
    stack's; None when neither says (the provider's default then applies)."""
    for stack in (f"{env}.{slug}", env):
        try:
            region = read_stack_file(root, stack).plain("aws:region")
        except StackFileError:
            continue
        if region:
            return str(region)
    return None
