"""A corpus of malformed and hostile call recordings, generated (nothing binary is stored).

Each case: file name -> (bytes, expected words in the failure reason).  Used by
tests/test_bad_inputs.py and scripts that exercise the job's failure handling.
"""

from __future__ import annotations

import io
import struct

import numpy as np

SR = 16_000


def _tone(seconds: float, sr: int = SR, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _wav(samples: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples.T if samples.ndim == 2 else samples, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def _flac(samples: np.ndarray, sr: int = SR) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, sr, format="FLAC")
    return buf.getvalue()


def _encode(samples: np.ndarray, fmt: str, codec: str, sr: int = SR) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as c:
        s = c.add_stream(codec, rate=sr)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        frame.sample_rate = sr
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return buf.getvalue()


def _corrupt(data: bytes, start_frac: float, n: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    d = bytearray(data)
    a = int(len(d) * start_frac)
    d[a:a + n] = rng.integers(0, 256, size=min(n, len(d) - a), dtype=np.uint8).tobytes()
    return bytes(d)


def corpus(max_duration_s: float = 60.0) -> dict[str, tuple[bytes, tuple[str, ...]]]:
    rng = np.random.default_rng(7)
    speechlike = _tone(3.0)
    wav_ok = _wav(speechlike)
    flac_ok = _flac(speechlike)
    mp3_ok = _encode(_tone(3.0, freq=330), "mp3", "mp3")
    ogg_ok = _encode(_tone(3.0, freq=330), "ogg", "libopus", sr=48_000) if True else b""

    huge = bytearray(wav_ok)
    huge[4:8] = struct.pack("<I", 0x7FFFFFF8)
    huge[40:44] = struct.pack("<I", 0x7FFFFFF0)
    unknown_codec = bytearray(wav_ok)
    unknown_codec[20:22] = struct.pack("<H", 0x1234)
    zero_rate = bytearray(wav_ok)
    zero_rate[24:28] = struct.pack("<I", 0)
    nan = _tone(3.0)
    nan[1000:2000] = np.nan
    inf = _tone(3.0)
    inf[5] = np.inf
    stereo_silent = np.stack([_tone(4.0, freq=200), np.zeros(4 * SR, np.float32)])
    six = np.stack([_tone(2.0, freq=100 + 50 * i) for i in range(6)])
    png = b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 2000, dtype=np.uint8))

    return {
        "empty.wav": (b"", ("empty",)),
        "empty.flac": (b"", ("empty",)),
        "text.wav": (b"this is a text file, not a recording\n" * 40, ("not a readable audio",)),
        "html.mp3": (b"<!doctype html><html><body>404 Not Found</body></html>" * 20,
                     ("not a readable audio",)),
        "json.ogg": (b'{"call": "not audio"}' * 50, ("not a readable audio",)),
        "png.flac": (png, ("not a readable audio", "no audio stream")),
        "random.mp3": (bytes(rng.integers(0, 256, 30_000, dtype=np.uint8)),
                       ("not a readable audio", "corrupt", "no audio", "too short")),
        "random.wav": (bytes(rng.integers(0, 256, 30_000, dtype=np.uint8)), ("not a readable audio",)),
        "header-only.wav": (wav_ok[:44], ("zero-length", "truncated", "no audio samples")),
        "riff-stub.wav": (wav_ok[:12], ("not a readable audio",)),
        "truncated-half.wav": (wav_ok[: len(wav_ok) // 2], ("truncated",)),
        "truncated.flac": (flac_ok[: len(flac_ok) // 2], ("corrupt", "truncated")),
        "flac-header-only.flac": (flac_ok[:200], ("zero-length", "no audio", "corrupt", "truncated")),
        "zero-length.wav": (_wav(np.zeros(0, np.float32)), ("zero-length", "no audio samples")),
        "one-sample.wav": (_wav(np.array([0.1], np.float32)), ("too short",)),
        "ten-ms.wav": (_wav(_tone(0.01)), ("too short",)),
        "silence.wav": (_wav(np.zeros(6 * SR, np.float32)), ("no speech",)),
        "dc-offset.wav": (_wav(np.full(6 * SR, 0.5, np.float32)), ("no speech",)),
        "white-noise.flac": (_flac((rng.standard_normal(6 * SR) * 0.05).astype(np.float32)),
                             ("no speech", "only one party")),
        "one-silent-channel.wav": (_wav(stereo_silent), ("no speech", "only one party")),
        "nan-float.wav": (_wav(nan, subtype="FLOAT"), ("nan",)),
        "inf-float.wav": (_wav(inf, subtype="FLOAT"), ("nan", "infinite")),
        "clipped-float.wav": (_wav(_tone(3.0) * 40, subtype="FLOAT"), ("full scale",)),
        "corrupt-middle.flac": (_corrupt(flac_ok, 0.4, 4000), ("corrupt",)),
        "broken-frames.mp3": (_corrupt(mp3_ok, 0.33, 3000), ("corrupt",)),
        "truncated.mp3": (mp3_ok[:300], ("corrupt", "too short", "no audio", "not a readable")),
        "truncated.ogg": (ogg_ok[: len(ogg_ok) // 3], ("corrupt", "too short", "truncated", "no speech", "not a readable")),
        "huge-declared-length.wav": (bytes(huge), ("truncated",)),
        "unknown-codec.wav": (bytes(unknown_codec), ("unsupported", "codec", "not a readable")),
        "zero-sample-rate.wav": (bytes(zero_rate), ("sample rate", "not a readable", "unsupported")),
        "six-channels.wav": (_wav(six), ("6 channels",)),
        "too-long.wav": (_wav(_tone(max_duration_s + 5, sr=8000), sr=8000), ("maximum",)),
    }


# good audio (the test copies a sample call under these names), bad sidecar: scored
# without the sidecar, with a metadata_warning saying why
WARNED = ("bad-sidecar", "sidecar-not-object")


SIDECARS = {
    "bad-sidecar.json": b'{"agent_id": "a1", "team": ',          # cut off mid-way
    "sidecar-not-object.json": b'["agent", "a1"]',
}
