"""callcoach.audio.decode on real encoded files (soundfile and PyAV encoders, no fixtures on disk).

Every recording is synthesised here: a two-party "call" whose parties speak in turns with
syllable-like envelopes, each party on its own tone frequency (and its own channel when
stereo), plus a little noise.  Checks: output rate/dtype/shape, duration, onset timing
(encoder delay removed), per-channel dominant frequency (channels not mixed), level,
sha256 of the input bytes, and the reason given for every kind of bad input.
"""

from __future__ import annotations

import hashlib
import io

import av
import numpy as np
import pytest
import soundfile as sf

from callcoach.audio import SAMPLE_RATE, AudioError, decode

LEFT_HZ, RIGHT_HZ = 440.0, 1250.0    # agent / customer tone (both below 4 kHz: fit 8 kHz)
DURATION_S = 1.5
ONSET_S = 0.25                       # the first syllable starts here; silence before


def _envelope(n: int, sr: int, turns: list[tuple[float, float]]) -> np.ndarray:
    """Speech-like amplitude: 4 Hz syllables inside each (start, end) turn, silence elsewhere."""
    t = np.arange(n) / sr
    env = np.zeros(n)
    for start, end in turns:
        inside = (t >= start) & (t < end)
        syll = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * (t - start) - np.pi / 2) ** 2
        ramp = np.clip((t - start) / 0.01, 0, 1) * np.clip((end - t) / 0.01, 0, 1)
        env[inside] = (syll * ramp)[inside]
    return env


def make_call(sr: int, channels: int, duration_s: float = DURATION_S, seed: int = 0) -> np.ndarray:
    """(n, channels) float32 in [-1, 1].  Left = agent at 440 Hz, right = customer at 1250 Hz.
    Mono recordings carry only the agent's tone so the dominant frequency is unambiguous."""
    n = int(round(sr * duration_s))
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    agent = 0.4 * np.sin(2 * np.pi * LEFT_HZ * t) * _envelope(
        n, sr, [(ONSET_S, 0.65), (0.75, 1.05), (1.3, 1.45)])
    customer = 0.4 * np.sin(2 * np.pi * RIGHT_HZ * t) * _envelope(
        n, sr, [(0.5, 0.8), (1.0, 1.35)])
    noise = 0.002 * rng.standard_normal((n, 2))
    noise[: int(ONSET_S * sr) - int(0.05 * sr)] = 0.0    # digital silence before the onset
    if channels == 1:
        return (agent + noise[:, 0]).astype(np.float32)[:, None]
    return np.stack([agent + noise[:, 0], customer + noise[:, 1]], axis=1).astype(np.float32)


def sf_encode(x: np.ndarray, sr: int, fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def av_encode(x: np.ndarray, sr: int, container: str, codec: str) -> bytes:
    """Encode (n, channels) float32 with PyAV's bundled FFmpeg (mp3 via LAME, opus via libopus)."""
    layout = "mono" if x.shape[1] == 1 else "stereo"
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=sr, layout=layout)
        pts, block = 0, 960
        for i in range(0, len(x), block):
            chunk = np.ascontiguousarray(x[i:i + block].T)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate, frame.pts = sr, pts
            pts += chunk.shape[1]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def dominant_hz(signal: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    spectrum[0] = 0.0
    return float(np.fft.rfftfreq(len(signal), 1 / sr)[int(np.argmax(spectrum))])


def band_energy(signal: np.ndarray, hz: float, sr: int = SAMPLE_RATE, width: float = 30.0) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal)))) ** 2
    freqs = np.fft.rfftfreq(len(signal), 1 / sr)
    return float(spectrum[(freqs > hz - width) & (freqs < hz + width)].sum())


def onset_s(signal: np.ndarray, sr: int = SAMPLE_RATE, threshold: float = 0.05) -> float:
    return float(np.argmax(np.abs(signal) > threshold)) / sr


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


PCM_CASES = [
    pytest.param("WAV", "PCM_16", "pcm_s16le", id="wav-pcm16"),
    pytest.param("WAV", "FLOAT", "pcm_f32le", id="wav-float32"),
    pytest.param("FLAC", "PCM_16", "flac", id="flac"),
]
RATES = [8000, 16000, 44100, 48000]


