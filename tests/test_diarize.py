"""Diarization backends on real audio (real model inference, nothing mocked).

Clips are cut out of the labelled dev calls (../shared/dev-calls beside the repository)
by their RTTM turn times, so the expected speakers and boundaries are known exactly.  The
held-out checks render calls from ``samples/heldout`` scripts with espeak-ng + sox into
``tmp_path`` (skipped only where those tools are missing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")

from callcoach.audio import SAMPLE_RATE, Audio, decode  # noqa: E402
from callcoach.speech.diarize import (EmbeddedDiarizer,  # noqa: E402
                                      EmbeddedDiarizerConfig, SpeakerSegment, _otsu_split,
                                      choose_backend, make_diarizer, pitch_track)

REPO = Path(__file__).resolve().parents[1]
CALLS = REPO.parent / "shared" / "dev-calls"
CALL = "dev-07-trailpoint-outdoors"          # agent first, clean turns, 0.7 s pauses
OVERLAP_CALL = "dev-02-fibrelink-broadband"  # agent interrupts at 22.399-23.699 s

HELDOUT = REPO / "samples" / "heldout"

needs_dev = pytest.mark.skipif(
    not (CALLS / f"{CALL}.rttm").exists(),
    reason=f"dev calls not found at {CALLS} (expected ../shared/dev-calls beside the repo)")
needs_tts = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")),
    reason="espeak-ng and sox are needed to render the held-out calls")


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


@needs_dev
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


@needs_dev
def test_embedded_fixed_num_speakers(embedded, two_voice):
    turns, end = two_voice
    segs = embedded(clip(load(CALL, "mono16k"), 0.0, end), num_speakers=2)
    assert len({s.speaker for s in segs}) == 2


def one_voice() -> tuple[Audio, list[tuple[str, float, float]]]:
    """The agent's first three turns of dev-07 joined with 0.7 s pauses: one voice."""
    audio = load(CALL, "mono16k")
    turns = [t for t in read_rttm(CALL) if t[0] == "agent"][:3]
    gap = np.zeros(int(0.7 * SAMPLE_RATE), dtype=np.float32)
    parts = []
    for _, a, b in turns:
        parts += [audio.samples[0, int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)], gap]
    return Audio(np.concatenate(parts)[None], SAMPLE_RATE, 16000, "flac", "x"), turns


@needs_dev
def test_embedded_one_voice(embedded):
    one, turns = one_voice()
    segs = embedded(one)
    check_well_formed(segs, one.duration_s)
    assert len({s.speaker for s in segs}) == 1
    assert sum(s.duration for s in segs) >= 0.9 * sum(b - a for _, a, b in turns)


@needs_dev
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
    # every backend reports through the hook of the call (here: nobody spoke)
    got = []
    assert channels(stereo, hook=lambda step, value: got.append((step, value))) == []
    assert got == [("num_speakers", 0)]


@needs_dev
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


@needs_dev
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
    assert "tiled-spectral-v2" in embedded.version
    assert "silero-vad-v6" in embedded.version
    assert channels.name == "channels" and channels.version.startswith("channels:silero-vad-v6")


# --------------------------------------------------------------------------------------
# two-party prior and held-out calls (rendered from samples/heldout scripts)

# (folder, DER bound): DER at collar 0.25 s with overlap scored.  Both measured 0.00 %
# with the committed thresholds (scripts/eval_diarization.py); the bound is the 5 % target,
# which the earlier backend missed on such calls (hx-15: 8.8 % without the pitch evidence).
HELDOUT_CALLS = {
    # held-out split: two female voices 5 pitch units apart, 8 kHz stereo downmixed to
    # mono, one ~1 s customer interruption
    "ho-10-willow-water": ("scripts", 0.05),
    # tuning split: one espeak timbre at two pitches (resemblyzer confuses it; the pitch
    # evidence separates it), 8 kHz stereo downmixed
    "hx-15-metro-taxis": ("tuning-extra", 0.05),
}


