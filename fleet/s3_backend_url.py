"""An `s3://` backend URL, read as Pulumi's DIY backend reads it, for tenantctl's records beside the state.

Pulumi opens the URL with gocloud.dev's s3blob (AWS SDK v2): the host is the bucket, the path (without its
leading `/`, with a trailing one added) is the prefix the state lives under (`<prefix>.pulumi/...`), and the
query configures the client:
- `region`, `endpoint` (a URL, or a host for https), `profile`;
- `use_path_style`, or `s3ForcePathStyle` (the AWS SDK v1 spelling), and `hostname_immutable` with an
  endpoint: path-style addressing;
- `disable_https`, `dualstack`, `fips`, `accelerate`;
- `ssetype` and `kmskeyid`: the server-side encryption a bucket policy may insist on for every write;
- `awssdk`, `rate_limiter_capacity`, `request_checksum_calculation`, `response_checksum_validation`: the Go
  client's own tuning, nothing to do for boto3.
Any other parameter makes Pulumi refuse the URL, and so does this. `role` (assume an IAM role) and
`anonymous` are refused here too: tenantctl writes the records with the credentials boto3 finds.
Credentials never come from the URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

RECORDS = ".tenantctl/"
_FLAGS = ("use_path_style", "s3ForcePathStyle", "hostname_immutable", "disable_https", "dualstack", "fips",
          "accelerate")
_IGNORED = ("awssdk", "rate_limiter_capacity", "request_checksum_calculation", "response_checksum_validation")


class S3BackendUrlError(Exception):
    """The URL is not one Pulumi's S3 backend would open; one line, without the URL's query."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/": where Pulumi's `.pulumi/` is
    region: str | None = None
    endpoint: str | None = None
    profile: str | None = None
    path_style: bool = False
    disable_https: bool = False
    dualstack: bool = False
    fips: bool = False
    accelerate: bool = False
    sse: str | None = None
    kms_key_id: str | None = None

    @property
    def records_prefix(self) -> str:
        """`<prefix>.tenantctl/`: tenantctl's records beside Pulumi's `<prefix>.pulumi/`."""
        return f"{self.prefix}{RECORDS}"

    @property
    def endpoint_url(self) -> str | None:
        if not self.endpoint or "://" in self.endpoint:
            return self.endpoint
        return f"{'http' if self.disable_https else 'https'}://{self.endpoint}"

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def _flag(name: str, value: str, shown: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise S3BackendUrlError(f"the backend URL {shown}: {name!r} is not true or false")


def parse_s3_url(url: str) -> S3Location:
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}"  # the query may hold an endpoint with a password
    if parts.scheme != "s3":
        raise S3BackendUrlError(f"the backend URL {shown} is not an s3:// URL")
    if not parts.netloc or "@" in parts.netloc:
        raise S3BackendUrlError(f"the backend URL {shown} names no bucket (s3://<bucket>[/<prefix>][?region=...])")
    query = {name: values[0] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
    for name in ("role", "anonymous"):
        if name in query:
            raise S3BackendUrlError(f"the backend URL {shown} has {name}=: tenantctl writes its records with the "
                                    "credentials boto3 finds in the environment; assume the role before the run")
    unknown = sorted(set(query) - {"region", "endpoint", "profile", "ssetype", "kmskeyid", *_FLAGS, *_IGNORED})
    if unknown:
        raise S3BackendUrlError(f"the backend URL {shown} has an unknown query parameter {unknown[0]!r} "
                                "(Pulumi's S3 backend refuses it too)")
    flags = {name: _flag(name, query[name], shown) for name in _FLAGS if name in query}
    prefix = unquote(parts.path).lstrip("/")
    return S3Location(
        bucket=parts.netloc, prefix=prefix if not prefix or prefix.endswith("/") else f"{prefix}/",
        region=query.get("region") or None, endpoint=query.get("endpoint") or None,
        profile=query.get("profile") or None,
        path_style=any(flags.get(name) for name in ("use_path_style", "s3ForcePathStyle"))
        or bool(flags.get("hostname_immutable") and query.get("endpoint")),
        disable_https=flags.get("disable_https", False), dualstack=flags.get("dualstack", False),
        fips=flags.get("fips", False), accelerate=flags.get("accelerate", False),
        sse=query.get("ssetype") or None, kms_key_id=query.get("kmskeyid") or None)
