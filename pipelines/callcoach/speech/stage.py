"""The speech stage: decoded audio in, transcript artifact out.

    audio -> diarize (speaker regions, overlaps kept) -> one clip per speaker region
          (its own channel on stereo) -> batched Whisper with word timings
          -> roles (agent / customer) -> Transcript

One ``SpeechStage`` holds its models for its whole life (one per Ray actor).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Mapping

from ..audio import SAMPLE_RATE, Audio
from ..models import ModelConfig
from ..transcript import Transcript, Turn
from .asr import METHOD, AsrConfig, Clip, Transcriber, call_prompt, split_long
from .roles import assign_roles

MERGE_GAP_S = 0.8     # same-speaker segments closer than this, uninterrupted, form one turn
PAD_S = 0.15          # context around each region for the recogniser


@dataclass(frozen=True, slots=True)
class SpeechConfig:
    models: ModelConfig = field(default_factory=ModelConfig)
    diarization: str = "auto"          # auto | channels | embedded | pyannote
    device: str = "auto"
    compute_type: str = "auto"
    batch_size: int = 8
    beam_size: int = 5
    language: str | None = "en"
    initial_prompt: str | None = None  # deployment-wide context for Whisper; the sidecar's
                                       # company and vocabulary add to it per call (call_prompt)
    cpu_threads: int = 0               # CPU inference threads; 0: every core of the node
    two_party: bool = True             # contact-centre calls: agent + customer


@dataclass(frozen=True, slots=True)
class Region:
    speaker: str
    start: float
    end: float


def merge_regions(segments, merge_gap: float = MERGE_GAP_S) -> list[Region]:
    """Join one speaker's segments into turns unless another speaker talks in between."""
    segs = sorted(segments, key=lambda s: (s.start, s.end))
    by_speaker: dict[str, list[Region]] = {}
    for s in segs:
        regions = by_speaker.setdefault(s.speaker, [])
        if regions:
            last = regions[-1]
            gap = s.start - last.end
            other_between = any(o.speaker != s.speaker and last.end <= o.start < s.start
                                for o in segs)
            if gap <= merge_gap and not other_between:
                regions[-1] = Region(s.speaker, last.start, max(last.end, s.end))
                continue
        regions.append(Region(s.speaker, s.start, s.end))
    return sorted((r for rs in by_speaker.values() for r in rs), key=lambda r: (r.start, r.end))


def cut_clips(audio: Audio, backend: str, regions: list[Region]) -> tuple[list[Clip], list[int]]:
    """The clips Whisper hears: each region (from its own channel when the ``channels``
    backend found it), with ``PAD_S`` of context, cut at quiet points when longer than a
    Whisper window; and for each clip the index of the region it came from."""
    clips: list[Clip] = []
    owners: list[int] = []
    n = audio.samples.shape[1]
    mono = None            # the mono mix, made once (a stereo mix is a pass over the call)
    for i, r in enumerate(regions):
        if backend == "channels" and r.speaker.startswith("CH"):
            signal = audio.samples[int(r.speaker[2:])]
        else:
            if mono is None:
                mono = audio.mono()
            signal = mono
        a = max(0, int((r.start - PAD_S) * SAMPLE_RATE))
        b = min(n, int((r.end + PAD_S) * SAMPLE_RATE))
        for clip in split_long(signal[a:b], a / SAMPLE_RATE):
            clips.append(clip)
            owners.append(i)
    return clips, owners


