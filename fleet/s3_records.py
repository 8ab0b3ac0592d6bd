"""tenantctl's records in an S3 backend's bucket: `<prefix>.tenantctl/<name>`, beside Pulumi's `<prefix>.pulumi/`.

The store contract of fleet.record_store, on S3's conditional requests, which S3 applies atomically:
- `create`: PutObject with `If-None-Match: *`, refused (412) when the key exists;
- `replace`: PutObject with `If-Match: <ETag>`, refused when the object has changed or gone;
- `delete`: DeleteObject with `If-Match: <ETag>`, the same.
A 409 (ConditionalRequestConflict: another conditional write to the key was in flight) is a refusal too:
the caller reads again and decides again, as after a 412.

The client is boto3's, with the credentials boto3 finds (environment, profile, web identity, instance role)
and the bucket's region, endpoint, addressing and encryption from the backend URL (fleet.s3_backend_url).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fleet.record_store import Found, RecordStoreError
from fleet.s3_backend_url import S3Location

# 412: the condition failed; 409: a concurrent conditional write to the same key; NoSuchKey: the object is gone
# (a missing bucket is a 404 too, and an error).
_REFUSED = {412, 409}


def s3_client(location: S3Location) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(profile_name=location.profile) if location.profile else boto3.session.Session()
    config = Config(
        retries={"mode": "standard"}, connect_timeout=10, read_timeout=30, use_fips_endpoint=location.fips,
        s3={"addressing_style": "path" if location.path_style else "auto",
            "use_accelerate_endpoint": location.accelerate, "use_dualstack_endpoint": location.dualstack})
    return session.client("s3", region_name=location.region, endpoint_url=location.endpoint_url, config=config)


@dataclass
class S3Records:
    location: S3Location
    client: Any = field(default=None, repr=False, compare=False)

    def _client(self) -> Any:
        if self.client is None:
            try:
                self.client = s3_client(self.location)
            except Exception as exc:  # noqa: BLE001 (botocore's errors have no common base with ValueError's)
                raise RecordStoreError(f"cannot open {self.location.describe()}: {_short(exc)}") from None
        return self.client

    def key(self, name: str) -> str:
        return f"{self.location.records_prefix}{name}"

    def where(self, name: str) -> str:
        return f"s3://{self.location.bucket}/{self.key(name)}"

    def _call(self, verb: str, name: str, operation: str, **arguments) -> tuple[int, dict]:
        """(200, response), or (status, {}) for a refused condition; anything else is a RecordStoreError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return 200, getattr(self._client(), operation)(Bucket=self.location.bucket, Key=self.key(name),
                                                           **arguments)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            error = exc.response.get("Error", {})
            if status in _REFUSED or error.get("Code") == "NoSuchKey":
                return status, {}
            raise RecordStoreError(f"cannot {verb} {self.where(name)}: {error.get('Code', status)}"
                                   f"{': ' + error['Message'] if error.get('Message') else ''}") from None
        except BotoCoreError as exc:
            raise RecordStoreError(f"cannot {verb} {self.where(name)}: {_short(exc)}") from None

    def _put_arguments(self, text: str) -> dict:
        arguments: dict[str, Any] = {"Body": text.encode("utf-8"), "ContentType": "application/json"}
        if self.location.sse:
            arguments["ServerSideEncryption"] = self.location.sse
        if self.location.kms_key_id:
            arguments["SSEKMSKeyId"] = self.location.kms_key_id
        return arguments

    def read(self, name: str) -> Found | None:
        status, response = self._call("read", name, "get_object")
        if status != 200:
            return None
        try:
            body = response["Body"].read()
        except Exception as exc:  # noqa: BLE001 (a connection dropped mid-body)
            raise RecordStoreError(f"cannot read {self.where(name)}: {_short(exc)}") from None
        age = time.time() - response["LastModified"].timestamp()
        return Found(body.decode("utf-8", "replace"), age, response["ETag"])

    def create(self, name: str, text: str) -> bool:
        return self._call("write", name, "put_object", IfNoneMatch="*", **self._put_arguments(text))[0] == 200

    def replace(self, name: str, text: str, version: str) -> bool:
        return self._call("write", name, "put_object", IfMatch=version, **self._put_arguments(text))[0] == 200

    def delete(self, name: str, version: str) -> bool:
        return self._call("remove", name, "delete_object", IfMatch=version)[0] == 200


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
