#!/usr/bin/env python
"""Measure the coaching engine on the labelled calls, by split and by transcript source.

    .venv/bin/python -m scripts.eval_engine                      # train split (for choices)
    .venv/bin/python -m scripts.eval_engine --split validation   # choose between whole engines
    .venv/bin/python -m scripts.eval_engine --split test         # locked test split: report only
    .venv/bin/python -m scripts.eval_engine --split test --baseline 3acb665   # old engine too
    .venv/bin/python -m scripts.eval_engine --split test --json out/eval.json

Sources, each scored separately:
  truth        the render's exact text and times (script text where not rendered)
  plain        the same text as a recogniser without punctuation writes it: lower case,
               no punctuation at all
  asr          the speech stage's transcript of the rendered audio (samples/labeled/asr)

Figures: call-type accuracy, per-check accuracy (true/false/null must match), risk
precision / recall (micro), and on the calls labelled standard: the share typed escalation
or handoff and false risks per call.  ``--baseline REV`` scores the same transcripts with
the engine of git revision REV (a temporary worktree) in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.join(str(ROOT), "pipelines"))   # the callcoach package of this tree

from scripts import coaching_data as data  # noqa: E402

SOURCES = ("truth", "plain", "asr")


def transcripts(split: str, source: str, authors: set[str] | None = None) -> tuple[list, dict[str, dict]]:
    """(transcripts, call_id -> {labels, talk_ratio, author}) of one split and source
    (only the calls of ``authors`` when given)."""
    out, truth = [], {}
    for author, _p, script in data.call_scripts(split, authors):
        cid = script["call_id"]
        doc = data.truth_doc(cid)
        if source == "asr":
            tr = data.asr_transcript(cid)
        else:
            tr = data.call_text(script)
            if source == "plain":
                tr = data.plain_transcript(tr)
        if tr is None:
            continue
        out.append(tr)
        truth[cid] = {"labels": script["labels"], "author": author,
                      "talk_ratio": (doc or {}).get("talk_ratio")}
    return out, truth


def score_current(trs: list, feats: list | None = None, rules: Path | None = None) -> dict[str, dict]:
    from callcoach.coaching.rules import load_ruleset
    from callcoach.coaching.score import score_batch
    reps = score_batch(list(zip(trs, feats or [None] * len(trs))),
                       load_ruleset(str(rules)) if rules else None)
    return {r["call_id"]: r for r in reps}


def cross_fitted(trs: list, truth: dict[str, dict]) -> list:
    """Features of train calls from the model that did not learn their author's sentences."""
    return data.train_features(trs, [truth[t.call_id]["author"] for t in trs])


BASELINE_SNIPPET = r"""
import importlib, json, os, sys
# the package of the checked-out revision: pipelines/callcoach/ since the rename, the
# top-level folder (named by the old layout) before it
wt = sys.argv[1]
nested = os.path.isdir(os.path.join(wt, "pipelines", "callcoach"))
sys.path.insert(0, os.path.join(wt, "pipelines") if nested else wt)
pkg = "callcoach" if nested else "pipelines"   # a revision from before the rename
score_batch = importlib.import_module(pkg + ".coaching.score").score_batch
Transcript = importlib.import_module(pkg + ".transcript").Transcript
docs = json.load(open(sys.argv[2]))
reps = score_batch([(Transcript.from_dict(d), None) for d in docs])
json.dump({r["call_id"]: r for r in reps}, open(sys.argv[3], "w"))
"""


