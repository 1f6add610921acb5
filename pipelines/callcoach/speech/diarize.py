"""Speaker diarization behind one interface: who speaks when.

Backends (``make_diarizer(name)``):

``channels``
    Stereo call-centre recordings, one party per channel (labels ``CH0``, ``CH1``).
    Silero VAD per channel (onset 0.40 / offset 0.25: narrow-band speech scores lower);
    crosstalk/bleed is removed by comparing per-frame energies of the two channels (after
    compensating each channel's own speech level): a frame counts for a channel only
    where it is not ``bleed_db`` quieter than the other.  Frames where both channels carry
    their own speech stay on both: overlap is kept.  Pauses under 0.5 s inside one
    channel are closed; edges are tightened to the signal energy (10 ms).

``embedded``
    Mono recordings, offline on CPU with models that ship inside PyPI wheels: silero VAD
    (faster-whisper), resemblyzer d-vectors on <= 1.6 s windows inside speech runs (short
    windows tiled to 1.6 s) plus each window's pitch, spectral clustering of call-centred
    embeddings with a two-party prior (``two_party=True``: exactly two speakers;
    otherwise the count is estimated from voice and pitch differences, or fixed by
    ``num_speakers``), a 10 ms Viterbi resegmentation whose switch cost falls with the
    pause length, and (when the whisperx wheel is installed) overlapped-speech detection
    with the pyannote segmentation model in that wheel: in overlap frames the second
    speaker is added, so interruptions survive in mono.  Its thresholds are one frozen
    ``EmbeddedDiarizerConfig`` (``config=``); a call's diagnostics (speaker count, pitch
    split, overlap seconds ...) go to the ``hook`` passed to that call.

``pyannote``
    pyannote.audio's ``SpeakerDiarization`` pipeline loaded from a local directory
    (``config.yaml`` + ``segmentation/`` + ``embedding/`` (+ ``plda/``)); GPU when
    ``device="cuda"``.  Decoded waveforms are passed in memory (no second decode).  Both
    the regular (overlapping) and the exclusive (one speaker at a time) outputs are kept:
    ``__call__`` returns the regular one (``use_exclusive``: the exclusive one),
    ``diarize_both`` gives both; like the embedded backend it keeps no per-call state.

Every backend accepts ``two_party`` (contact-centre calls: agent + customer): the
embedded backend then finds exactly two speakers, pyannote at most two, channels keeps its
one party per channel.  Segments of different speakers may overlap; segments of one
speaker never overlap.  Models load once per ``Diarizer`` instance (the instance lives in
a Ray actor).
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np

from callcoach.audio import Audio
from callcoach.speech.vad import (FRAME, FRAME_S, SAMPLE_RATE, SileroVad, frame_energy_db,
                                  hysteresis, mask_to_segments, runs, smooth_mask,
                                  trim_to_energy)

BACKENDS = ("channels", "embedded", "pyannote")


@dataclass(frozen=True, slots=True)
class SpeakerSegment:
    speaker: str      # backend label, e.g. "CH0"/"CH1" or "SPEAKER_00"
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


Hook = Callable[[str, Any], None]
"""``hook(step, value)``: receives a diarizer's diagnostics of one call as they are computed
(the callback pyannote.audio pipelines take as ``pipeline(file, hook=...)``)."""


@runtime_checkable
class Diarizer(Protocol):
    """Every backend: models loaded once in the constructor, nothing kept per call (one
    instance serves many calls and threads); a call's diagnostics go to its ``hook``."""
    name: str
    version: str

    def __call__(self, audio: Audio, *, num_speakers: int | None = None,
                 hook: Hook | None = None) -> list[SpeakerSegment]:
        ...


# --------------------------------------------------------------------------------------
# helpers

def _sorted(segs: list[SpeakerSegment]) -> list[SpeakerSegment]:
    return sorted(segs, key=lambda s: (s.start, s.end, s.speaker))


def _mask_segments(mask: np.ndarray, name: str, frame_s: float, *, pad_s: float,
                   total_s: float, signal: np.ndarray | None = None,
                   trim_db: float | None = None) -> list[SpeakerSegment]:
    spans = mask_to_segments(mask, frame_s, pad_s=pad_s, total_s=total_s)
    if signal is not None and trim_db:
        spans = trim_to_energy(spans, signal, drop_db=trim_db)
    return [SpeakerSegment(name, float(a), float(b)) for a, b in spans]


def _resolve_device(device: str) -> str:
    if device.startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                return device
        except Exception:  # pragma: no cover - torch import problems
            pass
        warnings.warn(f"device {device!r} requested but CUDA is not available; using cpu")
        return "cpu"
    return device


# --------------------------------------------------------------------------------------
# channels: one speaker per channel

