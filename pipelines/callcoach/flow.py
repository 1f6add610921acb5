"""The Ray Data graph: the only module that moves bytes between storage and stages.

    list (driver) -> read + decode (CPU tasks) -> speech (actors, models loaded once,
    GPU when configured) -> score (CPU actors, batches of calls) -> per-call writes
    -> tables (driver)

Each call is a row.  A stage that fails on a call turns the row into a failure (stage and
reason) that later stages pass through untouched, so one bad call never stops a run.
Rows carry bytes and scalars only (decoded audio travels as raw float32 PCM).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from .audio import AUDIO_EXTENSIONS, Audio, AudioError, SAMPLE_RATE, decode
from . import ledger as ledger_mod
from .ledger import Entry
from .pii import PiiConfig, redact_text, redact_transcript
from .speech.asr import METHOD as ASR_METHOD
from .speech.stage import SpeechConfig
from .storage import LocalStore, ObjectInfo, Store, open_store, safe_key
from .coaching.features import features_valid, turn_features
from .transcript import SCHEMA_VERSION as TRANSCRIPT_SCHEMA

log = logging.getLogger("callcoach")

TRANSCRIPTS = "transcripts"
REPORTS = "reports"
TABLES = "tables"


@dataclass(frozen=True)
class RunConfig:
    input: str
    output: str
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    ruleset: str | None = None              # path to a rule-set YAML; None: the default
    categories: str | None = None           # path to an issue-categories YAML; None: default
    as_of: str | None = None                # commitments' "now" (ISO); None: latest call
    speech_actors: int = 1
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    max_duration_s: float = 4 * 3600.0
    call_timeout_s: float = 120.0            # speech-stage budget per call: base ...
    call_timeout_factor: float = 3.0         # ... plus this many seconds per audio second
    limit: int | None = None
    since: float | None = None               # only inputs modified at/after this epoch time
    prefix: str = ""                         # only inputs under this sub-prefix
    ray_address: str | None = None
    num_cpus: int | None = None              # local Ray only
    pii: PiiConfig = field(default_factory=PiiConfig)   # redaction of everything written
    sse: dict | None = None                  # server-side encryption of every output write
                                             # (S3 PutObject args), None: the bucket default
    max_call_memory_mb: float = 2048.0       # per-call budget for decoded audio (float32 PCM)
    max_task_retries: int = 3                # retries of a call whose worker died under it
    input_kind: str = "audio"                # "audio": recordings; "transcripts": existing
                                             # transcripts (callcoach score-transcripts)


# -- naming ------------------------------------------------------------------------------

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def call_ids(keys: list[str]) -> dict[str, str]:
    """call_id for each input key: the file name without extension, made safe.

    Never trusted as a path: unsafe characters are replaced, and when that changed the name
    or two keys share a stem, a short hash of the full key keeps ids unique.  Ids are also
    unique ignoring case (a case-insensitive file system would merge "A" and "a"), and an
    unchanged name that happens to equal another key's hashed id cannot take it: every key
    in such a clash gets a longer hash of its own.
    """
    stems = {}
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        stem = name.rsplit(".", 1)[0] if "." in name else name
        stems[key] = stem
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem] = counts.get(stem, 0) + 1
    out = {}
    for key, stem in stems.items():
        safe = _SAFE.sub("_", stem).strip("._")[:120] or "call"
        if safe != stem or counts[stem] > 1:
            safe = f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
        out[key] = safe
    for width in (16, 32, 64):
        groups: dict[str, list[str]] = {}
        for key, cid in out.items():
            groups.setdefault(cid.lower(), []).append(key)
        clashes = [k for ks in groups.values() if len(ks) > 1 for k in ks]
        if not clashes:
            break
        for key in clashes:
            base = _SAFE.sub("_", stems[key]).strip("._")[:120] or "call"
            out[key] = f"{base}-{hashlib.sha256(key.encode()).hexdigest()[:width]}"
    return out


def skip_reason(key: str) -> str | None:
    """Why an input key is not read (None: it is): a part starting with '.' is hidden
    ('..' and '.' parts could name another object; '.name' is a hidden file)."""
    parts = key.split("/")
    if any(p in (".", "..") for p in parts):
        return "input key refused: it has a '.' or '..' part, which could name another object"
    if any(p.startswith(".") for p in parts):
        return "input key skipped: hidden (a part of the key starts with '.')"
    return None


def list_calls(store: Store, limit: int | None = None, since: float | None = None,
               prefix: str = "", skipped: list | None = None) -> list[dict]:
    """The calls under the input, sorted by call_id.  Keys that are not read (hidden, '..')
    are appended to ``skipped`` (rows with a ``reason``) when a list is given."""
    objects: list[ObjectInfo] = [o for o in store.list(prefix, AUDIO_EXTENSIONS, hidden=True)
                                 if since is None or (o.modified or 0) >= since]
    ids = call_ids([o.key for o in objects])
    rows = [{"key": o.key, "call_id": ids[o.key], "size": o.size, "etag": o.etag,
             "modified": float(o.modified or 0.0), "reason": skip_reason(o.key)}
            for o in objects]
    rows.sort(key=lambda r: r["call_id"])
    if skipped is not None:
        skipped.extend(dict(r) for r in rows if r["reason"])
    rows = [r for r in rows if not r.pop("reason")]
    return rows[:limit] if limit else rows


def sidecar_key(audio_key: str) -> str:
    return audio_key.rsplit(".", 1)[0] + ".json"


# -- transcripts in (callcoach score-transcripts) -----------------------------------------
# An imported transcript's "speech fingerprint": nothing of ours made it; a change of the
# input file (etag) is what makes it new.
IMPORT_FINGERPRINT = "imported-v1"
TRANSCRIPT_SIDECAR = ".meta.json"      # NAME.meta.json beside NAME.json/.jsonl/.csv


def transcript_sidecar_key(key: str) -> str:
    return key.rsplit(".", 1)[0] + TRANSCRIPT_SIDECAR


def list_transcript_files(store: Store, limit: int | None = None, since: float | None = None,
                          prefix: str = "", skipped: list | None = None) -> list[dict]:
    """Existing transcripts under the input (NAME.meta.json sidecars excluded), like
    list_calls: sorted by call_id, unread keys appended to ``skipped`` with a reason."""
    from .importers import transcript_suffixes

    objects = [o for o in store.list(prefix, transcript_suffixes(), hidden=True)
               if not o.key.endswith(TRANSCRIPT_SIDECAR)
               and (since is None or (o.modified or 0) >= since)]
    ids = call_ids([o.key for o in objects])
    rows = [{"key": o.key, "call_id": ids[o.key], "size": o.size, "etag": o.etag,
             "modified": float(o.modified or 0.0), "reason": skip_reason(o.key)}
            for o in objects]
    rows.sort(key=lambda r: r["call_id"])
    if skipped is not None:
        skipped.extend(dict(r) for r in rows if r["reason"])
    rows = [r for r in rows if not r.pop("reason")]
    return rows[:limit] if limit else rows


class ImportTranscript:
    """Read one existing transcript file (+ its NAME.meta.json sidecar) into the row, as
    the transcript the speech stage would have made; Score reads with it."""

    def __init__(self, input_uri: str | Store):
        self.store = _as_store(input_uri)

    def __call__(self, row: dict) -> dict:
        from .importers import TranscriptImportError, parse_transcript

        key = row["key"]
        metadata: dict = {}
        try:
            side = transcript_sidecar_key(key)
            if self.store.exists(side):
                try:
                    metadata = json.loads(self.store.read(side))
                    if not isinstance(metadata, dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    # the transcript is fine: score it, and say why its metadata is missing
                    metadata = {"metadata_warning": f"sidecar {side} ignored: not valid JSON ({exc})"[:300]}
            data = self.store.read(key)
            tr = parse_transcript(key.rsplit("/", 1)[-1], data, call_id=row["call_id"], metadata=metadata)
        except TranscriptImportError as exc:
            return _failed(row, "import", str(exc))
        except Exception as exc:
            return _failed(row, "read", f"{type(exc).__name__}: {exc}")
        audio = dict(tr.audio, source_key=key, etag=row["etag"], size=row["size"])
        if row.get("modified"):         # the file's last-modified time: its day's fallback
            audio["modified"] = float(row["modified"])
        tr = dataclasses.replace(tr, audio=audio)
        return _ok(row, transcript=tr.to_json().decode("utf-8"), metadata=json.dumps(metadata),
                   duration_s=float(tr.duration_s))


def output_store(config: RunConfig) -> Store:
    """The run's output store: server-side encryption, when configured, on every write."""
    if config.sse:
        if not config.output.startswith("s3://"):
            raise ValueError("server-side encryption (--sse) needs an s3:// output")
        return open_store(config.output, sse=dict(config.sse))
    return open_store(config.output)


