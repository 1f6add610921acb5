"""Speech recognition: Whisper (CTranslate2) in batches, with word timings.

The diarizer cuts a call into speaker regions first; each region (from its own channel on
stereo recordings) is a clip.  One speaker's clips, in time order, are packed with 0.4 s of
silence between them into windows of at most ``pack_s`` seconds, and the windows are decoded together in
batches by faster-whisper's ``BatchedInferencePipeline`` (the batched pipeline WhisperX
contributed upstream) with word timestamps from cross-attention alignment; each word goes
back to the clip (so the speaker, and on stereo calls the channel) its time falls in.

Packing matters: Whisper pads every window to 30 s, so one window per speaker turn made
the encoder do ~3x the work of the audio (scripts/bench/profile_speech.py measured 2.4x
the CPU time of packed windows on the sample and dev calls), and a lone 2 s turn gives
the decoder little context, so packed windows were also more accurate (WER 11.2 % vs
13.7 % over the same 8 files).  ``pack_s=0`` decodes one window per clip.

Spelled codes (ticket, case, policy and phone numbers said letter by letter) come out of
Whisper in whatever form it picks: ``S -V -7 -7 -0 -3``, ``7, 7, 0, 0, 9``, ``TL4471``.
``join_spelled`` writes them one way, letters apart and digit runs joined (``S V 7703``,
``07700900123``, ``T L 4471``), the form Whisper's English normaliser gives a spelled code
and the one the scorer, the PII redactor and ticket search expect.

A call can carry context for the decoder: ``call_prompt`` turns the sidecar's ``company``
and ``vocabulary`` (and the deployment's ``initial_prompt``) into Whisper's prompt, so the
brand and product names are spelled right (16 kHz dev calls: WER 13.6 % -> 12.4 %).

Models load once per ``Transcriber`` (one per Ray actor).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..audio import SAMPLE_RATE
from ..models import version_of
from ..transcript import Word

log = logging.getLogger(__name__)

MAX_CLIP_S = 28.0      # Whisper sees 30 s windows; leave room for padding
GAP_S = 0.4            # silence between clips in the batch buffer
COMPRESSION_RATIO_MAX = 2.4   # Whisper's own threshold for a repetition loop
# how clips become Whisper windows and words (part of the speech fingerprint); v2: windows in
# a repetition loop are decoded again; v3: per-call prompt from the sidecar, spelled codes
# written one way (join_spelled)
METHOD = "packed-by-speaker-v3"
REDO_MIN_S = 1.5         # a wordless clip shorter than this is not decoded again alone
PROMPT_MAX_CHARS = 600   # Whisper keeps the last 223 prompt tokens; a prompt is a hint, not a document


@dataclass(frozen=True, slots=True)
class AsrConfig:
    model_dir: str
    device: str = "auto"                 # auto | cpu | cuda
    compute_type: str = "auto"           # auto: int8 on CPU, float16 on CUDA
    batch_size: int = 8
    beam_size: int = 5
    language: str | None = "en"          # None: detect per call
    initial_prompt: str | None = None    # domain vocabulary, e.g. company and product names
    cpu_threads: int = 0                 # 0: let CTranslate2 decide
    pack_s: float = MAX_CLIP_S           # clips share Whisper windows up to this long; 0: one per clip


@dataclass(frozen=True, slots=True)
class Clip:
    """A piece of audio to transcribe and where it sits in the call."""
    samples: np.ndarray   # float32 mono at 16 kHz
    start: float          # seconds from the start of the call


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import ctranslate2
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:
        return "cpu"


class Transcriber:
    def __init__(self, config: AsrConfig):
        import faster_whisper
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self.config = config
        self.device = _resolve_device(config.device)
        self.compute_type = (config.compute_type if config.compute_type != "auto"
                             else ("float16" if self.device == "cuda" else "int8"))
        if not os.path.isfile(os.path.join(config.model_dir, "model.bin")):
            raise FileNotFoundError(f"no CTranslate2 Whisper model in {config.model_dir}")
        self.model = WhisperModel(config.model_dir, device=self.device,
                                  compute_type=self.compute_type,
                                  cpu_threads=config.cpu_threads)
        self.pipeline = BatchedInferencePipeline(self.model)
        name = os.path.basename(os.path.normpath(config.model_dir))
        self.version = (f"faster-whisper-{faster_whisper.__version__}:{name}"
                        f"@{version_of(config.model_dir)}:{self.compute_type}")

    def transcribe(self, clips: Sequence[Clip], groups: Sequence[object] | None = None,
                   prompt: str | None = None) -> tuple[list[list[Word]], str | None]:
        """Words of every clip (times in call seconds), and the language used.

        ``groups`` (one per clip, e.g. the speaker): clips of one group share Whisper
        windows, in time order, and a window never mixes groups, so Whisper hears one voice
        at a time with that voice's earlier turns as context (WER over the 8 dev calls
        14.6 % by speaker vs 17.1 % in call order).  ``prompt``: Whisper's prompt for this
        call (``call_prompt``); the configured ``initial_prompt`` when None."""
        if not clips:
            return [], self.config.language
        order = list(range(len(clips)))
        if groups is not None:
            if len(groups) != len(clips):
                raise ValueError("one group per clip")
            keys = {g: i for i, g in reversed(list(enumerate(groups)))}   # first appearance
            order.sort(key=lambda i: (keys[groups[i]], clips[i].start))
        ordered = [clips[i] for i in order]
        buffer, spans, windows = pack(ordered, self.config.pack_s,
                                      None if groups is None else [groups[i] for i in order])
        prompt = prompt if prompt is not None else self.config.initial_prompt
        segments, language = self._decode(buffer, windows, initial_prompt=prompt)
        # Whisper can copy its prompt instead of transcribing ("Harbour Bank customer
        # service call." for every agent turn of a held-out call): a window whose text
        # holds a sentence of the prompt is decoded again without it.
        window_of = _windows_of(segments, windows)
        echoed = sorted({w for seg, w in zip(segments, window_of) if _echoes(seg.text, prompt)})
        if echoed:
            log.info("prompt copied in %d of %d Whisper windows: decoded again without it",
                     len(echoed), len(windows))
            redo, _ = self._decode(buffer, [windows[i] for i in echoed], initial_prompt=None)
            segments = [seg for seg, w in zip(segments, window_of) if w not in echoed] + redo
            window_of = _windows_of(segments, windows)
        # Whisper can fall into a repetition loop ("then, then, then, ..." over a spelled
        # number): the batched pipeline has no temperature fallback, so a window whose
        # text compresses too well is decoded again with repeated 3-grams forbidden
        # (deterministic, unlike sampling at a higher temperature).
        looping = sorted({w for seg, w in zip(segments, window_of)
                          if seg.compression_ratio > COMPRESSION_RATIO_MAX})
        if looping:
            log.info("repetition loop in %d of %d Whisper windows: decoded again",
                     len(looping), len(windows))
            redo = []
            for with_prompt in (True, False):
                part = [i for i in looping if (i not in echoed) == with_prompt]
                if part:
                    redo += self._decode(buffer, [windows[i] for i in part],
                                         initial_prompt=prompt if with_prompt else None,
                                         no_repeat_ngram_size=3)[0]
            segments = [seg for seg, w in zip(segments, window_of) if w not in looping] + redo
        placed: list[list[Word]] = [[] for _ in clips]
        _place(segments, spans, placed)
        # Whisper can also end a window early (end-of-text after its first turns, more
        # often with a prompt): clips of a window that got no word at all are decoded
        # again, each alone and without the prompt, and keep what that finds.  Only clips
        # of REDO_MIN_S or more: a short wordless clip is mostly a breath or the other
        # party's bleed, and Whisper alone on it invents a sentence (pyannote's sample:
        # "I don't know why I move." in 0.4 s of cross-talk).
        silent = [k for k, words in enumerate(placed)
                  if not words and spans[k][1] - spans[k][0] >= REDO_MIN_S]
        if silent:
            log.info("%d of %d clips got no words: decoded again alone", len(silent), len(spans))
            redo, _ = self._decode(buffer, [spans[k][:2] for k in silent], initial_prompt=None)
            _place(redo, spans, placed, only=set(silent))
        out: list[list[Word]] = [[] for _ in clips]
        for pos, i in enumerate(order):
            out[i] = join_spelled(placed[pos])
        return out, language

    def _decode(self, buffer: np.ndarray, windows: list[tuple[float, float]], **options):
        segments, info = self.pipeline.transcribe(
            buffer,
            language=self.config.language,
            task="transcribe",
            beam_size=self.config.beam_size,
            batch_size=self.config.batch_size,
            word_timestamps=True,
            without_timestamps=True,
            clip_timestamps=[{"start": s, "end": e} for s, e in windows],
            vad_filter=False,
            log_progress=False,
            **options,
        )
        return list(segments), info.language


def call_prompt(metadata: Mapping[str, Any] | None, base: str | None = None) -> str | None:
    """Whisper's prompt for one call: "<company> customer service call." from the sidecar's
    ``company``, then the deployment's ``base`` prompt, then the sidecar's ``vocabulary``
    (a list of terms or one string).  Values of the wrong type are ignored; None when
    there is nothing to say."""
    metadata = metadata or {}
    parts: list[str] = []
    company = metadata.get("company")
    if isinstance(company, str) and company.strip():
        parts.append(f"{_clean(company)} customer service call.")
    if base and base.strip():
        parts.append(_clean(base))
    vocabulary = metadata.get("vocabulary")
    if isinstance(vocabulary, str):
        vocabulary = [vocabulary]
    if isinstance(vocabulary, (list, tuple)):
        terms = [_clean(v) for v in vocabulary if isinstance(v, str) and v.strip()]
        if terms:
            parts.append(", ".join(terms) + ".")
    prompt = " ".join(parts)
    if len(prompt) > PROMPT_MAX_CHARS:
        prompt = prompt[:PROMPT_MAX_CHARS].rsplit(" ", 1)[0]
    return prompt or None


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


_CODE_TOKEN = re.compile(r"([A-Z]{1,4})(\d{3,})")   # Whisper's glued form: TL4471, GLSV4218
_TRAIL = ",.;:?!"


def _core(text: str) -> tuple[str, str]:
    """(the word without a leading hyphen and trailing punctuation, that punctuation)."""
    stripped = text.rstrip(_TRAIL)
    return stripped.lstrip("-"), text[len(stripped):]


def join_spelled(words: Sequence[Word]) -> list[Word]:
    """Spelled codes written one way: letters apart, digit runs joined.

    A run is consecutive words that are each one capital letter or one digit (Whisper's
    "-V" hyphens and "7," commas allowed between them; other punctuation ends it) with at
    least one digit and three items, and at least four digits when it has no letter; "I"
    and "A" never start one.  "1, 2, 3" and "plan B" are left alone.  A glued code
    ("TL4471": up to four capitals then three or more digits) is split into its letters
    and its number first, its time shared by character count.  Punctuation that ends a
    run stays on its last word."""
    split: list[Word] = []
    for w in words:
        core, trail = _core(w.w)
        m = _CODE_TOKEN.fullmatch(core)
        if not m:
            split.append(w)
            continue
        pieces = list(m.group(1)) + [m.group(2)]
        step = (w.end - w.start) / len(core)
        t = w.start
        for k, piece in enumerate(pieces):
            end = w.end if k == len(pieces) - 1 else round(t + step * len(piece), 3)
            split.append(Word(piece + (trail if k == len(pieces) - 1 else ""), round(t, 3), end, w.p))
            t = end
    out: list[Word] = []
    i, n = 0, len(split)
    while i < n:
        j = i
        while j < n:
            core, trail = _core(split[j].w)
            item = len(core) == 1 and (core.isdigit() or ("A" <= core <= "Z"))
            if not item or (j == i and core in ("I", "A")):
                break
            j += 1
            if trail not in ("", ","):
                break
        run = split[i:j]
        cores = [_core(w.w)[0] for w in run]
        digits = sum(c.isdigit() for c in cores)
        letters = len(cores) - digits
        if len(run) >= 3 and digits and (letters or digits >= 4):
            end_trail = _core(run[-1].w)[1]
            joined: list[Word] = []
            for w, c in zip(run, cores):
                if c.isdigit() and joined and joined[-1].w.isdigit():
                    last = joined[-1]
                    joined[-1] = Word(last.w + c, last.start, w.end, min(last.p, w.p))
                else:
                    joined.append(Word(c, w.start, w.end, w.p))
            last = joined[-1]
            joined[-1] = Word(last.w + end_trail, last.start, last.end, last.p)
            out += joined
            i = j
        else:
            out.append(split[i])
            i += 1
    return out


def _words_of(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def _echoes(text: str, prompt: str | None) -> bool:
    """Whether decoded ``text`` holds a sentence of the ``prompt`` (of 3+ words) verbatim:
    Whisper copying its context instead of transcribing."""
    if not prompt:
        return False
    said = f" {_words_of(text)} "
    return any(len(sentence.split()) >= 3 and f" {sentence} " in said
               for sentence in (_words_of(part) for part in re.split(r"[.!?]", prompt)))


def _place(segments, spans: list[tuple[float, float, float]], placed: list[list[Word]],
           only: set[int] | None = None) -> None:
    """Each decoded word into the clip its time falls in (times in call seconds); with
    ``only``, words falling in other clips are dropped."""
    starts = np.array([s for s, _, _ in spans])
    for seg in segments:
        if seg.no_speech_prob > 0.6 and seg.avg_logprob < -1.0:
            continue   # Whisper's own "this is not speech" verdict: drop hallucinations
        for w in seg.words or ():
            mid = (w.start + w.end) / 2
            i = int(np.clip(np.searchsorted(starts, mid, side="right") - 1, 0, len(spans) - 1))
            if only is not None and i not in only:
                continue
            b0, b1, offset = spans[i]
            start = min(max(w.start, b0), b1) - b0 + offset
            end = min(max(w.end, b0), b1) - b0 + offset
            text = w.word.strip()
            if text:
                placed[i].append(Word(text, round(float(start), 3), round(float(max(end, start)), 3),
                                      round(float(w.probability), 3)))


def _windows_of(segments, windows: list[tuple[float, float]]) -> list[int]:
    """For each decoded segment, the index of the window it came from (by its midpoint)."""
    starts = np.array([a for a, _ in windows])
    mids = np.array([(seg.start + seg.end) / 2 for seg in segments])
    return [max(0, int(i) - 1) for i in np.searchsorted(starts, mids, side="right")]


def pack(clips: Sequence[Clip], pack_s: float = MAX_CLIP_S, groups: Sequence[object] | None = None
         ) -> tuple[np.ndarray, list[tuple[float, float, float]], list[tuple[float, float]]]:
    """Lay the clips end to end (``GAP_S`` of silence after each) in one buffer.

    Returns the buffer, each clip's span ``(buffer start, buffer end, call offset)`` in
    seconds, and the Whisper windows ``(buffer start, buffer end)``: consecutive clips
    joined while the window stays within ``pack_s`` (every clip its own window when
    ``pack_s`` is 0), never across a change of ``groups``.  A clip longer than
    ``MAX_CLIP_S`` is cut to it (``split_long`` cuts regions before they get here)."""
    pieces: list[np.ndarray] = []
    spans: list[tuple[float, float, float]] = []
    windows: list[list[float]] = []
    pos = 0
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)
    for k, clip in enumerate(clips):
        samples = np.asarray(clip.samples[: int(MAX_CLIP_S * SAMPLE_RATE)], dtype=np.float32)
        s0, s1 = pos / SAMPLE_RATE, (pos + len(samples)) / SAMPLE_RATE
        same = groups is None or (k > 0 and groups[k] == groups[k - 1])
        if windows and same and pack_s > 0 and s1 - windows[-1][0] <= pack_s:
            windows[-1][1] = s1
        else:
            windows.append([s0, s1])
        spans.append((s0, s1, clip.start))
        pieces += [samples, gap]
        pos += len(samples) + len(gap)
    return np.concatenate(pieces), spans, [(a, b) for a, b in windows]


def split_long(samples: np.ndarray, start: float, max_s: float = MAX_CLIP_S) -> list[Clip]:
    """Cut a region longer than Whisper's window at its quietest points."""
    n_max = int(max_s * SAMPLE_RATE)
    if len(samples) <= n_max:
        return [Clip(samples, start)]
    clips: list[Clip] = []
    pos = 0
    frame = SAMPLE_RATE // 50   # 20 ms
    while len(samples) - pos > n_max:
        # search the last third of the window for the quietest 20 ms frame
        lo, hi = pos + (2 * n_max) // 3, pos + n_max
        window = samples[lo:hi]
        k = len(window) // frame
        energy = (window[: k * frame].reshape(k, frame) ** 2).mean(axis=1)
        cut = lo + int(np.argmin(energy)) * frame + frame // 2
        clips.append(Clip(samples[pos:cut], start + pos / SAMPLE_RATE))
        pos = cut
    clips.append(Clip(samples[pos:], start + pos / SAMPLE_RATE))
    return clips