class ChannelDiarizer:
    """Per-channel VAD with energy-based crosstalk/bleed suppression (stereo calls)."""

    name = "channels"

    def __init__(self, *, onset: float = 0.40, offset: float = 0.25, bleed_db: float = 12.0,
                 floor_db: float = 40.0, min_speech_s: float = 0.10,
                 min_silence_s: float = 0.50, pad_s: float = 0.0, trim_db: float | None = 40.0,
                 vad: SileroVad | None = None, two_party: bool = True):
        self.two_party = two_party     # one party per channel by construction
        self.onset, self.offset = onset, offset
        self.bleed_db, self.floor_db = bleed_db, floor_db
        self.min_speech_s, self.min_silence_s, self.pad_s = min_speech_s, min_silence_s, pad_s
        self.trim_db = trim_db
        self.vad = vad or SileroVad()
        self.version = f"channels:{self.vad.version}+energy-bleed{bleed_db:g}dB"

    def activity(self, audio: Audio) -> np.ndarray:
        """Boolean (channels, frames) activity at 32 ms after bleed suppression."""
        x = audio.samples
        n_ch = x.shape[0]
        n_frames = int(np.ceil(x.shape[1] / FRAME))
        probs = np.stack([self.vad.probs(x[c]) for c in range(n_ch)])[:, :n_frames]
        energy = np.stack([_smooth_db(frame_energy_db(x[c], n_frames=n_frames))
                           for c in range(n_ch)])
        raw = np.stack([hysteresis(probs[c], self.onset, self.offset) for c in range(n_ch)])
        # each channel's own speech level: median energy where it is active and loudest
        loudest = energy.argmax(axis=0)
        level = np.zeros(n_ch)
        for c in range(n_ch):
            sel = raw[c] & (loudest == c)
            if sel.sum() < 10:
                sel = raw[c]
            level[c] = np.median(energy[c, sel]) if sel.any() else -100.0
        norm = energy - level[:, None]
        act = raw.copy()
        for c in range(n_ch):
            # too quiet for this channel's own speech: line noise or faint bleed
            act[c] &= norm[c] > -self.floor_db
            for o in range(n_ch):
                if o == c:
                    continue
                # bleed: the other channel carries speech-level energy and this one is much
                # weaker than it, both absolutely and relative to each channel's own speech
                # level (the other's VAD is not required: its probability dips inside words)
                bleed = (norm[o] > -self.floor_db) & (norm[c] < norm[o] - self.bleed_db) & \
                    (energy[c] < energy[o] - self.bleed_db)
                act[c] &= ~bleed
        return np.stack([smooth_mask(act[c], FRAME_S, self.min_speech_s, self.min_silence_s)
                         for c in range(n_ch)])

    def __call__(self, audio: Audio, *, num_speakers: int | None = None,
                 hook: Hook | None = None) -> list[SpeakerSegment]:
        act = self.activity(audio)
        segs: list[SpeakerSegment] = []
        for c in range(act.shape[0]):
            segs += _mask_segments(act[c], f"CH{c}", FRAME_S, pad_s=self.pad_s,
                                   total_s=audio.duration_s, signal=audio.samples[c],
                                   trim_db=self.trim_db)
        if hook is not None:
            hook("num_speakers", len({s.speaker for s in segs}))   # channels with speech
        return _sorted(segs)


def _smooth_db(e_db: np.ndarray, width: int = 3) -> np.ndarray:
    """Moving average in the power domain (syllable gaps do not flip frames)."""
    p = 10.0 ** (e_db.astype(np.float64) / 10.0)
    k = np.ones(width) / width
    p = np.convolve(p, k, mode="same")
    return (10.0 * np.log10(np.maximum(p, 1e-10))).astype(np.float32)


# --------------------------------------------------------------------------------------
# embedded: VAD + resemblyzer + clustering + resegmentation (mono)

MEL_HOP_S = 0.010          # resemblyzer mel frames: 25 ms window, 10 ms hop
WIN_FRAMES = 160           # 1.6 s partial utterance, as resemblyzer was trained


def _load_voice_encoder(device: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # webrtcvad imports pkg_resources
        import resemblyzer
        from resemblyzer import VoiceEncoder
    enc = VoiceEncoder(device=device, verbose=False)
    enc.eval()
    version = getattr(resemblyzer, "__version__", None)
    if not version:
        try:
            from importlib.metadata import version as _v

            version = _v("resemblyzer")
        except Exception:
            version = "unknown"
    return enc, version


def _whisperx_segmentation_path() -> str | None:
    """The pyannote segmentation checkpoint shipped in the whisperx wheel (no import of
    whisperx itself, which is heavy)."""
    import importlib.util

    spec = importlib.util.find_spec("whisperx")
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "assets", "pytorch_model.bin")
    return path if os.path.isfile(path) else None


