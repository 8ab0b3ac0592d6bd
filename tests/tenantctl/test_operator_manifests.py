"""`tenantctl render-operator` objects, validated against the Pulumi Kubernetes Operator's own CRDs.

The CRDs are fetched by `make setup` (engine/fetch_operator_crds.sh) into .venv/operator-crds; nothing is
downloaded here. Each object is checked the way the API server would take it with strict field validation:
its apiVersion and kind must be a served version of a CRD, its spec must match that version's
openAPIV3Schema with unknown fields refused, and its metadata must be valid object metadata.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from tenantctl.loader import require_tenants
from tenantctl.operator_manifests import (
    DEFAULT_WORKSPACE_IMAGE,
    HEADER,
    MAX_STACK_OBJECT_NAME,
    OperatorSource,
    SecretEnv,
    SecretKeyRef,
    file_name,
    render_operator,
    stack_object_name,
    write_operator,
)
from tests.tenantctl.tenant_text import tenant_yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / ".venv" / "operator-crds"
VERSION_ENV = ROOT / "engine" / "operator" / "version.env"
# The only CEL rule of the Stack CRD this file checks by hand; a new one must be looked at, not ignored.
KNOWN_STACK_RULES = {"size(self.metadata.name) <= 42"}

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key: value.strip('"') for key, value in pairs}


# --- the validator ---------------------------------------------------------------------------------------


def structural(schema: object) -> object:
    """An openAPIV3Schema as a draft-4 JSON Schema with the API server's field rules.

    `x-kubernetes-*` keywords are dropped, except that they decide which objects are open: an object
    schema is closed (additionalProperties: false) unless it says x-kubernetes-preserve-unknown-fields or
    has additionalProperties of its own. `nullable` becomes a null type.
    """
    if isinstance(schema, list):
        return [structural(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: value for key, value in schema.items() if not key.startswith("x-kubernetes-") and key != "nullable"}
    for key in ("properties", "patternProperties"):
        if key in schema:
            out[key] = {name: structural(sub) for name, sub in schema[key].items()}
    for key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
        if isinstance(schema.get(key), dict | list):
            out[key] = structural(schema[key])
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if schema.get("x-kubernetes-embedded-resource"):
        out["properties"] = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                             "metadata": {"type": "object"}, **out.get("properties", {})}
    if (out.get("type") == "object" and "additionalProperties" not in schema
            and schema.get("x-kubernetes-preserve-unknown-fields") is not True):
        out["additionalProperties"] = False
    return out


@dataclass(frozen=True)
class ServedVersion:
    crd: str
    validator: jsonschema.Draft4Validator
    rules: frozenset[str]


class MissingCrds(Exception):
    pass


def load_crds(crd_dir: Path) -> dict[tuple[str, str], ServedVersion]:
    """(apiVersion, kind) of every served version of the pinned operator's CRDs."""
    pin = read_env_file(VERSION_ENV)
    want = f"{pin['PKO_MODULE']}@{pin['PKO_VERSION']}"
    stamp = crd_dir / ".version"
    have = stamp.read_text().strip() if stamp.is_file() else None
    if have != want:
        found = f"it holds {have}" if have else "it is missing"
        raise MissingCrds(f"{crd_dir} should hold the CRDs of {want}, but {found}")
    served: dict[tuple[str, str], ServedVersion] = {}
    yaml = YAML(typ="safe")
    for name in pin["PKO_CRDS"].split():
        crd = yaml.load((crd_dir / name).read_text(encoding="utf-8"))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served"):
                continue
            schema = structural(version["schema"]["openAPIV3Schema"])
            # ObjectMeta is the API server's own schema, checked by metadata_problems.
            schema["properties"]["metadata"] = {"type": "object"}
            rules = frozenset(rule["rule"] for rule in version["schema"]["openAPIV3Schema"].get(
                "x-kubernetes-validations", []))
            served[(f"{group}/{version['name']}", kind)] = ServedVersion(
                name, jsonschema.Draft4Validator(schema), rules)
    return served