@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("fmt,subtype,codec", PCM_CASES)
def test_lossless_formats_decode_to_16k_with_channels_kept(fmt, subtype, codec, sr, channels):
    x = make_call(sr, channels)
    data = sf_encode(x, sr, fmt, subtype)
    audio = decode(data)

    assert audio.sample_rate == SAMPLE_RATE
    assert audio.source_rate == sr
    assert audio.codec == codec
    assert audio.samples.dtype == np.float32
    assert audio.samples.flags["C_CONTIGUOUS"]
    assert audio.channels == channels and audio.samples.shape[0] == channels
    assert audio.sha256 == hashlib.sha256(data).hexdigest()
    assert abs(audio.duration_s - DURATION_S) <= 0.030, audio.duration_s
    _assert_content(audio, x, sr, level_tol=0.05, onset_tol=0.005)
    desc = audio.describe()
    assert desc["layout"] == ("mono" if channels == 1 else "stereo")
    assert desc["source_rate"] == sr and desc["channels"] == channels


# Lossy: libopus accepts 8/12/16/24/48 kHz input only (no 44.1 kHz); the Opus decoder
# always runs at 48 kHz, so that is the source rate PyAV reports for every Opus file.
LOSSY_CASES = [
    *[pytest.param("mp3", "libmp3lame", sr, sr, id=f"mp3-{sr}") for sr in RATES],
    *[pytest.param("ogg", "libopus", sr, 48000, id=f"opus-{sr}") for sr in (8000, 16000, 48000)],
]


@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("container,encoder,sr,reported_rate", LOSSY_CASES)
def test_lossy_formats_decode_with_padding_trimmed(container, encoder, sr, reported_rate, channels):
    x = make_call(sr, channels)
    data = av_encode(x, sr, container, encoder)
    audio = decode(data)

    assert audio.sample_rate == SAMPLE_RATE
    assert audio.source_rate == reported_rate
    assert audio.codec.startswith("mp3" if container == "mp3" else "opus")
    assert audio.channels == channels
    assert audio.sha256 == hashlib.sha256(data).hexdigest()
    # Encoder delay / end padding: FFmpeg honours the LAME gapless tag and Opus pre-skip,
    # so what is left is measured here to be a few ms at most (mp3 at 8 kHz: ~4 ms).
    padding_s = audio.duration_s - DURATION_S
    assert -0.030 <= padding_s <= 0.030, f"{container}@{sr}: padding {padding_s * 1000:.1f} ms"
    _assert_content(audio, x, sr, level_tol=0.25, onset_tol=0.010)


def _assert_content(audio, x: np.ndarray, sr: int, *, level_tol: float, onset_tol: float) -> None:
    expected = [LEFT_HZ, RIGHT_HZ][: x.shape[1]]
    bin_hz = SAMPLE_RATE / audio.samples.shape[1]
    for ch, hz in enumerate(expected):
        sig = audio.samples[ch]
        assert abs(dominant_hz(sig) - hz) <= 2 * bin_hz, (ch, dominant_hz(sig))
        # level survives decoding and resampling
        assert rms(sig) == pytest.approx(rms(x[:, ch]), rel=level_tol)
        # no channel mixing: the other party's tone is at least 30 dB down in this channel
        if len(expected) == 2:
            other = expected[1 - ch]
            assert band_energy(sig, other) < 1e-3 * band_energy(sig, hz), f"channel {ch} leaks"
    # timing: the first syllable starts where it was written (encoder delay removed)
    assert abs(onset_s(audio.samples[0]) - onset_s(x[:, 0], sr)) <= onset_tol
    assert np.abs(audio.samples).max() <= 1.0 + 1e-3


def test_stereo_mono_mix_averages_the_channels():
    x = make_call(16000, 2)
    audio = decode(sf_encode(x, 16000, "WAV", "FLOAT"))
    mix = audio.mono()
    assert mix.shape == (audio.samples.shape[1],) and mix.dtype == np.float32
    np.testing.assert_allclose(mix, x.mean(axis=1), atol=1e-6)
    # both parties are present in the mix
    assert band_energy(mix, LEFT_HZ) > 0.2 * band_energy(mix, RIGHT_HZ)
    assert band_energy(mix, RIGHT_HZ) > 0.2 * band_energy(mix, LEFT_HZ)


def test_float_wav_at_16k_is_sample_exact():
    x = make_call(16000, 2)
    audio = decode(sf_encode(x, 16000, "WAV", "FLOAT"))
    np.testing.assert_array_equal(audio.samples, x.T)