def _as_store(where: str | Store) -> Store:
    """Stages get the output Store itself (so its settings travel with it; an S3Store
    pickles without its client) or, from older callers, a URI."""
    return open_store(where) if isinstance(where, str) else where


# Written and deleted by the driver before any work, to prove the output is writable (with
# its encryption settings).  Under state/entries/, where the job may delete; hidden, so no
# listing ever sees it.
PROBE_KEY = f"{ledger_mod.ENTRIES}/.preflight"


def preflight(config: RunConfig, out_store: Store, rescore_only: bool) -> None:
    """Fail before any work starts (StorageError) when the output cannot be written or the
    input cannot be read: unreachable endpoint, missing bucket or folder, refused
    credentials, unusable encryption key."""
    out_store.check(PROBE_KEY)
    if not rescore_only:
        open_store(config.input).check()


# -- row helpers ------------------------------------------------------------------------

def _failed(row: dict, stage: str, reason: str, pii: PiiConfig | None = None) -> dict:
    """A failure row.  Reasons can quote content (an exception message), so they are
    redacted like everything else that is written."""
    out = dict(row)
    out.update(status="failed", stage=stage, error=redact_text(reason, pii or PiiConfig())[0][:500])
    return out


def _ok(row: dict, **values) -> dict:
    out = dict(row)
    out.update(values)
    return out


# -- stages -----------------------------------------------------------------------------
#
# Every stage returns rows with the same columns (ROW), so the transcribe path and the
# rescore path can stream through one union.

ROW = {"key": "", "call_id": "", "size": 0, "etag": "", "path": "transcribe", "status": "ok",
       "stage": "", "error": "", "metadata": "{}", "pcm": b"", "channels": 0,
       "duration_s": 0.0, "audio": "{}", "transcript": "", "timings": "{}", "table_row": "",
       "entry": "", "pii": "{}", "insight_row": "", "modified": 0.0, "modified_source": ""}


def _row(item: dict, **values) -> dict:
    out = dict(ROW)
    out.update({k: item[k] for k in ROW if k in item})
    out.update(values)
    return out