def metadata_problems(metadata: dict) -> list[str]:
    problems = []
    name = metadata.get("name", "")
    # The Stack CRD's CEL rule, and the DNS label the operator's `<name>-workspace` Service needs.
    if len(name) > MAX_STACK_OBJECT_NAME or not DNS_LABEL.match(name):
        problems.append(f"metadata.name {name!r}: not a DNS label of at most {MAX_STACK_OBJECT_NAME} characters")
    if not DNS_LABEL.match(metadata.get("namespace", "")):
        problems.append(f"metadata.namespace {metadata.get('namespace')!r} is not a namespace name")
    for key, value in metadata.get("labels", {}).items():
        prefix, _, label = key.rpartition("/")
        if (prefix and not LABEL_PREFIX.match(prefix)) or not LABEL_NAME.match(label):
            problems.append(f"label key {key!r} is invalid")
        if not isinstance(value, str) or not LABEL_VALUE.match(value):
            problems.append(f"label {key}: value {value!r} is invalid")
    for key, value in metadata.get("annotations", {}).items():
        if not isinstance(value, str):
            problems.append(f"annotation {key}: value {value!r} is not a string")
    unknown = set(metadata) - {"name", "namespace", "labels", "annotations"}
    if unknown:
        problems.append(f"metadata has fields the renderer should not set: {sorted(unknown)}")
    return problems


def validation_errors(obj: dict, served: dict[tuple[str, str], ServedVersion]) -> list[str]:
    version = served.get((obj.get("apiVersion"), obj.get("kind")))
    if version is None:
        return [f"{obj.get('apiVersion')} {obj.get('kind')} is no served version of the operator's CRDs"]
    errors = [f"{'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
              for error in version.validator.iter_errors(obj)]
    return errors + metadata_problems(obj.get("metadata", {}))


@pytest.fixture(scope="module")
def served() -> dict[tuple[str, str], ServedVersion]:
    try:
        return load_crds(CRD_DIR)
    except (MissingCrds, FileNotFoundError) as exc:
        problem = str(exc)
    pytest.fail(f"Pulumi Kubernetes Operator CRDs: {problem}. Run `make setup` to fetch them.", pytrace=False)


def assert_valid(objects: list[dict], served: dict) -> None:
    problems = {obj["metadata"]["name"]: errors for obj in objects if (errors := validation_errors(obj, served))}
    assert not problems, problems


# --- sources and fleets ----------------------------------------------------------------------------------


def self_managed_source() -> OperatorSource:
    return OperatorSource(
        repo_url="https://git.example.com/msp/tenant-onboarding.git",
        namespace="pulumi-stacks",
        service_account="tenant-onboarding",
        branch="main",
        backend="s3://tenant-onboarding-state",
        env_secrets=(
            SecretEnv("AWS_ACCESS_KEY_ID", SecretKeyRef("aws-credentials", "access-key-id")),
            SecretEnv("AWS_SECRET_ACCESS_KEY", SecretKeyRef("aws-credentials", "secret-access-key")),
            SecretEnv("PULUMI_CONFIG_PASSPHRASE", SecretKeyRef("pulumi-passphrase", "passphrase")),
        ),
    )


def cloud_source() -> OperatorSource:
    return OperatorSource(
        repo_url="https://git.example.com/msp/infra.git",
        namespace="pulumi-stacks",
        service_account="tenant-onboarding",
        commit="0123456789abcdef0123456789abcdef01234567",
        repo_dir="tenant-onboarding",
        env_secrets=(SecretEnv("PULUMI_ACCESS_TOKEN", SecretKeyRef("pulumi-api", "accessToken")),),
        git_token=SecretKeyRef("git-credentials", "token"),
        reconcile_drift=False,
        keep_workspaces=False,
        resync_seconds=300,
    )


SOURCES = [pytest.param(self_managed_source, id="self-managed"), pytest.param(cloud_source, id="pulumi-cloud")]
# Slugs that stress names and YAML: the longest allowed, YAML 1.1 booleans, a number-like one.
AWKWARD_SLUGS = ["a" * 37 + "-zz", "yes", "off", "n-a", "e10"]


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tenants"
    folder.mkdir()
    slugs = [f"client-{i:03d}" for i in range(60)] + AWKWARD_SLUGS
    for i, slug in enumerate(slugs):
        tier = "premium" if i % 3 == 0 else "basic"
        (folder / f"{slug}.yaml").write_text(tenant_yaml(slug, tier, str(uuid.UUID(int=i + 1))))
    return folder


