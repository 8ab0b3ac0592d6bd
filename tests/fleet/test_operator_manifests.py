"""`tenantctl render-operator` objects, and the validator that checks them against the operator's CRDs.

The Pulumi Kubernetes Operator's own CRDs are not needed here (its Go module is not served everywhere, and
no fetched file is kept in this repository). The validator (fleet/operator_crds.py) is proved against
STAND_IN_STACK_CRD below instead: a CRD written for these tests, with only the Stack fields the renderer
emits, in the form and with the types of the operator's `stacks.pulumi.com` CRD. At render time,
`tenantctl render-operator --crds DIR` checks the objects against the real CRDs of the operator release a
cluster runs.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from fleet.operator_crds import CrdFolderError, ServedCrds, load_crds, validate_objects
from fleet.operator_manifests import (
    DEFAULT_WORKSPACE_IMAGE,
    HEADER,
    MAX_STACK_OBJECT_NAME,
    OperatorSource,
    SecretEnv,
    SecretKeyRef,
    SourceError,
    file_name,
    render_operator,
    stack_object_name,
    write_operator,
)
from fleet.operator_render import (
    OperatorOptionsError,
    operator_source_from_options,
    render_operator_files,
)
from tenancy.loader import require_tenants
from tests.tenant_text import tenant_yaml

ROOT = Path(__file__).resolve().parents[2]
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")

# A STAND-IN, written for these tests; not the operator's CRD. It has the shape of the operator's
# `stacks.pulumi.com` CRD (apiextensions.k8s.io/v1, group pulumi.com, kind Stack, version v1, the CEL rule on
# the name) but only the fields tenantctl's renderer emits, with their types: objects are closed, the
# `resyncFrequencySeconds` integer, the booleans, the `workspaceReclaimPolicy` enum and the resource
# quantities are as the operator declares them. Unlike the operator's CRD, v1alpha1 is not served here, so
# that an unserved version is exercised.
# Kubernetes' resource quantity, as the operator's CRD spells it.
QUANTITY_PATTERN = (r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
                    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")
STAND_IN_STACK_CRD = """\
# Test stand-in for the Pulumi Kubernetes Operator's Stack CRD (see tests/fleet/test_operator_manifests.py).
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: stacks.pulumi.com
spec:
  group: pulumi.com
  names: {kind: Stack, listKind: StackList, plural: stacks, singular: stack}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-validations:
        - message: Stack name must be no more than 42 characters in length.
          rule: size(self.metadata.name) <= 42
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            required: [stack]
            properties:
              stack: {type: string}
              projectRepo: {type: string}
              branch: {type: string}
              commit: {type: string}
              shallow: {type: boolean}
              repoDir: {type: string}
              backend: {type: string}
              serviceAccountName: {type: string}
              refresh: {type: boolean}
              destroyOnFinalize: {type: boolean}
              useLocalStackOnly: {type: boolean}
              continueResyncOnCommitMatch: {type: boolean}
              resyncFrequencySeconds: {type: integer, format: int64}
              workspaceReclaimPolicy: {type: string, enum: [Retain, Delete]}
              gitAuth:
                type: object
                properties:
                  accessToken: &resourceRef
                    type: object
                    required: [type]
                    properties:
                      type: {type: string}
                      secret:
                        type: object
                        required: [key, name]
                        properties:
                          key: {type: string}
                          name: {type: string}
                          namespace: {type: string}
              envRefs:
                type: object
                additionalProperties: *resourceRef
              prerequisites:
                type: array
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    requirement:
                      type: object
                      properties:
                        succeededWithinDuration: {type: string}
              workspaceTemplate:
                type: object
                properties:
                  spec:
                    type: object
                    properties:
                      image: {type: string}
                      securityProfile: {type: string}
                      resources:
                        type: object
                        properties:
                          limits: &quantities
                            type: object
                            additionalProperties:
                              anyOf: [{type: integer}, {type: string}]
                              pattern: <quantity-pattern>
                              x-kubernetes-int-or-string: true
                          requests: *quantities
  - name: v1alpha1
    served: false
    storage: false
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
""".replace("<quantity-pattern>", QUANTITY_PATTERN)


def write_crd(folder: Path, text: str = STAND_IN_STACK_CRD, name: str = "stacks.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def crd_dir(tmp_path: Path) -> Path:
    return write_crd(tmp_path / "crds")


@pytest.fixture
def served(crd_dir: Path) -> ServedCrds:
    return load_crds(crd_dir)


def assert_valid(objects: list[dict], served: ServedCrds) -> None:
    assert validate_objects(objects, served) == []


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key: value.strip('"') for key, value in pairs}


# --- sources and fleets ----------------------------------------------------------------------------------


PINNED = "0123456789abcdef0123456789abcdef01234567"


def self_managed_source() -> OperatorSource:
    return OperatorSource(
        repo_url="https://git.example.com/msp/tenant-onboarding.git",
        namespace="pulumi-stacks",
        service_account="tenant-onboarding",
        commit=PINNED,
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


# --- rendering validates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make_source", SOURCES)
def test_repo_tenants_render_to_valid_stacks(served: ServedCrds, make_source) -> None:
    tenants = require_tenants(ROOT / "tenants")
    objects = render_operator("prod", tenants, make_source())
    assert_valid(objects, served)
    assert len(objects) == len(tenants) + 1
    assert {(o["apiVersion"], o["kind"]) for o in objects} == {("pulumi.com/v1", "Stack")}
    assert [o["spec"]["stack"] for o in objects] == ["prod", *sorted(f"prod.{t.slug}" for t in tenants)]


@pytest.mark.parametrize("make_source", SOURCES)
def test_a_generated_fleet_renders_to_valid_stacks(served: ServedCrds, fleet_dir: Path, make_source) -> None:
    tenants = require_tenants(fleet_dir)
    objects = render_operator("prod", tenants, make_source())
    assert_valid(objects, served)
    assert len(objects) == len(tenants) + 1
    names = [o["metadata"]["name"] for o in objects]
    assert len(set(names)) == len(names)


def test_written_files_read_back_as_the_objects_under_yaml_1_1(served: ServedCrds, fleet_dir: Path,
                                                                 tmp_path: Path) -> None:
    """Kubernetes tooling reads YAML 1.1, where a bare `yes` is a boolean and `0123` a number."""
    objects = render_operator("prod", require_tenants(fleet_dir), self_managed_source())
    paths = write_operator(objects, tmp_path / "out")
    yaml11 = YAML(typ="safe")
    yaml11.version = (1, 1)
    read_back = [yaml11.load(path.read_text(encoding="utf-8")) for path in paths]
    assert read_back == objects
    assert_valid(read_back, served)


# --- what the objects promise ----------------------------------------------------------------------------


def test_every_tenant_stack_runs_after_the_platform_stack(fleet_dir: Path) -> None:
    """Through its prerequisites, every tenant Stack transitively waits for the platform Stack."""
    platform, *tenant_stacks = render_operator("prod", require_tenants(fleet_dir), self_managed_source())
    assert platform["spec"]["stack"] == "prod"
    assert "prerequisites" not in platform["spec"]
    after = {s["metadata"]["name"]: [p["name"] for p in s["spec"]["prerequisites"]] for s in tenant_stacks}

    def waits_for_platform(name: str) -> bool:
        return name == platform["metadata"]["name"] or all(waits_for_platform(p) for p in after[name])

    assert all(after[name] and waits_for_platform(name) for name in after)
    for stack in tenant_stacks:
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
    {"commit": None},
    {"branch": "main"},  # a branch moves without review
    {"branch": "main", "commit": None},
    {"commit": "main"},
    {"commit": "v1.2.0"},
    {"commit": "0123456789ABCDEF0123456789ABCDEF01234567"},
    {"commit": "abc123"},
    {"commit": "0123456789abcdef" * 4},  # a sha-256 object name: the brief's pin is a 40-hex sha
    {"repo_dir": "../elsewhere"},
    {"resync_seconds": 30},
    {"image": "pulumi/pulumi:latest-nonroot"},
    {"image": "pulumi/pulumi"},
    {"namespace": "Pulumi_Stacks"},
    {"backend": None},  # Pulumi Cloud without PULUMI_ACCESS_TOKEN
])
def test_a_source_that_would_inline_a_secret_or_misbehave_is_refused(bad: dict) -> None:
    fields = {"repo_url": "https://git.example.com/msp/tenant-onboarding.git", "namespace": "pulumi-stacks",
              "service_account": "tenant-onboarding", "commit": PINNED, "backend": "s3://state"} | bad
    with pytest.raises(ValueError):
        OperatorSource(**fields)


def test_ssh_and_scp_like_git_urls_are_accepted() -> None:
    for url in ("git@git.example.com:msp/tenant-onboarding.git", "ssh://git@git.example.com/msp/repo.git"):
        OperatorSource(repo_url=url, namespace="pulumi-stacks", service_account="sa", commit=PINNED,
                       backend="s3://state")


def test_secret_references_are_checked_for_kubernetes_names() -> None:
    with pytest.raises(ValueError):
        SecretKeyRef("Not A Name", "key")
    with pytest.raises(ValueError):
        SecretEnv("aws_region", SecretKeyRef("aws", "region"))
    with pytest.raises(ValueError):
        SecretEnv("PULUMI_BACKEND_URL", SecretKeyRef("pulumi", "url"))


def test_a_source_reports_every_problem_at_once() -> None:
    with pytest.raises(SourceError) as caught:
        OperatorSource(repo_url="http://git.example.com/r.git", namespace="Bad_NS", service_account="sa",
                       commit=PINNED, backend="postgres://db", resync_seconds=5)
    assert len(caught.value.problems) == 4, caught.value.problems


# --- the validator validates -----------------------------------------------------------------------------


def broken(mutate: Callable[[dict], object]) -> dict:
    tenants = require_tenants(ROOT / "tenants")
    obj = copy.deepcopy(render_operator("prod", tenants, self_managed_source())[1])
    mutate(obj)
    return obj


@pytest.mark.parametrize(("mutate", "where", "what"), [
    (lambda o: o["spec"].update(destroyOnFinalise=False), "spec.destroyOnFinalise",
     "unknown field; did you mean destroyOnFinalize?"),
    (lambda o: o["spec"].update(resyncFrequencySeconds="600"), "spec.resyncFrequencySeconds",
     "'600' is not of type 'integer'"),
    (lambda o: o["spec"].update(refresh="true"), "spec.refresh", "'true' is not of type 'boolean'"),
    (lambda o: o["spec"].update(workspaceReclaimPolicy="Keep"), "spec.workspaceReclaimPolicy",
     "'Keep' is not one of ['Retain', 'Delete']"),
    (lambda o: o["spec"].pop("stack"), "spec.stack", "required field is missing"),
    (lambda o: o["spec"]["workspaceTemplate"]["spec"].update(imag="pulumi/pulumi"),
     "spec.workspaceTemplate.spec.imag", "unknown field; did you mean image?"),
    (lambda o: o["spec"]["workspaceTemplate"]["spec"]["resources"]["limits"].update(memory="2 GB"),
     "spec.workspaceTemplate.spec.resources.limits.memory", "'2 GB' is not a Kubernetes quantity"),
    (lambda o: o["spec"]["envRefs"]["AWS_ACCESS_KEY_ID"]["secret"].pop("key"),
     "spec.envRefs.AWS_ACCESS_KEY_ID.secret.key", "required field is missing"),
    (lambda o: o["spec"]["envRefs"]["AWS_ACCESS_KEY_ID"].update(literal={"value": "AKIA"}),
     "spec.envRefs.AWS_ACCESS_KEY_ID.literal", "unknown field"),
    (lambda o: o["spec"]["prerequisites"][0].update(stack="prod"), "spec.prerequisites[0].stack",
     "unknown field"),
    (lambda o: o.update(extra=1), "extra", "unknown field; known fields: apiVersion, kind"),
    (lambda o: o.update(apiVersion="pulumi.com/v2"), "apiVersion/kind", "pulumi.com/v2 Stack is not served"),
    (lambda o: o.update(apiVersion="pulumi.com/v1alpha1"), "apiVersion/kind",
     "pulumi.com/v1alpha1 Stack is not served"),
    (lambda o: o.update(kind="Stacks"), "apiVersion/kind", "pulumi.com/v1 Stacks is not served"),
    (lambda o: o["metadata"].update(name="prod-" + "x" * 38), "metadata.name", "at most 42 characters"),
    (lambda o: o["metadata"].update(name="prod.acme"), "metadata.name", "is not a DNS label"),
    (lambda o: o["metadata"].update(namespace="Pulumi_Stacks"), "metadata.namespace", "not a namespace name"),
    (lambda o: o["metadata"]["labels"].update({"tenants.ai-agents.io/tier": True}),
     "metadata.labels.tenants.ai-agents.io/tier", "is not a label value"),
    (lambda o: o["metadata"]["labels"].update({"bad key!": "x"}), "metadata.labels", "'bad key!' is not a label"),
    (lambda o: o["metadata"].update(uid="1234"), "metadata", "fields the renderer must not set: uid"),
], ids=["misspelled-field", "string-for-integer", "string-for-boolean", "not-in-enum", "missing-required",
        "nested-misspelling", "bad-quantity", "secret-ref-without-key", "literal-secret", "unknown-prerequisite-field",
        "unknown-top-level-field", "unknown-version", "unserved-version", "unknown-kind", "name-over-42",
        "name-with-dot", "bad-namespace", "label-not-string", "bad-label-key", "server-set-metadata"])
def test_a_broken_object_fails_with_a_located_problem(served: ServedCrds, mutate, where: str, what: str) -> None:
    obj = broken(mutate)
    problems = validate_objects([obj], served)
    assert problems, "the validator accepted a broken object"
    expected = f"{file_name(obj)}: {where}: "
    assert any(p.startswith(expected) and what in p for p in problems), problems


def test_the_unbroken_object_passes(served: ServedCrds) -> None:
    assert validate_objects([broken(lambda o: None)], served) == []


def test_every_problem_of_every_object_is_reported(served: ServedCrds) -> None:
    objects = render_operator("prod", require_tenants(ROOT / "tenants"), self_managed_source())
    for obj in objects:
        obj["spec"].update(refresh="yes", shallow=1)
    problems = validate_objects(objects, served)
    assert len(problems) == 2 * len(objects)
    assert {p.split(": ", 1)[0] for p in problems} == {file_name(o) for o in objects}


def test_the_crds_name_length_rule_is_applied(tmp_path: Path) -> None:
    tighter = STAND_IN_STACK_CRD.replace("size(self.metadata.name) <= 42", "size(self.metadata.name) <= 8")
    served = load_crds(write_crd(tmp_path / "crds", tighter))
    assert served.unchecked_rules() == []
    problems = validate_objects([broken(lambda o: None)], served)
    assert any("metadata.name: " in p and "at most 8 characters" in p for p in problems), problems


def test_a_cel_rule_the_validator_cannot_check_is_reported_not_ignored(tmp_path: Path) -> None:
    rule = "has(self.spec.branch) != has(self.spec.commit)"
    extra = STAND_IN_STACK_CRD.replace(
        "        - message: Stack name must be", f"        - rule: {rule}\n        - message: Stack name must be")
    served = load_crds(write_crd(tmp_path / "crds", extra))
    notes = served.unchecked_rules()
    assert len(notes) == 1 and rule in notes[0] and "pulumi.com/v1 Stack (stacks.yaml)" in notes[0], notes


# --- reading a folder of CRDs ----------------------------------------------------------------------------


def test_the_stand_in_serves_stack_v1_and_has_no_stamp(served: ServedCrds, crd_dir: Path) -> None:
    assert set(served) == {("pulumi.com/v1", "Stack")}
    assert served.release is None
    assert served.describe() == str(crd_dir)


def test_a_version_stamp_is_reported(crd_dir: Path) -> None:
    (crd_dir / ".version").write_text("github.com/pulumi/pulumi-kubernetes-operator/v2@v2.9.0\n")
    served = load_crds(crd_dir)
    assert served.release == "github.com/pulumi/pulumi-kubernetes-operator/v2@v2.9.0"
    assert served.release in served.describe()


def test_a_kubectl_list_and_multi_document_files_are_read(tmp_path: Path) -> None:
    yaml = YAML(typ="safe")
    crd = yaml.load(STAND_IN_STACK_CRD)
    as_list = tmp_path / "list"
    as_list.mkdir()
    with (as_list / "all-crds.yaml").open("w") as handle:
        yaml.dump({"apiVersion": "v1", "kind": "List", "items": [crd], "metadata": {"resourceVersion": ""}}, handle)
    assert set(load_crds(as_list)) == {("pulumi.com/v1", "Stack")}
    install = write_crd(tmp_path / "install", "apiVersion: v1\nkind: Namespace\nmetadata: {name: pulumi}\n---\n"
                        + STAND_IN_STACK_CRD + "---\n")
    (install / "kustomization.yaml").write_text("resources: [stacks.yaml]\n")
    assert set(load_crds(install)) == {("pulumi.com/v1", "Stack")}


def assert_clear_folder_error(error: CrdFolderError, folder: Path, problem: str) -> None:
    message = str(error)
    assert str(folder) in message and problem in message, message
    assert f"kubectl get crd stacks.pulumi.com -o yaml > {folder}/stacks.yaml" in message, message
    assert "make operator-crds" in message, message


@pytest.mark.parametrize(("setup", "problem"), [
    (lambda d: None, "no such folder"),
    (lambda d: d.mkdir(), "no served CustomResourceDefinition found (looked at: no *.yaml file)"),
    (lambda d: write_crd(d, "resources: []\n", "kustomization.yaml"),
     "no served CustomResourceDefinition found (looked at: kustomization.yaml)"),
    (lambda d: write_crd(d, STAND_IN_STACK_CRD.replace("served: true", "served: false")),
     "no served CustomResourceDefinition"),
    (lambda d: write_crd(d, "apiVersion: [unclosed\n"), "stacks.yaml is not readable YAML"),
    (lambda d: write_crd(d, STAND_IN_STACK_CRD.replace("apiextensions.k8s.io/v1", "apiextensions.k8s.io/v1beta1")),
     "stacks.yaml: a CRD of apiVersion 'apiextensions.k8s.io/v1beta1'"),
    (lambda d: write_crd(d, STAND_IN_STACK_CRD.replace("  group: pulumi.com\n", "")),
     "stacks.yaml: not a complete CRD"),
], ids=["missing", "empty", "no-crd", "nothing-served", "unparsable", "old-crd-api", "incomplete"])
def test_a_folder_without_usable_crds_is_a_clear_error(tmp_path: Path, setup, problem: str) -> None:
    folder = tmp_path / "crds"
    setup(folder)
    with pytest.raises(CrdFolderError) as caught:
        load_crds(folder)
    assert_clear_folder_error(caught.value, folder, problem)


def test_two_definitions_of_one_crd_are_refused(crd_dir: Path) -> None:
    write_crd(crd_dir, STAND_IN_STACK_CRD, "stacks-from-cluster.yaml")
    with pytest.raises(CrdFolderError, match="stacks.pulumi.com is defined by both stacks-from-cluster.yaml and "
                       "stacks.yaml"):
        load_crds(crd_dir)


# --- render_operator_files -------------------------------------------------------------------------------


def test_render_files_validates_then_writes(fleet_dir: Path, crd_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    result = render_operator_files(fleet_dir, "prod", out, self_managed_source(), crd_dir)
    assert result.ok and result.problems == [] and result.warnings == []
    assert result.validated_against == str(crd_dir)
    assert sorted(result.written) == sorted(out.glob("*.yaml"))
    assert len([p for p in result.written if p.name.startswith("stack-")]) == len(require_tenants(fleet_dir)) + 1


def test_render_files_without_crds_writes_unvalidated(fleet_dir: Path, tmp_path: Path) -> None:
    result = render_operator_files(fleet_dir, "prod", tmp_path / "deploy", self_managed_source(), None)
    assert result.ok and result.validated_against is None
    assert len([p for p in result.written if p.name.startswith("stack-")]) == len(require_tenants(fleet_dir)) + 1


def test_render_files_writes_nothing_when_validation_fails(fleet_dir: Path, tmp_path: Path) -> None:
    no_local_only = STAND_IN_STACK_CRD.replace("              useLocalStackOnly: {type: boolean}\n", "")
    crds = write_crd(tmp_path / "crds", no_local_only)
    out = tmp_path / "deploy"
    first = render_operator_files(fleet_dir, "prod", out, cloud_source(), None)
    before = {path: path.read_bytes() for path in out.iterdir()}

    result = render_operator_files(fleet_dir, "prod", out, self_managed_source(), crds)
    assert not result.ok and result.written == []
    assert len(result.problems) == len([p for p in first.written if p.name.startswith("stack-")])
    assert all(p.endswith(": spec.useLocalStackOnly: unknown field; known fields: " + p.split("known fields: ")[1])
               for p in result.problems)
    assert {path: path.read_bytes() for path in out.iterdir()} == before


def test_render_files_refuses_a_folder_without_crds_before_writing(fleet_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    with pytest.raises(CrdFolderError):
        render_operator_files(fleet_dir, "prod", out, self_managed_source(), tmp_path / "no-crds")
    assert not out.exists()


# --- options of the command ------------------------------------------------------------------------------


def test_options_make_the_same_source_as_the_dataclass() -> None:
    source = operator_source_from_options(
        repo_url="https://git.example.com/msp/tenant-onboarding.git",
        namespace="pulumi-stacks",
        service_account="tenant-onboarding",
        commit=PINNED,
        backend="s3://tenant-onboarding-state",
        env_secrets=["AWS_ACCESS_KEY_ID=aws-credentials/access-key-id",
                     "AWS_SECRET_ACCESS_KEY=aws-credentials/secret-access-key",
                     "PULUMI_CONFIG_PASSPHRASE=pulumi-passphrase/passphrase"],
    )
    assert source == self_managed_source()
    cloud = operator_source_from_options(
        repo_url="https://git.example.com/msp/infra.git", namespace="pulumi-stacks",
        service_account="tenant-onboarding", commit="0123456789abcdef0123456789abcdef01234567",
        repo_dir="tenant-onboarding", env_secrets=["PULUMI_ACCESS_TOKEN=pulumi-api/accessToken"],
        git_token="git-credentials/token",  # noqa: S106 (a Secret's name and key)
        reconcile_drift=False, keep_workspaces=False, resync_seconds=300,
    )
    assert cloud == cloud_source()


def test_options_report_every_problem_in_option_terms() -> None:
    with pytest.raises(OperatorOptionsError) as caught:
        operator_source_from_options(
            repo_url="https://user:pw@git.example.com/r.git", namespace="pulumi-stacks", service_account="sa",
            commit=PINNED, repo_dir="../up", resync_seconds=10,
            env_secrets=["PULUMI_ACCESS_TOKEN", "aws_region=aws/region", "PULUMI_CONFIG_PASSPHRASE=Bad Name/key",
                         "AWS_REGION=aws/region", "AWS_REGION=aws/region2"],
            git_token="git-credentials",  # noqa: S106 (a malformed Secret reference)
        )
    problems = caught.value.problems
    assert problems == [
        "--env-secret 'PULUMI_ACCESS_TOKEN': expected NAME=SECRET/KEY, e.g. "
        "PULUMI_CONFIG_PASSPHRASE=pulumi-passphrase/passphrase",
        "--env-secret 'aws_region=aws/region': environment variable 'aws_region' is not an upper-case variable name",
        "--env-secret 'PULUMI_CONFIG_PASSPHRASE=Bad Name/key': secret name 'Bad Name' is not a Kubernetes object name",
        "--git-token 'git-credentials': expected SECRET/KEY, e.g. git-credentials/token",
        "--repo carries credentials: put the token in a Secret and name it with --git-token",
        "--repo-dir '../up' must be a relative folder inside the repository",
        "environment variable AWS_REGION is given twice",
        "a Pulumi Cloud (or self-hosted service) backend needs PULUMI_ACCESS_TOKEN in --env-secret",
        "--resync-seconds must be at least 60 (the operator's floor)",
    ], problems
    assert str(caught.value) == "\n".join(problems)


def test_a_malformed_secret_for_a_variable_does_not_also_report_it_missing() -> None:
    with pytest.raises(OperatorOptionsError) as caught:
        operator_source_from_options(repo_url="https://git.example.com/r.git", namespace="pulumi-stacks",
                                     service_account="sa", commit=PINNED,
                                     env_secrets=["PULUMI_ACCESS_TOKEN=pulumi-api"])
    assert caught.value.problems == ["--env-secret 'PULUMI_ACCESS_TOKEN=pulumi-api': expected SECRET/KEY, "
                                     "e.g. git-credentials/token"]


def test_options_without_a_commit_ask_for_a_40_hex_sha() -> None:
    with pytest.raises(OperatorOptionsError, match="full 40-hex lower-case commit sha"):
        operator_source_from_options(repo_url="https://git.example.com/r.git", namespace="pulumi-stacks",
                                     service_account="sa", backend="s3://state")


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
