"""The act model: which conversational acts a sentence carries, and what kind of call it is.

Two small heads over all-MiniLM-L6-v2 sentence embeddings (``features.MiniLMEncoder``):

* the **sentence head**, a one-hidden-layer network with one sigmoid output per act
  (``ACTS.md`` in ``samples/corpus/`` defines them; a model without the hidden layer is
  one logistic regression per act), reads the sentence's embedding, the embedding of the
  other speaker's previous turn (the context a supervisor reads it in; zero for a model
  trained without it, ``acts.json: context``), a few exact signals (a question mark, a
  clock time or date, a reference code, an amount) and the sentence's words and word
  pairs (hashed).  The acts share the hidden layer: what the head learns about one act's
  sentences (a routine request, a transfer) informs the others.  An act
  belongs to one speaker; the other speaker's sentences get probability 0 for it.
* the **call head**, a multinomial logistic regression over call-level evidence (per act:
  the highest probability in the call and how many sentences carry it;
  ``CALL_EVIDENCE_KINDS``), gives
  P(escalation), P(handoff), P(standard).

Both are trained by ``python -m scripts.train_acts`` (fixed seed, one command) from the
act corpus and the training split of the labelled calls, and saved as one artefact:
``model/acts.npz`` (weights) + ``model/acts.json`` (labels, feature layout, training
summary, sha256 of the npz).  ``load_act_model`` verifies the checksum.  The artefact's
``version`` (``acts-<human>+sha256:<8 hex>``) is part of FEATURES_VERSION and is named in
every report (``models.acts``), beside the rule set.

Inference is numpy only: deterministic, no torch, no network.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import re
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

MODEL_DIR = Path(__file__).resolve().parent / "model"
ARTEFACT_SCHEMA = "callcoach.act_model"

AGENT_ACTS = (
    "acknowledge", "own_fault", "root_cause", "cause_unknown", "clarify", "troubleshoot",
    "action_now", "specific_commitment", "vague_commitment", "contact_commitment",
    "satisfaction_check", "offer_manager", "decline_manager", "transfer", "warm_transfer",
    "recap", "impact_question", "documented", "reexplain", "ticket_given", "no_reference",
    "expectations", "keep_ownership", "drop_ownership", "self_service", "hedge",
)
CUSTOMER_ACTS = (
    "upset", "cancel_threat", "ask_manager", "failure_reported", "concern", "ask_update",
    "routine_request",
)
ACTS = AGENT_ACTS + CUSTOMER_ACTS
ACT_SPEAKER = {**{a: "agent" for a in AGENT_ACTS}, **{a: "customer" for a in CUSTOMER_ACTS}}
CALL_TYPES = ("escalation", "handoff", "standard")

# Exact signals, on normalised text (features.normalise: lower case, numbers as digits).
# These are patterns for what is exact (times, dates, codes, amounts), never for wording.
_DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|today|tonight)"
_MONTH = (r"(?:january|february|march|april|may|june|july|august|september|october|november|"
          r"december)")
SIGNALS: dict[str, re.Pattern] = {
    "question": re.compile(r"\?"),
    "clock_time": re.compile(r"\b\d{1,2}(?::\d{2}| \d{2})? ?(?:am|pm)\b|\b\d{1,2} o'clock\b|"
                             r"\b(?:noon|midday|midnight)\b|\bhalf past \d|\bquarter (?:past|to) \d"),
    "day_or_date": re.compile(rf"\b{_DAY}\b|\b{_MONTH} \d{{1,2}}\b|\b\d{{1,2}}(?:st|nd|rd|th)?"
                              rf"(?: of)? {_MONTH}\b|\bthe \d{{1,2}}(?:st|nd|rd|th)\b"),
    "duration": re.compile(r"\bwithin (?:the next )?\d+ (?:minutes?|hours?|days?|working days|"
                           r"business days)\b|\bin \d+ (?:minutes?|hours?|days?)\b|\b\d+ hours?\b"),
    "code": re.compile(r"\b(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{4,}\b|\b\d{5,}\b"),
    "amount": re.compile(r"[$£€]\s?\d|\b\d+(?:\.\d+)? (?:pounds|dollars|euros|quid|bucks|cents|p)\b"),
}
SIGNAL_NAMES = tuple(SIGNALS)


def signals(norm: str) -> list[float]:
    """The exact signals of one normalised sentence, as 0/1."""
    return [1.0 if rx.search(norm) else 0.0 for rx in SIGNALS.values()]


# Words and word pairs of the normalised sentence, hashed into a fixed number of buckets:
# the lexical side of the sentence head, learned from the corpus like the rest (it raised
# leave-one-author-out macro F1 from 0.73 to 0.79 over the embeddings alone).
NGRAM_BUCKETS = 1024


def ngram_features(norms: Sequence[str]) -> np.ndarray:
    """[N, NGRAM_BUCKETS] 0/1: which hashed unigrams and bigrams each sentence has."""
    out = np.zeros((len(norms), NGRAM_BUCKETS), np.float32)
    for i, t in enumerate(norms):
        w = t.split()
        for g in w + [f"{a} {b}" for a, b in zip(w, w[1:])]:
            out[i, zlib.crc32(g.encode("utf-8")) % NGRAM_BUCKETS] = 1.0
    return out


def sentence_inputs(emb: np.ndarray, ctx: np.ndarray, has_ctx: np.ndarray,
                    norms: Sequence[str], use_context: bool = True) -> np.ndarray:
    """Design matrix of the sentence head: [emb | ctx | has_ctx | signals | n-grams]
    (the context columns are zero for a model trained without context)."""
    if not use_context:
        ctx = np.zeros_like(ctx)
        has_ctx = np.zeros_like(has_ctx)
    sig = np.asarray([signals(n) for n in norms], np.float32).reshape(len(norms), len(SIGNALS))
    return np.hstack([emb.astype(np.float32), ctx.astype(np.float32),
                      has_ctx.reshape(-1, 1).astype(np.float32), sig, ngram_features(norms)])


# ---------------------------------------------------------------------------------------
# call-level evidence
# ---------------------------------------------------------------------------------------
# What makes a call an escalation or a handoff by the contract: the customer's upset, threats,
# requests for someone senior and the failure they report; the agent moving the issue to
# another team.  (How well the agent handles the call is not evidence of its type.)
CALL_EVIDENCE_ACTS = (
    "upset", "cancel_threat", "ask_manager", "failure_reported", "routine_request",
    "transfer", "warm_transfer", "drop_ownership", "reexplain",
)
# Sign of each act's evidence in the call head's logits (standard's logit is 0): what the
# contract says a type is.  Training may only choose how much each counts.
ESCALATION_EVIDENCE = ("upset", "cancel_threat", "ask_manager", "failure_reported")
HANDOFF_EVIDENCE = ("transfer", "warm_transfer", "drop_ownership", "reexplain")
ROUTINE_EVIDENCE = ("routine_request",)


# What the call head reads of each act (in this order per act): its highest probability in
# the call ("max"), log(1 + sentences with p >= 0.5) ("n") and, in the soft-count layout
# (``train_acts --call-evidence max,n,sum``), log(1 + the sum of its probabilities) ("sum":
# several sentences just under 0.5 are evidence a hard count misses).  An artefact names
# its layout (acts.json "call_evidence"); those of EVIDENCE_LAYOUTS load.  Training writes
# CALL_EVIDENCE_KINDS unless told otherwise: the soft count did not win (docs/coaching.md,
# 2026-12-07, fourth round).
CALL_EVIDENCE_KINDS = ("max", "n")
EVIDENCE_LAYOUTS = (CALL_EVIDENCE_KINDS, ("max", "n", "sum"))


def call_head_bounds(kinds: Sequence[str] = CALL_EVIDENCE_KINDS) -> list[tuple[float | None, float | None]]:
    """L-BFGS-B bounds for [W (n_inputs x 3) row-major, b (3)] of the call head: escalation
    rises with escalation evidence and ignores handoff evidence; handoff rises with handoff
    evidence and falls with escalation evidence (an upset customer's call stays an
    escalation when it is transferred); both fall with routine requests; standard is the
    reference class (its logit is 0)."""
    out = []
    for a in CALL_EVIDENCE_ACTS:
        for _kind in kinds:
            esc = (0.0, None) if a in ESCALATION_EVIDENCE else (None, 0.0) if a in ROUTINE_EVIDENCE else (0.0, 0.0)
            hand = ((0.0, None) if a in HANDOFF_EVIDENCE else
                    (None, 0.0) if a in ESCALATION_EVIDENCE + ROUTINE_EVIDENCE else (0.0, 0.0))
            out += [esc, hand, (0.0, 0.0)]
    return out + [(None, None), (None, None), (0.0, 0.0)]


def call_evidence_names(kinds: Sequence[str] = CALL_EVIDENCE_KINDS) -> tuple[str, ...]:
    return tuple(f"{k}:{a}" for a in CALL_EVIDENCE_ACTS for k in kinds)


def evidence_layout(names: Sequence[str]) -> tuple[str, ...] | None:
    """The kinds of the known layout whose names are ``names`` (None: no known layout)."""
    return next((k for k in EVIDENCE_LAYOUTS if list(call_evidence_names(k)) == list(names)), None)


def opening_sentences(turn_of_sentence: Sequence[int]) -> int:
    """How many leading sentences belong to the call's first turn (the greeting)."""
    n = 0
    for t in turn_of_sentence:
        if t != turn_of_sentence[0]:
            break
        n += 1
    return n


