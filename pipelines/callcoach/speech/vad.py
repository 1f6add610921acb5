"""Voice activity detection on 16 kHz float32 signals (silero VAD v6, ONNX, CPU).

The model file ships inside the faster-whisper wheel (``assets/silero_vad_v6.onnx``), so
nothing is downloaded.  We run the network ourselves to get per-frame speech
probabilities (one per 512 samples = 32 ms) and do the thresholding here, because the
diarizers need frame-level masks (per channel, compared across channels), not just the
final segments of ``faster_whisper.vad.get_speech_timestamps``.

Defaults are tuned on telephone speech (8 kHz recordings upsampled to 16 kHz) and the
16 kHz dev calls: the onset threshold is a little lower than silero's 0.5 because
narrow-band speech scores lower, and minimum silence is short (0.15 s) so that the
0.5-0.8 s pauses between speakers always split segments.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
FRAME = 512                       # samples per VAD frame at 16 kHz
FRAME_S = FRAME / SAMPLE_RATE     # 0.032 s
MODEL_NAME = "silero-vad-v6"


@dataclass(frozen=True, slots=True)
class VadParams:
    onset: float = 0.45            # probability that starts speech
    offset: float = 0.30           # probability below which speech ends (hysteresis)
    min_speech_s: float = 0.12     # shorter islands of speech are dropped
    min_silence_s: float = 0.15    # shorter gaps inside speech are closed
    pad_s: float = 0.03            # padding added on both sides of each segment


def _model_path() -> str:
    from faster_whisper.utils import get_assets_path

    return os.path.join(get_assets_path(), "silero_vad_v6.onnx")


class SileroVad:
    """Silero VAD v6 loaded once; thread-safe frame probabilities for any length."""

    version = MODEL_NAME

    def __init__(self, model_path: str | None = None):
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            model_path or _model_path(), providers=["CPUExecutionProvider"], sess_options=opts)
        self._lock = threading.Lock()

    def probs(self, x: np.ndarray) -> np.ndarray:
        """Speech probability per 32 ms frame; frame i covers samples [512 i, 512 (i+1))."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        n_frames = int(np.ceil(len(x) / FRAME))
        if n_frames == 0:
            return np.zeros(0, dtype=np.float32)
        x = np.pad(x, (0, n_frames * FRAME - len(x)))
        # Same framing as faster_whisper.vad.SileroVADModel: each 512-sample frame gets the
        # previous frame's last 64 samples as context; the LSTM state runs across batches.
        frames = x.reshape(-1, FRAME)
        context = np.roll(frames[:, -64:], 1, axis=0)
        context[0] = 0.0
        batched = np.ascontiguousarray(np.concatenate([context, frames], axis=1))
        h = np.zeros((1, 1, 128), dtype=np.float32)
        c = np.zeros((1, 1, 128), dtype=np.float32)
        out = []
        with self._lock:
            for i in range(0, len(batched), 10_000):
                o, h, c = self._session.run(None, {"input": batched[i:i + 10_000], "h": h, "c": c})
                out.append(np.asarray(o).reshape(-1))
        return np.concatenate(out).astype(np.float32)

    def segments(self, x: np.ndarray, params: VadParams = VadParams()) -> list[tuple[float, float]]:
        """Speech segments (start_s, end_s) of a 16 kHz signal."""
        p = self.probs(x)
        mask = smooth_mask(hysteresis(p, params.onset, params.offset), FRAME_S,
                           params.min_speech_s, params.min_silence_s)
        return mask_to_segments(mask, FRAME_S, pad_s=params.pad_s, total_s=len(x) / SAMPLE_RATE)


# --- frame-mask helpers (shared with the diarizers) -------------------------------------

