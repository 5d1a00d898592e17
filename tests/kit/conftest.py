"""Fixtures for kit tests: a real S3 server on loopback, and buckets in it."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from uuid import uuid4

import boto3
import pytest
from pydantic import SecretStr

from kai.config import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

S3_REGION = "us-east-1"
# moto accepts any credentials; these only have to be present and consistent.
S3_KEY_ID, S3_SECRET = "kai-test", "kai-test-secret"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server in this process, on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_admin(s3_endpoint: str) -> Iterator[S3Client]:
    """A plain boto3 client for arranging and inspecting buckets behind the code's back."""
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )
    yield client
    client.close()


@pytest.fixture
def s3_bucket(s3_admin: S3Client) -> str:
    """A new, empty bucket for one test."""
    bucket = f"kai-test-{uuid4().hex}"
    s3_admin.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def make_s3_settings(s3_endpoint: str, s3_bucket: str) -> Callable[..., S3Settings]:
    """Settings with the test credentials; by default for this test's bucket on moto."""

    def make(
        *, endpoint: str = s3_endpoint, bucket: str = s3_bucket, prefix: str = ""
    ) -> S3Settings:
        return S3Settings(
            bucket=bucket,
            endpoint_url=endpoint,
            region=S3_REGION,
            access_key_id=SecretStr(S3_KEY_ID),
            secret_access_key=SecretStr(S3_SECRET),
            prefix=prefix,
        )

    return make


@pytest.fixture
def dead_endpoint() -> str:
    """URL of a loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Closed again: connections are refused until something else happens to bind it.
    return f"http://127.0.0.1:{port}"
