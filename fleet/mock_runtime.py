"""Runs the real Pulumi program (`__main__.py`) under Pulumi's mock runtime, recording every resource.

The cloud and Kubernetes are simulated: each resource type gets plausible outputs (ARNs, key ids,
a generated password), and dynamic resources echo their inputs. `tenantctl plan` and the unit tests
use it; `tenantctl rehearse` and the end-to-end tests run the real engine (`fleet.engine`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import hashlib
import os
import runpy
import secrets
import string
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from components.naming import PROJECT

SECRET_MASK = "[secret]"  # noqa: S105 (the mask, not a secret)
DYNAMIC_PREFIX = "pulumi-python:dynamic"
FAKE_ACCOUNT = "123456789012"
MOCK_ID_NAMESPACE = uuid.UUID("0c6c1f5e-3f4b-4d7a-9a51-5d2f0a1b7e11")


class Secret:
    """A value that was a Pulumi secret in the program's inputs."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return SECRET_MASK


def _secret_envelope(value: Any) -> dict:
    return {rpc._special_sig_key: rpc._special_secret_sig, "value": unwrap_secrets(value)}


def _is_secret_wrapper(value: Any) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def mark_secrets(value: Any) -> Any:
    """Turn the RPC's secret envelopes into `Secret` objects, so they cannot be printed by accident."""
    if _is_secret_wrapper(value):
        return Secret(unwrap_secrets(value["value"]))
    if isinstance(value, dict):
        return {k: mark_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mark_secrets(v) for v in value]
    return value


def unwrap_secrets(value: Any) -> Any:
    """Plain values, as the engine hands them to a provider."""
    if isinstance(value, Secret):
        return unwrap_secrets(value.value)
    if _is_secret_wrapper(value):
        return unwrap_secrets(value["value"])
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def masked(value: Any) -> Any:
    """JSON-safe copy with every secret replaced by `[secret]`."""
    if isinstance(value, Secret) or _is_secret_wrapper(value):
        return SECRET_MASK
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items() if k != "__provider"}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class RegisteredResource:
    urn: str
    type: str
    name: str
    parent_urn: str
    custom: bool
    inputs: dict
    outputs: dict = field(default_factory=dict)
    id: str | None = None
    status: str = "created"
    aliases: list[str] = field(default_factory=list)  # previous names the engine would move this resource from
    dependencies: list[str] = field(default_factory=list)  # URNs it waits for (depends_on and its inputs' resources)
    # The engine guards the program asked for: what a destroy or replace of this resource would meet.
    protect: bool = False
    retain_on_delete: bool = False
    # Every option the SDK sent the engine with it (provider, version, ignoreChanges, ...), as a dict, without
    # the inputs and without where in the source it was declared (`RecordingMonitor`): what fleet.desired_state
    # digests.
    options: dict = field(default_factory=dict)

    @property
    def parent_name(self) -> str:
        return self.parent_urn.rsplit("::", 1)[-1] if self.parent_urn else ""