def walk(node: object, path: str = "") -> Iterator[tuple[str, object]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


# --- the CRDs themselves ---------------------------------------------------------------------------------


def test_crds_are_the_pinned_operator_release_and_serve_stack_v1(served: dict) -> None:
    assert ("pulumi.com/v1", "Stack") in served
    assert ("pulumi.com/v1", "Program") in served
    assert ("auto.pulumi.com/v1alpha1", "Workspace") in served


def test_only_known_cel_rules_guard_the_stack(served: dict) -> None:
    """jsonschema cannot run CEL: the one rule there is is checked by metadata_problems."""
    assert served[("pulumi.com/v1", "Stack")].rules == KNOWN_STACK_RULES


# --- rendering validates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make_source", SOURCES)
def test_repo_tenants_render_to_valid_stacks(served: dict, make_source) -> None:
    tenants = require_tenants(ROOT / "tenants")
    objects = render_operator("prod", tenants, make_source())
    assert_valid(objects, served)
    assert len(objects) == len(tenants) + 1
    assert {(o["apiVersion"], o["kind"]) for o in objects} == {("pulumi.com/v1", "Stack")}
    assert [o["spec"]["stack"] for o in objects] == ["prod", *sorted(f"prod.{t.slug}" for t in tenants)]


@pytest.mark.parametrize("make_source", SOURCES)
def test_a_generated_fleet_renders_to_valid_stacks(served: dict, fleet_dir: Path, make_source) -> None:
    tenants = require_tenants(fleet_dir)
    objects = render_operator("prod", tenants, make_source())
    assert_valid(objects, served)
    assert len(objects) == len(tenants) + 1
    names = [o["metadata"]["name"] for o in objects]
    assert len(set(names)) == len(names)


def test_written_files_read_back_as_the_objects_under_yaml_1_1(served: dict, fleet_dir: Path, tmp_path: Path) -> None:
    """Kubernetes tooling reads YAML 1.1, where a bare `yes` is a boolean and `0123` a number."""
    objects = render_operator("prod", require_tenants(fleet_dir), self_managed_source())
    paths = write_operator(objects, tmp_path / "out")
    yaml11 = YAML(typ="safe")
    yaml11.version = (1, 1)
    read_back = [yaml11.load(path.read_text(encoding="utf-8")) for path in paths]
    assert read_back == objects
    assert_valid(read_back, served)


# --- what the objects promise ----------------------------------------------------------------------------


def test_every_tenant_stack_waits_for_the_platform_stack(fleet_dir: Path) -> None:
    platform, *tenant_stacks = render_operator("prod", require_tenants(fleet_dir), self_managed_source())
    assert platform["spec"]["stack"] == "prod"
    assert "prerequisites" not in platform["spec"]
    for stack in tenant_stacks:
        assert stack["spec"]["prerequisites"] == [{"name": platform["metadata"]["name"]}]
        assert stack["metadata"]["namespace"] == platform["metadata"]["namespace"]


@pytest.mark.parametrize("make_source", SOURCES)
def test_deleting_a_stack_object_never_destroys(fleet_dir: Path, make_source) -> None:
    for stack in render_operator("prod", require_tenants(fleet_dir), make_source()):
        assert stack["spec"]["destroyOnFinalize"] is False
        assert stack["spec"]["useLocalStackOnly"] is True


def test_tenant_stacks_are_labelled_with_slug_tier_and_id(fleet_dir: Path) -> None:
    tenants = {t.slug: t for t in require_tenants(fleet_dir)}
    for stack in render_operator("prod", tenants.values(), self_managed_source())[1:]:
        labels = stack["metadata"]["labels"]
        tenant = tenants[labels["tenants.ai-agents.io/slug"]]
        assert stack["spec"]["stack"] == f"prod.{tenant.slug}"
        assert labels["tenants.ai-agents.io/tier"] == tenant.tier.value
        assert labels["tenants.ai-agents.io/tenant-id"] == str(tenant.tenant_id)


@pytest.mark.parametrize("make_source", SOURCES)
def test_only_references_to_secrets_are_rendered(fleet_dir: Path, make_source) -> None:
    source = make_source()
    objects = render_operator("prod", require_tenants(fleet_dir), source)
    refs = 0
    for obj in objects:
        for path, node in walk(obj):
            assert not (isinstance(node, dict) and {"literal", "env", "filesystem"} & set(node)), path
            if path.startswith("spec.envRefs.") and path.count(".") == 2 or path == "spec.gitAuth.accessToken":
                assert node["type"] == "Secret" and set(node) == {"type", "secret"}, path
                assert set(node["secret"]) == {"name", "key"}, path
                refs += 1
    expected = len(source.env_secrets) + (source.git_token is not None)
    assert refs == expected * len(objects)


@pytest.mark.parametrize("bad", [
    {"repo_url": "https://x-access-token:ghp_abc123@git.example.com/msp/repo.git"},
    {"repo_url": "https://ghp_abc123@git.example.com/msp/repo.git"},
    {"repo_url": "ssh://git:hunter2@git.example.com/msp/repo.git"},
    {"repo_url": "http://git.example.com/msp/repo.git"},
    {"backend": "https://user:secret@pulumi.example.com"},
    {"backend": "postgres://db/state"},
    {"branch": None},
    {"commit": "0123456789abcdef0123456789abcdef01234567"},
    {"commit": "0123456789ABCDEF0123456789ABCDEF01234567", "branch": None},
    {"commit": "abc123", "branch": None},
    {"repo_dir": "../elsewhere"},
    {"resync_seconds": 30},
    {"image": "pulumi/pulumi:latest-nonroot"},
    {"image": "pulumi/pulumi"},
    {"namespace": "Pulumi_Stacks"},
    {"backend": None},  # Pulumi Cloud without PULUMI_ACCESS_TOKEN
])
def test_a_source_that_would_inline_a_secret_or_misbehave_is_refused(bad: dict) -> None:
    fields = {"repo_url": "https://git.example.com/msp/tenant-onboarding.git", "namespace": "pulumi-stacks",
              "service_account": "tenant-onboarding", "branch": "main", "backend": "s3://state"} | bad
    with pytest.raises(ValueError):
        OperatorSource(**fields)


def test_ssh_and_scp_like_git_urls_are_accepted() -> None:
    for url in ("git@git.example.com:msp/tenant-onboarding.git", "ssh://git@git.example.com/msp/repo.git"):
        OperatorSource(repo_url=url, namespace="pulumi-stacks", service_account="sa", branch="main",
                       backend="s3://state")


def test_secret_references_are_checked_for_kubernetes_names() -> None:
    with pytest.raises(ValueError):
        SecretKeyRef("Not A Name", "key")
    with pytest.raises(ValueError):
        SecretEnv("aws_region", SecretKeyRef("aws", "region"))
    with pytest.raises(ValueError):
        SecretEnv("PULUMI_BACKEND_URL", SecretKeyRef("pulumi", "url"))


# --- the validator validates -----------------------------------------------------------------------------


def broken(mutate) -> dict:  # noqa: ANN001 (a callable that edits the copy)
    tenants = require_tenants(ROOT / "tenants")
    obj = copy.deepcopy(render_operator("prod", tenants, self_managed_source())[1])
    mutate(obj)
    return obj


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda o: o["spec"].update(destroyOnFinalise=False), "Additional properties"),
    (lambda o: o["spec"].update(resyncFrequencySeconds="600"), "resyncFrequencySeconds"),
    (lambda o: o["spec"].update(refresh="true"), "refresh"),
    (lambda o: o["spec"].update(workspaceReclaimPolicy="Keep"), "workspaceReclaimPolicy"),
    (lambda o: o["spec"].pop("stack"), "'stack' is a required property"),
    (lambda o: o["spec"]["workspaceTemplate"]["spec"].update(imag="pulumi/pulumi"), "workspaceTemplate.spec"),
    (lambda o: o["spec"]["workspaceTemplate"]["spec"]["resources"]["limits"].update(memory="2 GB"), "limits"),
    (lambda o: o["spec"]["envRefs"]["AWS_ACCESS_KEY_ID"]["secret"].pop("key"), "'key' is a required property"),
    (lambda o: o["spec"]["prerequisites"][0].update(stack="prod"), "prerequisites"),
    (lambda o: o.update(apiVersion="pulumi.com/v2"), "no served version"),
    (lambda o: o.update(kind="Stacks"), "no served version"),
    (lambda o: o["metadata"].update(name="prod-" + "x" * 38), "metadata.name"),
    (lambda o: o["metadata"].update(name="prod.acme"), "metadata.name"),
    (lambda o: o["metadata"]["labels"].update({"tenants.ai-agents.io/tier": True}), "label"),
], ids=["misspelled-field", "string-for-integer", "string-for-boolean", "not-in-enum", "missing-required",
        "nested-misspelling", "bad-quantity", "secret-ref-without-key", "unknown-prerequisite-field",
        "unserved-version", "unknown-kind", "name-over-42", "name-with-dot", "label-not-string"])