def without_opening_handoff(act: str, p: Sequence, opening: int) -> Sequence:
    """``p`` (per-sentence values of ``act``) with the first ``opening`` sentences zeroed when
    ``act`` is hand-off evidence: the greeting ("you're through to accounts", "hello, this is
    Mark speaking") is no evidence of a hand-off, since nobody is transferred before they have
    said why they called.  Read by the call head's evidence and by the rules alike."""
    if act not in HANDOFF_EVIDENCE or not opening:
        return p
    return [0] * min(opening, len(p)) + list(p[opening:])


def call_evidence(prob: Mapping[str, Sequence[float]], n: int, opening: int = 0,
                  kinds: Sequence[str] = CALL_EVIDENCE_KINDS) -> np.ndarray:
    """Call-level inputs from per-sentence probabilities (0..1): per act, the ``kinds``
    (CALL_EVIDENCE_KINDS) of its probabilities in the call.  The first ``opening``
    sentences are no evidence of a hand-off (``without_opening_handoff``)."""
    nk = len(kinds)
    out = np.zeros(nk * len(CALL_EVIDENCE_ACTS), np.float32)
    for i, a in enumerate(CALL_EVIDENCE_ACTS):
        p = np.asarray(without_opening_handoff(a, prob.get(a, ()), opening), np.float32)
        if not (n and p.size):
            continue
        for j, k in enumerate(kinds):
            if k == "max":
                v = float(p.max())
            elif k == "n":
                v = math.log1p(float((p >= 0.5).sum()))
            elif k == "sum":
                v = math.log1p(float(p.sum(dtype=np.float64)))
            else:
                raise ValueError(f"unknown call evidence kind {k!r}")
            out[nk * i + j] = v
    return out


