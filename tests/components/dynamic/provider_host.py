"""Drives Pulumi's own dynamic provider host (`python -m pulumi.dynamic`) over gRPC, as the engine does.

The host is started in the project root, receives each resource's serialized provider in its
`__provider` property, deserializes it with dill and runs check/diff/create/update/read/delete.
The provider-contract tests use it to call each method directly (a takeover, a concurrent insert),
which the engine end-to-end tests cannot stage; they also prove the providers survive serialization.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from pulumi.runtime import proto, rpc
from pulumi.runtime.proto import provider_pb2_grpc

PROVIDER_KEY = "__provider"
START_TIMEOUT_S = 60


class ProviderHostError(Exception):
    """A provider method failed in the host; `message` is the provider's own exception text."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(message)
        self.method = method
        self.message = message


@dataclass
class DiffOutcome:
    changes: bool
    replaces: list[str]


def _provider_message(details: str) -> str:
    """The host returns a whole traceback; the operator needs the exception's own message."""
    lines = details.rstrip().splitlines()
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if not line.startswith(" ") and ": " in line and (line.split(":", 1)[0].replace(".", "").isidentifier()):
            head = line.split(": ", 1)[1]
            return "\n".join([head, *lines[index + 1:]]).strip()
    return lines[-1] if lines else details


def _to_struct(props: dict[str, Any]):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def _from_struct(struct) -> dict[str, Any]:
    return rpc.deserialize_properties(struct, keep_unknowns=True) or {}


class DynamicProviderHost:
    """One host process; use as a context manager. Methods take and return plain dicts."""

    def __init__(self, project_root: Path, python: str = sys.executable) -> None:
        self.project_root = project_root
        self.python = python
        self.process: subprocess.Popen | None = None
        self.channel: grpc.Channel | None = None
        self.stub: provider_pb2_grpc.ResourceProviderStub | None = None

    def __enter__(self) -> DynamicProviderHost:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PULUMI_PROJECT"] = "tenant-onboarding"
        self.process = subprocess.Popen(
            [self.python, "-u", "-m", "pulumi.dynamic"],
            cwd=self.project_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        port_line = self.process.stdout.readline().decode().strip()
        if not port_line.isdigit():
            error = self.process.stderr.read().decode(errors="replace") if self.process.poll() is not None else ""
            self.close()
            raise ProviderHostError("start", f"the dynamic provider host did not start: {error.strip()[-500:]}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port_line}")
        grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT_S)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            for stream in (self.process.stdout, self.process.stderr):
                if stream:
                    stream.close()
            self.process = None

    def _call(self, method: str, request):
        try:
            return getattr(self.stub, method)(request)
        except grpc.RpcError as exc:
            raise ProviderHostError(method.lower(), _provider_message(exc.details() or str(exc))) from None

    def check(self, urn: str, olds: dict, news: dict) -> tuple[dict, list[tuple[str, str]]]:
        response = self._call("Check", proto.CheckRequest(urn=urn, olds=_to_struct(olds), news=_to_struct(news)))
        return _from_struct(response.inputs), [(f.property, f.reason) for f in response.failures]

    def diff(self, urn: str, resource_id: str, olds: dict, news: dict) -> DiffOutcome:
        response = self._call(
            "Diff", proto.DiffRequest(urn=urn, id=resource_id, olds=_to_struct(olds), news=_to_struct(news))
        )
        return DiffOutcome(response.changes == proto.DiffResponse.DIFF_SOME, list(response.replaces))

    def create(self, urn: str, props: dict) -> tuple[str, dict]:
        response = self._call("Create", proto.CreateRequest(urn=urn, properties=_to_struct(props)))
        return response.id, _from_struct(response.properties)

    def update(self, urn: str, resource_id: str, olds: dict, news: dict) -> dict:
        response = self._call(
            "Update", proto.UpdateRequest(urn=urn, id=resource_id, olds=_to_struct(olds), news=_to_struct(news))
        )
        return _from_struct(response.properties)

    def read(self, urn: str, resource_id: str, props: dict) -> tuple[str, dict]:
        response = self._call("Read", proto.ReadRequest(urn=urn, id=resource_id, properties=_to_struct(props)))
        return response.id, _from_struct(response.properties)

    def delete(self, urn: str, resource_id: str, props: dict) -> None:
        self._call("Delete", proto.DeleteRequest(urn=urn, id=resource_id, properties=_to_struct(props)))