def baseline_worktree(rev: str) -> Path:
    """Where the engine of git revision ``rev`` is checked out: keyed by the commit the
    revision names now, so "HEAD" or a branch never reuses a checkout of an older commit."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(tempfile.gettempdir()) / f"callcoach-baseline-{sha[:12]}"


def score_baseline(trs: list, rev: str) -> dict[str, dict]:
    wt = baseline_worktree(rev)
    if not wt.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(wt), rev],
                       check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        docs = []
        for t in trs:
            d = t.to_dict()
            d.pop("features", None)
            docs.append(d)
        src.write_text(json.dumps(docs))
        subprocess.run([sys.executable, "-c", BASELINE_SNIPPET, str(wt), str(src), str(dst)],
                       check=True, cwd=str(wt))
        return json.loads(dst.read_text())


# The additive per-call counts the headline figures are ratios of (see call_counts).
COUNTS = ("calls", "type_ok", "checks", "checks_ok", "tp", "fp", "fn", "standard",
          "standard_typed", "standard_false_risks")


def call_counts(report: dict, labels: dict) -> tuple[int, ...]:
    """One call's contribution to each of COUNTS: the figures of any multiset of calls (a
    bootstrap resample, say) are ratios of sums of these rows, as ``evaluate`` computes them."""
    got = {c["check"]: c["passed"] for c in report["process_checks"]}
    want_checks = labels.get("checks") or {}
    ok = sum(got.get(k, "absent") == v for k, v in want_checks.items())
    want_r = set(labels.get("risks") or [])
    got_r = {x["risk"] for x in report["risks"]}
    std = labels["call_type"] == "standard"
    return (1, int(report["call_type"] == labels["call_type"]), len(want_checks), ok,
            len(got_r & want_r), len(got_r - want_r), len(want_r - got_r), int(std),
            int(std and report["call_type"] != "standard"), len(got_r - want_r) if std else 0)


def evaluate(reports: dict[str, dict], truth: dict[str, dict]) -> dict:
    per_check: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_risk: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    total = [0] * len(COUNTS)
    misses = []
    for cid, d in truth.items():
        lab, r = d["labels"], reports[cid]
        total = [x + y for x, y in zip(total, call_counts(r, lab))]
        confusion[lab["call_type"]][r["call_type"]] += 1
        got = {c["check"]: c["passed"] for c in r["process_checks"]}
        wrong = []
        for name, want in (lab.get("checks") or {}).items():
            ok = got.get(name, "absent") == want
            per_check[name][0] += 1
            per_check[name][1] += ok
            if not ok:
                wrong.append(f"{name}={got.get(name, 'absent')}")
        want_r = set(lab.get("risks") or [])
        got_r = {x["risk"] for x in r["risks"]}
        for x in got_r | want_r:
            per_risk[x][0 if (x in got_r and x in want_r) else (1 if x in got_r else 2)] += 1
        if wrong or got_r != want_r or r["call_type"] != lab["call_type"]:
            misses.append({"call": cid, "type": f"{r['call_type']}({r['call_type_confidence']})/"
                           f"{lab['call_type']}", "wrong_checks": wrong,
                           "fp": sorted(got_r - want_r), "fn": sorted(want_r - got_r)})
    c = dict(zip(COUNTS, total))
    n, chk_n, std_n = c["calls"], c["checks"], c["standard"]
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    return {
        "calls": n,
        "counts": c,
        "call_type_accuracy": round(c["type_ok"] / n, 4) if n else None,
        "check_accuracy": round(c["checks_ok"] / chk_n, 4) if chk_n else None,
        "checks": chk_n,
        "risk_precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "risk_recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "standard_calls": std_n,
        "standard_typed_other": round(c["standard_typed"] / std_n, 4) if std_n else None,
        "standard_false_risks_per_call": round(c["standard_false_risks"] / std_n, 4) if std_n else None,
        "confusion": {k: dict(v) for k, v in confusion.items()},
        "per_check": {k: round(v[1] / v[0], 3) for k, v in sorted(per_check.items())},
        "per_risk": {k: {"tp": v[0], "fp": v[1], "fn": v[2]} for k, v in sorted(per_risk.items())},
        "misses": misses,
    }


def row(name: str, m: dict) -> str:
    f = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    return (f"| {name} | {m['calls']} | {f(m['call_type_accuracy'])} | {f(m['check_accuracy'])} "
            f"({m['checks']}) | {f(m['risk_precision'])} | {f(m['risk_recall'])} | "
            f"{f(m['standard_typed_other'])} | {f(m['standard_false_risks_per_call'])} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="train", choices=["train", "validation", "test"])
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--baseline", default=None, help="git revision of an earlier engine to score too")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--rules", type=Path, action="append", default=[],
                    help="score with this rule file instead of the shipped one (repeat: one "
                         "engine per file, named by the file)")
    ap.add_argument("--misses", action="store_true", help="print every call with a wrong verdict")
    ap.add_argument("--in-sample", action="store_true",
                    help="train split: read the calls with the shipped model, though its sentence "
                         "head learned from them (default: the cross-fitted models)")
    ap.add_argument("--authors", default=None,
                    help="only these authors' calls of the split (comma-separated), e.g. to "
                         "score a newly added train author apart from the others")
    args = ap.parse_args(argv)
    authors = None
    if args.authors:
        authors = set(args.authors.split(","))
        unknown = authors - set(data.splits()[args.split])
        if unknown:
            ap.error(f"--authors: {sorted(unknown)} not in the {args.split} split")
    results = {}
    print("| engine / source | calls | call type | per-check accuracy (n) | risk precision | "
          "risk recall | standard typed esc/handoff | false risks per standard call |")
    print("|---|---|---|---|---|---|---|---|")
    for source in args.sources.split(","):
        trs, truth = transcripts(args.split, source, authors)
        if not trs:
            print(f"| {source}: no transcripts | | | | | | | |")
            continue
        feats = cross_fitted(trs, truth) if args.split == "train" and not args.in_sample else None
        engines = ([(r.stem, lambda t, r=r: score_current(t, feats, r)) for r in args.rules]
                   or [("current", lambda t: score_current(t, feats))])
        if args.baseline:
            engines.append((args.baseline, lambda t: score_baseline(t, args.baseline)))
        for name, fn in engines:
            m = evaluate(fn(trs), truth)
            results[f"{name}/{source}"] = m
            print(row(f"{name} / {source}", m), flush=True)
    # one number per engine over the sources: the tuner's objective (scripts/tune_rules.py,
    # without its insights term), which is what decides between candidate engines on the
    # validation split
    from scripts.tune_rules import objective_counts
    objectives = {}
    for name in dict.fromkeys(k.split("/")[0] for k in results):
        sets = [[m["counts"][c] for c in COUNTS] for k, m in results.items() if k.split("/")[0] == name]
        objectives[name] = float(objective_counts(sets))
        print(f"objective ({name}, {len(sets)} sources): {objectives[name]:.4f}")
    if args.misses:
        for k, m in results.items():
            print(f"\n## {k}")
            for x in m["misses"]:
                print(f"- {x['call']}: {x['type']} checks {x['wrong_checks']} fp {x['fp']} fn {x['fn']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"split": args.split, "results": results,
                                         "objectives": objectives}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