class ReadDecode:
    """CPU: read the audio and its sidecar, decode to 16 kHz PCM."""

    def __init__(self, input_uri: str, max_duration_s: float, max_memory_mb: float | None = None):
        self.store = open_store(input_uri)
        self.max_duration_s = max_duration_s
        self.max_memory_mb = max_memory_mb

    def __call__(self, item: dict) -> dict:
        row = _row(item, path="transcribe")
        try:
            # A listed key that could name another object (a '..' or empty part, a leading
            # '/', a backslash, a control character) is never read: it fails, once.
            safe_key(row["key"])
        except ValueError as exc:
            return _failed(row, "key", f"input key refused: {exc}")
        try:
            metadata = {}
            skey = sidecar_key(row["key"])
            if self.store.exists(skey):
                try:
                    metadata = json.loads(self.store.read(skey))
                    if not isinstance(metadata, dict):
                        raise ValueError("sidecar is not a JSON object")
                except ValueError as exc:
                    # the audio is fine: score the call without its metadata, and say so
                    warning = f"sidecar {skey} ignored: not a valid JSON object ({exc})"
                    log.warning("%s: %s", row["call_id"], warning)
                    metadata = {"metadata_warning": redact_text(warning, PiiConfig())[0][:500]}
            data = self.store.read(row["key"])
            audio = self._decode(data)
            if audio is None:
                return _failed(row, "memory", self._over_budget())
            return _ok(row, metadata=json.dumps(metadata), pcm=audio.samples.tobytes(),
                       channels=audio.channels, duration_s=audio.duration_s,
                       audio=json.dumps({"source_rate": audio.source_rate, "codec": audio.codec,
                                         "sha256": audio.sha256}))
        except AudioError as exc:
            return _failed(row, "decode", str(exc))
        except Exception as exc:
            return _failed(row, "read", f"{type(exc).__name__}: {exc}")

    def _decode(self, data: bytes) -> Audio | None:
        """Decode within the per-call memory budget: the decoder stops as soon as the PCM
        would outgrow the budget (mono bound; a stereo call is checked once decoded), so
        no input can make a worker allocate far beyond it.  None: over budget."""
        if not self.max_memory_mb:
            return decode(data, max_duration_s=self.max_duration_s)
        budget_s = self.max_memory_mb * 2**20 / (SAMPLE_RATE * 4)
        if budget_s >= self.max_duration_s:
            audio = decode(data, max_duration_s=self.max_duration_s)
        else:
            try:
                audio = decode(data, max_duration_s=budget_s)
            except AudioError as exc:
                if str(exc).startswith("longer than"):
                    return None
                raise
        return None if audio.samples.nbytes > self.max_memory_mb * 2**20 else audio

    def _over_budget(self) -> str:
        return (f"decoded audio would exceed the per-call memory budget of "
                f"{self.max_memory_mb:g} MiB (16 kHz float32 PCM, all channels; "
                f"raise --max-call-memory to process it)")


