"""STAND-IN for the pulumi-aws provider plugin, for tests and rehearsals on machines without it.

The real `pulumi-resource-aws` cannot be built from Go modules here (its upstream needs patches no
module holds), so the engine finds this plugin instead, as `pulumi-resource-aws` on PATH. Users run
the real provider; nothing in the program knows the difference.

What it does: the four resource types the program uses, on Pulumi's provider protocol, by calling an
AWS endpoint through boto3 (moto's server in tests), honouring the provider's `endpoints`, `region`
and credentials configuration, with the real provider's replace-versus-update behaviour for the fields
the program sets:
- aws:kms/key:Key                 description, enableKeyRotation, deletionWindowInDays, tags: update
- aws:kms/alias:Alias              name: replace; targetKeyId: update
- aws:secretsmanager/secret:Secret name: replace; description, kmsKeyId, recoveryWindowInDays, tags: update
- aws:secretsmanager/secretVersion:SecretVersion  secretId, secretString: replace

Import (the program's `import_`, used to adopt a key and secret that `tenantctl restore` took back): only
aws:kms/key:Key (description, enableKeyRotation, tags) and aws:secretsmanager/secret:Secret (name,
description, kmsKeyId, tags) are read back; like the real provider, neither deletionWindowInDays nor
recoveryWindowInDays can be read from AWS.

What it does not do: any other resource, data source or function; any other field (they are passed
through to state but not sent to AWS); validation of field values beyond what boto3 and the endpoint
do; import of the alias or the secret version; partial-failure recovery; retries; assuming roles; the
provider's schema (GetSchema); a graceful stop: on SIGINT it aborts the calls in flight (`server.stop(0)`),
where a provider built on Pulumi's Go SDK finishes them first (GracefulStop). Only the engine signals a plugin
in a run (services/run_sessions.py: issue 19), and only once it needs nothing more from it.

For the crash tests only: AWS_STANDIN_SLOW_CREATE ("<type token>=<seconds>", comma-separated) holds a create of
that type for that long after AWS has made the object and before the engine hears of it, as a slow answer
would: a kill then lands while the create is in flight.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import uuid
from concurrent import futures
from typing import Any

import boto3
import grpc
from botocore.exceptions import ClientError
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import plugin_pb2, provider_pb2_grpc
from pulumi.runtime.proto import provider_pb2 as proto

VERSION = "7.51.1"  # the pulumi-aws SDK version the program pins; the engine asks for it

KEY = "aws:kms/key:Key"
ALIAS = "aws:kms/alias:Alias"
SM_SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 (a type token)
VERSION_TYPE = "aws:secretsmanager/secretVersion:SecretVersion"
# Fields whose change replaces the resource, as the real provider's schema marks them (ForceNew).
REPLACE_ON = {KEY: set(), ALIAS: {"name"}, SM_SECRET: {"name"}, VERSION_TYPE: {"secretId", "secretString"}}
MANAGED = {
    KEY: {"description", "enableKeyRotation", "deletionWindowInDays", "tags"},
    ALIAS: {"name", "targetKeyId"},
    SM_SECRET: {"name", "description", "kmsKeyId", "recoveryWindowInDays", "tags"},
    VERSION_TYPE: {"secretId", "secretString"},
}


def _plain(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    """Properties as plain values; secrets arrive unwrapped because Configure does not accept them."""
    if struct is None:
        return {}
    return _unwrap(json_format.MessageToDict(struct))


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def _type(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


def _tags(values: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": str(v)} for k, v in sorted((values.get("tags") or {}).items())]


class AwsStandIn(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self) -> None:
        self.config: dict[str, Any] = {}

    # --- configuration ---------------------------------------------------------------------------------
    def CheckConfig(self, request, context):
        return proto.CheckResponse(inputs=request.news)

    def DiffConfig(self, request, context):
        return proto.DiffResponse(changes=proto.DiffResponse.DIFF_NONE)

    def Configure(self, request, context):
        args = _plain(request.args) if request.HasField("args") else {}
        if not args:
            args = {k.split(":", 1)[-1]: v for k, v in request.variables.items()}
        # Provider config travels with complex values JSON-encoded (endpoints, assumeRole, ...).
        self.config = {k: _maybe_json(v) if isinstance(v, str) else v for k, v in args.items()}
        return proto.ConfigureResponse(acceptSecrets=False, supportsPreview=False)

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=VERSION)

    def Cancel(self, request, context):
        return empty_pb2.Empty()

    def _client(self, service: str):
        endpoints: dict[str, str] = {}
        for entry in self.config.get("endpoints") or []:
            endpoints.update({k: v for k, v in entry.items() if v})
        return boto3.client(
            service,
            region_name=self.config.get("region") or os.environ.get("AWS_REGION") or "us-east-1",
            endpoint_url=endpoints.get(service),
            aws_access_key_id=self.config.get("accessKey") or None,
            aws_secret_access_key=self.config.get("secretKey") or None,
        )

    # --- resources -------------------------------------------------------------------------------------
    def Check(self, request, context):
        return proto.CheckResponse(inputs=request.news)

    def Diff(self, request, context):
        kind = _type(request.urn)
        olds, news = _plain(request.olds), _plain(request.news)
        changed = [f for f in sorted(MANAGED.get(kind, set()) | set(news)) if olds.get(f) != news.get(f)]
        replaces = [f for f in changed if f in REPLACE_ON.get(kind, set())]
        return proto.DiffResponse(
            changes=proto.DiffResponse.DIFF_SOME if changed else proto.DiffResponse.DIFF_NONE,
            replaces=replaces, diffs=changed, deleteBeforeReplace=False,
        )

    def Create(self, request, context):
        kind = _type(request.urn)
        created = self._guard(context, lambda: self._create(kind, _plain(request.properties)))
        time.sleep(_slow_creates().get(kind, 0.0))
        return created

    def _create(self, kind: str, news: dict) -> proto.CreateResponse:
        if kind == KEY:
            kms = self._client("kms")
            meta = kms.create_key(Description=news.get("description", ""), Tags=[
                {"TagKey": t["Key"], "TagValue": t["Value"]} for t in _tags(news)])["KeyMetadata"]
            if news.get("enableKeyRotation"):
                kms.enable_key_rotation(KeyId=meta["KeyId"])
            outs = {**news, "arn": meta["Arn"], "keyId": meta["KeyId"]}
            return proto.CreateResponse(id=meta["KeyId"], properties=_struct(outs))
        if kind == ALIAS:
            kms = self._client("kms")
            kms.create_alias(AliasName=news["name"], TargetKeyId=news["targetKeyId"])
            key_arn = kms.describe_key(KeyId=news["targetKeyId"])["KeyMetadata"]["Arn"]
            arn = key_arn.split(":key/")[0] + ":" + news["name"]
            return proto.CreateResponse(id=news["name"], properties=_struct({**news, "arn": arn,
                                                                               "targetKeyArn": key_arn}))
        if kind == SM_SECRET:
            sm = self._client("secretsmanager")
            created = sm.create_secret(Name=news["name"], Description=news.get("description", ""),
                                       KmsKeyId=news.get("kmsKeyId") or "alias/aws/secretsmanager", Tags=_tags(news))
            return proto.CreateResponse(id=created["ARN"], properties=_struct({**news, "arn": created["ARN"]}))
        if kind == VERSION_TYPE:
            sm = self._client("secretsmanager")
            put = sm.put_secret_value(SecretId=news["secretId"], SecretString=news["secretString"],
                                      ClientRequestToken=str(uuid.uuid4()))
            outs = {**news, "arn": put["ARN"], "versionId": put["VersionId"]}
            return proto.CreateResponse(id=f"{put['ARN']}|{put['VersionId']}", properties=_struct(outs))
        raise NotImplementedError(f"the AWS stand-in does not implement {kind}")

    def Update(self, request, context):
        return self._guard(context, lambda: self._update(_type(request.urn), request.id, _plain(request.olds),
                                                         _plain(request.news)))

    def _update(self, kind: str, id_: str, olds: dict, news: dict) -> proto.UpdateResponse:
        outs = {**olds, **news}
        if kind == KEY:
            kms = self._client("kms")
            if news.get("description") != olds.get("description"):
                kms.update_key_description(KeyId=id_, Description=news.get("description", ""))
            if news.get("enableKeyRotation") != olds.get("enableKeyRotation"):
                (kms.enable_key_rotation if news.get("enableKeyRotation") else kms.disable_key_rotation)(KeyId=id_)
            if news.get("tags") != olds.get("tags"):
                kms.tag_resource(KeyId=id_, Tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in _tags(news)])
        elif kind == ALIAS:
            self._client("kms").update_alias(AliasName=id_, TargetKeyId=news["targetKeyId"])
        elif kind == SM_SECRET:
            sm = self._client("secretsmanager")
            if (news.get("description"), news.get("kmsKeyId")) != (olds.get("description"), olds.get("kmsKeyId")):
                sm.update_secret(SecretId=id_, Description=news.get("description", ""), KmsKeyId=news["kmsKeyId"])
            if news.get("tags") != olds.get("tags"):
                sm.tag_resource(SecretId=id_, Tags=_tags(news))
        return proto.UpdateResponse(properties=_struct(outs))

    def Read(self, request, context):
        return self._guard(context, lambda: self._read(_type(request.urn), request.id, _plain(request.properties)))

    def _read(self, kind: str, id_: str, props: dict) -> proto.ReadResponse:
        gone = proto.ReadResponse(id="")
        importing = not props  # an import knows only the id; a refresh passes the state it has
        if kind == KEY:
            kms = self._client("kms")
            try:
                meta = kms.describe_key(KeyId=id_)["KeyMetadata"]
            except ClientError as exc:
                if _gone(exc):
                    return gone
                raise
            if meta["KeyState"] == "PendingDeletion":
                return gone
            props = {**props, "description": meta.get("Description", "")}
            if importing:
                tags = kms.list_resource_tags(KeyId=id_).get("Tags", [])
                props.update(enableKeyRotation=kms.get_key_rotation_status(KeyId=id_)["KeyRotationEnabled"],
                             tags={t["TagKey"]: t["TagValue"] for t in tags}, arn=meta["Arn"], keyId=meta["KeyId"])
        elif kind == ALIAS:
            aliases = self._client("kms").list_aliases()["Aliases"]
            found = next((a for a in aliases if a["AliasName"] == id_), None)
            if found is None:
                return gone
            props = {**props, "targetKeyId": found.get("TargetKeyId", props.get("targetKeyId"))}
        elif kind == SM_SECRET:
            try:
                described = self._client("secretsmanager").describe_secret(SecretId=id_)
            except ClientError as exc:
                if _gone(exc):
                    return gone
                raise
            if described.get("DeletedDate"):
                return gone
            props = {**props, "description": described.get("Description", "")}
            if importing:
                props.update(name=described["Name"], kmsKeyId=described.get("KmsKeyId"), arn=described["ARN"],
                             tags={t["Key"]: t["Value"] for t in described.get("Tags", [])})
        elif kind == VERSION_TYPE:
            sm = self._client("secretsmanager")
            try:
                sm.get_secret_value(SecretId=props["secretId"], VersionId=props["versionId"])
            except ClientError as exc:
                if _gone(exc) or exc.response["Error"]["Code"] == "InvalidRequestException":
                    return gone
                raise
        if importing:  # what the program would have to declare to match: the imported resource's inputs
            inputs = {k: v for k, v in props.items() if k in MANAGED.get(kind, set())}
            return proto.ReadResponse(id=id_, properties=_struct(props), inputs=_struct(inputs))
        return proto.ReadResponse(id=id_, properties=_struct(props))

    def Delete(self, request, context):
        return self._guard(context, lambda: self._delete(_type(request.urn), request.id, _plain(request.properties)))

    def _delete(self, kind: str, id_: str, props: dict) -> empty_pb2.Empty:
        if kind == KEY:
            self._client("kms").schedule_key_deletion(KeyId=id_, PendingWindowInDays=int(
                props.get("deletionWindowInDays") or 30))
        elif kind == ALIAS:
            self._client("kms").delete_alias(AliasName=id_)
        elif kind == SM_SECRET:
            self._client("secretsmanager").delete_secret(SecretId=id_, RecoveryWindowInDays=int(
                props.get("recoveryWindowInDays") or 30))
        # A secret version cannot be deleted in Secrets Manager; the real provider only forgets it too.
        return empty_pb2.Empty()

    @staticmethod
    def _guard(context, call):
        try:
            return call()
        except Exception as exc:  # the engine shows this text to the operator
            context.abort(grpc.StatusCode.UNKNOWN, f"aws stand-in: {type(exc).__name__}: {exc}")
            raise AssertionError("unreachable") from exc


def _gone(exc: ClientError) -> bool:
    """What AWS answers for an object that no longer exists (the real provider then drops it from state)."""
    return exc.response.get("Error", {}).get("Code") in ("NotFoundException", "ResourceNotFoundException")


def _slow_creates() -> dict[str, float]:
    """AWS_STANDIN_SLOW_CREATE as {type token: seconds} (see the module's docstring)."""
    slow = {}
    for item in filter(None, os.environ.get("AWS_STANDIN_SLOW_CREATE", "").split(",")):
        kind, _, seconds = item.rpartition("=")
        slow[kind] = float(seconds)
    return slow


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(AwsStandIn(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        sys.exit(1)