@pytest.fixture(scope="module")
def two_party():
    return make_diarizer("embedded", two_party=True)


def render(name: str, folder: str, out: Path) -> tuple[Audio, dict]:
    """Render one samples/heldout script with scripts/render_calls.py into out."""
    scripts = out / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    shutil.copy(HELDOUT / folder / f"{name}.yaml", scripts / f"{name}.yaml")
    subprocess.run([sys.executable, str(REPO / "scripts" / "render_calls.py"), str(scripts),
                    str(out)], check=True, capture_output=True)
    truth = json.loads((out / f"{name}.truth.json").read_text())
    return decode((out / truth["audio"]["file"]).read_bytes()), truth


def der(truth: dict, segs: list[SpeakerSegment], collar: float = 0.25) -> float:
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, hyp = Annotation(), Annotation()
    for i, t in enumerate(truth["turns"]):
        ref[Segment(t["start"], t["end"]), i] = t["speaker"]
    for i, s in enumerate(segs):
        hyp[Segment(s.start, s.end), i] = s.speaker
    uem = Timeline([Segment(0.0, truth["duration_s"])])
    return DiarizationErrorRate(collar=collar, skip_overlap=False)(ref, hyp, uem=uem)


@needs_tts
@pytest.mark.parametrize("name", sorted(HELDOUT_CALLS))
def test_two_party_rendered_call(two_party, name, tmp_path):
    folder, bound = HELDOUT_CALLS[name]
    audio, truth = render(name, folder, tmp_path)
    assert audio.channels == (2 if truth["audio"]["layout"] == "stereo" else 1)
    info: dict = {}
    segs = two_party(audio, hook=info.__setitem__)   # stereo is downmixed: mono diarization
    check_well_formed(segs, audio.duration_s)
    assert len({s.speaker for s in segs}) == 2
    assert info["num_speakers"] == 2
    d = der(truth, segs)
    assert d <= bound, (name, d, info)
    # the interruption survives in mono: both speakers during the overlap
    for ov in truth["overlaps"]:
        a, b = ov["start"] + 0.15, ov["end"] - 0.15
        assert all(speaking(segs, s, a, b) >= 0.5 * (b - a) for s in {x.speaker for x in segs})


def test_two_party_options():
    ch = make_diarizer("channels", two_party=True)           # accepted by every backend
    assert ch.two_party
    with pytest.raises(ValueError):
        make_diarizer("embedded", min_speakers=0, config=EmbeddedDiarizerConfig(overlap=False))


def test_two_party_speaker_range(two_party, embedded):
    assert two_party.speaker_range(None) == (2, 2)
    assert two_party.speaker_range(3) == (3, 3)               # num_speakers overrides
    assert embedded.speaker_range(None) == (1, 4)
    assert "two-party" in two_party.version and "two-party" not in embedded.version