class CallTimeout(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise CallTimeout in this thread once ``seconds`` have passed (main thread only,
    where Ray runs a synchronous actor's calls; elsewhere it does nothing)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def _expired(signum, frame):
        raise CallTimeout(f"timed out after {seconds:g} s in the speech stage")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _audio_from_row(row: dict) -> Audio:
    info = json.loads(row["audio"])
    samples = np.frombuffer(row["pcm"], dtype=np.float32).reshape(int(row["channels"]), -1)
    return Audio(samples, SAMPLE_RATE, info["source_rate"], info["codec"], info["sha256"])


class SpeechActor:
    """GPU (or CPU) actor: diarization + ASR + roles; writes the transcript artifact."""

    def __init__(self, output_uri: str, speech: SpeechConfig, timeout_base_s: float = 120.0,
                 timeout_factor: float = 3.0, pii: PiiConfig | None = None):
        from .coaching.features import get_encoder
        from .speech.stage import SpeechStage

        self.store = _as_store(output_uri)
        self.stage = SpeechStage(speech)
        get_encoder()   # load the sentence encoder once per actor, not on the first call
        self.timeout_base_s, self.timeout_factor = timeout_base_s, timeout_factor
        self.pii = pii or PiiConfig()

    def __call__(self, row: dict) -> dict:
        if row["status"] != "ok":
            return row
        try:
            audio = _audio_from_row(row)
            metadata = json.loads(row["metadata"])
            budget = self.timeout_s(audio.duration_s)
            with deadline(budget):
                transcript, timings = self.stage(audio, row["call_id"], metadata)
            roles = {t.speaker for t in transcript.turns}
            if not roles:
                return _failed(dict(row, pcm=b""), "speech", "no speech found in the recording")
            if len(roles) < 2:
                missing = ({"agent", "customer"} - roles).pop()
                return _failed(dict(row, pcm=b""), "speech",
                               f"only one party heard: no {missing} speech found")
            # Nothing unredacted is ever written: redact before the artifact exists.
            t0 = time.perf_counter()
            transcript, pii_counts = redact_transcript(transcript, self.pii)
            timings["pii_s"] = time.perf_counter() - t0
            # Rule-independent coaching features, computed once with the (redacted)
            # transcript so a re-score with new rules never repeats them.
            t0 = time.perf_counter()
            transcript = _with_source(transcript, row, turn_features(transcript))
            timings["features_s"] = time.perf_counter() - t0
            data = transcript.to_json()
            self.store.write(f"{TRANSCRIPTS}/{row['call_id']}.json", data, "application/json")
            return _ok(row, pcm=b"", transcript=data.decode("utf-8"), timings=json.dumps(timings),
                       pii=json.dumps(pii_counts))
        except CallTimeout as exc:
            return _failed(dict(row, pcm=b""), "speech", str(exc), self.pii)
        except Exception as exc:
            log.error("speech failed for %s: %s", row["call_id"],
                      redact_text(traceback.format_exc(), self.pii)[0])
            return _failed(dict(row, pcm=b""), "speech", f"{type(exc).__name__}: {exc}", self.pii)

    def timeout_s(self, duration_s: float) -> float:
        """Time a call may take in the speech stage: generous (CPU real-time factor is
        ~0.1-0.3), but bounded, so no input can hold a worker forever."""
        return self.timeout_base_s + self.timeout_factor * duration_s


def _with_source(transcript, row, features):
    audio = dict(transcript.audio, source_key=row["key"], etag=row["etag"], size=row["size"])
    if row.get("modified"):             # the recording's last-modified time: its day's fallback
        audio["modified"] = float(row["modified"])
    return dataclasses.replace(transcript, audio=audio, features=features)


@functools.cache
def _malloc_trim():
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):      # not glibc
        return None


def _trim_heap() -> None:
    """Give the heap pages a finished batch freed back to the OS.  A long-lived actor
    otherwise keeps its high-water mark, which creeps up with every batch it scores
    (fragmentation), so its memory would grow with the size of the run."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class ReadTranscript:
    """The stored transcript of a call (rescoring: no audio, no ASR); Score reads with it."""

    def __init__(self, output_uri: str | Store):
        self.store = _as_store(output_uri)

    def __call__(self, item: dict) -> dict:
        row = _row(item, path="rescore")
        try:
            data = self.store.read(f"{TRANSCRIPTS}/{row['call_id']}.json")
            return _ok(row, transcript=data.decode("utf-8"))
        except Exception as exc:
            return _failed(row, "read_transcript", f"{type(exc).__name__}: {exc}")


class Score:
    """CPU: transcripts -> coaching reports, a batch of calls at a time; writes each call's
    report JSON + HTML and its ledger entry.

    The scorer and the insights run over the whole batch in one columnar pass (one call at
    a time, polars' per-query overhead made them ~50 ms a call; scripts/bench/rescore.py).
    A batch that raises is scored again call by call, so one bad transcript fails alone."""

    def __init__(self, output_uri: str, ruleset_path: str | None, speech_fingerprint: str,
                 run_id: str, pii: PiiConfig | None = None, categories_path: str | None = None,
                 input_uri: str | None = None):
        self.store = _as_store(output_uri)
        self.importer = ImportTranscript(input_uri) if input_uri else None
        from .coaching.engine import Engine

        self.engine = Engine.load(ruleset_path, categories_path)
        self.ruleset, self.categories = self.engine.ruleset, self.engine.categories
        self.fingerprint = speech_fingerprint
        self.run_id = run_id
        self.pii = pii or PiiConfig()
        self.reader = ReadTranscript(self.store)
        self._threads = None

    def __call__(self, batch):
        """Ray ``map_batches`` entry point: a pyarrow batch of rows in, one out."""
        out = rows_table(self.score_rows(batch.to_pylist()))
        _trim_heap()
        return out

    def one(self, row: dict) -> dict:
        return self.score_rows([row])[0]

    def score_rows(self, rows: list[dict]) -> list[dict]:
        from .coaching.features import features_batch
        from .transcript import Transcript

        rows = self._read_stored(rows)
        out: list[dict | None] = [None] * len(rows)
        todo: list[int] = []           # rows still in play
        transcripts: dict[int, Any] = {}
        pii_counts: dict[int, dict] = {}
        changed: dict[int, bool] = {}
        for i, row in enumerate(rows):
            if row["status"] != "ok":
                out[i] = self._finish_failed(row)
                continue
            try:
                transcript = Transcript.from_json(row["transcript"])
                # Idempotent on redacted transcripts; redacts any stored before redaction
                # (or with other settings) and replaces the stored artifact.
                redacted, pii_counts[i] = redact_transcript(transcript, self.pii)
                changed[i] = redacted.turns != transcript.turns or redacted.models != transcript.models
                transcripts[i] = redacted
                todo.append(i)
            except Exception as exc:
                out[i] = self._fail(row, exc)

        # Features stored before this features version (or of a transcript redacted just
        # now): computed once here, in one encoder pass, for the scorer and the insights
        # alike, and stored, so the next rescore does not pay for the sentence encoder.
        stale = [i for i in todo if not features_valid(transcripts[i], transcripts[i].features)]
        for i, feats in zip(stale, _batch_or_each(features_batch, [transcripts[i] for i in stale])):
            if isinstance(feats, Exception):
                out[i] = self._fail(rows[i], feats)
            else:
                transcripts[i] = dataclasses.replace(transcripts[i], features=feats)
                changed[i] = True
        todo = [i for i in todo if out[i] is None]

        # one engine pass per batch: acts detected once, for the report and the insights
        scored = _batch_or_each(self.engine.score, [(transcripts[i], None) for i in todo])
        for i, res in zip(todo, scored):
            if isinstance(res, Exception):
                out[i] = self._fail(rows[i], res)
                continue
            report, ins = res
            try:
                out[i] = self._write(rows[i], transcripts[i], changed[i], report, ins, pii_counts[i])
            except Exception as exc:
                out[i] = self._fail(rows[i], exc)
        return out

    def _read_stored(self, rows: list[dict]) -> list[dict]:
        """Rescore rows come without their transcript: read them here, a few at a time
        in threads (object-store latency), rather than in a stage of actors of their own
        (two more processes to start and feed for milliseconds of work per call)."""
        rows = list(rows)
        for i, r in enumerate(rows):
            if r["path"] == "import" and r["status"] == "ok" and not r["transcript"]:
                rows[i] = self.importer(r)
        todo = [i for i, r in enumerate(rows)
                if r["path"] == "rescore" and r["status"] == "ok" and not r["transcript"]]
        if not todo:
            return rows
        if len(todo) == 1 or isinstance(self.store, LocalStore):
            read = map(self.reader, [rows[i] for i in todo])
        else:
            read = self._pool().map(self.reader, [rows[i] for i in todo])
        for i, r in zip(todo, read):
            rows[i] = r
        return rows

    def _pool(self):
        if self._threads is None:
            from concurrent.futures import ThreadPoolExecutor

            self._threads = ThreadPoolExecutor(8, thread_name_prefix="read-transcript")
        return self._threads

    def _write(self, row: dict, transcript, changed: bool, report: dict, insights: dict,
               pii_counts: dict) -> dict:
        from .insights.tables import insight_row
        from .render import render_html, report_json
        from .tables import call_row

        if changed:
            self.store.write(f"{TRANSCRIPTS}/{row['call_id']}.json", transcript.to_json(),
                             "application/json")
        warning = (transcript.metadata or {}).get("metadata_warning")
        if warning:
            report = dict(report, metadata_warning=warning)
        irow = insight_row(insights, report)
        prefix = f"{REPORTS}/{report['ruleset_version']}/{row['call_id']}"
        self.store.write(prefix + ".json", report_json(report), "application/json")
        self.store.write(prefix + ".html", render_html(report, transcript).encode("utf-8"),
                         "text/html; charset=utf-8")
        table_row = call_row(report, transcript, source_key=transcript.audio.get("source_key", row["key"]),
                             modified=row.get("modified") or None,
                             modified_source=row.get("modified_source") or "object_mtime")
        entry = Entry(
            call_id=row["call_id"], source_key=str(transcript.audio.get("source_key", row["key"])),
            etag=str(transcript.audio.get("etag", row["etag"])),
            size=int(transcript.audio.get("size", row["size"]) or 0),
            audio_sha256=str(transcript.audio.get("sha256", "")),
            speech_fingerprint=self._fingerprint_of(row),
            asr_model=str(transcript.models.get("asr", "")),
            diarization_model=str(transcript.models.get("diarization", "")),
            ruleset_version=report["ruleset_version"],
            categories_version=self.categories.version, acts_model=self.engine.act_model.version,
            status="scored", run_id=self.run_id)
        ledger_mod.record(self.store, entry, table_row, irow)
        return _ok(row, transcript="", duration_s=float(transcript.duration_s),
                   table_row=json.dumps(table_row, default=str),
                   insight_row=json.dumps(irow, default=str),
                   entry=json.dumps(dataclasses.asdict(entry)),
                   # a fresh transcript was redacted (and counted) by the speech stage
                   pii=row["pii"] if row["path"] == "transcribe" else json.dumps(pii_counts))

    def _fail(self, row: dict, exc: BaseException) -> dict:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("scoring failed for %s: %s", row["call_id"], redact_text(tb, self.pii)[0])
        return self._finish_failed(_failed(dict(row, transcript=""), "score",
                                           f"{type(exc).__name__}: {exc}", self.pii))

    def _fingerprint_of(self, row: dict) -> str:
        """A fresh transcript has this run's fingerprint; a re-scored one keeps its own."""
        if row["path"] in ("transcribe", "import"):
            return self.fingerprint
        return str(json.loads(row["entry"] or "{}").get("speech_fingerprint", ""))

    def _finish_failed(self, row: dict) -> dict:
        entry = Entry(call_id=row["call_id"], source_key=row["key"], etag=row["etag"],
                      size=int(row["size"]), status="failed", stage=row["stage"],
                      reason=row["error"], run_id=self.run_id)
        try:
            ledger_mod.record(self.store, entry, None)
        except Exception:
            log.error("could not record failure of %s", row["call_id"])
        return dict(row, pcm=b"", transcript="", entry=json.dumps(dataclasses.asdict(entry)))


def _batch_or_each(fn, items: list) -> list:
    """``fn`` over all ``items`` at once (it returns one result per item); if that raises,
    over each item alone, so one bad item fails alone: its slot holds the exception."""
    if not items:
        return []
    try:
        results = list(fn(items))
        if len(results) != len(items):
            raise RuntimeError(f"{len(results)} results for {len(items)} items")
        return results
    except Exception:
        if len(items) == 1:
            return [sys.exc_info()[1]]
        out: list = []
        for item in items:
            try:
                out.append(fn([item])[0])
            except Exception as exc:
                out.append(exc)
        return out


def rows_table(rows: list[dict]):
    """Rows as a pyarrow table with ROW's columns and types (every batch the same schema)."""
    import pyarrow as pa

    return pa.Table.from_pylist([{k: r.get(k, v) for k, v in ROW.items()} for r in rows],
                                schema=_row_schema())


@functools.cache
def _row_schema():
    import pyarrow as pa

    kinds = {str: pa.string(), bytes: pa.binary(), int: pa.int64(), float: pa.float64()}
    return pa.schema([(k, kinds[type(v)]) for k, v in ROW.items()])


# -- the run ----------------------------------------------------------------------------

@dataclass
class RunSummary:
    run_id: str = ""
    calls: int = 0            # inputs considered
    transcribed: int = 0      # calls that went through ASR this run
    rescored: int = 0         # calls re-scored from their stored transcript
    imported: int = 0         # existing transcripts read in (score-transcripts)
    unchanged: int = 0        # calls skipped: same audio, models and rules
    skipped: int = 0          # input keys not read (hidden, '..'): each a failure row
    scored: int = 0           # calls with a fresh report this run
    failed: int = 0
    audio_s: float = 0.0      # audio transcribed this run
    wall_s: float = 0.0
    asr_s: float = 0.0
    diarize_s: float = 0.0
    ruleset_version: str = ""
    pii_redacted: dict = field(default_factory=dict)   # values redacted per kind (never the values)
    pii_config: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)

    @property
    def rtf(self) -> float:
        return self.wall_s / self.audio_s if self.audio_s else 0.0

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "calls": self.calls, "transcribed": self.transcribed,
                "imported": self.imported, "rescored": self.rescored, "unchanged": self.unchanged,
                "skipped": self.skipped, "scored": self.scored,
                "failed": self.failed, "audio_hours": round(self.audio_s / 3600, 4),
                "wall_s": round(self.wall_s, 1), "real_time_factor": round(self.rtf, 4),
                "asr_s": round(self.asr_s, 1), "diarize_s": round(self.diarize_s, 1),
                "ruleset_version": self.ruleset_version, "pii_redacted": self.pii_redacted,
                "pii_config": self.pii_config, "failures": self.failures}


