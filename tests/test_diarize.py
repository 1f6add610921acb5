"""Diarization backends on real audio (real model inference, nothing mocked).

Clips are cut out of the labelled dev calls (../shared/dev-calls beside the repository)
by their RTTM turn times, so the expected speakers and boundaries are known exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")

from pipelines.audio import SAMPLE_RATE, Audio, decode  # noqa: E402
from pipelines.speech.diarize import (SpeakerSegment, choose_backend,  # noqa: E402
                                      make_diarizer)

REPO = Path(__file__).resolve().parents[1]
CALLS = REPO.parent / "shared" / "dev-calls"
CALL = "dev-07-trailpoint-outdoors"          # agent first, clean turns, 0.7 s pauses
OVERLAP_CALL = "dev-02-fibrelink-broadband"  # agent interrupts at 22.399-23.699 s

pytestmark = pytest.mark.skipif(
    not (CALLS / f"{CALL}.rttm").exists(),
    reason=f"dev calls not found at {CALLS} (expected ../shared/dev-calls beside the repo)")


def read_rttm(name: str) -> list[tuple[str, float, float]]:
    out = []
    for line in (CALLS / f"{name}.rttm").read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            out.append((f[7], float(f[3]), float(f[3]) + float(f[4])))
    return out


def load(name: str, layout: str) -> Audio:
    return decode((CALLS / f"{name}.{layout}.flac").read_bytes())


def clip(audio: Audio, start: float, end: float) -> Audio:
    a, b = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
    return Audio(np.ascontiguousarray(audio.samples[:, a:b]), SAMPLE_RATE, audio.source_rate,
                 audio.codec, audio.sha256)


def check_well_formed(segs: list[SpeakerSegment], duration: float) -> None:
    assert segs == sorted(segs, key=lambda s: (s.start, s.end, s.speaker))
    for s in segs:
        assert type(s.start) is float and type(s.end) is float   # JSON-ready, not numpy
        assert 0.0 <= s.start < s.end <= duration + 1e-6
    for spk in {s.speaker for s in segs}:
        mine = [s for s in segs if s.speaker == spk]
        for x, y in zip(mine, mine[1:]):
            assert x.end <= y.start, f"{spk} overlaps itself: {x} {y}"


def speaking(segs, spk, t0, t1) -> float:
    """Seconds of [t0, t1] covered by speaker spk."""
    return sum(max(0.0, min(s.end, t1) - max(s.start, t0)) for s in segs if s.speaker == spk)


def map_speakers(segs, turns) -> dict[str, str]:
    """Our label -> truth label by largest overlap."""
    out = {}
    for spk in {s.speaker for s in segs}:
        cover = {t: sum(speaking(segs, spk, a, b) for tt, a, b in turns if tt == t)
                 for t in {t for t, _, _ in turns}}
        out[spk] = max(cover, key=cover.get)
    return out


@pytest.fixture(scope="module")
def embedded():
    return make_diarizer("embedded")


@pytest.fixture(scope="module")
def channels():
    return make_diarizer("channels")


@pytest.fixture(scope="module")
def two_voice():
    """First four turns of dev-07 (agent, customer, agent, customer), 0-26 s."""
    turns = [t for t in read_rttm(CALL) if t[2] <= 26.0]
    assert [t[0] for t in turns] == ["agent", "customer", "agent", "customer"]
    return turns, 26.0


def test_embedded_two_voices_boundaries(embedded, two_voice):
    turns, end = two_voice
    audio = clip(load(CALL, "mono16k"), 0.0, end)
    segs = embedded(audio)
    check_well_formed(segs, audio.duration_s)
    assert len({s.speaker for s in segs}) == 2
    mapping = map_speakers(segs, turns)
    assert sorted(mapping.values()) == ["agent", "customer"]
    # every truth turn boundary has a boundary of the right speaker within 0.3 s
    for spk, a, b in turns:
        mine = [s for s in segs if mapping[s.speaker] == spk]
        assert min(abs(s.start - a) for s in mine) <= 0.3, (spk, a, mine)
        assert min(abs(s.end - b) for s in mine) <= 0.3, (spk, b, mine)
    # and the speakers are attributed right over >= 95 % of the reference speech
    right = sum(speaking(segs, our, a, b) for spk, a, b in turns
                for our, t in mapping.items() if t == spk)
    assert right >= 0.95 * sum(b - a for _, a, b in turns)


def test_embedded_fixed_num_speakers(embedded, two_voice):
    turns, end = two_voice
    segs = embedded(clip(load(CALL, "mono16k"), 0.0, end), num_speakers=2)
    assert len({s.speaker for s in segs}) == 2


def test_embedded_one_voice(embedded):
    audio = load(CALL, "mono16k")
    turns = [t for t in read_rttm(CALL) if t[0] == "agent"][:3]
    gap = np.zeros(int(0.7 * SAMPLE_RATE), dtype=np.float32)
    parts = []
    for _, a, b in turns:
        parts += [audio.samples[0, int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)], gap]
    one = Audio(np.concatenate(parts)[None], SAMPLE_RATE, 16000, "flac", "x")
    segs = embedded(one)
    check_well_formed(segs, one.duration_s)
    assert len({s.speaker for s in segs}) == 1
    assert sum(s.duration for s in segs) >= 0.9 * sum(b - a for _, a, b in turns)


def test_embedded_keeps_overlap(embedded):
    """Mono mix of an interruption: both speakers are recorded as speaking in the overlap
    (needs the segmentation model in the whisperx wheel)."""
    if embedded.osd is None:
        pytest.skip("overlap detection unavailable (whisperx segmentation asset missing)")
    audio = clip(load(OVERLAP_CALL, "mono16k"), 15.0, 30.0)   # agent cuts in at 22.399
    segs = embedded(audio, num_speakers=2)
    check_well_formed(segs, audio.duration_s)
    spk = sorted({s.speaker for s in segs})
    assert len(spk) == 2
    # truth overlap 22.399-23.699 s = clip 7.4-8.7 s: both speakers there
    for s in spk:
        assert speaking(segs, s, 7.5, 8.6) >= 0.8, (s, segs)
    assert "pyannote-segmentation" in embedded.version


def test_silence_gives_no_segments(embedded, channels):
    mono = Audio(np.zeros((1, 3 * SAMPLE_RATE), np.float32), SAMPLE_RATE, 16000, "pcm", "0")
    stereo = Audio(np.zeros((2, 3 * SAMPLE_RATE), np.float32), SAMPLE_RATE, 8000, "pcm", "0")
    noise = Audio((1e-3 * np.random.default_rng(0).standard_normal((2, 3 * SAMPLE_RATE))
                   ).astype(np.float32), SAMPLE_RATE, 8000, "pcm", "0")
    assert embedded(mono) == []
    assert channels(stereo) == []
    assert channels(noise) == []


def test_channels_agent_on_ch0(channels, two_voice):
    turns, end = two_voice
    audio = clip(load(CALL, "stereo8k"), 0.0, end)
    assert choose_backend(audio) == "channels"
    segs = channels(audio)
    check_well_formed(segs, audio.duration_s)
    assert {s.speaker for s in segs} == {"CH0", "CH1"}
    for spk, a, b in turns:
        ch = "CH0" if spk == "agent" else "CH1"
        other = "CH1" if ch == "CH0" else "CH0"
        assert speaking(segs, ch, a, b) >= 0.95 * (b - a)
        assert speaking(segs, other, a + 0.3, b - 0.3) == 0.0
        mine = [s for s in segs if s.speaker == ch]
        assert min(abs(s.start - a) for s in mine) <= 0.3
        assert min(abs(s.end - b) for s in mine) <= 0.3


def test_channels_keeps_overlap_and_drops_bleed(channels):
    audio = clip(load(OVERLAP_CALL, "stereo8k"), 15.0, 30.0)   # agent cuts in at 22.399
    segs = channels(audio)
    check_well_formed(segs, audio.duration_s)
    # both talk in 22.4-23.7 (clip time 7.4-8.7)
    assert speaking(segs, "CH0", 7.5, 8.6) >= 1.0
    assert speaking(segs, "CH1", 7.5, 8.6) >= 1.0
    # crosstalk: each channel carries the other at -26 dB; bleed must not become speech
    x = audio.samples
    bled = Audio(np.stack([x[0] + 0.05 * x[1], x[1] + 0.05 * x[0]]).astype(np.float32),
                 SAMPLE_RATE, 8000, "flac", "b")
    segs = channels(bled)
    assert speaking(segs, "CH0", 0.0, 7.2) <= 0.2          # customer alone before 22.4 s
    assert speaking(segs, "CH1", 8.9, 13.0) <= 0.2         # agent alone after 23.7 s
    assert speaking(segs, "CH0", 7.5, 8.6) >= 1.0          # the overlap survives
    assert speaking(segs, "CH1", 7.5, 8.6) >= 1.0


def test_choose_backend():
    mono = Audio(np.zeros((1, 1600), np.float32), SAMPLE_RATE, 16000, "pcm", "0")
    rng = np.random.default_rng(1)
    two = Audio(rng.standard_normal((2, 16000)).astype(np.float32), SAMPLE_RATE, 8000, "pcm", "0")
    same = rng.standard_normal(16000).astype(np.float32)
    dual_mono = Audio(np.stack([same, same]), SAMPLE_RATE, 8000, "pcm", "0")
    assert choose_backend(mono) == "embedded"
    assert choose_backend(mono, model_dir="/models/pyannote") == "pyannote"
    assert choose_backend(two) == "channels"
    assert choose_backend(dual_mono) == "embedded"
    assert choose_backend(two, "embedded") == "embedded"
    with pytest.raises(ValueError):
        choose_backend(two, "nope")
    with pytest.raises(ValueError):
        make_diarizer("nope")


def test_versions_recorded(embedded, channels):
    assert embedded.name == "embedded" and "resemblyzer-0.1.4" in embedded.version
    assert "silero-vad-v6" in embedded.version
    assert channels.name == "channels" and channels.version.startswith("channels:silero-vad-v6")
