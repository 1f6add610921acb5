"""The speech stage: diarization + ASR + roles in actors that load the models once (GPU
when configured), under a per-call deadline; writes each call's transcript artifact."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import threading
import time
import traceback

import numpy as np

from ..audio import Audio, SAMPLE_RATE
from ..coaching.features import turn_features
from ..pii import PiiConfig, redact_text, redact_transcript
from ..planning import TRANSCRIPTS
from ..speech.stage import SpeechConfig
from . import _as_store
from .rows import _failed, _ok

log = logging.getLogger("callcoach")


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
    info = row["audio"]
    samples = np.frombuffer(row["pcm"], dtype=np.float32).reshape(int(row["channels"]), -1)
    return Audio(samples, SAMPLE_RATE, info["source_rate"], info["codec"], info["sha256"])


class SpeechActor:
    """GPU (or CPU) actor: diarization + ASR + roles; writes the transcript artifact."""

    def __init__(self, output_uri: str, speech: SpeechConfig, timeout_base_s: float = 120.0,
                 timeout_factor: float = 3.0, pii: PiiConfig | None = None):
        from ..coaching.features import get_encoder
        from ..speech.stage import SpeechStage

        self.store = _as_store(output_uri)
        self.stage = SpeechStage(speech)
        from ..coaching.acts import load_act_model
        # load the sentence encoder (the act model's, where it fine-tuned one) once per
        # actor, not on the first call
        get_encoder(load_act_model())
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
            return _ok(row, pcm=b"", transcript=data.decode("utf-8"), timings=timings,
                       pii=pii_counts)
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
