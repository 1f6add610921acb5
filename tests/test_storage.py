"""callcoach.storage: LocalStore on tmp dirs, S3Store against a real local S3 API (moto server)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import boto3
import pytest

from callcoach import storage
from callcoach.storage import LocalStore, ObjectInfo, S3Store, StorageError, open_store, safe_key

# A tree whose lexicographic key order differs from a directory walk's order
# ('-' < '.' < '/' in ASCII), plus hidden files/dirs that must never be listed.
TREE = {
    "z.wav": b"z" * 3,
    "a.wav": b"a" * 5,
    "a/x.WAV": b"ax",
    "a/b/deep.flac": b"deep",
    "a/b/notes.json": b"{}",
    "a-b/y.mp3": b"y" * 7,
    "calls/2024/01/c1.wav": b"c1",
    "calls/2024/01/c1.json": b'{"agent_id": "A1"}',
}
HIDDEN = [".DS_Store", "a/.hidden.wav", ".cache/x.wav", "a/.git/objects/1.wav"]


# -- safe_key ----------------------------------------------------------------------------

@pytest.mark.parametrize("key", [
    "../x", "..", ".", "/abs", "/", "a/../../b", "a/..", "a/./b", "./a", "a//b", "a/", "",
    "a\\b", "..\\..\\x", "a\nb", "a\x00b", "tab\there", "del\x7f", "\x1b[0m",
])
def test_safe_key_rejects_escaping_or_malformed_keys(key):
    with pytest.raises(ValueError):
        safe_key(key)


@pytest.mark.parametrize("key", [None, b"a.wav", 3])
def test_safe_key_rejects_non_strings(key):
    with pytest.raises(ValueError, match="empty storage key"):
        safe_key(key)


@pytest.mark.parametrize("key", [
    "a.wav", "calls/2024/01/call 1.wav", "ünïcødé/コール.wav", "...", "a..b/c..d", ".hidden",
    "emoji/📞.flac",
])
def test_safe_key_accepts_and_returns_plain_relative_keys(key):
    assert safe_key(key) == key


def test_safe_key_error_names_the_reason():
    with pytest.raises(ValueError, match="control character"):
        safe_key("a\rb")
    with pytest.raises(ValueError, match="must be relative"):
        safe_key("/etc/passwd")
    with pytest.raises(ValueError, match=r"'\.\.' part"):
        safe_key("x/../../etc/passwd")


# -- LocalStore --------------------------------------------------------------------------

def _fill(store, tree=TREE, hidden=HIDDEN):
    for key, data in tree.items():
        store.write(key, data)
    for key in hidden:
        store.write(key, b"hidden")


def _all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_local_write_read_exists_delete(tmp_path):
    store = LocalStore(tmp_path / "root")
    assert not store.exists("a/b.bin")
    store.write("a/b.bin", b"\x00\x01payload")
    assert store.exists("a/b.bin")
    assert store.read("a/b.bin") == b"\x00\x01payload"
    assert (tmp_path / "root" / "a" / "b.bin").read_bytes() == b"\x00\x01payload"
    assert store.url("a/b.bin") == str((tmp_path / "root" / "a" / "b.bin").resolve())
    assert not store.exists("a")            # a directory is not an object
    store.delete("a/b.bin")
    assert not store.exists("a/b.bin")
    store.delete("a/b.bin")                  # deleting a missing key is not an error
    with pytest.raises(FileNotFoundError):
        store.read("a/b.bin")


def test_local_write_replaces_content_whole_and_leaves_no_temp_files(tmp_path):
    store = LocalStore(tmp_path)
    store.write("r/report.json", b"x" * 100_000)
    store.write("r/report.json", b"short")
    assert store.read("r/report.json") == b"short"
    store.write("r/report.json", b"")
    assert store.read("r/report.json") == b""
    assert _all_files(tmp_path) == ["r/report.json"]     # no temp file on disk either
    assert [o.key for o in store.list()] == ["r/report.json"]


def test_local_write_is_atomic_for_a_reader_during_the_rename(tmp_path, monkeypatch):
    """At the instant the new file is put in place, a reader still sees the old object
    whole, and the in-flight temp file is invisible to list()."""
    store = LocalStore(tmp_path)
    store.write("t/table.parquet", b"OLD" * 1000)
    seen = {}
    real_replace = os.replace

    def observing_replace(src, dst):
        seen["tmp_on_disk"] = Path(src).read_bytes()
        seen["read"] = store.read("t/table.parquet")
        seen["listed"] = [(o.key, o.size) for o in store.list()]
        return real_replace(src, dst)

    monkeypatch.setattr(storage.os, "replace", observing_replace)
    store.write("t/table.parquet", b"NEW" * 10)
    assert seen["tmp_on_disk"] == b"NEW" * 10             # fully written before the rename
    assert seen["read"] == b"OLD" * 1000
    assert seen["listed"] == [("t/table.parquet", 3000)]
    assert store.read("t/table.parquet") == b"NEW" * 10


def test_local_failed_write_keeps_old_content_and_removes_temp(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    store.write("k.bin", b"old content")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.write("k.bin", b"new content that never lands")
    assert store.read("k.bin") == b"old content"
    assert _all_files(tmp_path) == ["k.bin"]


def test_local_list_is_sorted_recursive_and_skips_hidden(tmp_path):
    store = LocalStore(tmp_path)
    _fill(store)
    listed = list(store.list())
    assert all(isinstance(o, ObjectInfo) for o in listed)
    assert [o.key for o in listed] == sorted(TREE)
    assert {o.key: o.size for o in listed} == {k: len(v) for k, v in TREE.items()}
    # etag changes when the content changes
    before = {o.key: o.etag for o in listed}
    store.write("a.wav", b"different length")
    after = {o.key: o.etag for o in store.list()}
    assert after["a.wav"] != before["a.wav"] and after["z.wav"] == before["z.wav"]


def test_local_list_with_suffixes_and_prefix(tmp_path):
    store = LocalStore(tmp_path)
    _fill(store)
    audio = [o.key for o in store.list("", (".wav", ".flac", ".mp3"))]
    assert audio == ["a-b/y.mp3", "a.wav", "a/b/deep.flac", "a/x.WAV", "calls/2024/01/c1.wav", "z.wav"]
    assert [o.key for o in store.list("a")] == ["a/b/deep.flac", "a/b/notes.json", "a/x.WAV"]
    assert [o.key for o in store.list("a/", (".json",))] == ["a/b/notes.json"]
    assert [o.key for o in store.list("calls/2024", (".wav",))] == ["calls/2024/01/c1.wav"]
    assert list(store.list("missing")) == []
    assert list(store.list("", (".ogg",))) == []
    # upper-case suffixes from a caller match too
    assert [o.key for o in store.list("a", (".WAV",))] == ["a/x.WAV"]


def test_local_list_prefix_cannot_escape_the_root(tmp_path):
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key.wav").write_bytes(b"s")
    store = LocalStore(tmp_path / "root")
    store.write("ok.wav", b"o")
    with pytest.raises(ValueError):
        list(store.list("../secret"))
    with pytest.raises(ValueError, match="must be relative"):
        list(store.list("/etc"))
    assert [o.key for o in store.list("/")] == ["ok.wav"]     # "/" is the root itself


@pytest.mark.parametrize("key", ["../outside.txt", "a/../../outside.txt", "/tmp/outside.txt",
                                 "a\\..\\..\\outside.txt"])
def test_local_store_refuses_keys_that_escape(tmp_path, key):
    store = LocalStore(tmp_path / "root")
    for op in (lambda: store.write(key, b"x"), lambda: store.read(key), lambda: store.exists(key),
               lambda: store.delete(key), lambda: store.url(key)):
        with pytest.raises(ValueError):
            op()
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "root").exists() or _all_files(tmp_path / "root") == []


def test_local_store_refuses_a_symlink_that_leads_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(b"secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    store = LocalStore(root)
    with pytest.raises(ValueError, match="escapes the root"):
        store.read("link/secret.wav")
    with pytest.raises(ValueError, match="escapes the root"):
        store.write("link/new.wav", b"x")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.wav"]


def test_local_unicode_keys_stay_under_the_root(tmp_path):
    root = tmp_path / "root"
    store = LocalStore(root)
    keys = ["ünïcødé/コール 1.wav", "emoji/📞.flac", "ελληνικά/ok..wav", "spaces in/name .wav"]
    for i, key in enumerate(keys):
        store.write(key, f"call {i}".encode())
    resolved_root = root.resolve()
    for i, key in enumerate(keys):
        path = Path(store.url(key)).resolve()
        assert resolved_root in path.parents
        assert path.read_bytes() == f"call {i}".encode()
        assert store.read(key) == f"call {i}".encode()
    assert [o.key for o in store.list()] == sorted(keys)
    files = [p.resolve() for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == len(keys) and all(resolved_root in p.parents for p in files)


def test_open_store_picks_the_backend(tmp_path):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    local = open_store(f"file://{tmp_path}")
    assert isinstance(local, LocalStore) and local.root == str(tmp_path.resolve())
    s3 = open_store("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.root) == ("bucket", "some/prefix", "s3://bucket/some/prefix")
    assert s3.url("a/b.wav") == "s3://bucket/some/prefix/a/b.wav"
    assert open_store("s3://bucket").url("x.wav") == "s3://bucket/x.wav"
    with pytest.raises(ValueError, match="unsupported storage URI"):
        open_store("gs://bucket/x")
    with pytest.raises(ValueError, match="not an s3:// URI"):
        S3Store("s3:///no-bucket")


# -- S3Store against a local S3 API ------------------------------------------------------

def test_s3_write_read_exists_delete(s3_bucket):
    store = open_store(f"s3://{s3_bucket}/team-a/")
    assert not store.exists("r/report.json")
    store.write("r/report.json", b'{"ok": true}', content_type="application/json")
    assert store.exists("r/report.json")
    assert store.read("r/report.json") == b'{"ok": true}'
    client = boto3.client("s3")
    head = client.head_object(Bucket=s3_bucket, Key="team-a/r/report.json")
    assert head["ContentType"] == "application/json" and head["ContentLength"] == 12
    store.write("r/report.json", b"v2")
    assert store.read("r/report.json") == b"v2"
    store.delete("r/report.json")
    assert not store.exists("r/report.json")
    with pytest.raises(client.exceptions.NoSuchKey):
        store.read("r/report.json")
    with pytest.raises(ValueError):
        store.write("../escape.json", b"x")
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0


def test_s3_list_matches_local_list(s3_bucket, tmp_path):
    s3 = S3Store(f"s3://{s3_bucket}/root")
    local = LocalStore(tmp_path)
    _fill(s3)
    _fill(local)
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="root/a/", Body=b"")            # a "folder" marker
    client.put_object(Bucket=s3_bucket, Key="rootless/other.wav", Body=b"")  # outside the prefix
    client.put_object(Bucket=s3_bucket, Key="other.wav", Body=b"")
    for args in [(), ("a",), ("a/",), ("calls",), ("", (".wav", ".flac", ".mp3")),
                 ("a", (".wav",)), ("", (".json",)), ("nothing-here",)]:
        s3_keys = [(o.key, o.size) for o in s3.list(*args)]
        local_keys = [(o.key, o.size) for o in local.list(*args)]
        assert s3_keys == local_keys, args
    assert [o.key for o in s3.list()] == sorted(TREE)
    etags = {o.key: o.etag for o in s3.list()}
    assert etags["z.wav"] == hashlib.md5(TREE["z.wav"]).hexdigest()     # quotes stripped


def _seed_objects(bucket: str, objects: dict[str, bytes]) -> None:
    """Put many objects straight into the moto server's in-process backend (same state the
    HTTP API serves; ~50x faster than 1,100 PUT requests).  Listing still goes over HTTP."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key, body in objects.items():
        backend.put_object(bucket, key, body)


