"""Concern episodes, the concern head ("is this customer sentence a concern left
unanswered?") and how the rules read it.  The episodes here are made up for the tests."""
from __future__ import annotations

import json

import numpy as np
import pytest

from callcoach.coaching import detectors
from callcoach.coaching.acts import (ACTS, ANSWER_TURNS, load_act_model, save_act_model,
                                     unanswered_input_names, unanswered_inputs)
from callcoach.coaching.features import features_batch, features_valid
from callcoach.coaching.rules import RuleSetError, default_ruleset, load_ruleset
from scripts import coaching_data as data
from scripts.check_episodes import check
from scripts.train_acts import _carry, _sentences, concern_head
from test_acts import _call

EPISODE = {
    "id": "t-0001", "author": "t", "industry": "kennels", "variety": "uk", "register": "casual",
    "turns": [
        {"speaker": "agent", "text": "Morning, Hillside Kennels, Priya speaking."},
        {"speaker": "customer", "text": "Hi. We've booked Biscuit in for the half term. "
                                        "Is the deposit refundable if we cancel? Just in case."},
        {"speaker": "agent", "text": "Let me find the booking."},
        {"speaker": "customer", "text": "Sure."},
        {"speaker": "agent", "text": "Got it. You'd get it all back up to a week before. After that we keep half."},
        {"speaker": "customer", "text": "Perfect."},
        {"speaker": "agent", "text": "Anything else?"},
    ],
    "concern_turn": 1, "concern": "Is the deposit refundable if we cancel?",
    "answer_turn": 4, "answer": "You'd get it all back up to a week before.", "kind": "after_check",
}


def _write(tmp_path, *episodes):
    p = tmp_path / "t.jsonl"
    p.write_text("".join(json.dumps(e) + "\n" for e in episodes))
    return p


def test_a_well_formed_episode_passes_the_checker(tmp_path):
    assert check(_write(tmp_path, EPISODE)) == []


@pytest.mark.parametrize("change,message", [
    ({"concern_turn": 0}, "not a customer turn"),
    ({"concern": "Will the dog be walked twice a day?"}, "concern text is not in the concern turn"),
    ({"answer_turn": 2}, "answer text is not in the answer turn"),
    ({"answer_turn": 5}, "is not one of the 3 agent turns"),
    ({"kind": "vague"}, "must be one of"),
    ({"answer_turn": None, "answer": None, "kind": "direct"}, "must be one of"),
    ({"turns": EPISODE["turns"][:5]}, "only 2 agent turns after the concern"),
    ({"mood": "sunny"}, "unknown fields"),
])
def test_the_checker_names_what_is_wrong(tmp_path, change, message):
    bad = {**EPISODE, **change}
    problems = check(_write(tmp_path, bad))
    assert problems and any(message in p for p in problems), problems


def test_episode_labels_fall_on_the_sentences_the_engine_splits(tmp_path):
    _write(tmp_path, EPISODE)
    got = data.episodes(tmp_path)
    (author, tr, c, a), = got
    sents = _sentences(tr)
    assert author == "t"
    assert sents[c] == ("customer", "is the deposit refundable if we cancel ?")
    assert sents[a][0] == "agent" and sents[a][1].startswith("you'd get it all back")
    # the lower-case form carries the labels over by alignment, not by index
    (_t, labs), (plain, plabs) = _carry(tr, [(c, a)], [data.plain_transcript(tr)])
    ps = _sentences(plain)
    (pc, pa), = plabs
    assert "deposit refundable" in ps[pc][1] and ps[pc][0] == "customer"
    assert "all back" in ps[pa][1] and ps[pa][0] == "agent"


def test_a_broken_episode_file_is_refused_with_its_problems(tmp_path):
    _write(tmp_path, {**EPISODE, "concern_turn": 0})
    with pytest.raises(SystemExit, match="not a customer turn"):
        data.episodes(tmp_path)


def test_the_shipped_episodes_are_well_formed_and_balanced():
    files = sorted(data.EPISODES_DIR.glob("*.jsonl"))
    assert len(files) >= 2
    for p in files:
        assert check(p) == [], p
    rows = [json.loads(x) for p in files for x in p.read_text().splitlines() if x.strip()]
    un = sum(r["answer_turn"] is None for r in rows)
    assert len(rows) >= 400 and 0.3 < un / len(rows) < 0.6
    assert len({r["industry"] for r in rows}) >= 25
    assert {r["register"] for r in rows} == {"formal", "casual", "terse", "rambling", "asr"}


def test_concern_inputs_match_their_names_and_read_the_best_answer():
    labels = ACTS
    P = np.zeros((2, len(labels)), np.float32)
    P[:, labels.index("concern")] = [0.9, 0.1]
    X = unanswered_inputs([[0.05, 0.9, 0.0, 0.0], [0.0] * ANSWER_TURNS], P, labels,
                          ["will it cost anything ?", "okay"])
    names = unanswered_input_names(labels)
    assert X.shape == (2, len(names))
    col = {n: i for i, n in enumerate(names)}
    assert X[0, col["best3"]] == pytest.approx(0.9)
    assert X[0, col["open"]] == pytest.approx(0.9 * 0.1)
    assert X[1, col["open"]] == pytest.approx(0.1)
    assert X[0, col["question"]] == 1.0 and X[1, col["question"]] == 0.0
    assert X[0, col["p:concern"]] == pytest.approx(0.9)