@needs_dev
def test_speech_stage_passes_two_party(tmp_path, two_voice):
    """SpeechConfig.two_party reaches every backend the speech stage builds and shows in
    the diarizer version the transcript records (real Whisper base + real diarizers; the
    pyannote pipeline dir holds the untrained checkpoints of test_diarize_pyannote)."""
    from test_diarize_pyannote import build_pipeline_dir

    from callcoach.models import ModelConfig
    from callcoach.speech.stage import SpeechConfig, SpeechStage

    models = ModelConfig(diarization=str(build_pipeline_dir(
        tmp_path / "pipeline", clustering="AgglomerativeClustering")))
    turns, end = two_voice
    call = clip(load(CALL, "mono16k"), 0.0, end)

    on = SpeechStage(SpeechConfig(models=models, device="cpu"))
    assert on.config.two_party                                # the default
    assert on.backend_for(call) == "pyannote"                 # mono + a pipeline dir
    emb = on.diarizer("embedded")
    assert emb.two_party and emb.speaker_range(None) == (2, 2)
    assert "+two-party" in emb.version
    segs = emb(call)
    assert sorted(map_speakers(segs, turns).values()) == ["agent", "customer"]
    pya = on.diarizer("pyannote")
    assert pya.two_party and pya.version.endswith("+two-party")
    assert len({s.speaker for s in pya(call)}) <= 2           # max_speakers=2 reached it
    assert on.diarizer("channels").two_party

    off = SpeechStage(SpeechConfig(models=models, device="cpu", two_party=False))
    emb_off = off.diarizer("embedded")
    assert not emb_off.two_party and "two-party" not in emb_off.version
    assert emb_off.speaker_range(None) == (1, 4)
    one, _ = one_voice()                   # the count is estimated again: one voice is one
    assert len({s.speaker for s in emb_off(one)}) == 1
    pya_off = off.diarizer("pyannote")
    assert not pya_off.two_party and "two-party" not in pya_off.version
    assert emb.version != emb_off.version and pya.version != pya_off.version


def test_pitch_track_synthetic():
    t = np.arange(int(1.0 * SAMPLE_RATE)) / SAMPLE_RATE
    for f0 in (85.0, 140.0, 230.0):
        # harmonic complex with a strong second harmonic (octave-error bait)
        x = sum(a * np.sin(2 * np.pi * h * f0 * t) for h, a in ((1, 0.6), (2, 1.0), (3, 0.4)))
        f, per = pitch_track(x.astype(np.float32))
        mid = slice(10, len(f) - 10)
        assert abs(np.median(f[mid]) / f0 - 1) < 0.02, f0
        assert np.median(per[mid]) > 0.9
    noise = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32)
    _, per = pitch_track(noise)
    assert np.median(per) < 0.5


def test_otsu_split():
    rng = np.random.default_rng(0)
    two = np.r_[rng.normal(np.log(100), 0.04, 30), rng.normal(np.log(130), 0.04, 20)]
    thr, dprime, frac, gap = _otsu_split(two)
    assert np.log(100) < thr < np.log(130) and dprime > 4.5 and abs(gap - np.log(1.3)) < 0.05
    assert 0.35 < frac < 0.45
    one = rng.normal(np.log(100), 0.04, 50)
    assert _otsu_split(one)[1] < 4.5                   # a single voice: no clear split


# --------------------------------------------------------------------------------------
# embedded tuning as one frozen config; diagnostics through a per-call hook

# the keyword defaults EmbeddedDiarizer.__init__ had before its tuning moved into
# EmbeddedDiarizerConfig (bb4e691): the calibrated thresholds must not drift with the move
OLD_DEFAULTS = dict(
    hop_s=0.4, min_window_s=0.8, min_cluster_s=2.0, same_voice_cos=0.80, pitch_gap=0.09,
    extra_voice_cos=0.65, pitch_weight=0.14, pitch_min_gap=0.15, pitch_min_dprime=4.5,
    switch_penalty=40.0, free_gap_s=0.7, min_segment_s=0.3, fill_gap_s=0.5, onset=0.45,
    offset=0.30, min_silence_s=0.10, min_speech_s=0.12, pad_s=0.0, trim_db=40.0,
    overlap="auto", overlap_checkpoint=None, overlap_threshold=0.5)


