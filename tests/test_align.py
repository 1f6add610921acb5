"""Forced alignment of Whisper's words with a wav2vec2 CTC model (pipelines/callcoach/speech/align.py).

The alignment itself (WhisperX's trellis and backtrack) is checked on emissions built by
hand, where every character's frames are known, so the word times are known exactly.
The model wiring (a Hugging Face Wav2Vec2ForCTC directory loaded offline, run on real
audio, its version recorded) is tested with a small randomly initialised checkpoint that
the test itself creates: real alignment weights (WhisperX's WAV2VEC2_ASR_BASE_960H) are
not available on this machine, so these tests say nothing about alignment quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from callcoach.speech.align import align_words
from callcoach.transcript import Word

CALL = Path(__file__).resolve().parent.parent / "samples" / "calls" / "sample-02-handoff"
DICT = {"<pad>": 0, "|": 1, "a": 2, "b": 3, "c": 4, "'": 5}


def _emission(frames: int, marks: dict[int, int]) -> np.ndarray:
    """Log-probabilities: the blank everywhere except ``marks`` (frame -> token)."""
    p = np.full((frames, len(DICT)), 0.01)
    p[:, 0] = 0.95
    for f, tok in marks.items():
        p[f] = 0.01
        p[f, tok] = 0.95
    return np.log(p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def test_words_take_the_times_of_their_aligned_characters():
    # 50 frames over a 1 s clip at call second 5: 20 ms a frame
    marks = {10: 2, 11: 2, 12: 3, 13: 3, 20: 1, 30: 4, 31: 4, 32: 4, 33: 4}
    words = [Word("Ab,", 4.0, 4.5, 0.9), Word("c.", 4.6, 4.9, 0.8)]   # Whisper's (wrong) times
    out = align_words(_emission(50, marks), 1.0, 5.0, words, DICT, blank=0)
    assert [w.w for w in out] == ["Ab,", "c."] and [w.p for w in out] == [0.9, 0.8]
    # starts are the characters' first frames; as in WhisperX, the blank frames after a
    # word's last character count to it up to the separator (frame 20), and the last
    # word ends where its path first reaches its last character
    assert (out[0].start, out[0].end) == pytest.approx((5.2, 5.4), abs=1e-6)
    assert out[1].start == pytest.approx(5.6, abs=1e-6) and 5.6 < out[1].end <= 5.68


def test_a_word_with_no_character_in_the_alphabet_keeps_whisper_time_between_neighbours():
    marks = {5: 2, 6: 2, 40: 3}
    words = [Word("a", 0.0, 0.1, 0.9), Word("42", 0.15, 0.95, 0.7), Word("b", 0.9, 1.0, 0.9)]
    out = align_words(_emission(50, marks), 1.0, 0.0, words, DICT, blank=0)
    assert out[0].start == pytest.approx(0.1) and out[2].start == pytest.approx(0.8)
    # "42": Whisper said 0.15-0.95; kept, but cut so it ends before "b" starts
    assert out[1].start == pytest.approx(0.15) and out[1].end == pytest.approx(0.8)
    assert all(a.end <= b.start + 1e-9 for a, b in zip(out, out[1:]))


def test_unalignable_input_keeps_whisper_timings():
    words = [Word("abc", 1.0, 1.3, 0.9)]
    assert align_words(_emission(2, {}), 0.04, 1.0, words, DICT, 0) == words   # too few frames
    assert align_words(_emission(50, {}), 1.0, 1.0, [Word("42", 1.0, 1.2, 0.5)], DICT, 0) \
        == [Word("42", 1.0, 1.2, 0.5)]


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    """A randomly initialised, two-layer Wav2Vec2ForCTC with a character vocabulary,
    saved as a model directory (made by the test: real weights cannot be had here)."""
    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor,
                              Wav2Vec2ForCTC, Wav2Vec2Processor)

    d = tmp_path_factory.mktemp("wav2vec2-tiny")
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    for c in "etaoinshrdlcumwfgypbvkjxqz'":
        vocab[c.upper()] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab))
    tok = Wav2Vec2CTCTokenizer(str(d / "vocab.json"), word_delimiter_token="|")
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                  do_normalize=True, return_attention_mask=False)
    Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(d)
    torch.manual_seed(0)
    cfg = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64,
                         conv_dim=(32, 32, 32, 32, 32, 32, 32), num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=4, pad_token_id=0)
    Wav2Vec2ForCTC(cfg).save_pretrained(d)
    return d


def test_aligner_loads_a_model_directory_offline_and_aligns_a_real_clip(tiny_wav2vec2, monkeypatch):
    from callcoach.audio import decode
    from callcoach.speech.align import Aligner

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    al = Aligner(str(tiny_wav2vec2), device="cpu")
    assert al.version.startswith("wav2vec2-ctc:") and al.blank == 0
    audio = decode(CALL.with_suffix(".wav").read_bytes())
    clip = audio.samples[0, : 3 * 16000]
    em = al.emission(clip)
    # one frame per 20 ms (the feature encoder's stride), one column per vocabulary entry
    assert em.shape == (149, 32) and np.allclose(np.exp(em).sum(axis=1), 1.0, atol=1e-4)
    words = [Word("thank", 10.1, 10.4, 0.9), Word("you", 10.4, 10.6, 0.9),
             Word("for", 10.7, 10.9, 0.9), Word("calling", 10.9, 11.5, 0.9)]
    out = al.align(clip, 10.0, words)
    assert [w.w for w in out] == [w.w for w in words]
    assert all(10.0 <= w.start <= w.end <= 13.0 for w in out)
    assert all(a.start <= b.start for a, b in zip(out, out[1:]))
    with pytest.raises(FileNotFoundError):
        Aligner(str(tiny_wav2vec2 / "missing"))


@pytest.mark.slow
def test_speech_stage_with_an_alignment_model_aligns_every_word_and_names_the_model(tiny_wav2vec2):
    """The stage wiring: models.alignment set -> the aligner runs on every clip after
    Whisper, the transcript names its version, and every word stays inside its turn
    (the tiny random model's timings are meaningless; only the wiring is under test)."""
    from callcoach.audio import decode
    from callcoach.models import ModelConfig, default_model_root
    from callcoach.speech.stage import SpeechConfig, SpeechStage

    audio = decode(CALL.with_suffix(".wav").read_bytes())
    plain = SpeechStage(SpeechConfig(cpu_threads=2))
    aligned = SpeechStage(SpeechConfig(cpu_threads=2, models=ModelConfig(
        root=default_model_root(), alignment=str(tiny_wav2vec2))))
    t0, timings0 = plain(audio, "c", {})
    t1, timings1 = aligned(audio, "c", {})
    assert "alignment" not in t0.models and "align_s" not in timings0
    assert t1.models["alignment"] == aligned.aligner.version and timings1["align_s"] > 0
    # same words (alignment moves times, never text), same turns
    assert [t.text for t in t1.turns] == [t.text for t in t0.turns]
    moved = 0
    for a, b in zip(t0.turns, t1.turns):
        for wa, wb in zip(a.words, b.words):
            assert wb.w == wa.w
            assert b.start - 0.2 <= wb.start <= wb.end <= b.end + 0.2
            moved += (wa.start, wa.end) != (wb.start, wb.end)
    assert moved > 0