def _with_concern_head(tmp_path, w_open: float):
    """The shipped model with a concern head that reads only "open" (P(concern) x (1 - best
    answer)): a test head, so the wiring is tested apart from what training learns."""
    m = load_act_model()
    z = np.load(data.ROOT / "pipelines" / "callcoach" / "coaching" / "model" / "acts.npz")
    arrays = {k: z[k] for k in z.files}
    names = unanswered_input_names(m.labels)
    w = np.zeros(len(names), np.float32)
    w[names.index("open")] = w_open
    arrays.update(un_W=w, un_b=np.array([-w_open / 2], np.float32),
                  un_mu=np.zeros(len(names), np.float32), un_sd=np.ones(len(names), np.float32))
    return save_act_model(tmp_path / "m", human_version="test", labels=m.labels, arrays=arrays, meta={})


def test_features_carry_the_concern_head_for_customer_sentences_only(tmp_path):
    model = _with_concern_head(tmp_path, 12.0)
    call = _call([("agent", "Thanks for calling Brightwater, how can I help?"),
                  ("customer", "Hi. Will I be charged a fee for moving my appointment?"),
                  ("agent", "Could I take your postcode first?"),
                  ("customer", "It's LS6 2QT.")])
    f, = features_batch([call], act_model=model)
    plain, = features_batch([call])
    speakers = [call.turns[t].speaker for t in f["turn"]]
    assert len(f["unanswered"]) == f["n"]
    assert all(v == 0 for v, sp in zip(f["unanswered"], speakers) if sp == "agent")
    k = next(i for i, n in enumerate(f["norm"]) if "charged a fee" in n)
    # the head's own formula on the stored inputs
    pc = f["prob"]["concern"][k] / 1000
    best = max(f["answer"][k][:3]) / 1000
    want = 1 / (1 + np.exp(-(12.0 * pc * (1 - best) - 6.0)))
    assert f["unanswered"][k] == pytest.approx(want * 1000, abs=2)
    # a model without a concern head stores zeros, and the features still validate
    assert plain["unanswered"] == [0] * plain["n"] or load_act_model().un_W is not None
    assert features_valid(call, plain)
    broken = dict(plain)
    broken.pop("unanswered")
    assert not features_valid(call, broken)


def test_a_concern_head_of_another_layout_is_refused(tmp_path):
    model = _with_concern_head(tmp_path, 1.0)
    z = np.load(tmp_path / "m" / "acts.npz")
    arrays = {k: z[k] for k in z.files}
    arrays["un_W"] = arrays["un_W"][:-1]
    from callcoach.coaching.acts import ActModelError
    with pytest.raises(ActModelError, match="concern head shape"):      # save reads it back
        save_act_model(tmp_path / "bad", human_version="test", labels=model.labels, arrays=arrays, meta={})


def _ruleset(tmp_path, extra_acts: str = "", topics_decide: str | None = None):
    src = (data.ROOT / "pipelines" / "callcoach" / "rules" / "default.yaml").read_text()
    if extra_acts:
        src = src.replace("  concern_answered:\n", extra_acts + "  concern_answered:\n", 1)
    if topics_decide is not None:
        src = src.replace("  within: 3\n", f"  within: 3\n  topics_decide: {topics_decide}\n", 1)
    p = tmp_path / "rules.yaml"
    p.write_text(src)
    return load_ruleset(str(p))


HEAD_ACT = "  concern_unanswered:\n    speaker: customer\n    when: {model: unanswered, min: 0.8}\n"


def test_the_concern_head_adds_concerns_named_by_their_topic(tmp_path):
    rs = _ruleset(tmp_path, HEAD_ACT)
    assert rs.topics_decide is True
    hits = {"concern.refund": [3], "answer.refund": [4], "concern_unanswered": [3, 7]}
    call = {"turn": list(range(9)), "speaker": ["agent", "customer"] * 4 + ["agent"],
            "norm": ["x"] * 9}
    got = detectors.unanswered_concerns(hits, rs, call)
    # the refund topic alone reads as answered (the agent names refunds next); the head
    # says both sentences are left open: the first is named by its topic
    assert got == [(3, "refund"), (7, detectors.LEARNED_CONCERN)]
    assert detectors.unanswered_concerns({**hits, "concern_unanswered": []}, rs, call) == []


def test_topics_only_name_concerns_when_they_do_not_decide(tmp_path):
    rs = _ruleset(tmp_path, HEAD_ACT, "false")
    assert rs.topics_decide is False
    call = {"turn": list(range(6)), "speaker": ["agent", "customer"] * 3, "norm": ["x"] * 6}
    # a refund raised and never answered by topic is not flagged unless the head says so
    assert detectors.unanswered_concerns({"concern.refund": [1]}, rs, call) == []
    assert detectors.unanswered_concerns({"concern.refund": [1], "concern_unanswered": [1]}, rs, call) == [(1, "refund")]
    # the shipped rules keep the topics deciding
    assert default_ruleset().topics_decide is True


def test_topics_decide_must_be_true_or_false(tmp_path):
    with pytest.raises(RuleSetError, match="topics_decide"):
        _ruleset(tmp_path, topics_decide="sometimes")


def test_concern_head_training_cross_validates_over_the_labelled_authors_only():
    rng = np.random.default_rng(3)

    def rows(n, shift):
        X = rng.normal(size=(n, 4)).astype(np.float32)
        y = X[:, 0] + shift + rng.normal(scale=0.5, size=n) > 1.2
        return X, y
    groups = {"a": rows(300, 0.0), "b": rows(300, 0.0), "episodes": rows(200, 0.5)}
    final, held, summary = concern_head(groups, cv_groups=["a", "b"], log=lambda *_: None)
    assert set(held) == {"a", "b"}
    assert summary["episode_rows"] == 200 and summary["sentences"] == 800
    assert summary["cv_leave_one_author_out"]["auc"] > 0.85
    w, b, mu, sd = final
    assert np.argmax(np.abs(w)) == 0 and w[0] > 0