def init_ray(config: RunConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    # Workers never phone home and never reach for a model hub.
    env = {"PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    # Where object storage is: the driver's endpoint and region go to every worker.  On a
    # local Ray the driver's credentials go too; on a cluster workers use their own role.
    shared = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
              "CALLCOACH_MODELS", "CALLCOACH_MODEL_CACHE")
    local_only = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                  "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
    for name in shared + (() if address else local_only):
        if os.environ.get(name):
            env[name] = os.environ[name]
    from . import logs

    # each worker silences known third-party noise at start (pipelines/callcoach/logs.py)
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": True,
                              "runtime_env": {"env_vars": env,
                                              "worker_process_setup_hook": "callcoach.logs.quiet_worker"},
                              # with the command's log routing, Ray's records go through it
                              "configure_logging": not logs.routed()}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=config.num_cpus or os.cpu_count(), include_dashboard=False, **kwargs)
    import ray.data     # configures Ray Data's own console logging: taken off just below

    logs.route_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def speech_fingerprint(speech: SpeechConfig) -> str:
    """What decides a transcript's content: models, diarization, language, decoding.
    Device, compute type and batch size are left out: they change speed, not the call."""
    m = speech.models
    doc = {"transcript_schema": TRANSCRIPT_SCHEMA, "asr": m.location(m.asr),
           "diarization": speech.diarization,
           "diarization_model": m.location(m.diarization) if m.diarization else None,
           "alignment": m.location(m.alignment) if m.alignment else None,
           "language": speech.language, "beam_size": speech.beam_size,
           "initial_prompt": speech.initial_prompt, "asr_method": ASR_METHOD,
           "two_party": speech.two_party}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _versions(config: RunConfig) -> tuple[str, str]:
    """(rule-set version, categories version); loading them here also fails fast, before
    any work starts, on a malformed rule or categories file."""
    rules, cats = load_rules(config.ruleset, config.categories)
    return rules.version, cats.version