def test_a_broken_object_fails_validation(served: dict, mutate, where: str) -> None:
    errors = validation_errors(broken(mutate), served)
    assert errors, "the validator accepted a broken object"
    assert any(where in error for error in errors), errors


def test_the_unbroken_object_passes(served: dict) -> None:
    assert validation_errors(broken(lambda o: None), served) == []


# --- names and files -------------------------------------------------------------------------------------


def test_stack_object_names_fit_the_crd_and_stay_distinct() -> None:
    long_slugs = ["a" * 37 + "-zz", "a" * 37 + "-zy", "a" * 40]
    names = [stack_object_name("staging", slug) for slug in long_slugs]
    assert len(set(names)) == len(names)
    for name in names:
        assert len(name) <= MAX_STACK_OBJECT_NAME and DNS_LABEL.match(name), name
    assert stack_object_name("prod", "acme") == "prod-acme"
    assert stack_object_name("prod") == "prod"
    assert names == [stack_object_name("staging", slug) for slug in long_slugs]


@pytest.mark.parametrize("env", ["Prod", "prod.eu", "prod-eu", "9prod", ""])
def test_environment_names_that_would_make_ambiguous_objects_are_refused(env: str) -> None:
    with pytest.raises(ValueError):
        render_operator(env, [], self_managed_source())


