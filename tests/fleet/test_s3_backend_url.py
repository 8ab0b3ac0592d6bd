"""The S3 backend URL read as Pulumi's DIY backend reads it (gocloud.dev's s3blob and aws URL parameters)."""

from __future__ import annotations

import pytest

from fleet.s3_backend_url import S3BackendUrlError, parse_s3_url


def test_bucket_alone_keeps_records_at_the_top_of_the_bucket():
    location = parse_s3_url("s3://acme-state?region=eu-west-1")
    assert (location.bucket, location.prefix, location.region) == ("acme-state", "", "eu-west-1")
    assert location.records_prefix == ".tenantctl/"
    assert location.endpoint is None and not location.path_style and location.profile is None


def test_the_path_is_the_prefix_pulumi_keeps_its_state_under():
    location = parse_s3_url("s3://acme-state/fleet/prod/?region=eu-west-1&awssdk=v2")
    assert location.prefix == "fleet/prod/" and location.records_prefix == "fleet/prod/.tenantctl/"
    assert parse_s3_url("s3://acme-state/fleet").prefix == "fleet/"


@pytest.mark.parametrize("query", ["s3ForcePathStyle=true", "use_path_style=true",
                                   "hostname_immutable=true"])
def test_path_style_in_any_of_its_spellings(query):
    location = parse_s3_url(f"s3://state?endpoint=http://127.0.0.1:9000&{query}")
    assert location.path_style and location.endpoint_url == "http://127.0.0.1:9000"


def test_an_endpoint_without_a_scheme_is_https_unless_disabled():
    assert parse_s3_url("s3://state?endpoint=minio.internal:9000").endpoint_url == "https://minio.internal:9000"
    assert parse_s3_url("s3://state?endpoint=minio.internal:9000&disable_https=true").endpoint_url == \
        "http://minio.internal:9000"


def test_profile_encryption_and_client_tuning():
    location = parse_s3_url("s3://state?profile=deploy&ssetype=aws:kms&kmskeyid=alias/state&fips=true"
                            "&dualstack=true&accelerate=false&rate_limiter_capacity=10"
                            "&request_checksum_calculation=when_required&response_checksum_validation=when_required")
    assert location.profile == "deploy" and location.sse == "aws:kms" and location.kms_key_id == "alias/state"
    assert location.fips and location.dualstack and not location.accelerate


@pytest.mark.parametrize(("url", "message"), [
    ("s3://state?colour=blue", "unknown query parameter 'colour'"),
    ("s3://state?s3ForcePathStyle=yes", "'s3ForcePathStyle' is not true or false"),
    ("s3:///prefix", "names no bucket"),
    ("s3://state?role=arn:aws:iam::1:role/x", "role="),
    ("gs://state", "not an s3:// URL"),
])
def test_what_pulumi_would_refuse_is_refused_in_one_line(url, message):
    with pytest.raises(S3BackendUrlError, match=message) as info:
        parse_s3_url(url)
    assert "\n" not in str(info.value)


def test_the_url_in_a_message_never_carries_its_query():
    with pytest.raises(S3BackendUrlError) as info:
        parse_s3_url("s3://state?endpoint=http://user:pw@host&colour=1")
    assert "pw" not in str(info.value)