def load_rules(ruleset_path: str | None, categories_path: str | None):
    """(RuleSet, Categories) from their files, or the defaults; the categories' acts are
    checked against the rule set (ValueError naming the file on a mismatch)."""
    from .coaching.rules import default_ruleset, load_ruleset
    from .insights.categories import default_categories, load_categories

    rules = load_ruleset(ruleset_path) if ruleset_path else default_ruleset()
    cats = load_categories(categories_path) if categories_path else default_categories()
    cats.check_acts(rules)
    return rules, cats


@dataclass
class Plan:
    transcribe: list[dict]
    rescore: list[dict]
    unchanged: list[dict]


# A failure at these stages depends on the input bytes alone: retrying the same bytes
# gives the same verdict, so an unchanged bad file is not re-read every night.
DETERMINISTIC_FAILURES = ("decode", "sidecar", "key", "import")


def plan(calls: list[dict], ledger: dict[str, Entry], fingerprint: str, ruleset_version: str,
         force: bool = False, categories_version: str | None = None,
         acts_model: str | None = None) -> Plan:
    p = Plan([], [], [])
    for c in calls:
        e = ledger.get(c["call_id"])
        same = e is not None and e.same_input(c["key"], c["etag"], c["size"])
        if not force and same and e.status == "failed" and e.stage in DETERMINISTIC_FAILURES:
            p.unchanged.append(c)
        elif force or not same or e.status != "scored" or e.speech_fingerprint != fingerprint:
            p.transcribe.append(c)
        elif e.ruleset_version != ruleset_version or (
                categories_version is not None and e.categories_version != categories_version) or (
                acts_model is not None and e.acts_model != acts_model):
            p.rescore.append(dict(c, entry=json.dumps(dataclasses.asdict(e))))
        else:
            p.unchanged.append(c)
    return p


SCORE_BATCH = 64      # calls per Score batch (one columnar scoring pass)


