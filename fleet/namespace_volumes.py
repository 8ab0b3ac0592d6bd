"""The PersistentVolumeClaims of one namespace, asked of the cluster a tenant stack applies its objects to.

A tier downgrade deletes the premium namespace, and with it every volume claimed there (fleet.tier_change).
Before it, the cluster is asked, through the same kubeconfig the stack's Kubernetes provider uses:
- `kubernetesRenderDir` set: nothing is applied, so there is no cluster to ask. The answer says so
  (`rendered`), and the downgrade goes ahead only if the tenant file names the loss with "*";
- otherwise the kubeconfig the provider applies with: the project's `kubeconfig` (a path; the rehearsal's own API
  server, fleet.rehearsal_cluster, as components.providers passes it to its provider), else `kubernetes:kubeconfig`
  in the stack's config, else the KUBECONFIG the engine is given, else $KUBECONFIG, else ~/.kube/config; its
  context `kubeContext` when set, else its current context, as the provider does.

Only `list` on persistentvolumeclaims is asked, read-only: a preview may call this too. A cluster that cannot be
reached or refuses is an `error`, never "no volumes". A claim being deleted (deletionTimestamp set) is not counted:
someone deleted it already.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from ruamel.yaml import YAML

from components.naming import PROJECT

TIMEOUT_S = 20


@dataclass(frozen=True)
class Volumes:
    """What the cluster answered: `claims` (names) when it was asked, else why it was not (`rendered`: the folder
    the objects are written to) or could not be (`error`)."""

    namespace: str
    claims: tuple[str, ...] | None = None
    rendered: str | None = None
    error: str | None = None

    @property
    def known(self) -> bool:
        return self.claims is not None


class KubeconfigError(Exception):
    pass


def namespace_volumes(stack_config: dict[str, str], namespace: str, kubeconfig_env: str | None = None) -> Volumes:
    """The claims of `namespace` on the stack's cluster. `stack_config`: the stack's plain config values, keys as
    `pulumi config` shows them (`<project>:kubeContext`, `<project>:kubeconfig`, `kubernetes:kubeconfig`);
    `kubeconfig_env`: the KUBECONFIG the engine's processes get (engine.Backend.env), where it differs from this
    process's."""
    render_dir = stack_config.get(f"{PROJECT}:kubernetesRenderDir")
    if render_dir:
        return Volumes(namespace, rendered=render_dir)
    context = stack_config.get(f"{PROJECT}:kubeContext") or stack_config.get("kubernetes:context")
    try:
        kubeconfig = (stack_config.get(f"{PROJECT}:kubeconfig") or stack_config.get("kubernetes:kubeconfig")
                      or kubeconfig_env)
        client = KubeClient.from_kubeconfig(kubeconfig, context)
        reply = client.get(f"/api/v1/namespaces/{quote(namespace, safe='')}/persistentvolumeclaims")
    except KubeconfigError as exc:
        return Volumes(namespace, error=str(exc))
    # A claim already deleted (its deletionTimestamp set, held only by its protection finalizer) was someone's
    # act: deleting the namespace loses nothing more of it.
    return Volumes(namespace, claims=tuple(sorted(item["metadata"]["name"] for item in reply.get("items") or []
                                                  if not item["metadata"].get("deletionTimestamp"))))


class KubeClient:
    """GET requests to one cluster, as one kubeconfig user: client certificate or bearer token."""

    def __init__(self, server: str, cluster: dict, user: dict, where: str) -> None:
        self.server, self.cluster, self.user, self.where = server, cluster, user, where

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None, context: str | None) -> KubeClient:
        """`kubeconfig`: a path or the kubeconfig's text (as the provider's `kubernetes:kubeconfig` takes it)."""
        text, where = _kubeconfig_text(kubeconfig)
        try:
            document = YAML(typ="safe").load(text) or {}
        except Exception:  # noqa: BLE001 (any parse error: the file is no kubeconfig)
            raise KubeconfigError(f"{where} is not a kubeconfig (YAML or JSON)") from None
        name = context or document.get("current-context")
        if not name:
            raise KubeconfigError(f"{where} names no current context, and the stack sets no kubeContext")
        found = _named(document, "contexts", name, where)
        cluster = _named(document, "clusters", found.get("cluster"), where)
        user = _named(document, "users", found.get("user"), where) if found.get("user") else {}
        if not cluster.get("server"):
            raise KubeconfigError(f"{where}: cluster {found.get('cluster')!r} has no server")
        return cls(cluster["server"], cluster, user, f"context {name!r} of {where}")

    def get(self, path: str) -> dict:
        parts = urlsplit(self.server)
        headers = {"Accept": "application/json"}
        if self.user.get("token"):
            headers["Authorization"] = f"Bearer {self.user['token']}"
        with tempfile.TemporaryDirectory(prefix="tenantctl-kube-") as folder:
            try:
                if parts.scheme == "https":
                    connection = http.client.HTTPSConnection(parts.hostname, parts.port or 443,
                                                             context=self._tls(Path(folder)), timeout=TIMEOUT_S)
                else:
                    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=TIMEOUT_S)
                connection.request("GET", parts.path.rstrip("/") + path, headers=headers)
                reply = connection.getresponse()
                body = reply.read()
                connection.close()
            except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
                raise KubeconfigError(f"the cluster of {self.where} ({self.server}) did not answer: {exc}") from None
        if reply.status != 200:
            try:
                message = json.loads(body).get("message", "")
            except ValueError:
                message = body[:200].decode(errors="replace")
            raise KubeconfigError(f"the cluster of {self.where} refused GET {path}: {reply.status} {message}")
        return json.loads(body)

    def _tls(self, folder: Path) -> ssl.SSLContext:
        if self.cluster.get("insecure-skip-tls-verify"):
            context = ssl._create_unverified_context()  # noqa: S323 (the kubeconfig asks for it, as kubectl obeys it)
        else:
            context = ssl.create_default_context(cafile=_file(self.cluster, "certificate-authority", folder))
        certificate = _file(self.user, "client-certificate", folder)
        if certificate:
            context.load_cert_chain(certificate, _file(self.user, "client-key", folder))
        return context


def _kubeconfig_text(kubeconfig: str | None) -> tuple[str, str]:
    if kubeconfig and ("\n" in kubeconfig or kubeconfig.lstrip().startswith("{")):
        return kubeconfig, "the stack's kubernetes:kubeconfig"
    path = Path(kubeconfig or (os.environ.get("KUBECONFIG", "").split(os.pathsep)[0])
                or Path.home() / ".kube" / "config").expanduser()
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except OSError as exc:
        raise KubeconfigError(f"no kubeconfig to reach the stack's cluster: {path}: {exc.strerror}") from None


def _named(document: dict, section: str, name: str | None, where: str) -> dict:
    for entry in document.get(section) or []:
        if entry.get("name") == name:
            return entry.get(section.removesuffix("s")) or {}
    raise KubeconfigError(f"{where} has no {section.removesuffix('s')} named {name!r}")


def _file(section: dict, key: str, folder: Path) -> str | None:
    """The path of `key` (a file), or of `key-data` written to a private file in `folder`."""
    if section.get(key):
        return str(section[key])
    data = section.get(f"{key}-data")
    if not data:
        return None
    path = folder / key
    path.write_bytes(base64.b64decode(data))
    path.chmod(0o600)
    return str(path)