def test_config_defaults_are_the_old_defaults():
    import dataclasses

    cfg = EmbeddedDiarizerConfig()
    assert dataclasses.asdict(cfg) == OLD_DEFAULTS
    assert [f.name for f in dataclasses.fields(cfg)] == list(OLD_DEFAULTS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hop_s = 0.5                                      # type: ignore[misc]
    assert not hasattr(cfg, "__dict__")                      # slots
    tuned = dataclasses.replace(cfg, switch_penalty=30.0)
    assert tuned.switch_penalty == 30.0 and cfg.switch_penalty == 40.0
    assert EmbeddedDiarizerConfig(trim_db=None, overlap=False, pitch_weight=0).trim_db is None


@pytest.mark.parametrize("field, value", [
    ("hop_s", 0.0), ("free_gap_s", -0.1), ("min_window_s", -1.0), ("switch_penalty", -5.0),
    ("pitch_weight", -0.1), ("trim_db", -3.0), ("pad_s", float("nan")),
    ("min_cluster_s", float("inf")), ("same_voice_cos", 1.5), ("extra_voice_cos", -2.0),
    ("onset", 1.2), ("overlap_threshold", -0.1), ("offset", 0.5),   # offset above onset
    ("fill_gap_s", "0.5"), ("min_segment_s", True), ("overlap", "yes"), ("overlap", 1),
    ("overlap_checkpoint", ""), ("overlap_checkpoint", 3),
])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=rf"EmbeddedDiarizerConfig\.{field} must be"):
        EmbeddedDiarizerConfig(**{field: value})


def test_tuning_has_one_way_in():
    """The old loose keywords are gone (callers pass a config), and a config of the wrong
    type is refused before any model loads."""
    with pytest.raises(TypeError):
        EmbeddedDiarizer(switch_penalty=30.0)                # type: ignore[call-arg]
    with pytest.raises(TypeError):
        make_diarizer("embedded", config={"switch_penalty": 30.0})


def sample_call(name: str = "sample-03-standard.mp3", end: float = 20.5) -> Audio:
    """The first four turns of a repository sample call (mono, agent + customer)."""
    audio = decode((REPO / "samples" / "calls" / name).read_bytes())
    return clip(audio, 0.0, end)


@pytest.fixture(scope="module")
def sample_run(two_party):
    """One two-party diarization of the sample clip: (audio, segments, hook calls)."""
    audio = sample_call()
    calls: list[tuple[str, object]] = []
    segs = two_party(audio, hook=lambda step, value: calls.append((step, value)))
    return audio, segs, calls


def test_hook_receives_diagnostics(two_party, sample_run):
    audio, segs, calls = sample_run
    check_well_formed(segs, audio.duration_s)
    steps = [s for s, _ in calls]
    assert len(steps) == len(set(steps))                     # each step once per call
    assert set(steps) <= set(EmbeddedDiarizer.DIAGNOSTICS)
    # reported in the documented order
    assert steps == [s for s in EmbeddedDiarizer.DIAGNOSTICS if s in steps]
    info = dict(calls)
    assert info["num_speakers"] == 2 == len({s.speaker for s in segs})
    assert isinstance(info["pitch"], bool)
    assert info["runs"] >= 4 and info["windows"] >= info["runs"]
    assert -1.0 <= info["centroid_cos"] <= 1.0 and info["pitch_gap"] >= 0.0
    if two_party.osd is not None:
        assert info["overlap_s"] >= 0.0
    # silence: only the speaker count
    silent = Audio(np.zeros((1, 2 * SAMPLE_RATE), np.float32), SAMPLE_RATE, 16000, "pcm", "0")
    quiet: list = []
    assert two_party(silent, hook=lambda *a: quiet.append(a)) == []
    assert quiet == [("num_speakers", 0)]


def test_reused_instance_gives_identical_results(two_party, sample_run):
    """Nothing about a call stays on the instance: a second call, a call without a hook
    and calls from two threads at once give the same segments and diagnostics."""
    from concurrent.futures import ThreadPoolExecutor

    audio, segs, calls = sample_run
    state = dict(vars(two_party))
    again: list = []
    assert two_party(audio, hook=lambda *a: again.append(a)) == segs
    assert again == calls
    assert two_party(audio) == segs
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda _: two_party(audio), range(2))) == [segs, segs]
    assert vars(two_party).keys() == state.keys()
    assert all(vars(two_party)[k] is v for k, v in state.items())
