"""Rule-independent features: normalisation, sentence split, numpy MiniLM encoder."""

from __future__ import annotations

import numpy as np
import pytest

from callcoach.coaching.features import context_turns, get_encoder, normalise, split_sentences


@pytest.mark.parametrize("text,want", [
    ("It's oh eight four five zero, six one two.", "it's 08450 612"),
    ("Your case is K P four four one.", "your case is kp441"),
    ("by five pm tomorrow", "by 5 pm tomorrow"),
    ("at 3p.m. or 4:30 PM", "at 3 pm or 4:30 pm"),
    ("four hundred and twelve pounds", "412 pounds"),
    ("twenty-five dollars", "25 dollars"),
    ("No one will call. I'll do one thing.", "no one will call i'll do one thing"),
    ("Will it go out?", "will it go out ?"),
    # Whisper's way of writing a spelled code; a range with a spaced hyphen is not a code
    ("the reference is S -V -7 -7 -0 -3, thanks", "the reference is sv7703 thanks"),
    ("between 5 -10 pounds", "between 5 10 pounds"),
])
def test_normalise(text, want):
    assert normalise(text) == want


def test_split_sentences_keeps_abbreviations():
    t = "Mr. Smith called. Is it fixed? Yes!"
    assert [t[a:b] for a, b in split_sentences(t)] == ["Mr. Smith called.", "Is it fixed?", "Yes!"]


def test_encoder_semantics():
    enc = get_encoder()
    e = enc.encode(["I'm so sorry about this mess.", "I apologise for the trouble.", "The parcel weighs two kilos."])
    assert e.shape == (3, 384)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_context_is_the_other_speakers_latest_earlier_turn():
    #            0        1           2        3        4           5
    speakers = ["agent", "customer", "customer", "agent", "agent", "customer"]
    assert context_turns(speakers) == [-1, 0, 0, 2, 2, 4]


def test_lower_case_transcripts_split_into_sentences():
    t = "i see. i will call you tomorrow at ten. okay"
    assert [t[a:b] for a, b in split_sentences(t)] == ["i see.", "i will call you tomorrow at ten.", "okay"]


def test_long_unpunctuated_runs_are_cut_before_clause_starts():
    t = ("okay so um i checked your account and i can see the payment went out twice on the "
         "third so what i am going to do is refund the second one right now for you")
    parts = [t[a:b] for a, b in split_sentences(t)]
    assert len(parts) >= 3 and "".join(p.replace(" ", "") for p in parts) == t.replace(" ", "")
    assert all(5 <= len(p.split()) <= 25 for p in parts), parts
    assert any(p.startswith("so what i am going to do") for p in parts)
    short = "yeah no that's fine thanks"
    assert [short[a:b] for a, b in split_sentences(short)] == [short]