class SimulatedCloud(pulumi.runtime.Mocks):
    def __init__(self, region: str, platform_outputs: dict | None = None, stable: bool = False) -> None:
        self.region = region
        self.platform_outputs = platform_outputs or {}
        # stable: generated values (a random password) derived from the resource's name, the same every run, so
        # that two runs of an unchanged program register identical inputs (fleet.desired_state).
        self.stable = stable
        self.registered: list[RegisteredResource] = []
        self.lock = threading.Lock()
        self.current = threading.local()

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":  # noqa: S105
            return {"accountId": FAKE_ACCOUNT, "arn": f"arn:aws:iam::{FAKE_ACCOUNT}:user/plan", "userId": "plan"}, None
        return {}, None

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        if args.typ == "pulumi:pulumi:StackReference":  # a read of the platform stack, not a resource of this one
            values = self.platform_outputs
            return args.name, {
                "name": args.name,
                "outputs": {k: v.value if isinstance(v, Secret) else v for k, v in values.items()},
                "secretOutputNames": sorted(k for k, v in values.items() if isinstance(v, Secret)),
            }
        urn, parent = self.current.urn, self.current.parent
        resource = RegisteredResource(urn, args.typ, args.name, parent, args.custom, mark_secrets(args.inputs),
                                      aliases=self.current.aliases, dependencies=self.current.dependencies,
                                      protect=self.current.protect, retain_on_delete=self.current.retain_on_delete,
                                      options=self.current.options)
        plain_inputs = unwrap_secrets(args.inputs)
        resource.id, outputs = self._simulate(args, plain_inputs)
        resource.outputs = outputs
        with self.lock:
            self.registered.append(resource)
        # The engine keeps secret every output the resource declares secret (RandomPassword.result, ...)
        # and every output whose input was secret; the mock monitor does neither, so do it here.
        secret_outputs = set(self.current.secret_outputs) | {
            key for key, value in args.inputs.items() if _is_secret_wrapper(value)
        }
        return resource.id, {
            key: _secret_envelope(value) if key in secret_outputs else value for key, value in outputs.items()
        }

    def _simulate(self, args, inputs: dict) -> tuple[str, dict]:
        if not args.custom:  # a component: no cloud object behind it
            return "", dict(inputs)
        return self._outputs_for(args.typ, args.name, inputs)

    def _outputs_for(self, typ: str, name: str, inputs: dict) -> tuple[str, dict]:
        """Plausible outputs, the same on every run for the same resource (plans are diffed and reviewed)."""
        outputs = dict(inputs)
        stable = uuid.uuid5(MOCK_ID_NAMESPACE, f"{typ}/{name}")
        if typ == "random:index/randomPassword:RandomPassword":
            alphabet = string.ascii_letters + string.digits
            length = int(inputs.get("length", 48))
            if self.stable:
                seed = hashlib.sha256(f"{typ}/{name}".encode()).digest() * (1 + length // 32)
                outputs["result"] = "".join(alphabet[b % len(alphabet)] for b in seed[:length])
            else:
                outputs["result"] = "".join(secrets.choice(alphabet) for _ in range(length))
            return f"{name}-id", outputs
        if typ == "aws:kms/key:Key":
            key_id = str(stable)
            outputs.update(keyId=key_id, arn=f"arn:aws:kms:{self.region}:{FAKE_ACCOUNT}:key/{key_id}")
            return key_id, outputs
        if typ == "aws:kms/alias:Alias":
            outputs["arn"] = f"arn:aws:kms:{self.region}:{FAKE_ACCOUNT}:{inputs.get('name')}"
            return str(inputs.get("name")), outputs
        if typ == "aws:secretsmanager/secret:Secret":
            suffix = stable.hex[:6]
            arn = f"arn:aws:secretsmanager:{self.region}:{FAKE_ACCOUNT}:secret:{inputs.get('name')}-{suffix}"
            outputs["arn"] = arn
            return arn, outputs
        if typ == "aws:secretsmanager/secretVersion:SecretVersion":
            version = str(stable)
            outputs["versionId"] = version
            return f"{inputs.get('secretId')}|{version}", outputs
        if typ.startswith("kubernetes:"):
            metadata = inputs.get("metadata") or {}
            namespace = metadata.get("namespace")
            return f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name", name)), outputs
        return f"{name}-id", outputs


class RecordingMonitor(MockMonitor):
    """Tells the mocks each registration's URN, parent and options, and captures the outputs components register."""

    # Request fields that are not options: the inputs (recorded apart), and where the resource was declared in the
    # source (a comment or a moved line changes them, and nothing the engine compares).
    NOT_OPTIONS = ("type", "name", "parent", "custom", "object", "sourcePosition", "stackTrace",
                   "parentStackTraceHandle")

    def __init__(self, mocks: SimulatedCloud) -> None:
        super().__init__(mocks)
        self.cloud = mocks
        self.component_outputs: dict[str, dict] = {}
        self.lock = threading.Lock()

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        self.cloud.current.urn = self.make_urn(request.parent, request.type, request.name)
        self.cloud.current.parent = request.parent
        self.cloud.current.secret_outputs = list(request.additionalSecretOutputs)
        self.cloud.current.aliases = [alias.spec.name for alias in request.aliases if alias.spec.name]
        self.cloud.current.dependencies = list(request.dependencies)
        self.cloud.current.protect = bool(request.protect)
        self.cloud.current.retain_on_delete = bool(request.retainOnDelete)
        options = json_format.MessageToDict(request)
        self.cloud.current.options = {k: v for k, v in options.items() if k not in self.NOT_OPTIONS}
        return super().RegisterResource(request)

    def RegisterResourceOutputs(self, request):  # noqa: N802 (gRPC method name)
        outputs = json_format.MessageToDict(request.outputs) if request.HasField("outputs") else {}
        with self.lock:
            self.component_outputs[request.urn] = outputs
        return super().RegisterResourceOutputs(request)


@dataclass
class ProgramRun:
    resources: list[RegisteredResource]
    exports: dict
    component_outputs: dict[str, dict] = field(default_factory=dict)  # urn -> what register_outputs gave

    def by_parent(self) -> dict[str, list[RegisteredResource]]:
        grouped: dict[str, list[RegisteredResource]] = {}
        for resource in self.resources:
            grouped.setdefault(resource.parent_name, []).append(resource)
        return grouped


class ProgramError(Exception):
    """The program refused to run (invalid tenant files, missing config): its message, no traceback."""


@contextlib.contextmanager
def _no_stack_traces() -> Iterator[None]:
    """The SDK walks the Python stack at every registration to send the engine its source position and stack
    trace; a mock run drops both (NOT_OPTIONS), and the walk was about a third of a run's time (a release
    computes one run per tenant). An SDK without that hook is left as it is."""
    from pulumi.runtime import resource
    from pulumi.runtime.proto import source_pb2

    original = getattr(resource, "_get_stack_trace", None)
    if original is None:
        yield
        return
    resource._get_stack_trace = source_pb2.StackTrace
    try:
        yield
    finally:
        resource._get_stack_trace = original


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The SDK keeps many long-lived objects per resource, and the cyclic GC rescanning that growing heap
    was most of a large plan's time (docs/benchmarks.md). Runs are bounded, so it is paused meanwhile;
    callers that walk the results afterwards (plan) extend the pause over that too. On the way out the
    survivors are frozen, or the first allocation after re-enabling would pay for one full scan of them."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.freeze()
            gc.enable()


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def run_program(
    project_root: Path,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    program: Callable[[], None] | None = None,
    platform_outputs: dict | None = None,
    stable_outputs: bool = False,
) -> ProgramRun:
    """Run `project_root/__main__.py` (or `program`) as `pulumi up` would, against the simulated cloud.

    `platform_outputs` are what a StackReference to the platform stack reads (secrets as `Secret`); with
    `stable_outputs`, generated values are the same on every run."""
    region = config.get("aws:region", "us-east-1")
    cloud = SimulatedCloud(region, platform_outputs or {}, stable=stable_outputs)
    monitor = RecordingMonitor(cloud)
    _track_event_loops()
    pulumi.runtime.settings.reset_options(project=PROJECT, stack=stack)
    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi.runtime.set_mocks(cloud, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    root = pulumi.runtime.settings.get_root_resource()
    try:
        with gc_paused(), _no_stack_traces(), _working_directory(project_root):
            if program is None:
                runpy.run_path(str(project_root / "__main__.py"), run_name="__pulumi_program__")
            else:
                program()
            _sync_await(wait_for_rpcs())
            exports = _sync_await(_resolve(root.outputs)) if root is not None else {}
    except pulumi.RunError as exc:
        raise ProgramError(str(exc)) from None
    except Exception as exc:  # a defect in the program itself: say where, without a wall of SDK frames
        raise ProgramError(f"the Pulumi program failed: {type(exc).__name__}: {exc}") from exc
    return ProgramRun(list(cloud.registered), mark_secrets(exports), dict(monitor.component_outputs))


_EVENT_LOOPS: weakref.WeakSet = weakref.WeakSet()


class _TrackingPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        _EVENT_LOOPS.add(loop)
        return loop


def _track_event_loops() -> None:
    if not isinstance(asyncio.get_event_loop_policy(), _TrackingPolicy):
        asyncio.set_event_loop_policy(_TrackingPolicy())


@atexit.register
def _close_thread_loops() -> None:
    """The mock monitor gives each worker thread an event loop that nobody closes; their finalizers then
    fail noisily during interpreter teardown. At exit no program runs any more, so close them first."""
    for loop in list(_EVENT_LOOPS):
        if not loop.is_running() and not loop.is_closed():
            loop.close()


async def _resolve(outputs: dict) -> dict:
    """Stack exports as plain values, secrets kept in their envelope so they stay masked."""
    resolved = {}
    for key, value in outputs.items():
        output = pulumi.Output.from_input(value)
        is_secret = await output.is_secret()
        plain = await output.future()
        resolved[key] = _secret_envelope(plain) if is_secret else plain
    return resolved