def test_same_audio_different_container_has_different_sha():
    pcm = np.round(make_call(16000, 1) * 32767).astype(np.int16)   # same 16-bit samples in both
    a = decode(sf_encode(pcm, 16000, "WAV", "PCM_16"))
    b = decode(sf_encode(pcm, 16000, "FLAC", "PCM_16"))
    assert a.sha256 != b.sha256
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.samples[0], pcm[:, 0] / np.float32(32768))


# -- bad input ---------------------------------------------------------------------------

def _wav(x: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> bytes:
    return sf_encode(x, sr, "WAV", subtype)


def _video_only() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="matroska") as out:
        stream = out.add_stream("mjpeg", rate=5)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuvj420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _nan_somewhere() -> bytes:
    x = make_call(16000, 1)[:, 0].copy()
    x[12_345] = np.nan
    return _wav(x, subtype="FLOAT")


BAD_INPUTS = [
    pytest.param(lambda: b"", "empty", id="empty"),
    pytest.param(lambda: b"Meeting notes, not a recording.\nCall the customer back at 3pm.\n" * 20,
                 "not a readable audio container", id="text-named-wav"),
    pytest.param(lambda: _wav(make_call(16000, 1))[:30], "not a readable audio container",
                 id="truncated-wav-header"),
    pytest.param(lambda: sf_encode(make_call(44100, 1), 44100, "FLAC", "PCM_16")[:2000],
                 "corrupt audio data (flac)", id="truncated-flac"),
    pytest.param(lambda: np.random.default_rng(7).bytes(8192), "not a readable audio container",
                 id="random-bytes"),
    pytest.param(lambda: _wav(np.zeros(1, np.float32)), "too short", id="one-sample-wav"),
    pytest.param(lambda: _wav(np.full(16000, np.nan, np.float32), subtype="FLOAT"), "NaN",
                 id="all-nan-float-wav"),
    pytest.param(_nan_somewhere, "NaN", id="one-nan-sample"),
    pytest.param(lambda: _wav(np.full(16000, np.inf, np.float32), subtype="FLOAT"), "infinite",
                 id="inf-float-wav"),
    pytest.param(lambda: _wav(np.zeros((16000, 3), np.float32)), "3 channels", id="three-channels"),
    pytest.param(lambda: _wav(np.zeros((8000, 6), np.float32)), "6 channels", id="six-channels"),
    pytest.param(_video_only, "no audio stream", id="video-only"),
]


@pytest.mark.parametrize("make,reason", BAD_INPUTS)
def test_bad_input_raises_audio_error_with_reason(make, reason):
    with pytest.raises(AudioError) as info:
        decode(make())
    assert reason in str(info.value)
    assert isinstance(info.value, ValueError)   # AudioError is a ValueError for callers


def test_max_channels_can_be_lowered_to_refuse_stereo():
    data = _wav(make_call(16000, 2))
    with pytest.raises(AudioError, match="2 channels; at most 1 supported"):
        decode(data, max_channels=1)
    assert decode(data, max_channels=2).channels == 2


@pytest.mark.parametrize("sr", [16000, 44100])
def test_too_long_is_refused_and_shorter_is_accepted(sr):
    rng = np.random.default_rng(3)
    x = (0.05 * rng.standard_normal(int(sr * 10.5))).astype(np.float32)
    data = _wav(x, sr)
    with pytest.raises(AudioError, match=r"longer than the configured maximum of 10 s"):
        decode(data, max_duration_s=10)
    audio = decode(data, max_duration_s=11)
    assert abs(audio.duration_s - 10.5) <= 0.030
    assert decode(data).duration_s == pytest.approx(audio.duration_s)


def test_long_file_is_refused_without_decoding_to_its_end():
    """A 30 s FLAC cut off at half its bytes is corrupt past ~15 s.  Decoding it whole
    reports the corruption; with a 5 s limit the refusal is 'too long', which proves the
    decoder stopped before it ever reached the damaged part."""
    rng = np.random.default_rng(5)
    x = (0.1 * rng.standard_normal(16000 * 30)).astype(np.float32)
    data = sf_encode(x, 16000, "FLAC", "PCM_16")
    cut = data[: len(data) // 2]
    with pytest.raises(AudioError, match="corrupt audio data"):
        decode(cut)
    with pytest.raises(AudioError, match="longer than the configured maximum of 5 s"):
        decode(cut, max_duration_s=5)