def _execute(config: RunConfig, out_uri: str | Store, transcribe: list[dict], rescore: list[dict],
             fingerprint: str, run_id: str, *, isolate: bool = False) -> Iterator[dict]:
    """Stream every planned call through the stages; yields one row per call that came out.

    A worker that dies under a call (killed, out of memory) is restarted and its task
    retried, at most max_task_retries times; a task that still kills its worker is dropped
    from the stream rather than failing the run (max_errored_blocks), with every call in
    it.  ``isolate``: one call per task and one task at a time per actor, so a call that
    keeps killing its worker takes no other call with it (run() re-runs dropped calls so)."""
    import ray

    init_ray(config)
    ray.data.DataContext.get_current().max_errored_blocks = -1
    retry = {"max_restarts": -1, "max_task_retries": max(0, config.max_task_retries)}
    in_flight = {"max_tasks_in_flight_per_actor": 1} if isolate else {}

    def pool(**sizes):
        return ray.data.ActorPoolStrategy(**sizes, **in_flight)

    # Fixed-size CPU pools (not autoscaled): the same workers, so the same memory,
    # whether the run holds 100 calls or a million (scripts/bench/memory.py)
    parts = []
    if transcribe and config.input_kind == "transcripts":
        # existing transcripts: Score imports each file itself (ImportTranscript), like a
        # rescore reads a stored transcript; no audio, no speech actors
        blocks = len(transcribe) if isolate else min(2000, -(-len(transcribe) // SCORE_BATCH))
        parts.append(ray.data.from_items([_row(c, path="import") for c in transcribe],
                                         override_num_blocks=blocks))
    elif transcribe:
        # one call per block: speech is seconds per call, so blocks need no batching
        ds = ray.data.from_items(transcribe, override_num_blocks=min(len(transcribe), 1000))
        ds = ds.map(ReadDecode, fn_constructor_args=(config.input, config.max_duration_s,
                                                     config.max_call_memory_mb),
                    compute=pool(min_size=1, max_size=max(1, os.cpu_count() or 2)),
                    num_cpus=0.5, **retry)
        ds = ds.map(SpeechActor, fn_constructor_args=(out_uri, config.speech, config.call_timeout_s,
                                                      config.call_timeout_factor, config.pii),
                    compute=pool(size=config.speech_actors),
                    num_gpus=config.gpus_per_actor or None, num_cpus=config.cpus_per_actor, **retry)
        parts.append(ds)
    if rescore:
        # rescoring is milliseconds per call: blocks of about a Score batch
        blocks = len(rescore) if isolate else min(2000, -(-len(rescore) // SCORE_BATCH))
        # the Score actors read each stored transcript themselves (Score._read_stored)
        ds = ray.data.from_items([_row(c, path="rescore") for c in rescore], override_num_blocks=blocks)
        parts.append(ds)
    ds = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    # batch = block: a transcribed call (one per block) is scored and comes out as soon as
    # its speech is done, so progress (and ETA) moves call by call, while rescore blocks
    # (made above) still hold about SCORE_BATCH calls each; a fixed batch_size would hold
    # finished calls back until SCORE_BATCH of them had arrived.
    ds = ds.map_batches(Score, batch_size=None, batch_format="pyarrow",
                        fn_constructor_args=(out_uri, config.ruleset, fingerprint, run_id,
                                             config.pii, config.categories,
                                             config.input if config.input_kind == "transcripts" else None),
                        compute=pool(size=2), num_cpus=0.5, **retry)
    # each block as it comes (no prefetch: it would hold a finished call back until the
    # next one is ready)
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
        yield from batch.to_pylist()


def _stream(config: RunConfig, out_uri: str | Store, transcribe: list[dict], rescore: list[dict],
            fingerprint: str, run_id: str) -> Iterator[dict]:
    """_execute, then the calls it dropped once more, each alone (isolate=True): a task
    holds many calls and an actor runs several tasks, so one call that kills its worker
    on every retry drops its neighbours too.  Whatever is still missing gets a failure row
    (_with_lost_calls), so no call is ever silently lost."""
    seen: set[str] = set()
    for row in _execute(config, out_uri, transcribe, rescore, fingerprint, run_id):
        seen.add(row["call_id"])
        yield row
    again_t = [c for c in transcribe if c["call_id"] not in seen]
    again_r = [c for c in rescore if c["call_id"] not in seen]
    if again_t or again_r:
        log.warning("%d calls were dropped with a worker that died; running them again, "
                    "one at a time", len(again_t) + len(again_r))
        yield from _with_lost_calls(
            _execute(config, out_uri, again_t, again_r, fingerprint, run_id, isolate=True),
            again_t + again_r, config, run_id)


class _Results:
    """This run's results, folded in as they stream: each call's ledger entry replaces its
    old one at once, and its calls-table and insights rows are parsed into polars frames
    every CHUNK calls, so the driver holds columns, never a dict per call of the run."""

    CHUNK = 256

    def __init__(self, ledger: dict[str, Entry], pending_rows: dict[str, dict],
                 pending_insights: dict[str, dict]):
        self.ledger = ledger
        self.calls: list = []           # polars frames
        self.insights: list = []
        self._rows = list(pending_rows.values())
        self._ins = list(pending_insights.values())
        self.ok = dict.fromkeys(pending_rows, True)   # call_id -> its last result was ok
        self.count = 0

    def add(self, r: dict) -> None:
        entry = Entry(**json.loads(r["entry"]))
        self.ledger[entry.call_id] = entry
        self.count += 1
        self.ok[entry.call_id] = r["status"] == "ok"
        if r["status"] == "ok":
            self._rows.append(json.loads(r["table_row"]))
            self._ins.append(json.loads(r["insight_row"]))
            if len(self._rows) >= self.CHUNK:
                self._flush()

    def _flush(self) -> None:
        from .insights.tables import insights_frame
        from .tables import calls_frame

        if self._rows:
            self.calls.append(calls_frame(self._rows))
            self._rows = []
        if self._ins:
            self.insights.append(insights_frame(self._ins))
            self._ins = []

    def frames(self):
        """(calls rows, insights rows) of the calls whose last result is ok: one each."""
        import polars as pl

        from .insights.tables import INSIGHT_COLUMNS
        from .tables import CALL_COLUMNS

        self._flush()
        keep = sorted(cid for cid, ok in self.ok.items() if ok)

        def one(frames, schema):
            if not frames or not keep:
                return pl.DataFrame(schema=schema)
            df = pl.concat(frames, how="vertical_relaxed")
            return df.unique("call_id", keep="last", maintain_order=True) \
                .filter(pl.col("call_id").is_in(keep))

        return one(self.calls, CALL_COLUMNS), one(self.insights, INSIGHT_COLUMNS)


def _finish(out_store: Store, results: _Results, config: RunConfig,
            commit: dict[str, str] | None = None) -> dict:
    """Fold this run's results into the tables (one Delta commit per table, carrying
    ``commit``: run_id, rule set...) and commit the ledger.  Returns the tables written."""
    import polars as pl

    from .insights.tables import INSIGHT_COLUMNS, build_tables
    from .tables import CALL_COLUMNS, failures_frame, read_table, write_table, write_tables

    ledger = results.ledger
    new_calls, new_insights = results.frames()
    failed_ids = {cid for cid, e in ledger.items() if e.status != "scored"}
    drop = sorted(set(new_calls["call_id"].to_list()) | failed_ids)
    calls = read_table(out_store, "calls", CALL_COLUMNS)
    if drop:
        calls = calls.filter(~pl.col("call_id").is_in(drop))
    if new_calls.height:
        calls = pl.concat([calls, new_calls], how="vertical_relaxed")
    calls = calls.sort("call_id")
    failures = failures_frame([{"call_id": e.call_id, "source_key": e.source_key, "stage": e.stage,
                                "reason": e.reason, "size_bytes": e.size, "etag": e.etag}
                               for e in sorted(ledger.values(), key=lambda e: e.call_id)
                               if e.status != "scored"])
    write_tables(out_store, calls, failures, metadata=commit)

    insights = read_table(out_store, "insights", INSIGHT_COLUMNS)
    if drop:
        insights = insights.filter(~pl.col("call_id").is_in(drop))
    if new_insights.height:
        insights = pl.concat([insights, new_insights], how="vertical_relaxed")
    tables = {"calls": calls, "failures": failures,
              **build_tables(insights, calls, as_of=config.as_of)}
    for name, df in tables.items():
        if name not in ("calls", "failures"):
            write_table(out_store, name, df, metadata=commit)
    ledger_mod.commit(out_store, ledger)
    return tables


def run(config: RunConfig, progress=None, *, rescore_only: bool = False, force: bool = False
        ) -> RunSummary:
    """Process every call under ``config.input`` that is new or changed (or, with
    ``rescore_only``, re-score every stored transcript under ``config.output``)."""
    started = time.perf_counter()
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + os.urandom(3).hex()
    out_store = output_store(config)
    importing = config.input_kind == "transcripts"
    fingerprint = IMPORT_FINGERPRINT if importing else speech_fingerprint(config.speech)
    ruleset_version, categories_version = _versions(config)
    from .coaching.acts import load_act_model
    acts_version = load_act_model().version      # fails fast on a missing or corrupt model
    preflight(config, out_store, rescore_only)
    if hasattr(out_store, "remove_temp_files"):   # local: temp files of killed writes
        out_store.remove_temp_files()
    ledger, pending_rows, pending_insights = ledger_mod.load(out_store)

    if rescore_only:
        calls = _stored_transcripts(out_store, ledger)
        the_plan = Plan([], [], [])
        for c in calls:
            e = ledger.get(c["call_id"])
            if force or e is None or e.ruleset_version != ruleset_version \
                    or e.categories_version != categories_version or e.acts_model != acts_version:
                the_plan.rescore.append(c)
            else:
                the_plan.unchanged.append(c)
    skipped: list[dict] = []
    if not rescore_only:
        lister = list_transcript_files if importing else list_calls
        calls = lister(open_store(config.input), config.limit, config.since, config.prefix,
                       skipped=skipped)
        both = _disambiguate(calls + skipped, ledger)
        calls, skipped = both[:len(calls)], both[len(calls):]
        the_plan = plan(calls, ledger, fingerprint, ruleset_version, force, categories_version,
                        acts_version)

    summary = RunSummary(run_id=run_id, calls=len(calls), unchanged=len(the_plan.unchanged),
                         ruleset_version=ruleset_version, pii_config=config.pii.describe())
    _record_skipped(skipped, ledger, summary, run_id)
    log.info("run %s: %d calls: %d to transcribe, %d to re-score, %d unchanged", run_id,
             len(calls), len(the_plan.transcribe), len(the_plan.rescore), len(the_plan.unchanged))
    results = _Results(ledger, pending_rows, pending_insights)
    todo = len(the_plan.transcribe) + len(the_plan.rescore)
    if todo:
        for out in _stream(config, out_store, the_plan.transcribe, the_plan.rescore,
                           fingerprint, run_id):
            results.add(out)
            if out["status"] == "ok":
                summary.scored += 1
                timings = json.loads(out["timings"])
                for kind, n in json.loads(out["pii"] or "{}").items():
                    summary.pii_redacted[kind] = summary.pii_redacted.get(kind, 0) + n
                if out["path"] == "import":
                    summary.imported += 1
                elif out["path"] == "transcribe":
                    summary.transcribed += 1
                    summary.audio_s += float(out["duration_s"])
                    summary.asr_s += timings.get("asr_s", 0.0)
                    summary.diarize_s += timings.get("diarize_s", 0.0)
                else:
                    summary.rescored += 1
            else:
                summary.failed += 1
                summary.failures.append({"call_id": out["call_id"], "source_key": out["key"],
                                         "stage": out["stage"], "reason": out["error"]})
            if progress:
                progress(results.count, todo, out)
    commit = {"run_id": run_id, "command": "rescore" if rescore_only else "score",
              "ruleset_version": ruleset_version, "categories_version": categories_version}
    tables = _finish(out_store, results, config, commit)
    summary.wall_s = time.perf_counter() - started
    doc = json.dumps(summary.to_dict(), indent=1).encode()
    out_store.write(f"runs/{run_id}.json", doc, "application/json")
    out_store.write("runs/latest.json", doc, "application/json")
    _write_dashboards(out_store, tables, summary)
    return summary


def _write_dashboards(out_store: Store, tables: dict, summary: RunSummary) -> None:
    """The supervisor's pages: runs/<run_id>/dashboard.html and dashboard.html (latest).
    A page that cannot be written is logged, never fails a run whose tables are committed."""
    from .dashboard import write_dashboards

    try:
        write_dashboards(out_store, tables, summary.to_dict())
    except Exception:
        log.exception("could not write the dashboard")


def _record_skipped(skipped: list[dict], ledger: dict[str, Entry], summary: RunSummary,
                    run_id: str) -> None:
    """Input keys that are not read (hidden, '..'): counted in the summary every run, and
    one failure row each (a ledger entry, stage "key"); a new one counts as failed once."""
    for c in skipped:
        summary.skipped += 1
        log.warning("input %r not read: %s", c["key"], c["reason"])
        e = ledger.get(c["call_id"])
        if e is not None and e.status == "failed" and e.stage == "key" \
                and e.same_input(c["key"], c["etag"], c["size"]):
            continue
        ledger[c["call_id"]] = Entry(call_id=c["call_id"], source_key=c["key"], etag=c["etag"],
                                     size=int(c["size"]), status="failed", stage="key",
                                     reason=c["reason"], run_id=run_id)
        summary.failed += 1
        summary.failures.append({"call_id": c["call_id"], "source_key": c["key"],
                                 "stage": "key", "reason": c["reason"]})


def _with_lost_calls(rows: Iterator[dict], planned: list[dict], config: RunConfig,
                     run_id: str) -> Iterator[dict]:
    """The stream's rows, then a failure row for every planned call the stream dropped
    (its worker died under it on every retry), so no call is ever silently lost."""
    seen = set()
    for row in rows:
        seen.add(row["call_id"])
        yield row
    reason = (f"lost: the worker processing this call died {config.max_task_retries + 1} "
              "times (killed, e.g. for running out of memory); it is retried next run")
    for c in planned:
        if c["call_id"] in seen:
            continue
        log.error("call %s lost: %s", c["call_id"], reason)
        row = _failed(_row(c), "worker", reason)
        entry = Entry(call_id=row["call_id"], source_key=row["key"], etag=row["etag"],
                      size=int(row["size"]), status="failed", stage="worker", reason=reason,
                      run_id=run_id)
        yield dict(row, entry=json.dumps(dataclasses.asdict(entry)))


def _disambiguate(calls: list[dict], ledger: dict[str, Entry]) -> list[dict]:
    """Stable, unique call_ids across runs.  An input key the ledger knows keeps the
    call_id it was given (even when a new file with the same name now makes its listed id
    a hashed one), so it is never processed twice under two ids; a call_id already taken
    by another input key (the same file name in another day's folder, say) gets a hash of
    its own key, so it never overwrites the earlier call."""
    known: dict[str, str] = {}
    for cid, e in sorted(ledger.items()):
        if e.source_key:
            known.setdefault(e.source_key, cid)
    out, used = [], set()
    for c in calls:
        cid = c["call_id"]
        e = ledger.get(cid)
        if c["key"] in known and (e is None or e.source_key != c["key"]):
            cid = known[c["key"]]            # the id this input was given before
            e = ledger.get(cid)
        if (e is not None and e.source_key and e.source_key != c["key"]) or cid in used:
            cid = f"{cid}-{hashlib.sha256(c['key'].encode()).hexdigest()[:10]}"
        used.add(cid)
        out.append(dict(c, call_id=cid) if cid != c["call_id"] else c)
    return out


def _stored_transcripts(store: Store, ledger: dict[str, Entry]) -> list[dict]:
    calls = []
    for obj in store.list(TRANSCRIPTS, (".json",)):
        call_id = obj.key.rsplit("/", 1)[-1][: -len(".json")]
        e = ledger.get(call_id)
        calls.append({"key": e.source_key if e else "", "call_id": call_id,
                      "size": e.size if e else 0, "etag": e.etag if e else "",
                      # a day's last resort, for transcripts made before they recorded the
                      # recording's last-modified time (tables.call_start)
                      "modified": float(obj.modified or 0.0), "modified_source": "transcript_mtime",
                      "entry": json.dumps(dataclasses.asdict(e)) if e else ""})
    return sorted(calls, key=lambda c: c["call_id"])