# ---------------------------------------------------------------------------------------
# the answer head: does this agent sentence answer that customer sentence?
# ---------------------------------------------------------------------------------------
# A customer's concern is answered when an agent sentence soon after takes up its substance
# ("will I still be charged for March" - "no, the March payment is cancelled").  The answer
# head scores each (customer sentence, agent sentence) pair in the agent's next ANSWER_TURNS
# turns; features store, per customer sentence, the best score within each of those turns,
# and the rules read "answered" (customer sentences) as the best within
# `concern_answers.within_turns` of them.
ANSWER_TURNS = 4
EMB_DIM = 384          # all-MiniLM-L6-v2 sentence embeddings
DERIVED_ACTS = {"answered": "customer",      # model outputs that are not sentence-head acts
                "unanswered": "customer"}
_STOP = frozenset("""the a an and or but so to of in on at for with is are was were be been it
it's this that you your i i'm we me my our they them he she his her do does did not no yes
yeah okay ok um uh just can could will would what when how why where which there here then
have has had get got going gonna if as about from by up out all any some one""".split())


def _words(norm: str) -> set[str]:
    return {w for w in norm.split() if len(w) > 2 and w not in _STOP}


# What a question asks for and what a reply gives, read from exact words (question words,
# auxiliaries, amounts, times, a reply's opening yes/no), so the answer head can learn that
# a "how much" wants an amount, a "when" a time and a "do I still get charged" a yes or a
# no: a reply on the same subject that gives none of them ("the freeze starts on the 1st")
# is close in meaning and still no answer.  A linear head over the embeddings alone cannot
# form these pairings; the products below give it them, and training chooses their weights.
# Normalised text (lower case, numbers as digits), with or without "?" and apostrophes.
_LEAD = r"^(?:(?:and|so|okay|ok|um|uh|er|right|but|well|oh|sorry|yeah|also|just|then)\s+)*"
ASKS: dict[str, re.Pattern] = {
    "money": re.compile(r"\bhow much\b|\b(?:cost|costs|price|fee|fees|charge|charged|charges|pay|"
                        r"paying|refund|deposit|bill|amount|copay|interest|rate|penalty)\b"),
    "when": re.compile(r"\bwhen\b|\bhow long\b|\bwhat time\b|\bwhat day\b|\bhow soon\b|"
                       r"\bhow quickly\b|\bby when\b"),
    "yes_no": re.compile(_LEAD + r"(?:do|does|did|is|are|was|were|will|would|can|could|should|"
                         r"shall|have|has|am|won'?t|don'?t|doesn'?t|isn'?t|aren'?t|can'?t|didn'?t)\b|"
                         r"\bor not\b|\bor\s*\??$"),
    "wh": re.compile(r"\b(?:what|which|who|where|why|how)\b"),
}
GIVES: dict[str, re.Pattern] = {
    "money": re.compile(r"[$£€]\s?\d|\b\d+(?:\.\d+)?\b|\b(?:free|no charge|nothing|covered|"
                        r"waiv\w*|refund\w*|credit\w*|charge\w*|fee|fees|cost|costs|price)\b"),
    "when": re.compile(SIGNALS["clock_time"].pattern + "|" + SIGNALS["day_or_date"].pattern + "|"
                       + SIGNALS["duration"].pattern
                       + r"|\b\d+ (?:minutes?|hours?|days?|weeks?|months?|working days)\b|"
                       r"\b(?:next|this) (?:week|month)\b|\bstraight away\b|\bright now\b"),
    "direct": re.compile(_LEAD + r"(?:yes|yeah|yep|yup|no|nope|not|absolutely|definitely|of course|"
                         r"certainly|correct|that'?s right|i'?m afraid|unfortunately|it will|it won'?t|"
                         r"it does|it doesn'?t|it is|it isn'?t|it'?s not|you will|you won'?t|you do|"
                         r"you don'?t|you can|you can'?t|you would|you wouldn'?t|there is|there'?s|"
                         r"there isn'?t|they will|they won'?t|we will|we won'?t|we can|we can'?t)\b"),
    "negation": re.compile(r"\b(?:no|not|won'?t|don'?t|doesn'?t|isn'?t|aren'?t|never|nothing|can'?t|"
                           r"wouldn'?t|didn'?t)\b"),
}


