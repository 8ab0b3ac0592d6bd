"""Check rendered operator objects against the Pulumi Kubernetes Operator's CRDs, as the API server would.

`load_crds` reads the CustomResourceDefinitions in a folder: whatever operator release the cluster runs,
taken from the cluster (`kubectl get crd stacks.pulumi.com -o yaml > DIR/stacks.yaml`) or from the
operator's release (`make operator-crds`, where the operator's Go module is served). Nothing is pinned: a
`.version` stamp in the folder (written by engine/fetch_operator_crds.sh) is only reported.

`validate_objects` checks each object the way the API server takes it with strict field validation: its
apiVersion and kind must be a served version of one of the CRDs, its body must match that version's
openAPIV3Schema with unknown fields refused, and its metadata must be valid object metadata that the
operator can name its workspace after. Every problem names the file the object is written to and the field:
`stack-prod-acme.yaml: spec.destroyOnFinalise: unknown field; did you mean destroyOnFinalize?`.

The API server also runs the CRDs' CEL rules (`x-kubernetes-validations`), which this cannot evaluate. The
one rule the Stack CRD has (`size(self.metadata.name) <= 42`) is checked with the metadata; any other rule
is listed by `ServedCrds.unchecked_rules` so it is reported, never silently ignored.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import jsonschema
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from fleet.operator_manifests import DNS_LABEL, DNS_SUBDOMAIN, MAX_STACK_OBJECT_NAME, file_name
from fleet.operator_manifests import KIND as STACK_KIND

CRD_API_VERSION = "apiextensions.k8s.io/v1"
CRD_KIND = "CustomResourceDefinition"
STAMP = ".version"
CRD_SUFFIXES = (".yaml", ".yml")
# The operator names the workspace's Service `<name>-workspace`: the object name must be an RFC 1035 label.
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
# The CEL rules this module checks itself (with the metadata).
NAME_LENGTH_RULE = re.compile(r"^size\(self\.metadata\.name\)\s*<=\s*(\d+)$")
METADATA_FIELDS = {"name", "namespace", "labels", "annotations"}


def how_to_get_crds(crd_dir: Path) -> str:
    return (
        f"put the operator's CRDs there: from the cluster, `kubectl get crd stacks.pulumi.com -o yaml > "
        f"{crd_dir}/stacks.yaml`; or from the operator's release with `make operator-crds` (into "
        ".venv/operator-crds), on a machine whose Go proxy serves github.com/pulumi/pulumi-kubernetes-operator/v2"
    )


class CrdFolderError(Exception):
    """The CRD folder is missing, holds no CRD, or holds a file that is not a usable CRD."""

    def __init__(self, crd_dir: Path, problem: str, *, advise: bool = True) -> None:
        self.crd_dir = crd_dir
        self.problem = problem
        message = f"operator CRDs in {crd_dir}: {problem}"
        super().__init__(f"{message}; {how_to_get_crds(crd_dir)}" if advise else message)


@dataclass(frozen=True)
class ServedVersion:
    """One served version of a CRD: what objects of `api_version` and `kind` must look like."""

    api_version: str
    kind: str
    source: str  # the file it was read from
    validator: jsonschema.Draft4Validator
    rules: tuple[tuple[str, str], ...]  # (where in the object, CEL rule) of every x-kubernetes-validations

    @property
    def name_limit(self) -> int | None:
        limits = [int(m.group(1)) for where, rule in self.rules if not where and (m := NAME_LENGTH_RULE.match(rule))]
        return min(limits) if limits else None

    @property
    def unchecked_rules(self) -> list[str]:
        return [f"{where or '<object>'}: {rule}" for where, rule in self.rules
                if where or not NAME_LENGTH_RULE.match(rule)]


class ServedCrds(dict[tuple[str, str], ServedVersion]):
    """(apiVersion, kind) → served version, for every CRD in `folder`; `release` is its `.version` stamp."""

    def __init__(self, folder: Path, release: str | None, versions: Mapping[tuple[str, str], ServedVersion]) -> None:
        super().__init__(versions)
        self.folder = folder
        self.release = release

    def describe(self) -> str:
        return f"{self.folder} ({self.release})" if self.release else str(self.folder)

    def unchecked_rules(self) -> list[str]:
        """A note for every CEL rule that `validate_objects` cannot check; the API server still will."""
        return [f"{version.api_version} {version.kind} ({version.source}): CEL rule not checked by tenantctl, "
                f"the API server checks it when the objects are applied: {rule}"
                for version in self.values() for rule in version.unchecked_rules]


def load_crds(crd_dir: Path) -> ServedCrds:
    """Every served version of the CRDs in `crd_dir`'s *.yaml files, or `CrdFolderError`.

    A file may hold one CRD (`kubectl get crd NAME -o yaml`, the operator's deploy/crds), a list of them
    (`kubectl get crd -o yaml`) or several YAML documents; documents that are not CRDs are skipped.
    """
    if not crd_dir.is_dir():
        raise CrdFolderError(crd_dir, "no such folder")
    files = sorted(path for path in crd_dir.iterdir() if path.suffix in CRD_SUFFIXES and path.is_file())
    yaml = YAML(typ="safe")
    served: dict[tuple[str, str], ServedVersion] = {}
    defined_in: dict[str, str] = {}
    for path in files:
        try:
            documents = list(yaml.load_all(path.read_text(encoding="utf-8")))
        except (YAMLError, UnicodeDecodeError) as exc:
            raise CrdFolderError(crd_dir, f"{path.name} is not readable YAML ({_first_line(exc)})") from exc
        for crd in _crds(documents):
            name = _crd_name(crd_dir, path, crd)
            if name in defined_in:
                raise CrdFolderError(crd_dir, f"{name} is defined by both {defined_in[name]} and {path.name}; "
                                     "keep the one of the release the cluster runs", advise=False)
            defined_in[name] = path.name
            for version in _served_versions(crd_dir, path, crd):
                served[(version.api_version, version.kind)] = version
    if not served:
        looked_at = ", ".join(path.name for path in files) or "no *.yaml file"
        raise CrdFolderError(crd_dir, f"no served CustomResourceDefinition found (looked at: {looked_at})")
    stamp = crd_dir / STAMP
    release = stamp.read_text(encoding="utf-8").strip() if stamp.is_file() else ""
    return ServedCrds(crd_dir, release or None, served)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _crds(documents: list[object]) -> Iterator[dict]:
    for document in documents:
        if not isinstance(document, dict):
            continue
        if document.get("kind") == CRD_KIND:
            yield document
        elif document.get("kind") in {"List", "CustomResourceDefinitionList"}:
            yield from (item for item in document.get("items") or [] if isinstance(item, dict)
                        and item.get("kind") == CRD_KIND)


def _crd_name(crd_dir: Path, path: Path, crd: dict) -> str:
    if crd.get("apiVersion") != CRD_API_VERSION:
        raise CrdFolderError(crd_dir, f"{path.name}: a CRD of apiVersion {crd.get('apiVersion')!r}; "
                             f"only {CRD_API_VERSION} CRDs are read")
    name = (crd.get("metadata") or {}).get("name")
    return name if isinstance(name, str) and name else f"a CRD in {path.name}"


def _served_versions(crd_dir: Path, path: Path, crd: dict) -> Iterator[ServedVersion]:
    try:
        spec = crd["spec"]
        group, kind, versions = spec["group"], spec["names"]["kind"], spec["versions"]
    except (KeyError, TypeError) as exc:
        raise CrdFolderError(crd_dir, f"{path.name}: not a complete CRD (no spec.{exc})") from exc
    for version in versions:
        if not version.get("served"):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, dict):
            raise CrdFolderError(crd_dir, f"{path.name}: {group}/{version.get('name')} {kind} has no openAPIV3Schema")
        yield ServedVersion(
            api_version=f"{group}/{version['name']}",
            kind=kind,
            source=path.name,
            validator=jsonschema.Draft4Validator(_root_schema(schema)),
            rules=tuple(_cel_rules(schema)),
        )


def _root_schema(schema: dict) -> dict:
    root = cast(dict, structural(schema))
    root["type"] = "object"
    properties = root.setdefault("properties", {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    # ObjectMeta is the API server's own schema, checked by metadata_problems.
    properties["metadata"] = {"type": "object"}
    return root


def structural(schema: object) -> object:
    """An openAPIV3Schema as a draft-4 JSON Schema with the API server's field rules.

    `x-kubernetes-*` keywords are dropped, except that they decide which objects are open: an object
    schema is closed (additionalProperties: false) unless it says x-kubernetes-preserve-unknown-fields or
    has additionalProperties of its own. `nullable` becomes a null type; int-or-string becomes anyOf.
    """
    if isinstance(schema, list):
        return [structural(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: value for key, value in schema.items() if not key.startswith("x-kubernetes-") and key != "nullable"}
    for key in ("properties", "patternProperties"):
        if isinstance(schema.get(key), dict):
            out[key] = {name: structural(sub) for name, sub in schema[key].items()}
    for key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
        if isinstance(schema.get(key), dict | list):
            out[key] = structural(schema[key])
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if schema.get("x-kubernetes-int-or-string") and "anyOf" not in out and "type" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("x-kubernetes-embedded-resource"):
        out["properties"] = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                             "metadata": {"type": "object"}, **out.get("properties", {})}
    if (out.get("type") == "object" and "additionalProperties" not in schema
            and schema.get("x-kubernetes-preserve-unknown-fields") is not True):
        out["additionalProperties"] = False
    return out


def _cel_rules(schema: object, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(schema, list):
        for item in schema:
            yield from _cel_rules(item, where)
        return
    if not isinstance(schema, dict):
        return
    for validation in schema.get("x-kubernetes-validations") or []:
        yield where, str(validation.get("rule", validation))
    for name, sub in (schema.get("properties") or {}).items():
        yield from _cel_rules(sub, f"{where}.{name}" if where else name)
    for key, suffix in (("items", "[]"), ("additionalProperties", ".*")):
        if isinstance(schema.get(key), dict):
            yield from _cel_rules(schema[key], f"{where}{suffix}")
    for key in ("allOf", "anyOf", "oneOf", "not"):
        if key in schema:
            yield from _cel_rules(schema[key], where)


def validate_objects(objects: list[dict], served: Mapping[tuple[str, str], ServedVersion]) -> list[str]:
    """Every problem of every object, each as `<file>: <field>: <what is wrong>`; [] when all are valid."""
    problems: list[str] = []
    for index, obj in enumerate(objects):
        where = _location(obj, index)
        problems.extend(f"{where}: {problem}" for problem in object_problems(obj, served))
    return problems


def object_problems(obj: dict, served: Mapping[tuple[str, str], ServedVersion]) -> list[str]:
    """One object's problems, each as `<field>: <what is wrong>`."""
    if not isinstance(obj, dict):
        return [f"<object>: not a mapping but {type(obj).__name__}"]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    version = served.get((api_version, kind)) if isinstance(api_version, str) and isinstance(kind, str) else None
    if version is None:
        folder = getattr(served, "folder", None)
        offered = ", ".join(f"{a} {k}" for a, k in sorted(served)) or "nothing"
        return [f"apiVersion/kind: {api_version} {kind} is not served by the CRDs"
                + (f" in {folder}" if folder else "") + f" (they serve: {offered})"]
    problems = [problem for error in sorted(version.validator.iter_errors(obj), key=_error_order)
                for problem in _schema_problems(error)]
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return [*problems, "metadata: missing or not a mapping"]
    return problems + metadata_problems(kind, metadata, version.name_limit)


def metadata_problems(kind: str, metadata: dict, name_limit: int | None = None) -> list[str]:
    """Object metadata the API server and the operator accept; a Stack's name fits its workspace's names."""
    problems = []
    limit = min(filter(None, (63, name_limit, MAX_STACK_OBJECT_NAME if kind == STACK_KIND else None)))
    name = metadata.get("name")
    if not isinstance(name, str) or len(name) > limit or not DNS_1035_LABEL.match(name):
        problems.append(f"metadata.name: {name!r} is not a DNS label (lower-case letters, digits and '-', "
                        f"starting with a letter) of at most {limit} characters")
    namespace = metadata.get("namespace")
    if not isinstance(namespace, str) or not DNS_LABEL.match(namespace):
        problems.append(f"metadata.namespace: {namespace!r} is not a namespace name")
    labels = metadata.get("labels", {})
    if not isinstance(labels, dict):
        problems.append("metadata.labels: not a mapping")
        labels = {}
    for key, value in labels.items():
        prefix, _, label = str(key).rpartition("/")
        if (prefix and not DNS_SUBDOMAIN.match(prefix)) or not LABEL_NAME.match(label):
            problems.append(f"metadata.labels: key {key!r} is not a label name")
        if not isinstance(value, str) or not LABEL_VALUE.match(value):
            problems.append(f"metadata.labels.{key}: value {value!r} is not a label value (a string of at most "
                            "63 letters, digits, '-', '_' and '.', starting and ending alphanumeric)")
    annotations = metadata.get("annotations", {})
    if not isinstance(annotations, dict):
        problems.append("metadata.annotations: not a mapping")
        annotations = {}
    for key, value in annotations.items():
        if not isinstance(value, str):
            problems.append(f"metadata.annotations.{key}: value {value!r} is not a string")
    unknown = sorted(set(metadata) - METADATA_FIELDS)
    if unknown:
        problems.append(f"metadata: fields the renderer must not set: {', '.join(map(str, unknown))}")
    return problems


def _location(obj: object, index: int) -> str:
    try:
        return file_name(obj)  # type: ignore[arg-type]
    except (AttributeError, KeyError, TypeError):
        return f"object {index + 1}"


def _path(parts: object) -> str:
    text = ""
    for part in parts:  # type: ignore[attr-defined]
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _error_order(error: jsonschema.ValidationError) -> tuple[str, str]:
    return _path(error.absolute_path), error.message


def _schema_problems(error: jsonschema.ValidationError) -> list[str]:
    where = _path(error.absolute_path)
    prefix = where + "." if where else ""
    closed = error.validator == "additionalProperties" and error.validator_value is False
    if closed and isinstance(error.instance, dict):
        known = list(error.schema.get("properties") or {})
        patterns = list(error.schema.get("patternProperties") or {})
        unknown = [key for key in error.instance
                   if key not in known and not any(re.search(pattern, str(key)) for pattern in patterns)]
        problems = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; known fields: {', '.join(known) or 'none'}"
            problems.append(f"{prefix}{key}: unknown field{hint}")
        return problems or [f"{where or '<object>'}: {error.message}"]
    if error.validator == "required" and isinstance(error.instance, dict):
        return [f"{prefix}{field}: required field is missing"
                for field in error.validator_value if field not in error.instance]
    if error.validator == "pattern" and "KMGTPE" in str(error.validator_value):
        return [f"{where}: {error.instance!r} is not a Kubernetes quantity (e.g. 500m, 2Gi)"]
    return [f"{where or '<object>'}: {error.message}"]
