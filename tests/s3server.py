"""An S3 endpoint for tests: moto's server, in this process, on 127.0.0.1, stopped by whoever starts it.

What it does not do: S3 applies a conditional write (If-None-Match, If-Match) atomically; moto checks the
condition and then writes, without a lock, and its server runs each request in its own thread. It therefore
handles one request at a time here, which makes each request atomic as in S3 and nothing more: the requests
of different clients still interleave in any order, so a race between runs' read, judge and write is real.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105
                     "AWS_DEFAULT_REGION": "us-east-1"}


class _OneRequestAtATime:
    def __init__(self, app) -> None:
        self.app, self.lock = app, threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server, shut down (its thread joined) on exit."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = _OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@dataclass(frozen=True)
class Bucket:
    endpoint: str
    name: str

    def url(self, prefix: str = "fleet/prod") -> str:
        """The backend URL, as an operator would `pulumi login` to it."""
        return f"s3://{self.name}/{prefix}?region=us-east-1&endpoint={self.endpoint}&s3ForcePathStyle=true"

    def client(self):
        return shared_client(self.endpoint)

    def keys(self) -> list[str]:
        return sorted(o["Key"] for o in self.client().list_objects_v2(Bucket=self.name).get("Contents", []))


@functools.cache
def shared_client(endpoint: str):
    """One client per endpoint (a boto3 client is thread-safe; making one takes a few tenths of a second)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")  # noqa: S106


def new_bucket(endpoint: str) -> Bucket:
    bucket = Bucket(endpoint, f"state-{uuid.uuid4().hex[:12]}")
    bucket.client().create_bucket(Bucket=bucket.name)
    return bucket