def question_form(norm: str) -> list[float]:
    """0/1 per ASKS: what the customer sentence asks for."""
    return [1.0 if rx.search(norm) else 0.0 for rx in ASKS.values()]


def reply_form(norm: str) -> list[float]:
    """0/1 per GIVES: what the agent sentence gives."""
    return [1.0 if rx.search(norm) else 0.0 for rx in GIVES.values()]


def answer_input_names(labels: Sequence[str]) -> tuple[str, ...]:
    agent = [a for a in labels if ACT_SPEAKER[a] == "agent"]
    return (tuple(f"prod{i}" for i in range(EMB_DIM)) + ("cos", "overlap")
            + tuple(f"offset{k}" for k in range(1, ANSWER_TURNS + 1))
            + tuple(f"p:{a}" for a in agent) + tuple(f"c:{s}" for s in SIGNAL_NAMES)
            + tuple(f"s:{s}" for s in SIGNAL_NAMES)
            + tuple(f"asks:{q}" for q in ASKS) + tuple(f"gives:{g}" for g in GIVES)
            + tuple(f"asks:{q}*gives:{g}" for q in ASKS for g in GIVES))


def answer_pairs(speakers: Sequence[str], turns: Sequence[int]) -> list[tuple[int, int, int]]:
    """(customer sentence, agent sentence, k) for every agent sentence in the k-th (1-based,
    k <= ANSWER_TURNS) agent turn after each customer sentence."""
    out = []
    n = len(speakers)
    for i in range(n):
        if speakers[i] != "customer":
            continue
        seen: list[int] = []
        for j in range(i + 1, n):
            if speakers[j] != "agent":
                continue
            if turns[j] not in seen:
                if len(seen) == ANSWER_TURNS:
                    break
                seen.append(turns[j])
            out.append((i, j, len(seen)))
    return out