def test_write_is_deterministic_and_prunes_only_its_own_files(fleet_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    tenants = require_tenants(fleet_dir)
    objects = render_operator("prod", tenants, self_managed_source())
    first = {path.name: path.read_bytes() for path in write_operator(objects, out)}
    assert set(first) == {file_name(o) for o in objects}
    assert "stack-prod.yaml" in first and "stack-prod-client-000.yaml" in first
    assert all(text.startswith(HEADER.encode()) for text in first.values())
    (out / "kustomization.yaml").write_text("resources: []\n")

    again = {path.name: path.read_bytes() for path in write_operator(objects, out)}
    assert again == first

    fewer = render_operator("prod", [t for t in tenants if t.slug != "client-001"], self_managed_source())
    write_operator(fewer, out)
    assert not (out / "stack-prod-client-001.yaml").exists()
    assert (out / "kustomization.yaml").exists()


def test_write_refuses_to_overwrite_a_file_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "stack-prod.yaml").write_text("# hand-written\n")
    with pytest.raises(FileExistsError):
        write_operator(render_operator("prod", [], self_managed_source()), out)
    assert (out / "stack-prod.yaml").read_text() == "# hand-written\n"


def test_default_workspace_image_is_the_engine_cli_version() -> None:
    cli = read_env_file(ROOT / "engine" / "versions.env")["PULUMI_CLI_VERSION"]
    assert DEFAULT_WORKSPACE_IMAGE == f"pulumi/pulumi:{cli}-nonroot"
