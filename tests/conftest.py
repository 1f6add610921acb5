"""Shared fixtures: a real local S3 API (moto's threaded server) for storage and model tests.

``s3_server``  session-wide moto server; returns its endpoint URL (http://127.0.0.1:PORT).
``s3_process_server``  the same server in a process of its own (deltalake calls that hold
               the GIL, e.g. ``DeltaTable.history``, would stall a server thread in ours).
``s3_bucket``  a fresh, empty bucket per test; the standard AWS environment variables
               (AWS_ENDPOINT_URL, credentials, region) point at the server for the test's
               duration, so ``boto3.client("s3")`` and ``S3Store`` reach it unchanged.
"""

from __future__ import annotations

import logging
import uuid

import pytest


@pytest.fixture(scope="session")
def s3_server():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)   # no per-request log lines

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_process_server():
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):                         # up to ~20 s for the server to listen
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("moto server did not start")
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def use_local_s3(mp: pytest.MonkeyPatch, endpoint: str, scratch) -> None:
    """Point the standard AWS environment at the local server (through ``mp``, so it is
    undone with it), keeping a developer's own AWS config and profile out of the tests.
    For module-scoped fixtures too: ``with pytest.MonkeyPatch.context() as mp``."""
    mp.setenv("AWS_ENDPOINT_URL", endpoint)
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        mp.delenv(name, raising=False)
    mp.setenv("AWS_CONFIG_FILE", str(scratch / "no-aws-config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(scratch / "no-aws-credentials"))


@pytest.fixture
def s3_bucket(s3_server, monkeypatch, tmp_path):
    import boto3

    use_local_s3(monkeypatch, s3_server, tmp_path)
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket
