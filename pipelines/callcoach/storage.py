"""Local folders and s3:// behind one seam.

Every byte the job reads or writes goes through a ``Store``:
  * ``list(prefix, suffixes)`` walks keys (paginated on S3, sorted, relative to the root);
  * ``read(key)`` / ``write(key, data)``; writes are atomic: a reader sees the old object
    or the new one, never a partial file (local: temp file + rename; S3: a PUT is atomic);
  * ``url(key)`` names an object for humans and for Parquet readers.

Keys are always relative, '/'-separated, and validated so no key can escape the root.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol
from urllib.parse import urlparse


class StorageError(RuntimeError):
    """Storage is unreachable or misconfigured (credentials, bucket, permissions)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str          # relative to the store root, '/'-separated
    size: int
    etag: str         # content tag (S3 ETag, or size+mtime locally)
    modified: float | None = None   # last modified, seconds since the epoch


class Store(Protocol):
    root: str

    def list(self, prefix: str = "", suffixes: tuple[str, ...] | None = None,
             hidden: bool = False) -> Iterator[ObjectInfo]: ...
    def read(self, key: str) -> bytes: ...
    def write(self, key: str, data: bytes, content_type: str | None = None) -> None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def url(self, key: str) -> str: ...


def safe_key(key: str) -> str:
    """Normalise a relative key; reject anything that could escape the store root."""
    if not isinstance(key, str) or not key:
        raise ValueError("empty storage key")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise ValueError(f"control character in storage key {key!r}")
    if key.startswith("/") or "\\" in key:
        raise ValueError(f"storage key must be relative: {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"storage key has an empty, '.' or '..' part: {key!r}")
    return key


def _prefix_key(prefix: str) -> str:
    """A listing prefix ('' or a folder key, trailing '/' allowed), validated like a key."""
    prefix = (prefix or "").rstrip("/")
    return safe_key(prefix) if prefix else ""


def _suffixes(suffixes) -> tuple[str, ...] | None:
    """Suffix filter as a lower-case tuple (a list or upper-case '.WAV' also works)."""
    if not suffixes:
        return None
    if isinstance(suffixes, str):
        suffixes = (suffixes,)
    return tuple(s.lower() for s in suffixes)


def join(*parts: str) -> str:
    return posixpath.join(*[p.strip("/") for p in parts if p])


class LocalStore:
    def __init__(self, root: str | os.PathLike):
        self.root = str(Path(root).expanduser().resolve())
        self._root = Path(self.root)

    def _path(self, key: str) -> Path:
        path = (self._root / safe_key(key)).resolve()
        if self._root != path and self._root not in path.parents:
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

    def list(self, prefix: str = "", suffixes=None, hidden: bool = False) -> Iterator[ObjectInfo]:
        """Objects under ``prefix``, sorted by key.  Hidden ones (a part of the key starts
        with '.') and temp files are left out unless ``hidden``: then hidden ones are
        listed too (the job counts and reports the input keys it does not read)."""
        # The prefix is a key too: validated, so list("../x") cannot walk outside the root.
        base = self._path(_prefix_key(prefix)) if _prefix_key(prefix) else self._root
        if not base.is_dir():
            return
        suffixes = _suffixes(suffixes)
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            if not hidden:
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.endswith(".tmp") or (name.startswith(".") and not hidden):
                    continue
                if suffixes and not name.lower().endswith(suffixes):
                    continue
                full = Path(dirpath) / name
                try:
                    st = full.stat()
                except FileNotFoundError:       # deleted while listing
                    continue
                key = full.relative_to(self._root).as_posix()
                found.append(ObjectInfo(key, st.st_size, f"{st.st_size}-{st.st_mtime_ns}",
                                        st.st_mtime))
        # Sorted by key, as S3 lists (a directory walk would put "z.wav" before "a/x.wav").
        found.sort(key=lambda o: o.key)
        yield from found

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write(self, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def url(self, key: str) -> str:
        return str(self._path(key))

    def remove_temp_files(self) -> int:
        """Delete the temp files of writes killed between creating and renaming them (a
        SIGKILLed or OOM-killed process).  They were never visible (list skips them, no
        key names them); this keeps them from piling up.  Call only while nothing writes
        to this folder (the driver, before a run starts).  Returns how many it removed."""
        removed = 0
        for dirpath, _, filenames in os.walk(self._root):
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    try:
                        os.unlink(os.path.join(dirpath, name))
                        removed += 1
                    except FileNotFoundError:
                        pass
        return removed

    def check(self, probe_key: str | None = None) -> None:
        """Raise StorageError when this folder cannot be used: to read from (no
        ``probe_key``), it must exist; to write to, it must be (or become) a writable
        folder, which an empty probe file at ``probe_key``, written and deleted, shows."""
        if probe_key is None:
            if not self._root.is_dir():
                raise StorageError(f"{self.root}: no such folder")
            return
        try:
            self.write(probe_key, b"")
            self._path(probe_key).unlink()
        except OSError as exc:
            raise StorageError(f"{self.root}: not a writable folder: {exc}") from exc


class S3Store:
    """An S3 prefix.  Endpoint, region and credentials come from the standard AWS
    environment and config files (AWS_ENDPOINT_URL, AWS_REGION, AWS_PROFILE, ...)."""

    def __init__(self, uri: str, *, client=None, sse: dict | None = None):
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3:// URI: {uri!r}")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.root = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.sse = dict(sse or {})
        self._client = client
        self._injected = client is not None
        self._bucket_ok = False

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3", config=Config(retries={"max_attempts": 10, "mode": "adaptive"},
                                    connect_timeout=10, read_timeout=60))
        return self._client

    def __getstate__(self):  # boto3 clients do not pickle; each Ray worker makes its own
        state = self.__dict__.copy()
        state["_client"] = None
        state["_injected"] = False
        return state

    def check(self, probe_key: str | None = None) -> None:
        """Fail fast, before a run does any work, when this store cannot be used: endpoint
        unreachable, bucket missing, credentials refused and, with ``probe_key``, writes
        refused (an empty probe object is written there, with this store's encryption
        settings, and deleted).  Raises StorageError saying which.  Uses a client with a
        short retry budget, so an unreachable endpoint is reported in seconds rather than
        after the data path's full budget of ten retries with backoff."""
        import boto3
        from botocore.config import Config

        client = self._client if self._injected else boto3.client(
            "s3", config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                connect_timeout=5, read_timeout=20))
        try:
            client.head_bucket(Bucket=self.bucket)
            if probe_key:
                k = self._key(probe_key)
                client.put_object(Bucket=self.bucket, Key=k, Body=b"", **self.sse)
                client.delete_object(Bucket=self.bucket, Key=k)
        except Exception as exc:
            err = _storage_error(exc, self.root)
            if not isinstance(err, StorageError):
                code = _error_code(exc)
                if code in ("404", "NoSuchBucket", "NotFound"):
                    err = StorageError(f"{self.root}: NoSuchBucket: bucket {self.bucket!r} "
                                       "does not exist")
                elif probe_key and self.sse:
                    err = StorageError(f"{self.root}: cannot write with server-side encryption "
                                       f"{self.sse}: {type(exc).__name__}: {exc}")
                else:
                    err = StorageError(f"{self.root}: {type(exc).__name__}: {exc}")
            raise err from exc
        self._bucket_ok = True

    def _key(self, key: str) -> str:
        return join(self.prefix, safe_key(key)) if self.prefix else safe_key(key)

    def list(self, prefix: str = "", suffixes=None, hidden: bool = False) -> Iterator[ObjectInfo]:
        prefix = _prefix_key(prefix)
        full = join(self.prefix, prefix) if prefix else self.prefix
        if full:
            full += "/"
        suffixes = _suffixes(suffixes)
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for obj in page.get("Contents", ()):
                    key = obj["Key"][len(self.prefix) + 1:] if self.prefix else obj["Key"]
                    name = key.rsplit("/", 1)[-1]
                    if not key or key.endswith("/"):
                        continue
                    # hidden files and anything under a hidden folder, as LocalStore skips them
                    if not hidden and (name.startswith(".")
                                       or any(p.startswith(".") for p in key.split("/"))):
                        continue
                    if suffixes and not name.lower().endswith(suffixes):
                        continue
                    modified = obj.get("LastModified")
                    yield ObjectInfo(key, int(obj.get("Size", 0)), str(obj.get("ETag", "")).strip('"'),
                                     modified.timestamp() if modified else None)
        except Exception as exc:
            _reraise(exc, self.root)

    def read(self, key: str) -> bytes:
        k = self._key(key)
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=k)
            return resp["Body"].read()
        except Exception as exc:
            _reraise(exc, self.root)

    def write(self, key: str, data: bytes, content_type: str | None = None) -> None:
        extra = dict(self.sse)
        if content_type:
            extra["ContentType"] = content_type
        k = self._key(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=k, Body=data, **extra)
        except Exception as exc:
            _reraise(exc, self.root)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        k = self._key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=k)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                _reraise(exc, self.root)
        # HEAD answers a bare 404 for a missing bucket too: check the bucket once, so a
        # misconfigured bucket is an error rather than "no such object".
        if not self._bucket_ok:
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in ("404", "NoSuchBucket", "NotFound"):
                    raise StorageError(f"{self.root}: NoSuchBucket: bucket {self.bucket!r} "
                                       "does not exist") from exc
                _reraise(exc, self.root)
            self._bucket_ok = True
        return False

    def delete(self, key: str) -> None:
        k = self._key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=k)
        except Exception as exc:
            _reraise(exc, self.root)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def delta_options(self, write: bool = False) -> dict[str, str]:
        """object_store options (deltalake, Polars) reaching this bucket as boto3 does:
        endpoint, region and credentials of the standard AWS environment; for writes, this
        store's server-side encryption and conditional puts (put-if-absent of each Delta
        log entry: of two writers committing the same version, one is refused)."""
        import boto3

        session = boto3.session.Session()
        opts = {"aws_region": session.region_name or self.client.meta.region_name or "us-east-1"}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            opts["aws_endpoint_url"] = endpoint
            if endpoint.startswith("http://"):
                opts["aws_allow_http"] = "true"
        creds = session.get_credentials()
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            opts["aws_access_key_id"] = frozen.access_key
            opts["aws_secret_access_key"] = frozen.secret_key
            if frozen.token:
                opts["aws_session_token"] = frozen.token
        if write:
            opts["aws_conditional_put"] = "etag"
            if self.sse.get("ServerSideEncryption"):
                opts["aws_server_side_encryption"] = self.sse["ServerSideEncryption"]
            if self.sse.get("SSEKMSKeyId"):
                opts["aws_sse_kms_key_id"] = self.sse["SSEKMSKeyId"]
        return opts


def _reraise(exc: Exception, root: str):
    """Raise StorageError for configuration faults (bucket, credentials), else ``exc`` as is."""
    err = _storage_error(exc, root)
    if err is exc:
        raise exc
    raise err from exc


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


# botocore's errors for an endpoint that cannot be reached or answers nothing (retried by
# the client first; what is left is a configuration or outage fault), and for no credentials.
_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError",
                "ReadTimeoutError", "ProxyConnectionError", "SSLError")
_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError")


def _storage_error(exc: Exception, root: str) -> Exception:
    code = _error_code(exc)
    if code in ("NoSuchBucket", "AccessDenied", "403", "Forbidden", "InvalidAccessKeyId",
                "SignatureDoesNotMatch"):
        return StorageError(f"{root}: {code}: {exc}")
    name = type(exc).__name__
    if name in _UNREACHABLE:
        return StorageError(f"{root}: cannot reach the object store ({name}): {exc}")
    if name in _NO_CREDENTIALS:
        return StorageError(f"{root}: no usable AWS credentials ({name}): {exc}")
    return exc


def open_store(uri: str, **kwargs) -> Store:
    """A Store for a local folder or an s3:// URI."""
    if uri.startswith("s3://"):
        return S3Store(uri, **kwargs)
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"unsupported storage URI {uri!r} (local path or s3://)")
    return LocalStore(uri[len("file://"):] if uri.startswith("file://") else uri)
