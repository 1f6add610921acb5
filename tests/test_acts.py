"""The act model artefact: checksummed, versioned, deterministic; what it says about sentences
and calls it was not trained on (sentences written for this test, in no corpus file)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from callcoach.coaching.acts import (ACT_SPEAKER, ACTS, CALL_EVIDENCE_ACTS, ActModelError, MODEL_DIR,
                                     call_evidence, call_evidence_names, fit_logistic, fit_mlp,
                                     load_act_model, model_arrays, opening_sentences, save_act_model, signals)
from callcoach.coaching.features import features_batch
from callcoach.transcript import Transcript, Turn


def test_shipped_artefact_is_small_checksummed_and_names_its_training():
    m = load_act_model()
    doc = json.loads((MODEL_DIR / "acts.json").read_text())
    assert m.version == doc["version"] and m.version.startswith("acts-")
    assert m.version.endswith(m.sha256[:8])
    # the heads are small; a fine-tuned encoder adds its top layers (float16, ~3.5 MB each)
    enc_bytes = sum(v.size * 2 for v in m.encoder.values())
    assert (MODEL_DIR / "acts.npz").stat().st_size - enc_bytes < 4_000_000
    assert enc_bytes <= 2 * 3_600_000 and len({k.split(".")[2] for k in m.encoder}) <= 2
    assert set(m.labels) == set(ACTS)
    assert doc["corpus"]["utterances"] >= 3000 and doc["corpus"]["industries"] >= 25
    assert doc["seed"] and len(doc["data_sha256"]) == 64


def test_corrupt_or_missing_artefact_is_refused_clearly(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(MODEL_DIR, d)
    data = bytearray((d / "acts.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "acts.npz").write_bytes(bytes(data))
    with pytest.raises(ActModelError, match="checksum mismatch"):
        load_act_model(d)
    with pytest.raises(ActModelError, match="train it with"):
        load_act_model(tmp_path / "nowhere")


def test_training_is_deterministic(tmp_path):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0)
    w1, b1 = fit_logistic(X, y, 1e-3)
    w2, b2 = fit_logistic(X, y, 1e-3)
    assert np.array_equal(w1, w2) and b1 == b2
    assert ((X @ w1 + b1 >= 0) == y).mean() > 0.95
    m = load_act_model()
    arrays = model_arrays(m)                # the heads and a fine-tuned encoder's weights
    a = save_act_model(tmp_path / "a", human_version="t", labels=m.labels, arrays=arrays, meta={})
    b = save_act_model(tmp_path / "b", human_version="t", labels=m.labels, arrays=arrays, meta={})
    assert a.sha256 == b.sha256 == m.sha256


def test_hidden_layer_head_is_deterministic_and_learns_what_a_linear_head_cannot():
    """Two acts on 2-d inputs: one is XOR-shaped (no linear head separates it), one linear;
    the cells weighted 0 (another speaker's act) are ignored however they are labelled."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 2)).astype(np.float32)
    Y = np.stack([(X[:, 0] > 0) ^ (X[:, 1] > 0), X[:, 0] + X[:, 1] > 0], 1)
    w = np.ones(Y.shape, np.float32)
    w[:300, 1] = 0.0
    Y[:300, 1] = ~Y[:300, 1]              # wrong labels the head must not learn from
    a = fit_mlp(X, Y, w, hidden=16, l2=1e-4, iters=400, seed=5)
    b = fit_mlp(X, Y, w, hidden=16, l2=1e-4, iters=400, seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in ("hid_W", "hid_b", "W", "b"))
    Z = np.maximum(X @ a["hid_W"] + a["hid_b"], 0) @ a["W"] + a["b"]
    assert ((Z[:, 0] >= 0) == Y[:, 0]).mean() > 0.9
    assert ((Z[300:, 1] >= 0) == Y[300:, 1]).mean() > 0.9
    wl, bl = fit_logistic(X, Y[:, 0], 1e-4)
    assert ((X @ wl + bl >= 0) == Y[:, 0]).mean() < 0.7


def test_hidden_layer_that_does_not_match_the_inputs_is_refused(tmp_path):
    m = load_act_model()
    arrays = {k: getattr(m, k) for k in ("W", "b", "mu", "sd", "call_W", "call_b", "call_mu", "call_sd",
                                         "hid_W", "hid_b") if getattr(m, k) is not None}
    n_in = m.mu.shape[0]
    h = arrays.get("hid_W", np.zeros((n_in, 4), np.float32))
    arrays.update(hid_W=h[:-1], hid_b=np.zeros(h.shape[1], np.float32),
                  W=np.zeros((h.shape[1], len(m.labels)), np.float32))
    with pytest.raises(ActModelError, match="hidden layer"):
        save_act_model(tmp_path / "m", human_version="t", labels=m.labels, arrays=arrays, meta={})


def test_call_evidence_per_act_is_max_hard_count_and_soft_count():
    prob = {"upset": [0.2, 0.45, 0.45, 0.9], "transfer": [0.95, 0.1, 0.0, 0.6]}
    ev = call_evidence(prob, 4, opening=1, kinds=("max", "n", "sum"))
    assert ev.shape == (3 * len(CALL_EVIDENCE_ACTS),)
    i = 3 * CALL_EVIDENCE_ACTS.index("upset")
    assert ev[i] == pytest.approx(0.9) and ev[i + 1] == pytest.approx(np.log(2))
    assert ev[i + 2] == pytest.approx(np.log1p(2.0))
    # the greeting's sentence is no evidence of a hand-off, for any kind
    j = 3 * CALL_EVIDENCE_ACTS.index("transfer")
    assert ev[j] == pytest.approx(0.6) and ev[j + 1] == pytest.approx(np.log(2))
    assert ev[j + 2] == pytest.approx(np.log1p(0.7))
    # the default layout is the same numbers without the soft count
    old = call_evidence(prob, 4, opening=1)
    assert np.array_equal(old, ev.reshape(-1, 3)[:, :2].ravel())
    assert not call_evidence({}, 0).any()


@pytest.mark.parametrize("kinds", [("max", "n"), ("max", "n", "sum")])
def test_an_artefact_reads_calls_in_the_evidence_layout_it_was_trained_on(tmp_path, kinds):
    m = load_act_model()
    rng = np.random.default_rng(3)
    k = len(call_evidence_names(kinds))
    arrays = {**model_arrays(m), "call_W": rng.normal(size=(k, 3)).astype(np.float32),
              "call_mu": np.zeros(k, np.float32), "call_sd": np.ones(k, np.float32)}
    a = save_act_model(tmp_path / "a", human_version="t", labels=m.labels, arrays=arrays, meta={})
    assert a.call_kinds == kinds
    assert json.loads((tmp_path / "a" / "acts.json").read_text())["call_evidence"] == list(call_evidence_names(kinds))
    prob = {"upset": [0.1, 0.8], "routine_request": [0.7, 0.0]}
    ev = a.call_evidence(prob, 2)
    assert np.array_equal(ev, call_evidence(prob, 2, kinds=kinds))
    assert a.call_type_probs(ev).shape == (3,)
    # a layout this code does not know is refused, naming the artefact
    shutil.copytree(tmp_path / "a", tmp_path / "c")
    doc = json.loads((tmp_path / "c" / "acts.json").read_text())
    doc["call_evidence"] = [f"mean:{x}" for x in CALL_EVIDENCE_ACTS]
    (tmp_path / "c" / "acts.json").write_text(json.dumps(doc))
    with pytest.raises(ActModelError, match="another input layout"):
        load_act_model(tmp_path / "c")
    with pytest.raises(ActModelError, match="no known evidence layout"):
        save_act_model(tmp_path / "b", human_version="t", labels=m.labels,
                       arrays={**arrays, "call_W": np.zeros((k + 1, 3), np.float32)}, meta={})


def test_signals_are_exact_patterns_only():
    s = dict(zip(("question", "clock_time", "day_or_date", "duration", "code", "amount"),
                 signals("your reference is kq4471 and it's 40 pounds within 2 days by 5 pm on friday ?")))
    assert all(s.values())
    assert not any(signals("i completely understand how annoying that is"))


def _call(lines):
    t, turns = 0.0, []
    for sp, text in lines:
        d = 0.3 * len(text.split())
        turns.append(Turn(sp, t, t + d, text))
        t += d + 0.4
    return Transcript("t", t, tuple(turns))


def _probs(lines):
    f = features_batch([_call(lines)])[0]
    return f, {a: np.asarray(v) / 1000 for a, v in f["prob"].items()}


def test_acts_of_one_speaker_are_never_given_to_the_other():
    f, p = _probs([("agent", "I'm so sorry, that was our mistake."),
                   ("customer", "I'm furious, this is the third time it's broken.")])
    for a, v in p.items():
        zero_for = 1 if ACT_SPEAKER[a] == "agent" else 0
        assert v[zero_for] == 0.0, a


@pytest.mark.parametrize("speaker,text,act", [
    ("agent", "Ugh, that's really rotten luck, I'm sorry you've been messed about like this.", "acknowledge"),
    ("agent", "I've gone ahead and knocked the late charge off, it's done.", "action_now"),
    ("agent", "We'll have a look at it and someone will be in touch.", "vague_commitment"),
    ("agent", "i'll give you a ring back thursday around two to see how it's going", "contact_commitment"),
    ("agent", "I'm sending this over to our billing specialists now.", "transfer"),
    ("customer", "honestly this is a joke i've been without heating for a week", "upset"),
    ("customer", "If it's not sorted by Friday I'm taking my business somewhere else.", "cancel_threat"),
    ("customer", "can i speak to your supervisor please", "ask_manager"),
    ("customer", "hi i'd like to change the address on my account", "routine_request"),
])
def test_unseen_sentences_get_their_act(speaker, text, act):
    other = "customer" if speaker == "agent" else "agent"
    _f, p = _probs([(other, "Okay."), (speaker, text)])
    assert p[act][1] >= 0.5, {a: round(float(v[1]), 2) for a, v in p.items() if v[1] > 0.2}


@pytest.mark.parametrize("speaker,text,act", [
    ("agent", "Sorry for the wait, I'm just pulling your account up.", "acknowledge"),
    ("agent", "How can I help you today?", "satisfaction_check"),
    ("agent", "My name is Priya, I'll be looking after you.", "keep_ownership"),
    ("customer", "I would like to reset my password please.", "cancel_threat"),
    ("customer", "okay and what is the bill amount", "upset"),
])
def test_hard_negatives_are_not_taken_for_the_act(speaker, text, act):
    other = "customer" if speaker == "agent" else "agent"
    _f, p = _probs([(other, "Hello."), (speaker, text)])
    assert p[act][1] < 0.5


def test_call_head_types_calls_from_their_evidence():
    m = load_act_model()
    upset = [("agent", "Thanks for calling, how can I help?"),
             ("customer", "This is the fourth time I've called about my broken boiler and I'm livid."),
             ("customer", "I want your manager, or I'm cancelling the whole contract."),
             ("agent", "I'm really sorry, that's not acceptable and it's on us.")]
    routine = [("agent", "Hi there, you're through to accounts, how can I help?"),
               ("customer", "Hi, I just need to update my phone number please."),
               ("agent", "Sure, what's the new number?"), ("customer", "It's the one ending 2231."),
               ("agent", "Done, that's updated for you. Anything else?"), ("customer", "No, that's all, thanks.")]
    transfer = [("agent", "Hello, support desk."),
                ("customer", "My laptop won't connect to the office VPN since the update."),
                ("agent", "That needs our network team, so I'm transferring you to them now; I'll brief them first.")]
    probs = []
    for lines in (upset, routine, transfer):
        f, _ = _probs(lines)
        probs.append(m.call_type_probs(m.call_evidence(
            {a: np.asarray(v, np.float32) / 1000 for a, v in f["prob"].items()}, f["n"],
            opening_sentences(f["turn"]))))
    assert int(np.argmax(probs[0])) == 0 and int(np.argmax(probs[1])) == 2 and int(np.argmax(probs[2])) == 1
    assert all(abs(float(p.sum()) - 1.0) < 1e-5 for p in probs)