def answer_inputs(emb: np.ndarray, P: np.ndarray, labels: Sequence[str], norms: Sequence[str],
                  pairs: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Design matrix of the answer head, one row per (customer sentence, agent sentence,
    agent turn k) pair of one call (``answer_pairs``); see ``answer_matrix``."""
    ci = [p[0] for p in pairs]
    si = [p[1] for p in pairs]
    return answer_matrix(emb[ci], emb[si], P[si], [norms[i] for i in ci], [norms[i] for i in si],
                         [p[2] for p in pairs], labels)


def answer_matrix(ec: np.ndarray, es: np.ndarray, ps: np.ndarray, nc: Sequence[str],
                  ns: Sequence[str], ks: Sequence[int], labels: Sequence[str]) -> np.ndarray:
    """Rows of the answer head: the element-wise product of the two sentence embeddings and
    their cosine (does the reply take up what was asked), the share of the customer's content
    words the reply repeats, which agent turn it is in, the reply's agent-act probabilities
    (a vague promise or a hand-off is not an answer) and the exact signals of both (a "when"
    answered with a day, a "how much" with an amount)."""
    agent_cols = [j for j, a in enumerate(labels) if ACT_SPEAKER[a] == "agent"]
    nq, ng = len(ASKS), len(GIVES)
    d = EMB_DIM + 2 + ANSWER_TURNS + len(agent_cols) + 2 * len(SIGNALS) + nq + ng + nq * ng
    X = np.zeros((len(ks), d), np.float32)
    if not len(ks):
        return X
    X[:, :EMB_DIM] = ec * es
    X[:, EMB_DIM] = (ec * es).sum(1)
    o = EMB_DIM + 1
    for r, (c, s, k) in enumerate(zip(nc, ns, ks)):
        wc = _words(c)
        X[r, o] = len(wc & _words(s)) / len(wc) if wc else 0.0
        X[r, o + k] = 1.0
    o += 1 + ANSWER_TURNS
    X[:, o:o + len(agent_cols)] = np.asarray(ps)[:, agent_cols]
    o += len(agent_cols)
    # each sentence is in many pairs: read its regexes once
    c_of = {t: signals(t) + question_form(t) for t in set(nc)}
    s_of = {t: signals(t) + reply_form(t) for t in set(ns)}
    C = np.asarray([c_of[t] for t in nc], np.float32).reshape(-1, len(SIGNALS) + nq)
    S = np.asarray([s_of[t] for t in ns], np.float32).reshape(-1, len(SIGNALS) + ng)
    X[:, o:o + len(SIGNALS)] = C[:, :len(SIGNALS)]
    o += len(SIGNALS)
    X[:, o:o + len(SIGNALS)] = S[:, :len(SIGNALS)]
    o += len(SIGNALS)
    Q, G = C[:, len(SIGNALS):], S[:, len(SIGNALS):]
    X[:, o:o + nq] = Q
    X[:, o + nq:o + nq + ng] = G
    X[:, o + nq + ng:] = (Q[:, :, None] * G[:, None, :]).reshape(-1, nq * ng)
    return X


# ---------------------------------------------------------------------------------------
# the concern head: is this customer sentence a concern that is left unanswered?
# ---------------------------------------------------------------------------------------
# The answer head scores pairs; whether a concern is left unanswered is a question about the
# customer sentence and everything the agent says after it: how sure the sentence head is
# that it needs an answer, and how well the best reply in each of the agent's next turns
# answers it.  The concern head learns that combination from labelled concerns (whole
# calls and concern episodes); the rules read it as the act "unanswered".
UNANSWERED_ACTS = ("concern", "ask_update", "upset", "failure_reported", "cancel_threat",
                   "routine_request")


def unanswered_input_names(labels: Sequence[str]) -> tuple[str, ...]:
    return (tuple(f"ans{k}" for k in range(1, ANSWER_TURNS + 1))
            + ("best3", "log_best3", "open")
            + tuple(f"p:{a}" for a in UNANSWERED_ACTS if a in labels)
            + ("log_p_concern", "question", "log_words"))


def unanswered_inputs(answer: Sequence[Sequence[float]], P: np.ndarray, labels: Sequence[str],
                      norms: Sequence[str]) -> np.ndarray:
    """Design matrix of the concern head, one row per customer sentence: its answer-head
    scores per agent turn after it (``answer``, probabilities), the best of the first three
    and its log, P(concern) x (1 - best) ("open"), the customer-act probabilities of the
    sentence (rows of ``P``), whether it ends in "?", its length."""
    cols = [labels.index(a) for a in UNANSWERED_ACTS if a in labels]
    n = len(norms)
    d = ANSWER_TURNS + 3 + len(cols) + 3
    X = np.zeros((n, d), np.float32)
    if not n:
        return X
    A = np.asarray([list(a) + [0.0] * (ANSWER_TURNS - len(a)) for a in answer], np.float32).reshape(n, ANSWER_TURNS)
    best = A[:, :3].max(1)
    pc = np.asarray(P)[:, labels.index("concern")] if "concern" in labels else np.zeros(n, np.float32)
    X[:, :ANSWER_TURNS] = A
    o = ANSWER_TURNS
    X[:, o] = best
    X[:, o + 1] = np.log(best + 1e-3)
    X[:, o + 2] = pc * (1.0 - best)
    o += 3
    X[:, o:o + len(cols)] = np.asarray(P)[:, cols]
    o += len(cols)
    X[:, o] = np.log(pc + 1e-3)
    X[:, o + 1] = [1.0 if m.rstrip().endswith("?") else 0.0 for m in norms]
    X[:, o + 2] = [math.log1p(len(m.split())) for m in norms]
    return X


# ---------------------------------------------------------------------------------------
# the artefact
# ---------------------------------------------------------------------------------------
# The arrays of the sentence head (the hidden layer's two only in a model that has one): what
# a cross-fitted copy of the model replaces.
SENTENCE_HEAD_ARRAYS = ("W", "b", "hid_W", "hid_b")


class ActModelError(RuntimeError):
    """The act model artefact is missing, corrupt or of another layout."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


@dataclass(frozen=True)
class ActModel:
    version: str                  # "acts-2026.12.1+sha256:0123abcd"
    sha256: str                   # of the npz bytes
    labels: tuple[str, ...]       # sentence-head acts, in column order
    W: np.ndarray                 # [n_hidden (n_inputs without a hidden layer), n_acts]
    b: np.ndarray                 # [n_acts]
    mu: np.ndarray                # [n_inputs] input standardisation
    sd: np.ndarray
    call_W: np.ndarray            # [n_call_inputs, 3]
    call_b: np.ndarray            # [3]
    call_mu: np.ndarray
    call_sd: np.ndarray
    meta: Mapping                 # acts.json content (training summary etc.)
    ans_W: np.ndarray | None = None   # [n_answer_inputs] answer head (None: not trained)
    ans_b: np.ndarray | None = None   # [1]
    ans_mu: np.ndarray | None = None
    ans_sd: np.ndarray | None = None
    un_W: np.ndarray | None = None    # [n_unanswered_inputs] concern head (None: not trained)
    un_b: np.ndarray | None = None    # [1]
    un_mu: np.ndarray | None = None
    un_sd: np.ndarray | None = None
    hid_W: np.ndarray | None = None   # [n_inputs, n_hidden] sentence head's hidden layer
    hid_b: np.ndarray | None = None   # [n_hidden]   (None: a linear sentence head)
    # the sentence encoder's weights this artefact was trained with where they differ from
    # all-MiniLM-L6-v2's (scripts/finetune_encoder.py: the top layers fine-tuned on the act
    # corpus), by safetensors name; empty: the encoder as shipped.  Stored in acts.npz as
    # "enc.<name>" (float16), so the artefact's checksum and version cover them.
    encoder: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def uses_context(self) -> bool:
        return bool(self.meta.get("context", True))

    @property
    def speaker_of(self) -> dict[str, str]:
        return {a: ACT_SPEAKER[a] for a in self.labels}

    def sentence_probs(self, X: np.ndarray, speakers: Sequence[str]) -> np.ndarray:
        """[N, n_acts] probabilities; an act of the other speaker gets 0."""
        if X.shape[0] == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        P = _sigmoid(sentence_logits(((X - self.mu) / self.sd).astype(np.float32), self.W, self.b,
                                     self.hid_W, self.hid_b)).astype(np.float32)
        sp = np.asarray(list(speakers))
        for j, a in enumerate(self.labels):
            P[sp != ACT_SPEAKER[a], j] = 0.0
        return P

    def answer_probs(self, Xa: np.ndarray) -> np.ndarray:
        """[pairs] P(the agent sentence answers the customer sentence); zeros without an
        answer head."""
        if self.ans_W is None or Xa.shape[0] == 0:
            return np.zeros(Xa.shape[0], np.float32)
        return _sigmoid(((Xa - self.ans_mu) / self.ans_sd) @ self.ans_W + self.ans_b[0]).astype(np.float32)

    def unanswered_probs(self, Xu: np.ndarray) -> np.ndarray:
        """[customer sentences] P(a concern left unanswered); zeros without a concern head."""
        if self.un_W is None or Xu.shape[0] == 0:
            return np.zeros(Xu.shape[0], np.float32)
        return _sigmoid(((Xu - self.un_mu) / self.un_sd) @ self.un_W + self.un_b[0]).astype(np.float32)

    @functools.cached_property
    def call_kinds(self) -> tuple[str, ...]:
        """The call evidence this artefact's call head reads (its acts.json layout; read once
        per loaded artefact, not per call)."""
        return evidence_layout(self.meta.get("call_evidence", ())) or CALL_EVIDENCE_KINDS

    def call_evidence(self, prob: Mapping[str, Sequence[float]], n: int, opening: int = 0) -> np.ndarray:
        """``call_evidence`` in this artefact's layout."""
        return call_evidence(prob, n, opening, self.call_kinds)

    def call_type_probs(self, evidence: np.ndarray) -> np.ndarray:
        """[..., 3] P(escalation, handoff, standard) from call_evidence rows in this
        artefact's layout (``ActModel.call_evidence``)."""
        return _softmax(((evidence - self.call_mu) / self.call_sd) @ self.call_W + self.call_b)


ENCODER_PREFIX = "enc."     # acts.npz arrays of the fine-tuned sentence encoder (ActModel.encoder)


# arrays an artefact may leave out (heads it was not trained with)
OPTIONAL_ARRAYS = ("ans_W", "ans_b", "ans_mu", "ans_sd", "un_W", "un_b", "un_mu", "un_sd", "hid_W", "hid_b")


def model_arrays(model: "ActModel") -> dict[str, np.ndarray]:
    """Every array of ``model``'s artefact, as ``save_act_model`` takes them (the inverse of
    ``load_act_model``): the heads and a fine-tuned encoder's weights."""
    out = {k: getattr(model, k) for k in ("W", "b", "mu", "sd", "call_W", "call_b", "call_mu", "call_sd")}
    out.update({k: getattr(model, k) for k in OPTIONAL_ARRAYS if getattr(model, k) is not None})
    out.update({ENCODER_PREFIX + k: v for k, v in model.encoder.items()})
    return out


def save_act_model(directory: Path, *, human_version: str, labels: Sequence[str],
                   arrays: Mapping[str, np.ndarray], meta: Mapping) -> ActModel:
    """Write acts.npz + acts.json (with the npz's sha256) and load them back."""
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    # fixed order, no timestamps: identical training gives identical bytes
    np.savez(buf, **{k: np.ascontiguousarray(arrays[k], dtype=np.float16 if k.startswith(ENCODER_PREFIX)
                                             else np.float32) for k in sorted(arrays)})
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    (directory / "acts.npz").write_bytes(data)
    doc = {"schema": ARTEFACT_SCHEMA, "human_version": human_version, "sha256": sha,
           "version": f"acts-{human_version}+sha256:{sha[:8]}", "labels": list(labels),
           "signals": list(SIGNAL_NAMES), "ngram_buckets": NGRAM_BUCKETS,
           "call_evidence": list(call_evidence_names(_layout_of(arrays))),
           "call_types": list(CALL_TYPES), **dict(meta)}
    (directory / "acts.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    _CACHE.clear()
    return load_act_model(directory)


def _layout_of(arrays: Mapping[str, np.ndarray]) -> tuple[str, ...]:
    """The evidence layout of a call head's weights: the known layout of its width."""
    rows = np.shape(arrays["call_W"])[0] if "call_W" in arrays else None
    for k in EVIDENCE_LAYOUTS:
        if rows == len(call_evidence_names(k)):
            return k
    raise ActModelError(f"a call head of {rows} inputs matches no known evidence layout")


_CACHE: dict[str, ActModel] = {}
_LOCK = threading.Lock()


def load_act_model(directory: str | Path | None = None) -> ActModel:
    """Load (once per process) and verify the act model artefact."""
    d = Path(directory) if directory is not None else MODEL_DIR
    key = str(d.resolve())
    with _LOCK:
        got = _CACHE.get(key)
        if got is not None:
            return got
        try:
            doc = json.loads((d / "acts.json").read_text())
            data = (d / "acts.npz").read_bytes()
        except (OSError, ValueError) as e:
            raise ActModelError(f"act model at {d} cannot be read: {e}; train it with "
                                f"`python -m scripts.train_acts`") from None
        if doc.get("schema") != ARTEFACT_SCHEMA:
            raise ActModelError(f"{d / 'acts.json'}: not an act model (schema={doc.get('schema')!r})")
        sha = hashlib.sha256(data).hexdigest()
        if sha != doc.get("sha256"):
            raise ActModelError(f"{d / 'acts.npz'}: checksum mismatch (file {sha[:12]}, "
                                f"acts.json says {str(doc.get('sha256'))[:12]}); the artefact is corrupt")
        if list(doc.get("signals", ())) != list(SIGNAL_NAMES) or \
                doc.get("ngram_buckets") != NGRAM_BUCKETS or \
                evidence_layout(doc.get("call_evidence", ())) is None:
            raise ActModelError(f"{d}: trained with another input layout; retrain it")
        unknown = [a for a in doc["labels"] if a not in ACT_SPEAKER]
        if unknown:
            raise ActModelError(f"{d}: unknown acts {unknown}")
        z = np.load(io.BytesIO(data))
        odd = [k for k in z.files if k.startswith(ENCODER_PREFIX)
               and not re.fullmatch(r"encoder\.layer\.\d+\.[A-Za-z0-9_.]+", k[len(ENCODER_PREFIX):])]
        if odd:
            raise ActModelError(f"{d}: encoder weights {odd[:3]} are not transformer-layer weights")
        m = ActModel(version=str(doc["version"]), sha256=sha, labels=tuple(doc["labels"]),
                     W=z["W"], b=z["b"], mu=z["mu"], sd=z["sd"], call_W=z["call_W"],
                     call_b=z["call_b"], call_mu=z["call_mu"], call_sd=z["call_sd"], meta=doc,
                     **{k: z[k] for k in OPTIONAL_ARRAYS if k in z.files},
                     encoder={k[len(ENCODER_PREFIX):]: z[k].astype(np.float32) for k in z.files
                              if k.startswith(ENCODER_PREFIX)})
        n_in = m.mu.shape[0]
        if (m.hid_W is None) != (m.hid_b is None) or (
                m.hid_W is not None and (m.hid_W.shape[0] != n_in or m.hid_b.shape != (m.hid_W.shape[1],))):
            raise ActModelError(f"{d}: the sentence head's hidden layer does not match its inputs")
        n_feed = n_in if m.hid_W is None else m.hid_W.shape[1]
        if m.W.shape != (n_feed, len(m.labels)) or m.call_W.shape != (len(call_evidence_names(m.call_kinds)), 3):
            raise ActModelError(f"{d}: weight shapes do not match acts.json")
        if m.ans_W is not None and m.ans_W.shape != (len(answer_input_names(m.labels)),):
            raise ActModelError(f"{d}: answer head shape does not match this code's answer inputs")
        if m.un_W is not None and m.un_W.shape != (len(unanswered_input_names(m.labels)),):
            raise ActModelError(f"{d}: concern head shape does not match this code's concern inputs")
        _CACHE[key] = m
        return m


# ---------------------------------------------------------------------------------------
# training (scripts/train_acts.py drives it)
# ---------------------------------------------------------------------------------------
def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float, weight: np.ndarray | None = None,
                 iters: int = 500) -> tuple[np.ndarray, float]:
    """Binary L2 logistic regression by L-BFGS (scipy), deterministic."""
    from scipy.optimize import minimize
    n, d = X.shape
    w8 = np.ones(n) if weight is None else weight.astype(np.float64)
    Xd = X.astype(np.float64)
    yd = y.astype(np.float64)

    def f(theta):
        w, b = theta[:d], theta[d]
        z = Xd @ w + b
        # log(1 + e^z) - y z, stable
        loss = np.logaddexp(0.0, z) - yd * z
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        g = w8 * (p - yd)
        val = float((w8 * loss).sum() / n + 0.5 * l2 * (w @ w))
        grad = np.concatenate([Xd.T @ g / n + l2 * w, [g.sum() / n]])
        return val, grad
    res = minimize(f, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": iters})
    return res.x[:d].astype(np.float32), float(res.x[d])


def fit_softmax(X: np.ndarray, y: np.ndarray, k: int, l2: float, weight: np.ndarray | None = None,
                iters: int = 1000, bounds=None) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial L2 logistic regression by L-BFGS(-B), deterministic; ``bounds`` per
    parameter ([W row-major, b]) constrain signs."""
    from scipy.optimize import minimize
    n, d = X.shape
    Y = np.eye(k)[y]
    w8 = np.ones(n) if weight is None else weight.astype(np.float64)
    Xd = X.astype(np.float64)

    def f(theta):
        W = theta[:d * k].reshape(d, k)
        b = theta[d * k:]
        Z = Xd @ W + b
        Z -= Z.max(1, keepdims=True)
        logp = Z - np.log(np.exp(Z).sum(1, keepdims=True))
        val = float(-(w8[:, None] * Y * logp).sum() / n + 0.5 * l2 * (W * W).sum())
        G = w8[:, None] * (np.exp(logp) - Y) / n
        grad = np.concatenate([(Xd.T @ G + l2 * W).ravel(), G.sum(0)])
        return val, grad
    res = minimize(f, np.zeros(d * k + k), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": iters})
    return (res.x[:d * k].reshape(d, k).astype(np.float32), res.x[d * k:].astype(np.float32))


def sentence_logits(Xs: np.ndarray, W: np.ndarray, b: np.ndarray, hid_W: np.ndarray | None = None,
                    hid_b: np.ndarray | None = None) -> np.ndarray:
    """Logits of the sentence head on standardised inputs: ``relu(Xs hid_W + hid_b) W + b``,
    or ``Xs W + b`` for a linear head."""
    if hid_W is not None:
        Xs = np.maximum(Xs @ hid_W + hid_b, 0.0)
    return Xs @ W + b


def fit_mlp(X: np.ndarray, Y: np.ndarray, weight: np.ndarray, hidden: int, l2: float,
            iters: int = 300, seed: int = 0) -> dict[str, np.ndarray]:
    """Multi-label head with one ReLU hidden layer: sigmoid outputs per column of ``Y`` [N, k],
    binary cross-entropy weighted per cell by ``weight`` [N, k] (0: the cell is not trained
    on, e.g. an act of the other speaker or a label the row does not speak for), L2 on both
    weight matrices.  Full-batch L-BFGS from a seeded start, in float32 with float64
    parameters: the same data, seed and machine give the same bytes.  Returns the arrays
    ``hid_W`` [d, hidden], ``hid_b``, ``W`` [hidden, k], ``b``."""
    from scipy.optimize import minimize
    rng = np.random.default_rng(seed)
    Xt = np.ascontiguousarray(X, dtype=np.float32)
    Yt = np.asarray(Y, np.float32)
    Wt = np.asarray(weight, np.float32)
    n, d = Xt.shape
    k = Yt.shape[1]
    shapes = [(d, hidden), (hidden,), (hidden, k), (k,)]
    sizes = [int(np.prod(s)) for s in shapes]

    def unpack(theta):
        out, o = [], 0
        for s, z in zip(shapes, sizes):
            out.append(theta[o:o + z].reshape(s).astype(np.float32))
            o += z
        return out

    def f(theta):
        A, a, B, c = unpack(theta)
        H = Xt @ A + a
        R = np.maximum(H, 0.0)
        Z = R @ B + c
        loss = np.logaddexp(0.0, Z) - Yt * Z
        G = Wt * (_sigmoid(Z) - Yt) / n
        val = float((Wt * loss).sum(dtype=np.float64) / n
                    + 0.5 * l2 * ((A.astype(np.float64) ** 2).sum() + (B.astype(np.float64) ** 2).sum()))
        GR = (G @ B.T) * (H > 0)
        grad = [Xt.T @ GR + l2 * A, GR.sum(0), R.T @ G + l2 * B, G.sum(0)]
        return val, np.concatenate([g.ravel() for g in grad]).astype(np.float64)

    theta0 = np.concatenate([rng.normal(0.0, 1.0 / math.sqrt(d), d * hidden), np.zeros(hidden),
                             rng.normal(0.0, 1.0 / math.sqrt(hidden), hidden * k), np.zeros(k)])
    res = minimize(f, theta0, jac=True, method="L-BFGS-B", options={"maxiter": iters})
    A, a, B, c = unpack(res.x)
    return {"hid_W": A, "hid_b": a, "W": B, "b": c}
