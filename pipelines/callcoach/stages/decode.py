"""CPU stages that bring a call in: its audio (read + decode), an existing transcript
(score-transcripts) or its stored transcript (rescore)."""

from __future__ import annotations

import dataclasses
import json
import logging

from ..audio import Audio, AudioError, SAMPLE_RATE, decode
from ..pii import PiiConfig, redact_text
from ..planning import TRANSCRIPTS, sidecar_key, transcript_sidecar_key
from ..storage import Store, open_store, safe_key
from . import _as_store
from .rows import _failed, _ok, _row

log = logging.getLogger("callcoach")


class ImportTranscript:
    """Read one existing transcript file (+ its NAME.meta.json sidecar) into the row, as
    the transcript the speech stage would have made; Score reads with it."""

    def __init__(self, input_uri: str | Store):
        self.store = _as_store(input_uri)

    def __call__(self, row: dict) -> dict:
        from ..importers import TranscriptImportError, parse_transcript

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
                       audio={"source_rate": audio.source_rate, "codec": audio.codec,
                              "sha256": audio.sha256})
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
