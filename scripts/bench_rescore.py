#!/usr/bin/env python
"""Rescoring throughput: score N synthetic transcripts that carry stored features.

    .venv/bin/python scripts/bench_rescore.py --n 10000 --n 100000

Synthesis: a pool of sentences (a seeded sample of the act corpus, spoken by agent or
customer) is embedded and run through the act model ONCE; each synthetic call
draws 8-16 turns of 1-3 sentences from the pool, with realistic times, occasional
overlaps, varied metadata; its features are assembled from the pool's stored features,
exactly as the speech stage would have stored them.  Only scoring is timed (the backfill
path: transcripts + stored features -> reports), in batches of --batch calls, as a
backfill streams an archive.  Prints calls/s and peak RSS.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.join(str(ROOT), "pipelines"))   # the callcoach package of this tree

from callcoach.coaching.acts import ANSWER_TURNS  # noqa: E402
from callcoach.coaching.features import (FEATURES_VERSION, features_batch, features_valid,  # noqa: E402
                                         transcript_digest)
from callcoach.coaching.rules import default_ruleset, load_ruleset  # noqa: E402
from callcoach.coaching.score import score_batch  # noqa: E402
from callcoach.report import validate_report  # noqa: E402
from callcoach.transcript import Transcript, Turn  # noqa: E402


def sentence_pool(size: int = 800, seed: int = 11) -> list[tuple[str, str, dict]]:
    """(speaker, sentence, its per-sentence features) for a seeded sample of the act
    corpus (samples/corpus/acts), each embedded and run through the act model once."""
    from scripts.coaching_data import load_corpus
    corpus = load_corpus()
    rng = random.Random(seed)
    picked = rng.sample(corpus, min(size, len(corpus)))
    items = [(r["speaker"], r["text"]) for r in picked]
    trs = [Transcript(f"pool-{i}", 3.0, (Turn(sp, 0.0, 2.0, s),)) for i, (sp, s) in enumerate(items)]
    feats = features_batch(trs)
    pool = []
    for (sp, s), f in zip(items, feats):
        if f["n"] != 1:
            continue
        pool.append((sp, s, {"norm": f["norm"][0], "prob": {a: v[0] for a, v in f["prob"].items()}}))
    return pool


def synth_call(i: int, rng: random.Random, by_speaker: dict[str, list]) -> tuple[Transcript, dict]:
    n_turns = rng.randint(8, 16)
    t = rng.uniform(0.3, 0.6)
    turns = []
    fturn, fspan, ft, fnorm, fecho, fanswer, funans = [], [], [], [], [], [], []
    fsim: dict[str, list[int]] = {a: [] for a in by_speaker["agent"][0][2]["prob"]}
    speaker = "agent"
    for k in range(n_turns):
        sents = [rng.choice(by_speaker[speaker]) for _ in range(rng.randint(1, 3))]
        text = ""
        spans = []
        for _, s, _ in sents:
            a = len(text) + (1 if text else 0)
            text = (text + " " + s) if text else s
            spans.append((a, len(text)))
        dur = 0.065 * len(text) + rng.uniform(0.2, 1.0)
        start = t
        if k and rng.random() < 0.08:          # overlap: cut in before the other ends
            start = max(turns[-1].start + 0.5, turns[-1].end - rng.uniform(0.4, 1.5))
        end = start + dur
        turns.append(Turn(speaker, round(start, 3), round(end, 3), text))
        for (a, b), (_, s, feat) in zip(spans, sents):
            fturn.append(k)
            fspan.append([a, b])
            ft.append(round(start + dur * a / max(len(text), 1), 3))
            fnorm.append(feat["norm"])
            fecho.append(rng.randint(100, 600))
            # the answer head's scores for the agent's next turns, as the speech stage stores them
            fanswer.append([rng.randint(0, 1000) for _ in range(ANSWER_TURNS)] if speaker == "customer" else [])
            # and the concern head's P(left unanswered) (0 for the agent)
            funans.append(rng.randint(0, 1000) if speaker == "customer" else 0)
            for act, v in feat["prob"].items():
                fsim[act].append(v)
        t = end + rng.uniform(0.3, 1.0)
        speaker = "customer" if speaker == "agent" else "agent"
    tr = Transcript(call_id=f"bench-{i:07d}", duration_s=round(t + 0.8, 3), turns=tuple(turns),
                    models={"asr": "whisper-base@bench", "diarization": "channels@bench"},
                    metadata={"agent_id": f"a{rng.randint(1, 400):03d}", "team": f"t{rng.randint(1, 20):02d}",
                              "started_at": f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(8, 19):02d}:00:00Z"})
    feats = {"schema": "callcoach.coaching_features", "version": FEATURES_VERSION, "digest": transcript_digest(tr),
             "n": len(fturn), "turn": fturn, "span": fspan, "t": ft, "norm": fnorm, "prob": fsim, "echo": fecho, "answer": fanswer,
             "unanswered": funans, "acts_model": "bench"}
    return tr, feats


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(n: int, batch: int, rs, by_speaker, seed: int, validate_every: int) -> dict:
    rng = random.Random(seed)
    done = 0
    scored_s = 0.0
    synth_s = 0.0
    types: dict[str, int] = {}
    while done < n:
        m = min(batch, n - done)
        t0 = time.perf_counter()
        items = [synth_call(done + j, rng, by_speaker) for j in range(m)]
        if not done and not features_valid(*items[0]):
            # the stored-features layout moved on and synth_call did not: scoring would
            # recompute every call's features and time the encoder, not rescoring
            raise SystemExit("bench_rescore: synthetic features are not valid stored features")
        t1 = time.perf_counter()
        reports = score_batch(items, rs)
        t2 = time.perf_counter()
        synth_s += t1 - t0
        scored_s += t2 - t1
        for j, r in enumerate(reports):
            types[r["call_type"]] = types.get(r["call_type"], 0) + 1
            if (done + j) % validate_every == 0:
                validate_report(r)
        done += m
        del items, reports
        gc.collect()
    return {"n": n, "score_s": scored_s, "calls_per_s": n / scored_s, "synth_s": synth_s,
            "peak_rss_mb": peak_rss_mb(), "call_types": types}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, action="append", help="number of calls (repeatable); default 10000 and 100000")
    ap.add_argument("--batch", type=int, default=5000, help="calls per score_batch call")
    ap.add_argument("--rules", type=Path)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    ns = args.n or [10_000, 100_000]
    rs = load_ruleset(args.rules) if args.rules else default_ruleset()
    t0 = time.perf_counter()
    pool = sentence_pool()
    by_speaker = {"agent": [p for p in pool if p[0] == "agent"], "customer": [p for p in pool if p[0] == "customer"]}
    print(f"ruleset {rs.version}; features {FEATURES_VERSION}; sentence pool {len(pool)} "
          f"(embedded once in {time.perf_counter() - t0:.1f} s); batch {args.batch}\n")
    print("| calls | scoring s | calls/s | synthesis s (not timed) | peak RSS MB | call types |")
    print("|---|---|---|---|---|---|")
    for n in ns:
        r = run(n, args.batch, rs, by_speaker, args.seed, validate_every=97)
        print(f"| {n} | {r['score_s']:.1f} | {r['calls_per_s']:.0f} | {r['synth_s']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['call_types']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
