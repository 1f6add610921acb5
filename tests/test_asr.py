"""ASR: clips packed into shared Whisper windows (by speaker), words mapped back to their clip.

``pack`` is checked exactly; the Transcriber runs real Whisper base (int8, CPU) on the
truth turns of a rendered stereo call, each turn cut from its own channel, packed and
unpacked: every word must land in the clip (turn) that said it, inside that clip's time
span, and packing must cut the number of Whisper windows without losing accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import numpy as np
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

from pipelines.audio import SAMPLE_RATE, decode
from pipelines.models import ModelConfig
from pipelines.speech.asr import GAP_S, MAX_CLIP_S, AsrConfig, Clip, Transcriber, pack

CALL = Path(__file__).resolve().parent.parent / "samples" / "calls" / "sample-02-handoff"
NORM = EnglishTextNormalizer()


def _clips(durations: list[float]) -> list[Clip]:
    out, t = [], 0.0
    for d in durations:
        out.append(Clip(np.full(int(d * SAMPLE_RATE), 0.01, dtype=np.float32), t))
        t += d + 1.0
    return out


def test_pack_joins_consecutive_clips_into_windows_within_the_limit():
    clips = _clips([3.0, 5.0, 10.0, 9.0, 12.0, 27.0, 1.0, 0.5])
    buffer, spans, windows = pack(clips, 28.0)
    # spans: each clip laid end to end with GAP_S of silence after it, offsets kept
    pos = 0.0
    for clip, (s0, s1, offset) in zip(clips, spans):
        n = len(clip.samples) / SAMPLE_RATE
        assert s0 == pytest.approx(pos) and s1 == pytest.approx(pos + n)
        assert offset == clip.start
        pos += n + GAP_S
    assert len(buffer) == round(pos * SAMPLE_RATE)
    # windows: 3+5+10 (+2 gaps of 0.4 s) = 18.8 s, +9 would be 28.2 > 28; 9+12; 27 alone
    # (+1 would be 28.4); 1+0.5
    assert len(windows) == 4
    for a, b in windows:
        assert 0 < b - a <= 28.0
    covered = [[i for i, (s0, s1, _) in enumerate(spans) if a <= s0 and s1 <= b] for a, b in windows]
    assert covered == [[0, 1, 2], [3, 4], [5], [6, 7]]
    assert buffer[int(spans[0][1] * SAMPLE_RATE) + 10] == 0.0       # the gap is silence


def test_pack_zero_gives_one_window_per_clip_and_long_clips_are_cut():
    clips = _clips([2.0, 3.0, 40.0])
    _, spans, windows = pack(clips, 0)
    assert [(a, b) for a, b in windows] == [(s0, s1) for s0, s1, _ in spans]
    assert spans[2][1] - spans[2][0] == pytest.approx(MAX_CLIP_S)


def test_pack_never_mixes_groups_in_a_window():
    clips = _clips([2.0, 2.0, 2.0, 2.0, 2.0])
    groups = ["A", "A", "B", "B", "A"]
    _, spans, windows = pack(clips, 28.0, groups)
    members = [{groups[i] for i, (s0, s1, _) in enumerate(spans) if a <= s0 and s1 <= b}
               for a, b in windows]
    assert members == [{"A"}, {"B"}, {"A"}]


@pytest.fixture(scope="module")
def turns_as_clips():
    audio = decode((CALL.with_suffix(".wav")).read_bytes())
    meta = json.loads(CALL.with_suffix(".json").read_text())
    truth = json.loads(CALL.with_suffix(".truth.json").read_text())
    agent_ch = int(meta["agent_channel"])
    clips, texts, speakers = [], [], []
    for t in truth["turns"]:
        ch = agent_ch if t["speaker"] == "agent" else 1 - agent_ch
        a, b = int((t["start"] - 0.15) * SAMPLE_RATE), int((t["end"] + 0.15) * SAMPLE_RATE)
        a = max(a, 0)
        clips.append(Clip(audio.samples[ch, a:b], a / SAMPLE_RATE))
        texts.append(t["text"])
        speakers.append(t["speaker"])
    return clips, texts, speakers


@pytest.fixture(scope="module")
def model_dir():
    mc = ModelConfig()
    return str(mc.local_dir(mc.asr))


def _wer(refs: list[str], hyps: list[str]) -> float:
    return jiwer.wer(NORM(" ".join(refs)), NORM(" ".join(hyps)))


@pytest.mark.slow
def test_packed_windows_keep_every_word_in_its_own_turn(turns_as_clips, model_dir):
    clips, texts, speakers = turns_as_clips
    results = {}
    for variant, pack_s, groups in (("by speaker", MAX_CLIP_S, speakers),
                                    ("call order", MAX_CLIP_S, None), ("single", 0.0, None)):
        tr = Transcriber(AsrConfig(model_dir=model_dir, device="cpu", compute_type="int8",
                                   cpu_threads=2, pack_s=pack_s))
        words, language = tr.transcribe(clips, groups)
        assert language == "en" and len(words) == len(clips)
        results[variant] = words
        for clip, ws in zip(clips, words):
            lo = clip.start - 0.01
            hi = clip.start + len(clip.samples) / SAMPLE_RATE + 0.01
            assert all(lo <= w.start <= w.end <= hi for w in ws), (clip.start, ws)
    _, _, windows = pack(clips, MAX_CLIP_S)
    assert len(windows) < len(clips) / 2          # fewer 30 s encoder windows ...
    order = sorted(range(len(clips)), key=lambda i: (speakers[i] != speakers[0], clips[i].start))
    _, _, windows = pack([clips[i] for i in order], MAX_CLIP_S, [speakers[i] for i in order])
    assert len(windows) < len(clips) / 2
    single = [" ".join(w.w for w in ws) for ws in results["single"]]
    for variant in ("by speaker", "call order"):
        packed = [" ".join(w.w for w in ws) for ws in results[variant]]
        # ... no less accurate (rendered speech: all well under 20 % WER) ...
        assert _wer(texts, packed) <= min(0.2, _wer(texts, single) + 0.03), variant
    packed = [" ".join(w.w for w in ws) for ws in results["by speaker"]]
    # ... and each turn's words are that turn's: per turn, the words Whisper put there
    # match the turn's own text better than either neighbour's (spelled codes such as
    # "S P nine one four..." can be misheard, so no absolute bar per turn)
    for i, hyp in enumerate(packed):
        if len(NORM(texts[i]).split()) < 4:
            continue
        own = jiwer.wer(NORM(texts[i]), NORM(hyp) or "-")
        for j in (i - 1, i + 1):
            if 0 <= j < len(texts) and len(NORM(texts[j]).split()) >= 4:
                assert own < jiwer.wer(NORM(texts[j]), NORM(hyp) or "-"), (i, j, hyp)


@pytest.mark.slow
def test_a_window_caught_in_a_repetition_loop_is_decoded_again(turns_as_clips, model_dir):
    """Fault injected: the first decode of the second window comes back as a repetition
    loop (what Whisper produced on a spelled phone number at 8 kHz).  That window alone is
    decoded again, by the real model, with repeated 3-grams forbidden; the other windows
    keep their first decode, and no looped text reaches the transcript."""
    from faster_whisper.transcribe import Segment, Word as FwWord

    clips, texts, speakers = turns_as_clips
    tr = Transcriber(AsrConfig(model_dir=model_dir, device="cpu", compute_type="int8",
                               cpu_threads=2))
    real = tr.pipeline.transcribe
    calls = []

    def faulty(buffer, **kw):
        calls.append(kw)
        segments, info = real(buffer, **kw)
        segments = list(segments)
        if len(calls) == 1:                       # first pass: window 1 loops
            w = kw["clip_timestamps"][1]
            loop = [FwWord(w["start"] + 0.3 * k, w["start"] + 0.3 * k + 0.2, " then,", 0.9)
                    for k in range(40)]
            segments = [s for s in segments if not (w["start"] <= (s.start + s.end) / 2 < w["end"])]
            segments.append(Segment(id=99, seek=0, start=w["start"], end=w["end"],
                                    text=" then," * 40, tokens=[], avg_logprob=-0.2,
                                    compression_ratio=12.0, no_speech_prob=0.01,
                                    words=loop, temperature=0.0))
        return segments, info

    tr.pipeline.transcribe = faulty
    words, _ = tr.transcribe(clips, speakers)
    assert len(calls) == 2
    assert "no_repeat_ngram_size" not in calls[0] and calls[1]["no_repeat_ngram_size"] == 3
    assert len(calls[1]["clip_timestamps"]) == 1 and calls[1]["clip_timestamps"][0] == \
        calls[0]["clip_timestamps"][1]
    hyp = [" ".join(w.w for w in ws) for ws in words]
    assert not any("then, then, then" in h for h in hyp)
    assert _wer(texts, hyp) <= 0.2