class SpeechStage:
    def __init__(self, config: SpeechConfig | None = None):
        from .diarize import make_diarizer

        self.config = config or SpeechConfig()
        mc = self.config.models
        # Ray caps OMP threads at the actor's CPU share; CPU inference wants the node's
        # cores (decode and scoring beside it are light).
        threads = self.config.cpu_threads or os.cpu_count() or 1
        try:
            import torch

            torch.set_num_threads(threads)
        except Exception:
            pass
        asr_dir = mc.local_dir(mc.asr)
        self.transcriber = Transcriber(AsrConfig(
            model_dir=str(asr_dir), device=self.config.device,
            compute_type=self.config.compute_type, batch_size=self.config.batch_size,
            beam_size=self.config.beam_size, language=self.config.language,
            initial_prompt=self.config.initial_prompt, cpu_threads=threads))
        # word timings by wav2vec2 forced alignment (WhisperX's method) when a model is
        # configured; faster-whisper's cross-attention timings otherwise
        self.aligner = None
        if mc.alignment:
            from .align import Aligner

            self.aligner = Aligner(str(mc.local_dir(mc.alignment)), device=self.transcriber.device)
        self._make_diarizer = make_diarizer
        self._diarizers: dict[str, object] = {}

    def diarizer(self, backend: str):
        if backend not in self._diarizers:
            mc = self.config.models
            # every backend takes two_party (embedded: exactly two speakers; pyannote: at
            # most two; channels: one party per channel); it shows in diarizer.version
            kwargs = {"device": self.transcriber.device, "two_party": self.config.two_party}
            if backend == "pyannote":
                if not mc.diarization:
                    raise ValueError("diarization backend 'pyannote' needs models.diarization")
                kwargs["model_dir"] = str(mc.local_dir(mc.diarization))
            self._diarizers[backend] = self._make_diarizer(backend, **kwargs)
        return self._diarizers[backend]

    def backend_for(self, audio: Audio) -> str:
        from .diarize import choose_backend

        configured = self.config.diarization
        if configured == "auto" and audio.channels == 1 and self.config.models.diarization:
            return "pyannote"
        return choose_backend(audio, configured)

    def __call__(self, audio: Audio, call_id: str, metadata: Mapping | None = None
                 ) -> tuple[Transcript, dict]:
        metadata = dict(metadata or {})
        timings: dict[str, float] = {}
        backend = self.backend_for(audio)
        diarizer = self.diarizer(backend)

        t0 = time.perf_counter()
        segments = diarizer(audio)
        timings["diarize_s"] = time.perf_counter() - t0
        regions = merge_regions(segments)

        clips, owners = cut_clips(audio, backend, regions)
        prompt = call_prompt(metadata, self.config.initial_prompt)
        t0 = time.perf_counter()
        words_per_clip, language = self.transcriber.transcribe(
            clips, groups=[regions[o].speaker for o in owners], prompt=prompt)
        timings["asr_s"] = time.perf_counter() - t0
        if self.aligner is not None:
            t0 = time.perf_counter()
            words_per_clip = [self.aligner.align(c.samples, c.start, ws)
                              for c, ws in zip(clips, words_per_clip)]
            timings["align_s"] = time.perf_counter() - t0

        words_per_region: list[list] = [[] for _ in regions]
        for owner, words in zip(owners, words_per_clip):
            words_per_region[owner].extend(words)
        raw_turns = []
        for r, words in zip(regions, words_per_region):
            if not words:
                continue   # speech activity Whisper heard no words in (noise, breath)
            raw_turns.append(Turn(r.speaker, round(r.start, 3), round(r.end, 3),
                                  " ".join(w.w for w in words), tuple(words)))

        assignment = assign_roles(raw_turns, metadata)
        turns = tuple(Turn(assignment.roles.get(t.speaker, "customer"), t.start, t.end, t.text,
                           t.words) for t in raw_turns)
        transcript = Transcript(
            call_id=call_id,
            duration_s=audio.duration_s,
            turns=tuple(sorted(turns, key=lambda t: (t.start, t.end))),
            models={"asr": self.transcriber.version, "diarization": diarizer.version,
                    **({"alignment": self.aligner.version} if self.aligner else {})},
            language=language,
            audio=audio.describe(),
            metadata=metadata,
            roles={**assignment.describe(), "diarization_backend": backend},
            decoding={"method": METHOD, "prompt": prompt},
        )
        return transcript, timings