def hysteresis(p: np.ndarray, onset: float, offset: float) -> np.ndarray:
    """Boolean mask: on when p >= onset, stays on while p >= offset."""
    mask = np.zeros(len(p), dtype=bool)
    on = False
    for i, v in enumerate(p):
        if on:
            on = v >= offset
        else:
            on = v >= onset
        mask[i] = on
    return mask


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where mask is True."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), ends.tolist()))


def smooth_mask(mask: np.ndarray, frame_s: float, min_speech_s: float,
                min_silence_s: float) -> np.ndarray:
    """Close gaps shorter than min_silence_s, then drop islands shorter than min_speech_s."""
    out = np.asarray(mask, dtype=bool).copy()
    n = len(out)
    max_gap = int(round(min_silence_s / frame_s))
    if max_gap > 0:
        for s, e in runs(~out):
            if s > 0 and e < n and e - s < max_gap:
                out[s:e] = True
    min_len = int(round(min_speech_s / frame_s))
    if min_len > 0:
        for s, e in runs(out):
            if e - s < min_len:
                out[s:e] = False
    return out


def mask_to_segments(mask: np.ndarray, frame_s: float, *, pad_s: float = 0.0,
                     total_s: float | None = None) -> list[tuple[float, float]]:
    """Turn a frame mask into (start, end) seconds; padding never makes segments overlap."""
    segs: list[list[float]] = []
    for s, e in runs(mask):
        start = max(0.0, s * frame_s - pad_s)
        end = e * frame_s + pad_s
        if total_s is not None:
            end = min(end, total_s)
        if segs and start <= segs[-1][1]:
            # padding touched the previous segment: split the gap between them instead
            mid = (segs[-1][1] - pad_s + start + pad_s) / 2.0
            segs[-1][1] = mid
            start = mid
        segs.append([start, end])
    return [(round(float(a), 3), round(float(b), 3)) for a, b in segs if b > a]


def frame_energy_db(x: np.ndarray, frame: int = FRAME, n_frames: int | None = None) -> np.ndarray:
    """Mean-square energy (dBFS) per frame; silent frames floor at -100 dB."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if n_frames is None:
        n_frames = int(np.ceil(len(x) / frame))
    x = np.pad(x, (0, max(0, n_frames * frame - len(x))))[: n_frames * frame]
    ms = np.mean(x.reshape(n_frames, frame).astype(np.float64) ** 2, axis=1)
    return (10.0 * np.log10(np.maximum(ms, 1e-10))).astype(np.float32)


def trim_to_energy(segs: list[tuple[float, float]], x: np.ndarray, *, drop_db: float = 40.0,
                   extend_s: float = 0.05, hop: int = 160) -> list[tuple[float, float]]:
    """Tighten segment edges to the first/last 10 ms frame within ``drop_db`` of the
    segment's loudest frame (VAD frames are 32 ms and silero lags at offsets).  Edges may
    move out by at most ``extend_s``; a segment left without frames is kept as it was."""
    out = []
    n = len(x)
    for start, end in segs:
        a = max(0, int((start - extend_s) * SAMPLE_RATE))
        b = min(n, int(np.ceil((end + extend_s) * SAMPLE_RATE)))
        if b - a < hop:
            out.append((start, end))
            continue
        e = frame_energy_db(x[a:b], frame=hop)
        keep = np.flatnonzero(e >= e.max() - drop_db)
        if not len(keep):
            out.append((start, end))
            continue
        s2 = (a + keep[0] * hop) / SAMPLE_RATE
        e2 = min(n, a + (keep[-1] + 1) * hop) / SAMPLE_RATE
        out.append((round(float(s2), 3), round(float(e2), 3)) if e2 > s2 else (start, end))
    # keep one speaker's segments disjoint
    for i in range(1, len(out)):
        if out[i][0] < out[i - 1][1]:
            mid = round((out[i][0] + out[i - 1][1]) / 2, 3)
            out[i - 1] = (out[i - 1][0], mid)
            out[i] = (mid, out[i][1])
    return [(s, e) for s, e in out if e > s]
