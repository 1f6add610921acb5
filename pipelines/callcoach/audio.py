"""Decode recorded calls (wav, flac, mp3, ogg/opus; any rate, mono or stereo) to arrays.

Decoding uses PyAV's bundled FFmpeg, so no system ffmpeg is needed.  Every call is
resampled to 16 kHz float32 with its channels kept: stereo call-centre recordings carry
one party per channel, which the diarizer uses.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".oga", ".m4a", ".webm")


class AudioError(ValueError):
    """The bytes are not a decodable call recording.  The message says why."""


@dataclass(frozen=True, slots=True)
class Audio:
    samples: np.ndarray        # float32, shape (channels, n), at SAMPLE_RATE
    sample_rate: int           # always SAMPLE_RATE after decode
    source_rate: int           # the rate of the recording
    codec: str
    sha256: str

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / float(self.sample_rate)

    def mono(self) -> np.ndarray:
        """Channels averaged to one signal (for ASR of a mono mix / VAD)."""
        if self.channels == 1:
            return self.samples[0]
        return self.samples.mean(axis=0).astype(np.float32)

    def describe(self) -> dict:
        return {"sample_rate": self.sample_rate, "source_rate": self.source_rate,
                "channels": self.channels, "layout": "stereo" if self.channels == 2 else
                ("mono" if self.channels == 1 else f"{self.channels}ch"),
                "codec": self.codec, "sha256": self.sha256,
                "duration_s": round(self.duration_s, 3)}


def decode(data: bytes, *, max_duration_s: float | None = None, max_channels: int = 2) -> Audio:
    """Decode a whole recording from bytes.

    Raises AudioError with a readable reason for empty, non-audio, corrupt, silent-length
    or over-long input.  ``max_duration_s`` bounds the decoded length so a file with a
    huge declared length cannot exhaust memory.
    """
    import av  # local import: PyAV is heavy and only decode workers need it

    if not data:
        raise AudioError("empty file (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except Exception as exc:  # PyAV raises many error types for garbage input
        raise AudioError(f"not a readable audio container: {_short(exc)}") from None
    with container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise AudioError("no audio stream in file")
        stream = streams[0]
        try:
            codec = stream.codec_context.name
            source_rate = int(stream.rate or 0)
            channels = int(stream.channels or 0)
        except Exception:
            raise AudioError("unsupported or unknown audio codec") from None
        if source_rate <= 0:
            raise AudioError(f"invalid sample rate {source_rate} ({codec})")
        declared_s = _wav_declared_duration(data) or _declared_duration(container, stream)
        if channels < 1:
            raise AudioError("audio stream has no channels")
        if channels > max_channels:
            raise AudioError(f"{channels} channels; at most {max_channels} supported")
        layout = "mono" if channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=SAMPLE_RATE)
        limit = None if max_duration_s is None else int(max_duration_s * SAMPLE_RATE) + 1
        chunks: list[np.ndarray] = []
        total = 0
        try:
            for frame in container.decode(stream):
                frame.pts = None
                for out in resampler.resample(frame):
                    arr = out.to_ndarray()
                    chunks.append(arr)
                    total += arr.shape[1]
                if limit is not None and total > limit:
                    raise AudioError(f"longer than the configured maximum of {max_duration_s:.0f} s")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except AudioError:
            raise
        except Exception as exc:
            raise AudioError(f"corrupt audio data ({codec}): {_short(exc)}") from None
    if not chunks:
        raise AudioError("no audio samples decoded (zero-length audio)")
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if samples.shape[1] < SAMPLE_RATE // 10:
        raise AudioError(f"audio too short: {samples.shape[1] / SAMPLE_RATE:.3f} s")
    if not np.all(np.isfinite(samples)):
        raise AudioError("audio contains NaN or infinite samples")
    decoded_s = samples.shape[1] / SAMPLE_RATE
    if codec in EXACT_LENGTH_CODECS and declared_s and declared_s - decoded_s > max(0.25, 0.02 * declared_s):
        raise AudioError(f"truncated or corrupt: the header declares {declared_s:.1f} s but only "
                         f"{decoded_s:.1f} s of audio is present")
    if codec.startswith("pcm_f"):
        over = float(np.mean(np.abs(samples) > 1.0))
        if over > 0.001:
            raise AudioError(f"float samples beyond full scale in {over:.1%} of the audio "
                             f"(peak {float(np.abs(samples).max()):.1f}): clipped or corrupt")
    return Audio(np.ascontiguousarray(samples), SAMPLE_RATE, source_rate, codec, digest)


# Codecs whose headers state the length exactly (a shortfall means a truncated file);
# compressed formats only estimate it.
EXACT_LENGTH_CODECS = ("pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le",
                       "pcm_u8", "pcm_s16be", "pcm_alaw", "pcm_mulaw", "flac")


def _wav_declared_duration(data: bytes) -> float | None:
    """Length a RIFF/WAVE header declares (FFmpeg clamps it to the file, hiding a
    truncated or lying header).  None when unknown (streaming writers put 0 or ~0)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if cid == b"fmt " and pos + 16 <= len(data):
            byte_rate = int.from_bytes(data[pos + 16:pos + 20], "little")
        elif cid == b"data":
            if size in (0, 0xFFFFFFFF) or byte_rate <= 0:
                return None
            return size / byte_rate
        pos += 8 + size + (size & 1)
    return None


def _declared_duration(container, stream) -> float | None:
    try:
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / 1_000_000
    except Exception:
        return None
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
