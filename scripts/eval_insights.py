#!/usr/bin/env python
"""Measure issue category, escalation trigger, ticket and commitment extraction on
labelled text calls; print markdown tables.

    .venv/bin/python scripts/eval_insights.py                       # samples/insights/*.yaml
    .venv/bin/python scripts/eval_insights.py --calls DIR --categories FILE --rules FILE
    .venv/bin/python scripts/eval_insights.py --require-category 0.8 --require-trigger 0.7

Each call is turned into a transcript (turns in order, 0.06 s per character, 0.6 s gaps,
like the coaching tests), scored by the real scorer (call type, checks), then
``insights_batch``.  Metrics:

- category accuracy (all calls) and per-category precision / recall;
- trigger accuracy over calls labelled with a trigger (a call the scorer types as standard
  gets no trigger and counts as wrong) and over calls labelled without one;
- ticket references: calls whose set of references matches exactly;
- commitments: a prediction matches a label when the due times are within 5 minutes
  (one-to-one, in order); precision, recall, and for matched ones due_kind and who.
Exit status 1 when a --require-* bar is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.join(str(ROOT), "pipelines"))   # the callcoach package of this tree

from callcoach.transcript import Transcript, Turn  # noqa: E402

TOLERANCE_S = 300.0


def load_calls(d: Path) -> list[dict]:
    out = []
    for p in sorted(d.glob("*.yaml")):
        doc = yaml.safe_load(p.read_text())
        if isinstance(doc, dict) and "turns" in doc and "labels" in doc:
            out.append(doc)
    if not out:
        raise SystemExit(f"no labelled calls (*.yaml with turns and labels) under {d}")
    return out


def to_transcript(doc: dict) -> Transcript:
    turns = []
    t = 0.5
    for x in doc["turns"]:
        dur = max(0.8, 0.06 * len(x["text"]))
        turns.append(Turn(x["speaker"], round(t, 3), round(t + dur, 3), x["text"]))
        t += dur + 0.6
    return Transcript(call_id=doc["call_id"], duration_s=round(t + 0.8, 3), turns=tuple(turns),
                      models={"asr": "truth", "diarization": "truth"}, language="en",
                      metadata=dict(doc.get("metadata") or {}))


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def match_commitments(pred: list[dict], want: list[dict]) -> list[tuple[dict, dict]]:
    pairs, used = [], set()
    for w in want:
        wd = _dt(w["due"])
        for i, p in enumerate(pred):
            if i in used:
                continue
            if abs((_dt(p["due"]) - wd).total_seconds()) <= TOLERANCE_S:
                used.add(i)
                pairs.append((p, w))
                break
    return pairs


def evaluate(docs: list[dict], results: list[dict], reports: list[dict]) -> tuple[dict, list[dict]]:
    rows = []
    cat_ok = 0
    conf = defaultdict(Counter)          # want -> got counts
    trig_n = trig_ok = std_n = std_ok = 0
    tk_ok = 0
    c_pred = c_want = c_match = kind_ok = who_ok = 0
    ct_ok = 0
    for doc, r, rep in zip(docs, results, reports):
        lab = doc["labels"]
        wrong = []
        ok = r["category"] == lab["category"]
        cat_ok += ok
        conf[lab["category"]][r["category"]] += 1
        if not ok:
            wrong.append(f"category={r['category']} (want {lab['category']})")
        want_t = lab.get("trigger")
        if want_t:
            trig_n += 1
            trig_ok += r["trigger"] == want_t
        else:
            std_n += 1
            std_ok += r["trigger"] is None
        if r["trigger"] != want_t:
            wrong.append(f"trigger={r['trigger']}[{r['trigger_basis']}] (want {want_t})")
        ct_ok += rep["call_type"] == lab.get("call_type")
        if rep["call_type"] != lab.get("call_type"):
            wrong.append(f"call_type={rep['call_type']} (want {lab.get('call_type')})")
        tk = sorted(r["ticket_refs"]) == sorted(lab.get("ticket_refs") or [])
        tk_ok += tk
        if not tk:
            wrong.append(f"tickets={r['ticket_refs']} (want {lab.get('ticket_refs')})")
        want_c = lab.get("commitments") or []
        pairs = match_commitments(r["commitments"], want_c)
        c_pred += len(r["commitments"])
        c_want += len(want_c)
        c_match += len(pairs)
        kind_ok += sum(p["due_kind"] == w["due_kind"] for p, w in pairs)
        who_ok += sum(p["who"] == w["who"] for p, w in pairs)
        if len(pairs) != len(want_c) or len(pairs) != len(r["commitments"]):
            wrong.append(f"commitments got {[c['due'] for c in r['commitments']]} want {[c['due'] for c in want_c]}")
        for p, w in pairs:
            if p["who"] != w["who"] or p["due_kind"] != w["due_kind"]:
                wrong.append(f"commitment {w['due']}: {p['due_kind']}/{p['who']} (want {w['due_kind']}/{w['who']})")
        rows.append({"call": doc["call_id"], "category": r["category"], "want_category": lab["category"],
                     "trigger": r["trigger"], "want_trigger": want_t, "call_type": rep["call_type"],
                     "wrong": wrong})
    n = len(docs)
    per_cat = {}
    for c in sorted(set(conf) | {g for v in conf.values() for g in v}):
        tp = conf[c][c]
        support = sum(conf[c].values())
        predicted = sum(v[c] for v in conf.values())
        per_cat[c] = {"support": support, "correct": tp,
                      "precision": tp / predicted if predicted else None,
                      "recall": tp / support if support else None}
    summary = {
        "calls": n,
        "category_accuracy": cat_ok / n,
        "trigger_accuracy": trig_ok / trig_n if trig_n else None, "trigger_calls": trig_n,
        "no_trigger_accuracy": std_ok / std_n if std_n else None, "no_trigger_calls": std_n,
        "call_type_accuracy": ct_ok / n,
        "ticket_exact": tk_ok / n,
        "commitments_labelled": c_want, "commitments_predicted": c_pred, "commitments_matched": c_match,
        "commitment_precision": c_match / c_pred if c_pred else None,
        "commitment_recall": c_match / c_want if c_want else None,
        "due_kind_accuracy": kind_ok / c_match if c_match else None,
        "who_accuracy": who_ok / c_match if c_match else None,
        "per_category": per_cat,
    }
    return summary, rows


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def markdown(s: dict, rows: list[dict], versions: dict) -> str:
    out = [f"Insights evaluation: {s['calls']} labelled calls; categories {versions['categories']}, "
           f"rules {versions['rules']}", "",
           "| metric | value |", "|---|---|",
           f"| issue category accuracy | {_pct(s['category_accuracy'])} ({round(s['category_accuracy'] * s['calls'])}/{s['calls']}) |",
           f"| trigger accuracy (escalation/handoff calls) | {_pct(s['trigger_accuracy'])} ({round((s['trigger_accuracy'] or 0) * s['trigger_calls'])}/{s['trigger_calls']}) |",
           f"| no trigger on standard calls | {_pct(s['no_trigger_accuracy'])} ({round((s['no_trigger_accuracy'] or 0) * s['no_trigger_calls'])}/{s['no_trigger_calls']}) |",
           f"| call type (scorer, for context) | {_pct(s['call_type_accuracy'])} |",
           f"| ticket references exact | {_pct(s['ticket_exact'])} |",
           f"| commitments precision | {_pct(s['commitment_precision'])} ({s['commitments_matched']}/{s['commitments_predicted']}) |",
           f"| commitments recall (due within 5 min) | {_pct(s['commitment_recall'])} ({s['commitments_matched']}/{s['commitments_labelled']}) |",
           f"| matched commitments: due_kind right | {_pct(s['due_kind_accuracy'])} |",
           f"| matched commitments: who right | {_pct(s['who_accuracy'])} |",
           "", "| category | calls | correct | precision | recall |", "|---|---|---|---|---|"]
    for c, v in s["per_category"].items():
        out.append(f"| {c} | {v['support']} | {v['correct']} | {_pct(v['precision'])} | {_pct(v['recall'])} |")
    out += ["", "| call | category | trigger | call type | errors |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['call']} | {r['category']} | {r['trigger'] or '–'} | {r['call_type']} | "
                   f"{'; '.join(r['wrong']) or 'ok'} |")
    return "\n".join(out)


def split_table(docs, results, reports, sets) -> str:
    """The headline metrics per labelled set (dev: the calls whose errors guided general
    fixes of the cues; heldout: written afterwards and measured once)."""
    out = ["| set | calls | category | trigger (esc/handoff) | trigger given scorer typed esc/handoff | no trigger on standard | commitments P / R |",
           "|---|---|---|---|---|---|---|"]
    for name in sets + ["all"]:
        idx = [i for i, d in enumerate(docs) if name == "all" or d.get("set", "dev") == name]
        s, _ = evaluate([docs[i] for i in idx], [results[i] for i in idx], [reports[i] for i in idx])
        typed = [i for i in idx if docs[i]["labels"].get("trigger")
                 and reports[i]["call_type"] in ("escalation", "handoff")]
        t_ok = sum(results[i]["trigger"] == docs[i]["labels"]["trigger"] for i in typed)
        n_t = s["trigger_calls"]
        out.append(f"| {name} | {s['calls']} | {_pct(s['category_accuracy'])} ({round(s['category_accuracy'] * s['calls'])}/{s['calls']}) "
                   f"| {_pct(s['trigger_accuracy'])} ({round((s['trigger_accuracy'] or 0) * n_t)}/{n_t}) "
                   f"| {_pct(t_ok / len(typed) if typed else None)} ({t_ok}/{len(typed)}) "
                   f"| {_pct(s['no_trigger_accuracy'])} ({round((s['no_trigger_accuracy'] or 0) * s['no_trigger_calls'])}/{s['no_trigger_calls']}) "
                   f"| {_pct(s['commitment_precision'])} / {_pct(s['commitment_recall'])} |")
    return "\n".join(out)


def bench(n: int, trs, feats, reports, cats, rs) -> str:
    """Seconds per call: one call at a time (as the Score stage calls it) and in batches
    of 1,000 (a rescore over the archive); features are stored, as in production."""
    import dataclasses
    import time

    from callcoach.insights.detect import call_insights, insights_batch
    base = [(dataclasses.replace(t, features=f), r) for t, f, r in zip(trs, feats, reports)]
    items = [base[i % len(base)] for i in range(n)]
    call_insights(*items[0], cats, ruleset=rs)
    k = min(n, 200)
    t0 = time.perf_counter()
    for tr, rep in items[:k]:
        call_insights(tr, rep, cats, ruleset=rs)
    single = (time.perf_counter() - t0) / k
    t0 = time.perf_counter()
    for s in range(0, n, 1000):
        insights_batch(items[s:s + 1000], cats, rs)
    batch = (time.perf_counter() - t0) / n
    return ("| mode | calls | ms per call |\n|---|---|---|\n"
            f"| call_insights, one call at a time | {k} | {1000 * single:.2f} |\n"
            f"| insights_batch, 1,000 per batch | {n} | {1000 * batch:.3f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=Path, default=ROOT / "samples" / "insights")
    ap.add_argument("--categories", type=Path, default=None)
    ap.add_argument("--rules", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the summary and rows here")
    ap.add_argument("--bench", type=int, default=0, metavar="N",
                    help="also time insights over N calls (the labelled calls repeated, stored features)")
    ap.add_argument("--require-category", type=float, default=None)
    ap.add_argument("--require-trigger", type=float, default=None)
    a = ap.parse_args(argv)

    from callcoach.coaching.rules import default_ruleset, load_ruleset
    from callcoach.coaching.score import score_batch
    from callcoach.insights.categories import default_categories, load_categories
    from callcoach.insights.detect import insights_batch

    rs = load_ruleset(a.rules) if a.rules else default_ruleset()
    cats = load_categories(a.categories) if a.categories else default_categories()
    docs = load_calls(a.calls)
    trs = [to_transcript(d) for d in docs]
    from callcoach.coaching.features import features_batch
    feats = features_batch(trs)
    reports = score_batch(list(zip(trs, feats)), rs)
    results = insights_batch(list(zip(trs, reports, feats)), cats, rs)
    summary, rows = evaluate(docs, results, reports)
    versions = {"categories": cats.version, "rules": rs.version}
    sets = sorted({d.get("set", "dev") for d in docs})
    if len(sets) > 1:
        print(split_table(docs, results, reports, sets))
        print()
    print(markdown(summary, rows, versions))
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "rows": rows, "results": results}, indent=1))
    if a.bench:
        print()
        print(bench(a.bench, trs, feats, reports, cats, rs))
    bad = ((a.require_category is not None and summary["category_accuracy"] < a.require_category)
           or (a.require_trigger is not None and (summary["trigger_accuracy"] or 0) < a.require_trigger))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
