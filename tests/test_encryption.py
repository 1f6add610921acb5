"""Encryption at rest: with ``--sse AES256`` (SSE-S3) or ``--sse aws:kms --sse-kms-key-id
KEY`` (SSE-KMS) every object the job writes to S3 -- transcripts, reports, tables, the
ledger and its entries, run summaries, the preflight probe -- is written encrypted.

Checked two ways against moto: every PUT the job sends (seen by a pass-through proxy)
asks for the encryption, and ``head_object`` of every object left under the output
prefix reports it (moto records it; an object written without it reports none).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import boto3
import pytest

from faultproxy import FaultProxy
from harnesslib import crash_harness

REPO = Path(__file__).resolve().parent.parent
CARD = "4539 1488 0343 6467"     # Luhn-valid test number: forces every transcript's rewrite


def _seed(bucket: str, prefix: str, n: int = 5) -> None:
    """Stored transcripts holding a card number: the run redacts and rewrites each one, so
    transcripts are among the objects it writes."""
    s3 = boto3.client("s3")
    for key, data in crash_harness().build_archive(n, seed=2).items():
        doc = json.loads(data)
        turn = next(t for t in doc["turns"] if t["speaker"] == "customer")
        turn["text"] += f" My card is {CARD}."
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=json.dumps(doc).encode())


def _objects(bucket: str, prefix: str) -> dict[str, dict]:
    s3 = boto3.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    return {o["Key"][len(prefix) + 1:]: s3.head_object(Bucket=bucket, Key=o["Key"])
            for p in pages for o in p.get("Contents", ())}


def _assert_every_kind_written(objects: dict[str, dict]) -> None:
    tops = {k.split("/", 1)[0] for k in objects}
    assert {"transcripts", "reports", "tables", "state", "runs"} <= tops
    assert any(k.endswith(".html") for k in objects) and "state/ledger.parquet" in objects
    assert any(k.startswith("tables/calls/day=") for k in objects)


@pytest.mark.slow
def test_sse_s3_applies_to_every_write(s3_bucket, s3_server, monkeypatch):
    import ray

    from callcoach.flow import RunConfig, run

    _seed(s3_bucket, "sse-s3")
    with FaultProxy(s3_server, fraction=0.0) as proxy:        # pass-through: records PUTs
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        ray.shutdown()
        try:
            summary = run(RunConfig(input="", output=f"s3://{s3_bucket}/sse-s3", num_cpus=2,
                                    sse={"ServerSideEncryption": "AES256"}), rescore_only=True)
        finally:
            ray.shutdown()
            monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    assert summary.scored == 5 and summary.failed == 0
    writes = [(unquote(urlsplit(path).path), h) for path, h in proxy.puts]
    assert len(writes) > 5 * 4                # transcript, report JSON + HTML, entry per call
    assert any("/state/entries/" in path for path, _ in writes)          # deleted since
    unencrypted = [path for path, h in writes if h.get("x-amz-server-side-encryption") != "AES256"]
    assert unencrypted == []
    objects = _objects(s3_bucket, "sse-s3")
    _assert_every_kind_written(objects)
    assert {k: h.get("ServerSideEncryption") for k, h in objects.items()} == \
        {k: "AES256" for k in objects}
    stored = boto3.client("s3").get_object(Bucket=s3_bucket, Key="sse-s3/transcripts/call-0000.json")
    assert CARD.encode() not in stored["Body"].read()       # rewritten (redacted) by the run


@pytest.mark.slow
def test_sse_kms_from_the_cli_applies_to_every_write(s3_bucket):
    key = boto3.client("kms").create_key(Description="callcoach test")["KeyMetadata"]["KeyId"]
    _seed(s3_bucket, "sse-kms")
    res = subprocess.run([sys.executable, "-m", "callcoach.cli", "rescore", "--quiet",
                          "--output", f"s3://{s3_bucket}/sse-kms", "--sse", "aws:kms",
                          "--sse-kms-key-id", key], cwd=REPO, env=dict(os.environ),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    objects = _objects(s3_bucket, "sse-kms")
    _assert_every_kind_written(objects)
    assert {k: (h.get("ServerSideEncryption"), h.get("SSEKMSKeyId")) for k, h in objects.items()} \
        == {k: ("aws:kms", key) for k in objects}


def test_without_sse_flags_objects_are_written_plain(s3_bucket):
    """The check above means something: moto reports no encryption for a plain write."""
    from callcoach.flow import RunConfig, output_store

    store = output_store(RunConfig(input="", output=f"s3://{s3_bucket}/plain"))
    store.write("a.json", b"{}")
    assert _objects(s3_bucket, "plain")["a.json"].get("ServerSideEncryption") is None


def test_cli_sse_flags_become_put_arguments():
    from callcoach.cli import _config, _parser

    def sse(*flags):
        return _config(_parser().parse_args(["rescore", "--output", "s3://b/o", *flags])).sse

    assert sse() is None
    assert sse("--sse", "AES256") == {"ServerSideEncryption": "AES256"}
    assert sse("--sse", "aws:kms") == {"ServerSideEncryption": "aws:kms"}
    assert sse("--sse", "aws:kms", "--sse-kms-key-id", "k-1") == \
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k-1"}
    score = _config(_parser().parse_args(["score", "--input", "in", "--output", "s3://b/o",
                                          "--sse", "AES256"]))
    assert score.sse == {"ServerSideEncryption": "AES256"}


@pytest.mark.parametrize("flags", [
    ["--output", "s3://b/o", "--sse-kms-key-id", "k-1"],             # key without aws:kms
    ["--output", "s3://b/o", "--sse", "AES256", "--sse-kms-key-id", "k-1"],
    ["--output", "/tmp/local-out", "--sse", "AES256"],                # local output
    ["--output", "s3://b/o", "--sse", "aws:kms:dsse"],                # not offered
])
def test_misused_sse_flags_are_usage_errors(flags):
    from callcoach.cli import EXIT_USAGE, main

    assert main(["rescore", *flags]) == EXIT_USAGE


def test_the_store_carries_its_encryption_into_ray_workers(s3_bucket):
    """Stages get the output Store itself; pickled (as Ray does), it keeps its settings."""
    import pickle

    from callcoach.flow import RunConfig, output_store

    store = output_store(RunConfig(input="", output=f"s3://{s3_bucket}/o",
                                   sse={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k"}))
    clone = pickle.loads(pickle.dumps(store))
    assert clone.sse == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k"}
    clone.write("x.json", b"{}")
    head = boto3.client("s3").head_object(Bucket=s3_bucket, Key="o/x.json")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == "k"
