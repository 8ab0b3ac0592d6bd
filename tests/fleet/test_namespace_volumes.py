"""The downgrade's volume check against a real API server (services/kube_apiserver.py): refused while the premium
namespace holds a PersistentVolumeClaim, allowed once it is deleted or named in the tenant file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components.naming import PROJECT
from fleet import tier_change
from fleet.namespace_volumes import namespace_volumes
from services.kube_apiserver import LocalKubeApiServer
from tenancy.model import Tier
from tests.kube_cluster import eventually, onboard, repo_tenant

NAMESPACE = "tenant-acme"
CLAIMS = f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims"


@pytest.fixture(scope="module")
def kube(tmp_path_factory) -> Iterator[LocalKubeApiServer]:
    with LocalKubeApiServer(base_dir=tmp_path_factory.mktemp("kube")) as server:
        onboard(server, repo_tenant("acme"))
        yield server


def _claim(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def _create(kube: LocalKubeApiServer, claim: dict) -> None:
    reply = kube.request("POST", CLAIMS, claim)
    assert reply.ok, reply.message


def _delete(kube: LocalKubeApiServer, claim: dict) -> None:
    assert kube.request("DELETE", f"{CLAIMS}/{claim['metadata']['name']}").ok


def _downgrade(accepted: tuple[str, ...] = ()) -> tier_change.TierChange:
    return tier_change.TierChange("acme", Tier.PREMIUM, Tier.BASIC, NAMESPACE, "tenants/acme.yaml", accepted, "urn")


def test_a_downgrade_is_refused_while_the_namespace_holds_a_claim(kube, monkeypatch):
    """Through the stack's kubeContext in $KUBECONFIG, as its Kubernetes provider reaches the cluster."""
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    config = {f"{PROJECT}:kubeContext": "local"}
    assert namespace_volumes(config, NAMESPACE).claims == ()
    assert tier_change.refusal(_downgrade(), namespace_volumes(config, NAMESPACE)) is None

    claim = _claim("data-0")
    _create(kube, claim)
    volumes = namespace_volumes(config, NAMESPACE)

    assert volumes.claims == ("data-0",)
    refused = tier_change.refusal(_downgrade(), volumes)
    assert refused is not None and "PersistentVolumeClaim(s) data-0" in refused and "accept_volume_loss" in refused
    assert tier_change.refusal(_downgrade(("data-0",)), volumes) is None  # the loss named in the file

    _delete(kube, claim)  # gone, or terminating under its finalizer: deleted either way
    assert tier_change.refusal(_downgrade(), namespace_volumes(config, NAMESPACE)) is None
    # and gone for good: the claim protection controller lifts its finalizer (no pod uses it), so the namespace
    # a downgrade deletes around it is not held Terminating.
    eventually(lambda: kube.request("GET", f"{CLAIMS}/data-0").status == 404, "the deleted claim is gone")


def test_the_stacks_own_kubeconfig_is_used_and_an_unreachable_cluster_refuses(kube, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    _create(kube, _claim("logs"))
    volumes = namespace_volumes({"kubernetes:kubeconfig": str(kube.kubeconfig)}, NAMESPACE)
    assert volumes.claims == ("logs",)  # the current context of the stack's kubernetes:kubeconfig (a path)
    engine_env = namespace_volumes({f"{PROJECT}:kubeContext": "local"}, NAMESPACE, str(kube.kubeconfig))
    assert engine_env.claims == ("logs",)  # the KUBECONFIG the engine is given (engine.Backend.env)
    text = kube.kubeconfig.read_text()
    assert namespace_volumes({"kubernetes:kubeconfig": text}, NAMESPACE).claims == ("logs",)  # or its text

    port = kube.server.rsplit(":", 1)[1]
    gone = tmp_path / "kubeconfig"
    gone.write_text(text.replace(f":{port}", ":1"))
    # The project's `kubeconfig` (the rehearsal's API server): the one the provider applies with, so it wins over
    # kubernetes:kubeconfig and the engine's KUBECONFIG, as in components.providers.
    rehearsal = {f"{PROJECT}:kubeconfig": str(kube.kubeconfig), "kubernetes:kubeconfig": str(gone)}
    assert namespace_volumes(rehearsal, NAMESPACE, str(gone)).claims == ("logs",)
    volumes = namespace_volumes({f"{PROJECT}:kubeconfig": str(gone)}, NAMESPACE, str(kube.kubeconfig))
    assert volumes.error and "did not answer" in volumes.error  # not the engine's KUBECONFIG behind its back
    volumes = namespace_volumes({"kubernetes:kubeconfig": str(gone)}, NAMESPACE)
    assert volumes.error and "did not answer" in volumes.error
    refused = tier_change.refusal(_downgrade(("*",)), volumes)
    assert refused is not None and "could not be" in refused  # not even "*" passes a cluster nobody could ask


def test_rendered_objects_have_no_cluster_to_ask_and_the_downgrade_needs_the_star(monkeypatch):
    """Render mode (`kubernetesRenderDir`): no cluster is asked, whatever kubeconfig is about."""
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    volumes = namespace_volumes({f"{PROJECT}:kubernetesRenderDir": "/r/manifests",
                                 f"{PROJECT}:kubeconfig": "/nonexistent/kubeconfig"}, NAMESPACE)
    assert (volumes.known, volumes.rendered, volumes.error) == (False, "/r/manifests", None)
    refused = tier_change.refusal(_downgrade(("data-0",)), volumes)
    assert refused is not None and "rendered to /r/manifests" in refused and "accept_volume_loss: ['*']" in refused
    assert tier_change.refusal(_downgrade(("*",)), volumes) is None
