"""Object-store faults, against a real S3 API (moto's server) behind a fault-injecting
proxy (tests/faultproxy.py).

* Transient faults (503 SlowDown, 500 InternalError, and 500s after the store applied the
  request) on GET, PUT, LIST, HEAD and DELETE are retried: a whole job run through a proxy
  failing 15% of requests completes and writes exactly what a fault-free run writes.
* Non-retryable answers (404 NoSuchKey, 403 AccessDenied) fail at once, without retries.
* A missing bucket or an unreachable endpoint stops the CLI before any work starts, with
  a clear message and exit code 1 (EXIT_FATAL).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from faultproxy import FaultProxy
from harnesslib import crash_harness

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def proxy(s3_bucket, s3_server, monkeypatch):
    """A fault proxy in front of moto, with the AWS environment pointing at the proxy."""
    with FaultProxy(s3_server, fraction=0.0, seed=6) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.endpoint)
        yield p


# -- the client's retry policy, observed through the proxy -------------------------------

def test_transient_faults_are_retried_until_the_request_succeeds(proxy, s3_bucket):
    from callcoach.storage import S3Store

    store = S3Store(f"s3://{s3_bucket}/out")
    proxy.script("PUT", ["slowdown", "lost", "internal"])
    store.write("reports/a.json", b"{}", "application/json")
    assert proxy.requests["PUT"] == 4
    proxy.script("GET", ["slowdown", "internal", "lost"])
    assert store.read("reports/a.json") == b"{}"
    assert proxy.requests["GET"] == 4
    proxy.script("LIST", ["slowdown", "lost"])
    assert [o.key for o in store.list("reports")] == ["reports/a.json"]
    proxy.script("HEAD", ["internal"])
    assert store.exists("reports/a.json")
    proxy.script("DELETE", ["lost"])            # applied, then reported failed: retried
    store.delete("reports/a.json")
    assert not store.exists("reports/a.json")
    # botocore's max_attempts=10 means ten retries: eleven attempts in all; adaptive mode
    # (standard retries plus client-side slowing down on SlowDown throttling)
    assert store.client.meta.config.retries == {"total_max_attempts": 11, "mode": "adaptive"}


def test_non_retryable_answers_fail_at_once(proxy, s3_bucket):
    from botocore.exceptions import ClientError

    from callcoach.storage import S3Store, StorageError

    store = S3Store(f"s3://{s3_bucket}/out")
    store.write("a.json", b"1")
    before = proxy.requests["GET"]
    with pytest.raises(ClientError, match="NoSuchKey"):
        store.read("missing.json")
    assert proxy.requests["GET"] - before == 1
    proxy.script("GET", ["denied"])
    before = proxy.requests["GET"]
    with pytest.raises(StorageError, match="AccessDenied"):
        store.read("a.json")
    assert proxy.requests["GET"] - before == 1


# -- a whole job through a faulty store ---------------------------------------------------

@pytest.mark.slow
def test_a_job_through_a_store_failing_15_percent_of_requests_loses_nothing(proxy, s3_bucket):
    import ray

    from callcoach.flow import RunConfig, run

    h = crash_harness()
    archive = h.build_archive(12, seed=5)
    clean = h.S3Target(proxy.endpoint, s3_bucket, "clean")
    faulty = h.S3Target(proxy.endpoint, s3_bucket, "faulty")
    clean.seed(archive)
    faulty.seed(archive)
    ray.shutdown()
    try:
        reference = run(RunConfig(input="", output=clean.uri, num_cpus=2), rescore_only=True)
        proxy.fraction, proxy.first_of_each, proxy.enabled = 0.15, True, True
        proxy.requests.clear()
        summary = run(RunConfig(input="", output=faulty.uri, num_cpus=2), rescore_only=True)
        proxy.enabled = False
    finally:
        ray.shutdown()
    assert reference.scored == summary.scored == 12 and summary.failed == 0
    # faults really happened, on every kind of request
    assert {"GET", "PUT", "LIST", "HEAD", "DELETE"} <= proxy.faulted_operations()
    assert sum(proxy.faults.values()) >= 0.1 * sum(proxy.requests.values())
    expected, litter_a = clean.objects()
    got, litter_b = faulty.objects()
    assert not litter_a and not litter_b
    assert h.diff(expected, got) == []
    assert h.check_invariants(got) == []


# -- fatal configuration faults stop the CLI early ----------------------------------------

def _cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callcoach.cli", *args], cwd=REPO,
                          env=dict(os.environ, **(env or {})), capture_output=True, text=True,
                          timeout=300)


def _keys(bucket: str, prefix: str = "") -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for p in pages for o in p.get("Contents", ())]


def test_a_missing_output_bucket_stops_the_cli_before_any_work(s3_bucket):
    from callcoach.cli import EXIT_FATAL

    res = _cli("rescore", "--output", "s3://no-such-bucket-callcoach/out", "--quiet")
    assert res.returncode == EXIT_FATAL
    assert "NoSuchBucket" in res.stderr and "'no-such-bucket-callcoach' does not exist" in res.stderr
    assert "Started a local Ray instance" not in res.stderr


def test_a_missing_input_bucket_stops_the_cli_before_anything_is_written(s3_bucket):
    from callcoach.cli import EXIT_FATAL

    res = _cli("score", "--input", "s3://no-such-input-callcoach/calls",
               "--output", f"s3://{s3_bucket}/out", "--quiet")
    assert res.returncode == EXIT_FATAL
    assert "s3://no-such-input-callcoach/calls" in res.stderr and "NoSuchBucket" in res.stderr
    assert _keys(s3_bucket) == []            # not even the preflight probe is left


def test_an_unreachable_endpoint_stops_the_cli_with_a_clear_message(s3_bucket):
    from callcoach.cli import EXIT_FATAL

    with socket.socket() as s:               # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = _cli("rescore", "--output", f"s3://{s3_bucket}/out", "--quiet",
               env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
    assert res.returncode == EXIT_FATAL
    assert "cannot reach the object store" in res.stderr and f"127.0.0.1:{port}" in res.stderr
    assert "Started a local Ray instance" not in res.stderr


def test_a_missing_local_input_folder_is_fatal_too(tmp_path):
    from callcoach.cli import EXIT_FATAL

    res = _cli("score", "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "out"),
               "--quiet")
    assert res.returncode == EXIT_FATAL and "no such folder" in res.stderr


def test_refused_credentials_stop_the_cli_before_any_work(proxy, s3_bucket):
    """moto accepts any credentials, so the proxy answers the preflight's HeadBucket with
    the 403 that S3 gives a caller whose credentials or policy are refused."""
    from callcoach.cli import EXIT_FATAL

    proxy.script("HEAD", ["denied"])
    res = _cli("rescore", "--output", f"s3://{s3_bucket}/out", "--quiet")
    assert res.returncode == EXIT_FATAL
    assert f"s3://{s3_bucket}/out: 403" in res.stderr and "HeadBucket" in res.stderr
    assert proxy.requests["HEAD"] == 1                        # refused at once, no retries
    assert _keys(s3_bucket) == []
