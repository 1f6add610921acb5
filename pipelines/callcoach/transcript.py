"""The transcript artifact: turns, words and speakers of one call.

Written once per call by the speech stage and reused by every later rescoring, so it
carries everything the scorer needs and the versions of the models that made it.

Schema (``schema_version`` 1):

    {
      "schema": "callcoach.transcript",
      "schema_version": "1",
      "call_id": str,
      "duration_s": float,              # length of the audio
      "language": str | null,
      "models": {"asr": str, "diarization": str,        # name@version of every model used;
                 "alignment": str (when word times come from wav2vec2 forced alignment), ...},
      "audio": {"sample_rate": int, "channels": int, "layout": "mono"|"stereo", "sha256": str},
      "metadata": {agent_id, team, started_at, agent_channel, ...},   # from the sidecar
      "roles": {"labels": {DIARIZATION_LABEL: "agent"|"customer"},
                "by_role": {"agent": [LABEL...], "customer": [...]},
                "confidence": 0..1, "method": "sidecar"|"content"|"first_speaker",
                "diarization_backend": "channels"|"embedded"|"pyannote"},
      "turns": [{"speaker": "agent"|"customer", "start": s, "end": s, "text": str,
                 "words": [{"w": str, "start": s, "end": s, "p": 0..1}]}],
      "features": {...} | absent,    # rule-independent coaching features (sentence
                                     # similarities to the act bank), computed once by the
                                     # speech stage; see pipelines/callcoach/coaching/features.py
      "decoding": {"method": str,    # how the ASR ran (pipelines/callcoach/speech/asr.py METHOD)
                   "prompt": str | null} | absent   # Whisper's prompt for this call
    }

Times are seconds from the start of the audio.  Turns are sorted by start; turns of
different speakers may overlap (both recorded as speaking), turns of one speaker never do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

SCHEMA = "callcoach.transcript"
SCHEMA_VERSION = "1"
ROLES = ("agent", "customer")


@dataclass(frozen=True, slots=True)
class Word:
    w: str
    start: float
    end: float
    p: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"w": self.w, "start": round(self.start, 3), "end": round(self.end, 3),
                "p": round(self.p, 3)}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Word":
        return Word(str(d["w"]), float(d["start"]), float(d["end"]), float(d.get("p", 1.0)))


@dataclass(frozen=True, slots=True)
class Turn:
    speaker: str          # "agent" | "customer" (or a diarization label before roles)
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    def to_dict(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "start": round(self.start, 3),
                "end": round(self.end, 3), "text": self.text,
                "words": [w.to_dict() for w in self.words]}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Turn":
        return Turn(str(d["speaker"]), float(d["start"]), float(d["end"]), str(d.get("text", "")),
                    tuple(Word.from_dict(w) for w in d.get("words", ())))


@dataclass(frozen=True, slots=True)
class Transcript:
    call_id: str
    duration_s: float
    turns: tuple[Turn, ...]
    models: Mapping[str, str] = field(default_factory=dict)
    language: str | None = None
    audio: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    roles: Mapping[str, Any] = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION
    features: Mapping[str, Any] | None = None
    decoding: Mapping[str, Any] = field(default_factory=dict)

    def speech_time(self, speaker: str) -> float:
        """Seconds of speech of one speaker (sum of its turn durations)."""
        return sum(t.duration for t in self.turns if t.speaker == speaker)

    def with_turns(self, turns: Iterable[Turn]) -> "Transcript":
        return replace(self, turns=tuple(sorted(turns, key=lambda t: (t.start, t.end))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": self.schema_version,
            "call_id": self.call_id,
            "duration_s": round(self.duration_s, 3),
            "language": self.language,
            "models": dict(self.models),
            "audio": dict(self.audio),
            "metadata": dict(self.metadata),
            "roles": dict(self.roles),
            "turns": [t.to_dict() for t in self.turns],
            **({"features": dict(self.features)} if self.features else {}),
            **({"decoding": dict(self.decoding)} if self.decoding else {}),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1).encode("utf-8")

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Transcript":
        if d.get("schema", SCHEMA) != SCHEMA:
            raise ValueError(f"not a callcoach transcript: schema={d.get('schema')!r}")
        version = str(d.get("schema_version", SCHEMA_VERSION))
        if version.split(".")[0] != SCHEMA_VERSION:
            raise ValueError(f"unsupported transcript schema_version {version!r} "
                             f"(this build reads {SCHEMA_VERSION})")
        return Transcript(
            call_id=str(d["call_id"]),
            duration_s=float(d["duration_s"]),
            turns=tuple(Turn.from_dict(t) for t in d.get("turns", ())),
            models=dict(d.get("models", {})),
            language=d.get("language"),
            audio=dict(d.get("audio", {})),
            metadata=dict(d.get("metadata", {})),
            roles=dict(d.get("roles", {})),
            schema_version=version,
            features=d.get("features") or None,
            decoding=dict(d.get("decoding") or {}),
        )

    @staticmethod
    def from_json(data: bytes | str) -> "Transcript":
        return Transcript.from_dict(json.loads(data))
