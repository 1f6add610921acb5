"""Scoring mechanics: talk ratio, interruptions, call type, determinism, stored features."""

from __future__ import annotations

import copy
import json

import pytest

from callcoach.coaching.acts import load_act_model
from callcoach.coaching.features import FEATURES_VERSION, features_valid, turn_features
from callcoach.coaching.rules import default_ruleset
from callcoach.coaching.score import interruptions, score_batch, score_call
from callcoach.report import validate_report
from callcoach.transcript import Transcript, Turn
from test_coaching_helpers import UPSET, make_call


def T(*turns):
    return Transcript("x", 20.0, tuple(Turn(s, a, b, txt) for s, a, b, txt in turns),
                      models={"asr": "a@1", "diarization": "d@1"})


def test_interruptions_from_overlaps():
    tr = T(("customer", 0.0, 5.0, "I was saying something long."),
           ("agent", 3.0, 6.0, "Okay."),                 # starts 2 s before the customer ends
           ("customer", 5.9, 8.0, "And another thing."),  # 0.1 s overlap: below the floor
           ("agent", 9.0, 10.0, "Right."),
           ("customer", 9.5, 11.0, "Sorry to jump in."))  # customer cuts in
    a, c = interruptions(tr, 0.25)
    assert a == [1] and c == [4]


def test_interruption_into_a_pause_keeps_the_floor():
    # diarization cut the customer's turn where the agent came in: the customer pauses
    # 0.3 s, the agent starts, the customer carries on over the agent
    tr = T(("customer", 0.0, 5.0, "I'm paying sixty a month for nothing."),
           ("agent", 5.25, 9.0, "Let me add a note to your file for that."),
           ("customer", 5.3, 6.5, "So what happens now?"),
           ("agent", 12.0, 13.0, "Okay."),
           ("customer", 14.0, 15.0, "Right."),
           ("agent", 15.3, 18.0, "Anything else?"),
           ("customer", 16.5, 17.0, "Hang on."))   # resumes 1.5 s later: a new cut-in
    assert interruptions(tr, 0.25) == ([], [2, 6])
    assert interruptions(tr, 0.25, max_pause_s=0.6) == ([1], [6])
    # from the rule set: the default keeps the floor through 0.6 s
    assert default_ruleset().tone["interruptions"]["max_pause_s"] == 0.6


def test_talk_ratio_and_range():
    lines = [("a", "Hello, how can I help?"), ("c", "I'd like to change my address to the new flat please.")]
    r = score_call(make_call(lines), default_ruleset())
    tr = r["talk_ratio"]
    agent = len(lines[0][1]) * 0.06
    cust = len(lines[1][1]) * 0.06
    assert tr["agent"] == pytest.approx(agent / (agent + cust), abs=1e-3)
    assert tr["agent"] + tr["customer"] == pytest.approx(1.0, abs=1e-3)
    assert tr["expected"] == [0.40, 0.60] and tr["within_expected"] is (0.40 <= tr["agent"] <= 0.60)


@pytest.mark.parametrize("lines,want", [
    (UPSET + [("a", "I'm sorry.")], "escalation"),
    ([("c", "Get me your manager, I've had enough of this.")], "escalation"),
    ([("c", "Our exports fail."), ("a", "I'll transfer this to the tier two team.")], "handoff"),
    ([("c", "Can I change my delivery day?"), ("a", "Yes, done.")], "standard"),
])
def test_call_type(lines, want):
    r = score_call(make_call(lines), default_ruleset())
    assert r["call_type"] == want
    assert 0 <= r["call_type_confidence"] <= 1


def test_deterministic_and_json_ready():
    call = make_call(UPSET + [("a", "I'm sorry. I'll call you tomorrow at 3 pm.")])
    a = score_call(call, default_ruleset())
    b = score_call(call, default_ruleset())
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    validate_report(a)
    assert a["models"] == {"asr": "test-asr@1", "diarization": "test-diar@1",
                           "acts": load_act_model().version}
    assert a["agent_id"] == "a1" and a["team"] == "blue"


def test_stored_features_are_used_and_stale_ones_recomputed():
    call = make_call(UPSET + [("a", "I'm sorry, that's on us.")])
    f = turn_features(call)
    assert f["version"] == FEATURES_VERSION and features_valid(call, f)
    json.dumps(f)                                          # JSON-serialisable
    # doctored stored features are trusted when valid: proves they are read, not recomputed
    fake = copy.deepcopy(f)
    last = len(call.turns) - 1
    for k in [k for k, t in enumerate(fake["turn"]) if t == last]:   # the apology's sentences
        fake["norm"][k] = "nothing here"
        fake["prob"]["acknowledge"][k] = 0
        fake["prob"]["own_fault"][k] = 0
    rs = default_ruleset()
    with_fake = score_call(call, rs, features=fake)
    fresh = score_call(call, rs)
    ack = lambda r: [c for c in r["process_checks"] if c["check"] == "issue_acknowledged"][0]["passed"]
    assert ack(fresh) is True and ack(with_fake) is False
    # features of another transcript (text changed) are stale: recomputed
    other = make_call(UPSET + [("a", "Please hold.")])
    assert not features_valid(other, f)
    # so are those of the same words with the roles swapped (context and speaker changed)
    swapped = Transcript(call.call_id, call.duration_s, tuple(
        Turn("agent" if t.speaker == "customer" else "customer", t.start, t.end, t.text) for t in call.turns))
    assert not features_valid(swapped, f)
    assert ack(score_call(other, rs, features=f)) is False


def test_transcript_dict_with_features_key():
    call = make_call(UPSET + [("a", "I'm so sorry about this.")])
    d = call.to_dict()
    d["features"] = turn_features(call)
    (r,) = score_batch([(d, None)], default_ruleset())
    assert r["call_id"] == call.call_id


def test_sequence_order_and_times():
    lines = UPSET + [("a", "I'm really sorry, that's our mistake."),
                     ("a", "I'm refunding the charge right now."),
                     ("a", "I'll call you on Friday at 10 am to confirm.")]
    r = score_call(make_call(lines), default_ruleset())
    steps = [s["step"] for s in r["sequence"]]
    assert steps.index("acknowledge") < steps.index("act") < steps.index("follow_up")
    ts = [s["t"] for s in r["sequence"]]
    assert ts == sorted(ts)


def test_empty_transcript_scores():
    r = score_call(Transcript("empty", 3.0, (), models={"asr": "a", "diarization": "d"}), default_ruleset())
    validate_report(r)
    assert r["call_type"] == "standard" and r["talk_ratio"]["within_expected"] is False


def test_backchannels_and_goodbyes_said_over_the_caller_interrupt_nobody():
    tr = T(("customer", 0.0, 4.0, "So I'll need the new card sent to my work address."),
           ("agent", 2.0, 2.5, "Mhm."),                            # backchannel while she talks
           ("agent", 4.5, 7.0, "That's done, is there anything else?"),
           ("customer", 7.2, 8.6, "No that's all, thanks, bye."),
           ("agent", 8.0, 8.7, "Okay, bye bye."),                  # goodbye over hers
           ("customer", 9.0, 12.0, "Actually, one more thing about the fee."),
           ("agent", 10.0, 13.0, "Sorry to cut in, the fee is waived."))   # a real cut-in
    rs = default_ruleset()
    ti = rs.tone["interruptions"]
    a, c = interruptions(tr, ti["min_overlap_s"], ti["max_pause_s"], ti["backchannel"], ti["backchannel_words"])
    assert a == [6] and c == []
    # without the backchannel rule every overlap counts
    assert interruptions(tr, 0.25)[0] == [1, 4, 6]
