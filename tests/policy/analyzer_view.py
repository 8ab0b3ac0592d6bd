"""What the policy pack's analyzer would be handed for the resources of a mocked program run.

The engine sends an analyzer each resource's properties over gRPC with secrets still in their wire
envelope (`MarshalProperties(..., KeepSecrets: true, SkipInternalKeys: true)`). `to_wire` rebuilds that
form from a `RegisteredResource` (whose secrets are `fleet.mock_runtime.Secret`), and the args are
decoded from it exactly as the running pack decodes them: `deserialize_keeping_secrets`, then the
analyzer's unknown-checking proxy. `analyze_request`/`analyze_stack_request` build the gRPC requests
themselves, for tests that go through pulumi-policy's real analyzer servicer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY
from pulumi_policy.proxy import unknown_checking_proxy

from fleet.mock_runtime import RegisteredResource, Secret
from policy.tenant_policies import deserialize_keeping_secrets


def to_wire(value: Any) -> Any:
    """A recorded value in the engine's wire form: every `Secret` becomes the secret envelope."""
    if isinstance(value, Secret):
        return {SPECIAL_SIG_KEY: SPECIAL_SECRET_SIG, "value": to_wire(value.value)}
    if isinstance(value, Mapping):
        return {key: to_wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(item) for item in value]
    return value


def wire_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    # The engine drops internal keys (`__provider`, `__defaults`, ...) before analysis.
    return {key: to_wire(value) for key, value in props.items() if not key.startswith("__")}


def analyzer_props(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """`props` as the running pack's validations see them (secrets as `pulumi_policy.Secret`)."""
    return unknown_checking_proxy(deserialize_keeping_secrets(wire_properties(props)))


def _options(resource: RegisteredResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=resource.parent_urn or None,
    )


def resource_args(
    resource: RegisteredResource,
    config: Mapping[str, Any] | None = None,
    provider: PolicyProviderResource | None = None,
) -> ResourceValidationArgs:
    """What `Analyze` passes a resource validation: the resource's inputs, as the engine checked them."""
    return ResourceValidationArgs(
        resource.type, analyzer_props(resource.inputs), resource.urn, resource.name, _options(resource),
        provider, dict(config) if config is not None else None,
    )


def stack_args(resources: Iterable[RegisteredResource], config: Mapping[str, Any] | None = None) -> StackValidationArgs:
    """What `AnalyzeStack` passes a stack validation: every resource with its outputs, parents linked."""
    resources = list(resources)
    policy_resources = {
        r.urn: PolicyResource(r.type, analyzer_props(r.outputs), r.urn, r.name, _options(r), None, None, [], {})
        for r in resources
    }
    for r in resources:
        policy_resources[r.urn].parent = policy_resources.get(r.parent_urn)
    return StackValidationArgs(list(policy_resources.values()), dict(config) if config is not None else None)


class Violations:
    """A `report_violation` that remembers what it was told."""

    def __init__(self) -> None:
        self.reported: list[tuple[str, str | None]] = []

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.reported.append((message, urn))

    @property
    def messages(self) -> list[str]:
        return [message for message, _ in self.reported]


def _struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(wire_properties(props))
    return struct


def analyze_request(resource: RegisteredResource) -> proto.AnalyzeRequest:
    return proto.AnalyzeRequest(
        urn=resource.urn, type=resource.type, name=resource.name, properties=_struct(resource.inputs),
    )


def analyze_stack_request(resources: Iterable[RegisteredResource]) -> proto.AnalyzeStackRequest:
    return proto.AnalyzeStackRequest(resources=[
        proto.AnalyzerResource(
            urn=r.urn, type=r.type, name=r.name, properties=_struct(r.outputs), parent=r.parent_urn,
        )
        for r in resources
    ])