class OverlapDetector:
    """Overlapped-speech detection with a pyannote segmentation model (multi-speaker,
    frame level): a frame is overlap where the second most active local speaker is
    active, averaged over sliding windows -- pyannote's OverlappedSpeechDetection recipe.

    Default model: the pyannote segmentation checkpoint inside the whisperx wheel
    (``whisperx/assets/pytorch_model.bin``: PyanNet, 3 local speakers, 5 s windows).
    """

    def __init__(self, checkpoint: str | None = None, *, device: str = "cpu",
                 step_s: float = 1.0, threshold: float = 0.5, batch_size: int = 16):
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
        import torch
        from pyannote.audio import Inference, Model

        path = checkpoint or _whisperx_segmentation_path()
        if not path:
            raise FileNotFoundError("no segmentation checkpoint (whisperx not installed?)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Model.from_pretrained(path)
        model.eval()
        duration = float(model.specifications.duration)
        self.threshold = threshold
        self._torch = torch
        self._inference = Inference(
            model, duration=duration, step=min(step_s, duration / 2), batch_size=batch_size,
            pre_aggregation_hook=lambda s: np.partition(s, -2, axis=-1)[:, :, -2, np.newaxis],
            device=torch.device(device))
        if checkpoint:
            self.version = f"osd:{os.path.basename(os.path.dirname(os.path.abspath(path)))}"
        else:
            try:
                from importlib.metadata import version as _v

                self.version = f"pyannote-segmentation(whisperx-{_v('whisperx')})"
            except Exception:
                self.version = "pyannote-segmentation(whisperx)"

    def scores(self, x: np.ndarray, frame_s: float, n: int) -> np.ndarray:
        """Overlap score resampled to a grid of n frames of frame_s seconds."""
        wav = self._torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self._inference({"waveform": wav, "sample_rate": SAMPLE_RATE})
        data = np.nan_to_num(np.asarray(out.data, dtype=np.float64)[:, 0], nan=0.0)
        sw = out.sliding_window
        centres = sw.start + sw.duration / 2 + sw.step * np.arange(len(data))
        grid = np.arange(n) * frame_s
        return np.interp(grid, centres, data, left=0.0, right=0.0)

    def mask(self, x: np.ndarray, frame_s: float, n: int, min_s: float = 0.25) -> np.ndarray:
        m = self.scores(x, frame_s, n) >= self.threshold
        return smooth_mask(m, frame_s, min_s, 0.1)


@dataclass(frozen=True, slots=True)
class EmbeddedDiarizerConfig:
    """Tuning of the ``embedded`` backend: one immutable value, so a deployment, the
    evaluation script and a test name the same thresholds the same way, and a diarizer's
    settings cannot change under a running call.  Defaults were calibrated on the tuning
    split of ``samples/heldout`` (see ``scripts/eval_diarization.py``); the steps they act on
    are described in ``EmbeddedDiarizer``.  Values are checked on construction: a wrong one
    raises ValueError naming the field instead of surfacing as a NaN deep in clustering.

    Windows (step 2): ``hop_s`` is the step between the 1.6 s embedding windows inside long
    speech runs; windows shorter than ``min_window_s`` are scored but not clustered (their
    d-vectors are noisy), unless fewer than two windows are that long.

    Speaker count (step 3, only when the count is estimated): every extra speaker needs
    ``min_cluster_s`` of speech and a different voice -- for k = 2 an uncentred centroid
    cosine below ``same_voice_cos`` or median pitches ``pitch_gap`` (log F0) apart, for
    k >= 3 every centroid pair below ``extra_voice_cos``.

    Pitch evidence (step 3): pitch enters the similarities only when the call's window
    pitches split clearly in two -- groups ``pitch_min_gap`` (log F0) apart and
    ``pitch_min_dprime`` pooled standard deviations -- and then with weight
    ``pitch_weight`` (0 turns it off).

    Resegmentation (steps 4-5): a speaker switch inside speech costs ``switch_penalty``,
    falling to nothing across pauses of ``free_gap_s``; flips shorter than
    ``min_segment_s`` are absorbed and pauses under ``fill_gap_s`` inside one speaker
    closed.

    Speech mask and edges (steps 1, 5): silero VAD hysteresis ``onset`` / ``offset``
    (speech starts at ``onset``, lasts while above ``offset``), gaps under
    ``min_silence_s`` closed, islands under ``min_speech_s`` dropped; segments padded by
    ``pad_s``, and their edges tightened to the first/last 10 ms frame within ``trim_db``
    of the segment's loudest frame (silero's 32 ms frames lag at offsets; None: kept).

    Overlap (step 6): ``overlap`` True requires the overlapped-speech detector, "auto"
    uses it when its checkpoint is available, False skips it; ``overlap_checkpoint`` is a
    pyannote segmentation checkpoint (None: the one in the whisperx wheel);
    ``overlap_threshold`` the score above which a frame is overlapped speech.
    """

    # windows
    hop_s: float = 0.4                 # step between windows inside long runs
    min_window_s: float = 0.8          # shorter windows are not clustered
    # speaker count
    min_cluster_s: float = 2.0         # speech an estimated extra speaker needs
    same_voice_cos: float = 0.80       # k = 2: centroid cosine below this is two voices
    pitch_gap: float = 0.09            # k = 2: or median log F0 this far apart
    extra_voice_cos: float = 0.65      # k >= 3: every centroid pair below this
    # pitch evidence
    pitch_weight: float = 0.14         # weight of the pitch evidence (0: off)
    pitch_min_gap: float = 0.15        # log F0 gap of a clear pitch split
    pitch_min_dprime: float = 4.5      # separation of a clear split (pooled SDs)
    # resegmentation
    switch_penalty: float = 40.0       # cost of a speaker switch inside speech
    free_gap_s: float = 0.7            # pause after which a switch is free
    min_segment_s: float = 0.3         # shorter flips are absorbed
    fill_gap_s: float = 0.5            # shorter pauses inside one speaker are closed
    # speech mask and edges
    onset: float = 0.45                # VAD probability that starts speech
    offset: float = 0.30               # VAD probability below which speech ends
    min_silence_s: float = 0.10        # shorter gaps inside speech are closed
    min_speech_s: float = 0.12         # shorter islands of speech are dropped
    pad_s: float = 0.0                 # padding on both sides of each segment
    trim_db: float | None = 40.0       # edges tightened to this far below the loudest frame
    # overlapped speech
    overlap: bool | str = "auto"       # True: required, "auto": when available, False: off
    overlap_checkpoint: str | None = None   # None: the whisperx wheel's segmentation model
    overlap_threshold: float = 0.5     # overlap score that marks a frame

    def __post_init__(self) -> None:
        def bad(name: str, want: str) -> ValueError:
            return ValueError(f"EmbeddedDiarizerConfig.{name} must be {want}, "
                              f"got {getattr(self, name)!r}")

        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("overlap", "overlap_checkpoint") or (f.name == "trim_db" and v is None):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad(f.name, "a finite number")
        for name in ("hop_s", "free_gap_s"):
            if getattr(self, name) <= 0:
                raise bad(name, "> 0")
        for name in ("min_window_s", "min_cluster_s", "pitch_gap", "pitch_weight",
                     "pitch_min_gap", "pitch_min_dprime", "switch_penalty", "min_segment_s",
                     "fill_gap_s", "min_silence_s", "min_speech_s", "pad_s", "trim_db"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise bad(name, ">= 0")
        for name in ("same_voice_cos", "extra_voice_cos"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "a cosine in [-1, 1]")
        for name in ("onset", "offset", "overlap_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "a probability in [0, 1]")
        if self.offset > self.onset:
            raise bad("offset", f"<= onset ({self.onset!r})")
        if not (isinstance(self.overlap, bool) or self.overlap == "auto"):
            raise bad("overlap", "True, False or 'auto'")
        if self.overlap_checkpoint is not None and (
                not isinstance(self.overlap_checkpoint, str) or not self.overlap_checkpoint):
            raise bad("overlap_checkpoint", "None or a path")


class EmbeddedDiarizer:
    """Offline mono diarization: silero VAD + resemblyzer + spectral clustering + Viterbi
    + OSD, with a two-party prior for contact-centre calls.

    1. Silero VAD gives a speech mask (10 ms grid); pauses split speech into *runs*.
    2. Resemblyzer d-vectors on windows of at most 1.6 s that never cross a pause
       (``hop_s`` apart inside long runs; a short run is one window of its own length).
       A window shorter than 1.6 s is *tiled* (its mel frames repeated) to the 1.6 s the
       encoder was trained on: zero-padding it with silence made short turns ("Yes, it's
       S G two eight...") land on the wrong voice.  The speech is normalised to -30 dBFS.
    3. Embeddings are centred on the call's mean voice (per-call standardisation).  Each
       window also gets its median pitch (log F0 from a numpy autocorrelation tracker);
       when the call's window pitches split clearly in two (``pitch_evidence``), pitch
       is added to the window-to-cluster similarity -- resemblyzer confuses some voices
       that differ mainly in pitch.  The windows of at least ``min_window_s`` are
       clustered by spectral clustering on that affinity, then refined k-means style.
       The speaker count: ``num_speakers`` when given; ``two_party=True`` (contact-centre
       calls) fixes it at 2; otherwise k in ``min_speakers..max_speakers``, where every
       extra speaker needs ``min_cluster_s`` of speech and a different voice: uncentred
       centroid cosine below ``same_voice_cos`` or median pitch ``pitch_gap`` (log F0)
       apart for k = 2, every centroid pair below ``extra_voice_cos`` for k >= 3.
    4. Every 10 ms speech frame is scored against the clusters (triangular-weighted mean
       of the windows covering it); one Viterbi pass over all speech frames, where a
       switch costs ``switch_penalty`` inside speech and nothing across pauses of
       ``free_gap_s`` or more, places the speaker changes.
    5. Flips shorter than ``min_segment_s`` are absorbed; pauses under ``fill_gap_s``
       between one speaker's segments are closed; edges are tightened to the energy.
    6. Overlap (``overlap="auto"``): frames the segmentation model marks as overlapped
       speech get the second speaker as well.

    The thresholds named above are fields of ``config`` (an ``EmbeddedDiarizerConfig``),
    calibrated on the tuning split of ``samples/heldout`` (synthetic two-party calls, many
    voice pairs and codecs); see ``scripts/eval_diarization.py``.  ``device``,
    ``two_party``, ``min_speakers`` / ``max_speakers`` and ``vad`` stay constructor
    arguments: they describe the deployment and its calls, not the method.  Diagnostics of
    a call go to the ``hook`` passed to that call, never onto the instance, so one
    instance (models loaded once) serves many calls and threads.
    """

    name = "embedded"
    ALGORITHM = "tiled-spectral-v2"
    # diagnostic steps a ``hook`` receives (``step, value``), in the order they are reported;
    # a step is left out where its stage does not run (pitch_split / pitch_dprime:
    # pitch_weight 0 or fewer than 6 voiced windows; centroid_cos / pitch_gap: no
    # two-speaker clustering; overlap_s: no OSD or one speaker; all but num_speakers: no
    # speech)
    DIAGNOSTICS = ("pitch_split", "pitch_dprime", "centroid_cos", "pitch_gap", "pitch",
                   "num_speakers", "runs", "windows", "overlap_s")

    def __init__(self, *, config: EmbeddedDiarizerConfig | None = None, device: str = "cpu",
                 two_party: bool = False, min_speakers: int | None = None,
                 max_speakers: int | None = None, vad: SileroVad | None = None):
        import torch

        self.config = config = config if config is not None else EmbeddedDiarizerConfig()
        if not isinstance(config, EmbeddedDiarizerConfig):
            raise TypeError(f"config must be an EmbeddedDiarizerConfig, not {type(config)!r}")
        self.device = _resolve_device(device)
        self.two_party = bool(two_party)
        # speaker-count range; two_party: both parties of a contact-centre call, always 2
        # unless min_speakers=1 is passed explicitly (then 1 or 2)
        if self.two_party:
            hi = min(2, 2 if max_speakers is None else max_speakers)
            lo = min(hi, 2 if min_speakers is None else min_speakers)
        else:
            hi = 4 if max_speakers is None else max_speakers
            lo = min(hi, 1 if min_speakers is None else min_speakers)
        if lo < 1:
            raise ValueError(f"speaker range must be >= 1 (min_speakers={min_speakers}, "
                             f"max_speakers={max_speakers})")
        self.min_speakers, self.max_speakers = lo, hi
        self.hop_frames = max(1, int(round(config.hop_s / MEL_HOP_S)))
        self.vad = vad or SileroVad()
        self.encoder, rz_version = _load_voice_encoder(self.device)
        self._torch = torch
        self._lock = threading.Lock()
        self.version = (f"embedded:{self.vad.version}+resemblyzer-{rz_version}"
                        f"+{self.ALGORITHM}" + ("+two-party" if self.two_party else ""))
        # overlapped speech: True = required, "auto" = when the checkpoint is available
        self.osd: OverlapDetector | None = None
        if config.overlap:
            try:
                self.osd = OverlapDetector(config.overlap_checkpoint, device=self.device,
                                           threshold=config.overlap_threshold)
                self.version += f"+{self.osd.version}"
            except Exception as exc:
                if config.overlap is True or config.overlap_checkpoint:
                    raise
                warnings.warn(f"overlap detection disabled: {exc}")

    # -- steps -----------------------------------------------------------------------
    def speech_mask(self, x: np.ndarray) -> np.ndarray:
        """Speech mask on the 10 ms mel grid."""
        p = self.vad.probs(x)
        c = self.config
        m = smooth_mask(hysteresis(p, c.onset, c.offset), FRAME_S, c.min_speech_s,
                        c.min_silence_s)
        n_mel = len(x) // 160 + 1
        if not len(m):
            return np.zeros(n_mel, dtype=bool)
        # 10 ms frame j is centred at sample 160 j; VAD frame i covers [512 i, 512 i + 512)
        idx = np.minimum((np.arange(n_mel) * 160) // FRAME, len(m) - 1)
        return m[idx]

    def mel(self, x: np.ndarray, speech: np.ndarray) -> np.ndarray:
        from resemblyzer import audio as rz_audio

        sp = np.repeat(speech, 160)[: len(x)]
        rms = float(np.sqrt(np.mean(x[: len(sp)][sp] ** 2))) if sp.any() else 0.0
        gain = (10 ** (-30 / 20)) / rms if rms > 1e-6 else 1.0   # speech at -30 dBFS
        return rz_audio.wav_to_mel_spectrogram((x * gain).astype(np.float32))

    def windows(self, speech_runs: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
        """(run index, start, end) frame windows of <= 1.6 s that stay inside one run."""
        out = []
        for r, (a, b) in enumerate(speech_runs):
            if b - a <= WIN_FRAMES:
                out.append((r, a, b))
                continue
            starts = list(range(a, b - WIN_FRAMES + 1, self.hop_frames))
            if starts[-1] != b - WIN_FRAMES:
                starts.append(b - WIN_FRAMES)
            out += [(r, s, s + WIN_FRAMES) for s in starts]
        return out

    def embed(self, mel: np.ndarray, wins: list[tuple[int, int, int]]) -> np.ndarray:
        """d-vectors of windows.  A window shorter than 1.6 s is tiled (its frames
        repeated, ending on a whole copy) to 1.6 s, so every input looks like the partial
        utterances the encoder was trained on and every batch has one shape."""
        torch = self._torch
        out = np.zeros((len(wins), 256), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, len(wins), 64):
                chunk = wins[i:i + 64]
                batch = np.zeros((len(chunk), WIN_FRAMES, mel.shape[1]), dtype=np.float32)
                for row, (_, s, e) in enumerate(chunk):
                    seg = mel[s:e]
                    reps = -(-WIN_FRAMES // len(seg))
                    batch[row] = np.tile(seg, (reps, 1))[-WIN_FRAMES:]
                t = torch.from_numpy(batch).to(self.device)
                out[i:i + len(chunk)] = self.encoder(t).cpu().numpy()
        return out

    def window_pitch(self, x: np.ndarray, speech: np.ndarray,
                     wins: list[tuple[int, int, int]]) -> np.ndarray:
        """Median log F0 of each window's voiced frames (NaN when < 3 voiced frames)."""
        n = len(speech)
        f0, per = pitch_track(x, n)
        e_db = frame_energy_db(x, frame=160, n_frames=n)
        level = float(np.percentile(e_db[speech], 90)) if speech.any() else 0.0
        voiced = speech & (per >= 0.5) & (e_db > level - 35.0) & (f0 > 0)
        out = np.full(len(wins), np.nan)
        lf = np.log(np.maximum(f0, 1.0))
        for i, (_, s, e) in enumerate(wins):
            v = voiced[s:e]
            if v.sum() >= 3:
                out[i] = float(np.median(lf[s:e][v]))
        return out

    def pitch_evidence(self, lf: np.ndarray, fit: np.ndarray, *,
                       hook: Hook | None = None) -> np.ndarray | None:
        """Per-window pitch evidence, or None when pitch does not split the call.

        The fitted windows' median log F0 are split in two (Otsu); only a clear split --
        the two groups ``pitch_min_gap`` (log F0) apart, separated by ``pitch_min_dprime``
        pooled standard deviations, the smaller group at least 10 % -- turns pitch on.
        Then each window gets ``pitch_weight * clip((log F0 - threshold) / 0.05, -3, 3)``
        (0 without pitch), added to its similarity with the cluster on its side.  This
        separates voices resemblyzer confuses (one timbre at two pitches) and stays off
        for same-pitch pairs, where per-window pitch is intonation noise.  ``hook`` gets
        the split's gap and separation (``pitch_split``, ``pitch_dprime``)."""
        c = self.config
        ok = fit & np.isfinite(lf)
        if c.pitch_weight <= 0 or ok.sum() < 6:
            return None
        thr, dprime, frac, gap = _otsu_split(lf[ok])
        if hook is not None:
            hook("pitch_split", round(gap, 3))
            hook("pitch_dprime", round(dprime, 2))
        if dprime < c.pitch_min_dprime or gap < c.pitch_min_gap or frac < 0.1:
            return None
        p = np.clip((lf - thr) / 0.05, -3.0, 3.0)
        return c.pitch_weight * np.where(np.isfinite(p), p, 0.0)

    @staticmethod
    def scores(e: np.ndarray, q: np.ndarray | None, e_fit: np.ndarray,
               q_fit: np.ndarray | None, lab: np.ndarray, k: int) -> np.ndarray:
        """Similarity of every window (rows of e, pitch evidence q) to the k clusters of
        the fitted windows: cosine to the centroid, plus the pitch evidence towards the
        pitch side of the cluster."""
        cents = np.stack([_unit(e_fit[lab == j].mean(0)) for j in range(k)])
        s = e @ cents.T
        if q is not None:
            side = np.array([np.sign(q_fit[lab == j].mean()) for j in range(k)])
            s = s + np.outer(q, side)
        return s

    def _partition(self, e: np.ndarray, k: int, q: np.ndarray | None) -> np.ndarray:
        """k clusters of unit vectors (with pitch evidence q): spectral clustering on the
        cosine (+ pitch) affinity, then k-means-style refinement with ``scores`` (AHC when
        there are too few windows)."""
        n = len(e)
        if n <= k + 2:
            from scipy.cluster.hierarchy import fcluster, linkage

            lab = _relabel(fcluster(linkage(e, method="average", metric="cosine"),
                                    t=min(k, n), criterion="maxclust"))
        else:
            from sklearn.cluster import SpectralClustering

            aff = e @ e.T
            if q is not None:
                aff = aff + np.outer(q, q)
            aff = np.clip(aff, 0.0, None) + 1e-6
            np.fill_diagonal(aff, aff.max())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lab = SpectralClustering(n_clusters=k, affinity="precomputed",
                                         random_state=0).fit_predict(aff)
            lab = _relabel(lab)
        for _ in range(10):
            if len(np.unique(lab)) < k:
                break
            new = self.scores(e, q, e, q, lab, k).argmax(1)
            if len(np.unique(new)) < k or (new == lab).all():
                break
            lab = new
        return lab

    def _distinct(self, raw: np.ndarray, lab: np.ndarray, k: int, lf: np.ndarray, *,
                  hook: Hook | None = None) -> bool:
        """Every pair of clusters is a different voice (see the class docstring); for
        k = 2 ``hook`` gets the two measures (``centroid_cos``, ``pitch_gap``)."""
        cents = np.stack([_unit(raw[lab == j].mean(0)) for j in range(k)])
        cos = cents @ cents.T
        np.fill_diagonal(cos, -1.0)
        if k == 2:
            f0 = [lf[lab == j] for j in range(2)]
            gap = (abs(float(np.nanmedian(f0[0]) - np.nanmedian(f0[1])))
                   if all(np.isfinite(v).sum() >= 2 for v in f0) else 0.0)
            if hook is not None:
                hook("centroid_cos", round(float(cos[0, 1]), 3))
                hook("pitch_gap", round(gap, 3))
            return cos[0, 1] < self.config.same_voice_cos or gap >= self.config.pitch_gap
        return float(cos.max()) < self.config.extra_voice_cos

    def cluster(self, centred: np.ndarray, raw: np.ndarray, fit: np.ndarray,
                weights: np.ndarray, lo: int, hi: int, lf: np.ndarray,
                q: np.ndarray | None, *, hook: Hook | None = None
                ) -> tuple[np.ndarray, int]:
        """Cluster the fitted windows into k in lo..hi speakers; returns (labels of the
        fitted windows, k).  ``lf``: the windows' median log F0; ``q``: pitch evidence;
        ``hook``: see ``_distinct``."""
        e = centred[fit]
        qf = q[fit] if q is not None else None
        n = len(e)
        if n < 2 or hi == 1:
            return np.zeros(n, dtype=int), 1
        lo, hi = min(lo, n - 1), min(hi, n - 1)
        best = (np.zeros(n, dtype=int), 1) if lo <= 1 else None
        for k in range(max(2, lo), hi + 1):
            lab = self._partition(e, k, qf)
            if len(np.unique(lab)) < k:
                break
            distinct = self._distinct(raw[fit], lab, k, lf[fit], hook=hook)
            if k > lo:     # an estimated extra speaker: enough speech and a different voice
                sizes = np.bincount(lab, weights=weights[fit], minlength=k)
                if sizes.min() < self.config.min_cluster_s or not distinct:
                    break
            best = (lab, k)
        if best is None:   # too few windows for min_speakers clusters
            best = (np.zeros(n, dtype=int), 1)
        return best

    def resegment(self, wins, sims: np.ndarray, speech_runs, n: int) -> np.ndarray:
        """Frame labels on the 10 ms grid (-1 = non-speech) by Viterbi per run."""
        k = sims.shape[1]
        out = np.full(n, -1, dtype=int)
        if k == 1:
            for a, b in speech_runs:
                out[a:b] = 0
            return out
        acc = np.zeros((n, k))
        wsum = np.zeros(n)
        for (r, s, e), row in zip(wins, sims):
            L = e - s
            tri = np.maximum(1.0 - np.abs(np.arange(L) - (L - 1) / 2) / (L / 2 + 1), 0.05)
            acc[s:e] += tri[:, None] * row[None, :]
            wsum[s:e] += tri
        # one Viterbi over all speech frames: switching speaker inside speech costs
        # ``switch_penalty``; across a pause the cost falls linearly to 0 at ``free_gap_s``
        idx = np.concatenate([np.arange(a, b) for a, b in speech_runs])
        score = acc[idx] / np.maximum(wsum[idx, None], 1e-9)
        gaps = np.diff(idx, prepend=idx[0]) - 1            # non-speech frames before each
        free = self.config.free_gap_s / MEL_HOP_S
        pen = self.config.switch_penalty * np.clip(1.0 - gaps / free, 0.0, 1.0)
        out[idx] = _viterbi(score, pen)
        return out

    def speaker_range(self, num_speakers: int | None) -> tuple[int, int]:
        if num_speakers:
            return int(num_speakers), int(num_speakers)
        return self.min_speakers, self.max_speakers

    # -- entry -----------------------------------------------------------------------
    def __call__(self, audio: Audio, *, num_speakers: int | None = None,
                 hook: Hook | None = None) -> list[SpeakerSegment]:
        """Speaker segments of one recording.  ``hook(step, value)``, when given, is
        called with each diagnostic of this call (``DIAGNOSTICS``), as pyannote
        pipelines report their steps; ``dia(audio, hook=info.__setitem__)`` collects
        them in a dict.  Nothing about a call is kept on the instance, so one instance
        serves many calls and threads."""
        c = self.config
        x = audio.mono().astype(np.float32)
        speech = self.speech_mask(x)
        if not speech.any():
            if hook is not None:
                hook("num_speakers", 0)
            return []
        with self._lock:
            mel = self.mel(x, speech)
            n = min(len(mel), len(speech))
            mel, speech = mel[:n], speech[:n]
            speech_runs = runs(speech)
            wins = self.windows(speech_runs)
            embs = self.embed(mel, wins)
        w_len = np.array([w[2] - w[1] for w in wins], dtype=float) * MEL_HOP_S
        # centre on the recording's mean voice: similarities then measure how a window
        # differs from the call as a whole (removes the shared channel/codec part)
        centred = embs - (embs * w_len[:, None]).sum(0) / w_len.sum()
        centred /= np.linalg.norm(centred, axis=1, keepdims=True) + 1e-9
        fit = w_len >= c.min_window_s
        if fit.sum() < 2:
            fit = np.ones(len(wins), dtype=bool)
        # each window stands for ~hop seconds of speech when weighing cluster sizes
        weights = np.minimum(w_len, self.hop_frames * MEL_HOP_S)
        lo, hi = self.speaker_range(num_speakers)
        lf = self.window_pitch(x, speech, wins)
        q = self.pitch_evidence(lf, fit, hook=hook)
        lab, k = self.cluster(centred, embs, fit, weights, lo, hi, lf, q, hook=hook)
        sims = self.scores(centred, q, centred[fit], None if q is None else q[fit], lab, k)
        labels = self.resegment(wins, sims, speech_runs, n)
        labels = _absorb_short(labels, int(round(c.min_segment_s / MEL_HOP_S)))
        labels = _fill_gaps(labels, int(round(c.fill_gap_s / MEL_HOP_S)))
        # relabel by first appearance: SPEAKER_00 speaks first
        vals, first = np.unique(labels[labels >= 0], return_index=True)
        order = [int(v) for v in vals[np.argsort(first)]]
        remap = np.full(max(k, int(labels.max()) + 1) + 1, -1)
        for new, old in enumerate(order):
            remap[old] = new
        labels = remap[labels]                  # -1 stays -1 (index -1 -> last = -1)
        names = [f"SPEAKER_{i:02d}" for i in range(len(order))]
        if hook is not None:
            hook("pitch", q is not None)
            hook("num_speakers", len(order))
            hook("runs", len(speech_runs))
            hook("windows", len(wins))
        masks = [labels == k for k in range(len(order))]
        if self.osd is not None and len(order) >= 2:
            with self._lock:
                ov = self.osd.mask(x, MEL_HOP_S, n) & (labels >= 0)
            for a, b in runs(ov):
                # the second speaker in an overlap: the best-scoring other speaker around it
                main = np.bincount(labels[a:b], minlength=len(order))
                near = [i for i, (_, s, e) in enumerate(wins) if s < b + 50 and e > a - 50]
                score = (sims[near].mean(0) if near else np.zeros(sims.shape[1]))
                for k in np.argsort(-main):
                    if main[k] == 0:
                        break
                    others = [j for j in np.argsort(-score) if remap[j] >= 0 and remap[j] != k]
                    if others:
                        second = int(remap[others[0]])
                        sel = np.arange(a, b)[labels[a:b] == k]
                        masks[second][sel] = True
            if hook is not None:
                hook("overlap_s", round(float(ov.sum()) * MEL_HOP_S, 2))
        segs: list[SpeakerSegment] = []
        for k, name in enumerate(names):
            segs += _mask_segments(masks[k], name, MEL_HOP_S, pad_s=c.pad_s,
                                   total_s=audio.duration_s, signal=x, trim_db=c.trim_db)
        return _sorted(segs)


def _otsu_split(v: np.ndarray) -> tuple[float, float, float, float]:
    """Best two-group split of 1-D values (Otsu): (threshold, separation in pooled
    standard deviations, fraction in the smaller group, gap between the group means)."""
    v = np.sort(np.asarray(v, dtype=float))
    n = len(v)
    i = np.arange(2, n - 1)                              # left group v[:i], both >= 2
    cs = np.cumsum(v)
    m_left = cs[i - 1] / i
    m_right = (cs[-1] - cs[i - 1]) / (n - i)
    cut = int(i[np.argmax(i * (n - i) * (m_right - m_left) ** 2)])
    a, b = v[:cut], v[cut:]
    sd = float(np.sqrt((a.var() * len(a) + b.var() * len(b)) / n))
    gap = float(b.mean() - a.mean())
    return (float(v[cut - 1] + v[cut]) / 2, gap / (sd + 1e-6), min(len(a), len(b)) / n, gap)


def pitch_track(x: np.ndarray, n_frames: int | None = None, *, fmin: float = 60.0,
                fmax: float = 420.0, win: int = 640, chunk: int = 4000
                ) -> tuple[np.ndarray, np.ndarray]:
    """F0 (Hz) and periodicity (0-1) per 10 ms frame (frame j centred at sample 160 j) of
    a 16 kHz signal: normalised autocorrelation over 40 ms, the shortest lag whose peak
    is within 10 % of the best (guards against octave-down errors), parabolic
    interpolation.  Unvoiced frames simply have low periodicity."""
    hop = 160
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    n = n_frames if n_frames is not None else len(x) // hop + 1
    f0 = np.zeros(n, dtype=np.float32)
    per = np.zeros(n, dtype=np.float32)
    if n == 0 or not len(x):
        return f0, per
    pad = np.pad(x, (win // 2, win // 2 + hop + max(0, n * hop - len(x))))
    lags = np.arange(int(SAMPLE_RATE // fmax), int(np.ceil(SAMPLE_RATE / fmin)) + 1)
    nfft = 2 * win
    for c in range(0, n, chunk):
        m = min(n, c + chunk) - c
        idx = (np.arange(c, c + m) * hop)[:, None] + np.arange(win)[None]
        fr = pad[idx].astype(np.float64)
        fr -= fr.mean(1, keepdims=True)
        sp = np.fft.rfft(fr, nfft)
        r = np.fft.irfft(sp.real ** 2 + sp.imag ** 2, nfft)
        cs = np.concatenate([np.zeros((m, 1)), np.cumsum(fr ** 2, 1)], axis=1)
        head = cs[:, win - lags]                       # energy of x[0 : W - lag]
        tail = cs[:, -1:] - cs[:, lags]                # energy of x[lag : W]
        rho = 2.0 * r[:, lags] / np.maximum(head + tail, 1e-12)
        best = rho.max(1)
        peak = np.zeros_like(rho, dtype=bool)
        peak[:, 1:-1] = (rho[:, 1:-1] >= rho[:, :-2]) & (rho[:, 1:-1] >= rho[:, 2:])
        ok = peak & (rho >= 0.9 * best[:, None])
        k = np.where(ok.any(1), ok.argmax(1), rho.argmax(1))
        k = np.clip(k, 1, len(lags) - 2)
        rows = np.arange(m)
        a, b, d = rho[rows, k - 1], rho[rows, k], rho[rows, k + 1]
        den = a - 2 * b + d
        delta = np.clip(np.where(np.abs(den) > 1e-9, 0.5 * (a - d) / np.where(
            np.abs(den) > 1e-9, den, 1.0), 0.0), -1.0, 1.0)
        f0[c:c + m] = SAMPLE_RATE / (lags[k] + delta)
        per[c:c + m] = np.clip(b, 0.0, 1.0)
    return f0, per


def _fill_gaps(labels: np.ndarray, max_gap: int) -> np.ndarray:
    """Close non-speech gaps shorter than max_gap between two frames of one speaker."""
    out = labels.copy()
    for a, b in runs(out < 0):
        if a > 0 and b < len(out) and b - a < max_gap and out[a - 1] == out[b]:
            out[a:b] = out[a - 1]
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-9)


def _relabel(labels: np.ndarray) -> np.ndarray:
    _, inv = np.unique(labels, return_inverse=True)
    return inv.astype(int)


def _viterbi(score: np.ndarray, penalty) -> np.ndarray:
    """Best label path maximising sum(score) - sum of penalty[t] at each switch."""
    n, k = score.shape
    penalty = np.broadcast_to(np.asarray(penalty, dtype=float), (n,))
    back = np.zeros((n, k), dtype=np.int32)
    acc = score[0].copy()
    for t in range(1, n):
        best_prev = int(acc.argmax())
        stay = acc
        switch = acc[best_prev] - penalty[t]
        choose_switch = switch > stay
        back[t] = np.where(choose_switch, best_prev, np.arange(k))
        acc = np.where(choose_switch, switch, stay) + score[t]
    path = np.zeros(n, dtype=int)
    path[-1] = int(acc.argmax())
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _absorb_short(labels: np.ndarray, min_len: int) -> np.ndarray:
    """Speaker runs shorter than min_len that touch another speaker take the longer
    neighbour's label (window noise); isolated short segments between pauses stay."""
    out = labels.copy()
    if min_len <= 1 or not len(out):
        return out
    for _ in range(10):
        bounds = np.flatnonzero(np.diff(out)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(out)]])
        vals = out[starts]
        lens = ends - starts
        changed = False
        for i in np.argsort(lens, kind="stable"):
            if lens[i] >= min_len:
                break
            if vals[i] < 0:
                continue
            left = vals[i - 1] if i > 0 else -1
            right = vals[i + 1] if i + 1 < len(vals) else -1
            if left < 0 and right < 0:
                continue
            if left >= 0 and right >= 0:
                new = left if lens[i - 1] >= lens[i + 1] else right
            else:
                new = left if left >= 0 else right
            out[starts[i]:ends[i]] = new
            changed = True
        if not changed:
            break
    return out


# --------------------------------------------------------------------------------------
# pyannote: the full pipeline from a local directory

class PyannoteDiarizer:
    """pyannote.audio SpeakerDiarization from a local directory (no hub access)."""

    name = "pyannote"

    def __init__(self, model_dir: str, *, device: str = "cpu", use_exclusive: bool = False,
                 two_party: bool = False, **params):
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
        import torch
        from pyannote.audio import Pipeline

        if not model_dir or not os.path.isfile(os.path.join(model_dir, "config.yaml")):
            raise FileNotFoundError(
                f"pyannote backend needs a local pipeline dir with config.yaml: {model_dir!r}")
        self.model_dir = model_dir
        self.device = _resolve_device(device)
        pipeline = Pipeline.from_pretrained(model_dir)
        if pipeline is None:
            raise RuntimeError(f"could not load a pyannote pipeline from {model_dir}")
        if params:
            pipeline.instantiate(params)
        pipeline.to(torch.device(self.device))
        self.pipeline = pipeline
        self.use_exclusive = use_exclusive
        self.two_party = two_party     # at most two speakers (max_speakers=2) per call
        self._torch = torch
        self._lock = threading.Lock()
        import pyannote.audio as pa

        self.version = (f"pyannote:pyannote.audio-{getattr(pa, '__version__', 'unknown')}"
                        f"/{os.path.basename(os.path.normpath(model_dir))}"
                        + ("+two-party" if two_party else ""))

    def diarize_both(self, audio: Audio, *, num_speakers: int | None = None,
                     hook: Hook | None = None
                     ) -> tuple[list[SpeakerSegment], list[SpeakerSegment]]:
        """(regular with overlap, exclusive) segments.  ``hook(step, value)`` gets
        pyannote's own steps (segmentation, embeddings, ... as its pipelines report them)."""
        wav = self._torch.from_numpy(np.ascontiguousarray(audio.mono(), dtype=np.float32))[None]
        kwargs = ({"num_speakers": num_speakers} if num_speakers
                  else {"max_speakers": 2} if self.two_party else {})
        if hook is not None:
            # pyannote calls hook(step_name, step_artifact, file=..., total=..., completed=...)
            kwargs["hook"] = lambda step, artifact=None, **_progress: hook(step, artifact)
        with self._lock:
            out = self.pipeline({"waveform": wav, "sample_rate": SAMPLE_RATE}, **kwargs)
        regular_ann = getattr(out, "speaker_diarization", out)
        exclusive_ann = getattr(out, "exclusive_speaker_diarization", None)
        total = audio.duration_s
        regular = _annotation_segments(regular_ann, total)
        exclusive = (_annotation_segments(exclusive_ann, total) if exclusive_ann is not None
                     else regular)
        return regular, exclusive

    def __call__(self, audio: Audio, *, num_speakers: int | None = None,
                 hook: Hook | None = None) -> list[SpeakerSegment]:
        regular, exclusive = self.diarize_both(audio, num_speakers=num_speakers, hook=hook)
        return exclusive if self.use_exclusive else regular


def _annotation_segments(ann, total_s: float) -> list[SpeakerSegment]:
    """pyannote Annotation to segments: clipped to the audio (pyannote's last chunk is
    padded past the end), one speaker's overlapping tracks merged."""
    by: dict[str, list[list[float]]] = {}
    for turn, _, label in ann.itertracks(yield_label=True):
        a, b = max(0.0, float(turn.start)), min(total_s, float(turn.end))
        if b > a:
            by.setdefault(str(label), []).append([a, b])
    out = []
    for label, spans in by.items():
        spans.sort()
        merged = [spans[0]]
        for a, b in spans[1:]:
            if a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        out += [SpeakerSegment(label, round(float(a), 3), round(float(b), 3))
                for a, b in merged if b > a]
    return _sorted(out)


# --------------------------------------------------------------------------------------
# factory

def make_diarizer(backend: str, *, model_dir: str | None = None, device: str = "cpu",
                  **options) -> Diarizer:
    """Build a diarizer; models load here, once.  ``options`` go to the backend (for
    ``embedded`` its tuning is one ``config=EmbeddedDiarizerConfig(...)``)."""
    backend = backend.lower().strip()
    if backend == "channels":
        return ChannelDiarizer(**options)
    if backend == "embedded":
        return EmbeddedDiarizer(device=device, **options)
    if backend == "pyannote":
        if not model_dir:
            raise ValueError("pyannote backend needs model_dir (a local pipeline directory)")
        return PyannoteDiarizer(model_dir, device=device, **options)
    raise ValueError(f"unknown diarization backend {backend!r}; expected one of {BACKENDS}")


def choose_backend(audio: Audio, configured: str = "auto", *,
                   model_dir: str | None = None) -> str:
    """Pick a backend for one recording.

    ``auto``: a real two-party stereo recording -> ``channels``; mono (or stereo whose
    channels carry the same mix, or one silent channel) -> ``pyannote`` when a pipeline
    dir is configured, else ``embedded``.  A configured ``channels`` on such audio falls
    back the same way, since one speaker per channel cannot hold there.
    """
    configured = (configured or "auto").lower().strip()
    if configured not in BACKENDS + ("auto",):
        raise ValueError(f"unknown diarization backend {configured!r}")
    mono_fallback = "pyannote" if model_dir else "embedded"
    if configured in ("embedded", "pyannote"):
        return configured
    if audio.channels == 2 and _two_party_stereo(audio.samples):
        return "channels"
    return mono_fallback


def _two_party_stereo(x: np.ndarray) -> bool:
    """False for a dual-mono file (channels nearly equal) or one (near) silent channel."""
    a, b = x[0].astype(np.float64), x[1].astype(np.float64)
    ea, eb = float(np.mean(a * a)), float(np.mean(b * b))
    if min(ea, eb) < 1e-9 or min(ea, eb) / max(ea, eb) < 1e-4:    # one channel silent (-40 dB)
        return False
    corr = float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return corr < 0.95