def test_s3_list_paginates_past_1000_keys(s3_bucket):
    keys = [f"calls/day-{i % 3}/call-{i:05d}.{'wav' if i % 4 else 'json'}" for i in range(1100)]
    _seed_objects(s3_bucket, {k: k.encode() for k in keys})
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="elsewhere/call-x.wav", Body=b"x")
    assert client.list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 1000   # the API's page cap

    store = S3Store(f"s3://{s3_bucket}", client=client)
    pages = []
    client.meta.events.register("after-call.s3.ListObjectsV2", lambda **kw: pages.append(1))
    listed = list(store.list("calls"))
    assert len(pages) == 2                                  # 1000 + 100
    assert [o.key for o in listed] == sorted(keys)
    assert all(o.size == len(o.key) for o in listed)
    wavs = [o.key for o in store.list("calls", (".wav",))]
    assert len(wavs) == 825 and wavs == sorted(k for k in keys if k.endswith(".wav"))
    assert len(list(store.list("calls/day-1"))) == 367
    assert len(list(store.list())) == 1101
    # through a prefixed store the keys come back relative to its root
    sub = S3Store(f"s3://{s3_bucket}/calls", client=client)
    assert [o.key for o in sub.list("day-2", (".json",))] == sorted(
        k.removeprefix("calls/") for k in keys if k.startswith("calls/day-2/") and k.endswith(".json"))


def test_s3_missing_bucket_raises_storage_error_naming_it(s3_bucket):
    store = S3Store(f"s3://{s3_bucket}-missing/prefix")
    with pytest.raises(StorageError, match=f"{s3_bucket}-missing.*NoSuchBucket"):
        list(store.list())
    with pytest.raises(StorageError, match=f"{s3_bucket}-missing"):
        store.write("x.json", b"{}")
    with pytest.raises(StorageError, match=f"{s3_bucket}-missing"):
        store.read("x.json")
    # A missing bucket is a configuration error, not "this object does not exist".
    with pytest.raises(StorageError, match=f"{s3_bucket}-missing"):
        store.exists("x.json")


def test_s3_store_pickles_without_its_client(s3_bucket):
    import pickle

    store = S3Store(f"s3://{s3_bucket}/p")
    store.write("a.txt", b"A")
    clone = pickle.loads(pickle.dumps(store))
    assert clone._client is None
    assert clone.read("a.txt") == b"A"
