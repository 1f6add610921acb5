"""ASR: clips packed into shared Whisper windows (by speaker), words mapped back to their clip.

``pack`` is checked exactly; the Transcriber runs real Whisper base (int8, CPU) on the
truth turns of a rendered stereo call, each turn cut from its own channel, packed and
unpacked: every word must land in the clip (turn) that said it, inside that clip's time
span, and packing must cut the number of Whisper windows without losing accuracy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jiwer
import numpy as np
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

from callcoach.audio import SAMPLE_RATE, decode
from callcoach.models import ModelConfig
from callcoach.speech.asr import (GAP_S, REDO_MIN_S, _echoes, MAX_CLIP_S, PROMPT_MAX_CHARS, AsrConfig, Clip, Transcriber,
                                  call_prompt, join_spelled, pack)
from callcoach.transcript import Word

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


def _transcriber(model_dir: str) -> Transcriber:
    return Transcriber(AsrConfig(model_dir=model_dir, device="cpu", compute_type="int8",
                                 cpu_threads=2))


def _spied(model_dir: str, first_pass=None) -> tuple[Transcriber, list[dict]]:
    """A real Transcriber whose decoder calls are recorded (their keyword arguments);
    ``first_pass(segments, kw)``, when given, rewrites what the first call returns: the
    fault a test injects."""
    tr = _transcriber(model_dir)
    real = tr.pipeline.transcribe
    calls: list[dict] = []

    def spy(buffer, **kw):
        calls.append(kw)
        segments, info = real(buffer, **kw)
        segments = list(segments)
        if first_pass is not None and len(calls) == 1:
            segments = first_pass(segments, kw)
        return segments, info

    tr.pipeline.transcribe = spy
    return tr, calls


def _in_window(seg, w: dict) -> bool:
    return w["start"] <= (seg.start + seg.end) / 2 < w["end"]


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

    def loops(segments, kw):                      # first pass: window 1 loops
        w = kw["clip_timestamps"][1]
        loop = [FwWord(w["start"] + 0.3 * k, w["start"] + 0.3 * k + 0.2, " then,", 0.9)
                for k in range(40)]
        return [s for s in segments if not _in_window(s, w)] + [
            Segment(id=99, seek=0, start=w["start"], end=w["end"], text=" then," * 40,
                    tokens=[], avg_logprob=-0.2, compression_ratio=12.0, no_speech_prob=0.01,
                    words=loop, temperature=0.0)]

    tr, calls = _spied(model_dir, loops)
    words, _ = tr.transcribe(clips, speakers)
    assert len(calls) == 2
    assert "no_repeat_ngram_size" not in calls[0] and calls[1]["no_repeat_ngram_size"] == 3
    assert len(calls[1]["clip_timestamps"]) == 1 and calls[1]["clip_timestamps"][0] == \
        calls[0]["clip_timestamps"][1]
    hyp = [" ".join(w.w for w in ws) for ws in words]
    assert not any("then, then, then" in h for h in hyp)
    assert _wer(texts, hyp) <= 0.2


def _words(text: str) -> list[Word]:
    return [Word(t, round(i * 0.5, 3), round(i * 0.5 + 0.4, 3), 0.9 - i * 0.01)
            for i, t in enumerate(text.split())]


def _text(words: list[Word]) -> str:
    return " ".join(w.w for w in words)


@pytest.mark.parametrize("said, written", [
    # Whisper's three ways of writing a spelled code, and what they become
    ("It's so 7, 7, 0, 0, 9, 0, 0, 1, 2, 3. And", "It's so 7700900123. And"),
    ("case number in S -V -7 -7 -0 -3, I'm adding", "case number in S V 7703, I'm adding"),
    ("Your ticket is TL4471 and", "Your ticket is T L 4471 and"),
    ("reference GLSV4218.", "reference G L S V 4218."),
    # left alone: counting, ordinary numbers, times, short or word-like tokens
    ("1, 2, 3 go", "1, 2, 3 go"),
    ("7 -0 -1, but", "7 -0 -1, but"),
    ("I paid 35 and 40 and 50", "I paid 35 and 40 and 50"),
    ("from 10am to 2pm", "from 10am to 2pm"),
    ("plan B 5 times", "plan B 5 times"),
    ("I A 4 B", "I A 4 B"),
    ("It's MP3 on 4G", "It's MP3 on 4G"),
    # a full stop ends a run: two codes in two sentences stay two codes
    ("It's K 1 2. B 3 4 5 6 next", "It's K 12. B 3456 next"),
])
def test_spelled_codes_are_written_one_way(said, written):
    assert _text(join_spelled(_words(said))) == written


def test_joined_words_keep_the_times_and_the_lowest_confidence_of_their_parts():
    words = _words("number S -V -7 -7 -0 -3, thanks")
    out = join_spelled(words)
    assert [w.w for w in out] == ["number", "S", "V", "7703,", "thanks"]
    digits = out[3]
    assert (digits.start, digits.end) == (words[3].start, words[6].end)
    assert digits.p == min(w.p for w in words[3:7])
    glued = join_spelled([Word("TL4471.", 2.0, 2.6, 0.8)])
    assert [w.w for w in glued] == ["T", "L", "4471."]
    assert glued[0].start == 2.0 and glued[-1].end == 2.6
    assert all(a.end == b.start for a, b in zip(glued, glued[1:]))   # time shared, no gaps
    assert join_spelled([]) == []


def test_the_call_prompt_comes_from_the_sidecar_and_the_deployment():
    assert call_prompt(None) is None and call_prompt({}, "  ") is None
    assert call_prompt({"company": "Skyvale  Airways"}) == "Skyvale Airways customer service call."
    assert call_prompt({"company": "Skyvale Airways", "vocabulary": ["tracing desk", "PNR"]},
                       "Airline support.") == ("Skyvale Airways customer service call. "
                                               "Airline support. tracing desk, PNR.")
    assert call_prompt({"vocabulary": "Tasklane"}) == "Tasklane."
    # wrong types in a sidecar are ignored, not sent to the decoder
    assert call_prompt({"company": 42, "vocabulary": [None, 3, "ok"]}) == "ok."
    long = call_prompt({"vocabulary": [f"term{i}" for i in range(500)]})
    assert len(long) <= PROMPT_MAX_CHARS and not long.endswith(" ")


@pytest.mark.slow
def test_the_company_in_the_prompt_is_what_whisper_writes(turns_as_clips, model_dir):
    """Real Whisper base on the rendered sample call: without context it hears the
    greeting's brand as nonsense; with the sidecar's company in the prompt it writes it."""
    clips, texts, speakers = turns_as_clips
    truth = json.loads(CALL.with_suffix(".truth.json").read_text())
    brand = truth["company"].split()[0]                 # "Swiftpost"
    assert brand in texts[0]
    tr = _transcriber(model_dir)
    plain, _ = tr.transcribe(clips, speakers)
    told, _ = tr.transcribe(clips, speakers, prompt=call_prompt({"company": truth["company"]}))
    assert brand not in " ".join(w.w for w in plain[0])
    assert brand in " ".join(w.w for w in told[0])
    # the prompt is a hint, not text: it never shows up as words of the call
    assert not any("customer service call" in " ".join(w.w for w in ws).lower() for ws in told)


@pytest.mark.slow
def test_clips_a_window_ended_early_on_are_decoded_again_alone(turns_as_clips, model_dir):
    """Fault injected: Whisper ends the first window early (end-of-text after its first
    clip, as it did on an 8 kHz dev call with a prompt), so the window's other clips get
    no words.  Those clips, and only those, are decoded again by the real model, each
    alone and without the prompt, and get their words back."""
    clips, texts, speakers = turns_as_clips

    def early_end(segments, kw):                  # first pass: window 0 stops after 2 s
        w = kw["clip_timestamps"][0]
        return [dataclasses.replace(s, words=[x for x in s.words if x.end <= w["start"] + 2.0])
                if _in_window(s, w) else s for s in segments]

    tr, calls = _spied(model_dir, early_end)
    words, _ = tr.transcribe(clips, speakers, prompt="Swiftpost Parcels customer service call.")
    # the window-0 clips that lost their words were decoded again alone, without prompt
    redo = [c for c in calls[1:] if c.get("initial_prompt") is None]
    assert len(redo) == 1 and len(redo[0]["clip_timestamps"]) >= 1
    assert all(b["end"] - b["start"] <= MAX_CLIP_S for b in redo[0]["clip_timestamps"])
    assert all(ws for ws in words)                # every turn has its words again
    # (the first clip keeps its cut-short words: a clip with words is never redone)
    assert _wer(texts[1:], [" ".join(w.w for w in ws) for ws in words[1:]]) < 0.2


def test_the_transcript_records_how_it_was_decoded():
    from callcoach.transcript import Transcript, Turn

    turn = Turn("agent", 0.0, 1.0, "hi", (Word("hi", 0.0, 1.0),))
    told = Transcript("c", 1.0, (turn,), decoding={"method": "m", "prompt": "Acme customer service call."})
    back = Transcript.from_json(told.to_json())
    assert back.decoding == {"method": "m", "prompt": "Acme customer service call."}
    assert "decoding" not in Transcript("c", 1.0, (turn,)).to_dict()   # older artifacts
    assert Transcript.from_dict(Transcript("c", 1.0, (turn,)).to_dict()).decoding == {}


def test_a_copied_prompt_is_recognised_and_a_greeting_is_not():
    prompt = "Harbour Bank customer service call. tracing desk, PNR."
    assert _echoes(" Harbour Bank customer service call.", prompt)
    assert _echoes("Okay. Harbour bank, customer service call! Thanks", prompt)
    assert not _echoes("Thank you for calling Harbour Bank customer service, this is Dan.", prompt)
    assert not _echoes("I'll pass you to the tracing desk.", prompt)    # 2-word terms: no
    assert not _echoes("anything", None) and not _echoes("anything", "")


@pytest.mark.slow
def test_a_window_that_copies_the_prompt_is_decoded_again_without_it(turns_as_clips, model_dir):
    """Fault injected: the first decode of window 0 comes back as the prompt itself (what
    Whisper base did for every agent turn of a held-out call).  That window alone is
    decoded again by the real model without the prompt, and no prompt text reaches the
    transcript."""
    from faster_whisper.transcribe import Segment, Word as FwWord

    clips, texts, speakers = turns_as_clips
    prompt = "Swiftpost Parcels customer service call."

    def copies(segments, kw):                     # first pass: window 0 is the prompt
        w = kw["clip_timestamps"][0]
        said = [FwWord(w["start"] + 0.4 * k, w["start"] + 0.4 * k + 0.3, " " + t, 0.9)
                for k, t in enumerate(prompt.split())]
        return [Segment(id=98, seek=0, start=w["start"], end=w["end"], text=" " + prompt,
                        tokens=[], avg_logprob=-0.1, compression_ratio=1.0, no_speech_prob=0.01,
                        words=said, temperature=0.0)] + [s for s in segments if not _in_window(s, w)]

    tr, calls = _spied(model_dir, copies)
    words, _ = tr.transcribe(clips, speakers, prompt=prompt)
    assert calls[0]["initial_prompt"] == prompt
    assert calls[1]["initial_prompt"] is None
    assert calls[1]["clip_timestamps"] == [calls[0]["clip_timestamps"][0]]
    hyp = [" ".join(w.w for w in ws) for ws in words]
    assert not any("customer service call" in h.lower() for h in hyp)
    assert _wer(texts, hyp) < 0.2


@pytest.mark.slow
def test_a_short_wordless_clip_is_not_decoded_again(turns_as_clips, model_dir):
    """A breath or a burst of the other party's bleed gets no words in its window; decoding
    it alone would only make Whisper invent a sentence, so it is left empty."""
    clips, texts, speakers = turns_as_clips
    rng = np.random.default_rng(0)
    end = clips[-1].start + len(clips[-1].samples) / SAMPLE_RATE
    breath = Clip((rng.standard_normal(int(0.6 * SAMPLE_RATE)) * 1e-3).astype(np.float32), end + 1.0)
    assert len(breath.samples) / SAMPLE_RATE < REDO_MIN_S
    tr, calls = _spied(model_dir)
    words, _ = tr.transcribe(clips + [breath], speakers + [speakers[-1]])
    assert words[-1] == [] and all(words[:-1])
    assert len(calls) == 1                      # no second pass for the short clip
