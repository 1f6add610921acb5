#!/usr/bin/env python
"""Compare coaching reports with labelled calls; print a markdown table.

    # truth transcripts (turns with exact text and times, words empty)
    .venv/bin/python scripts/eval_coaching.py --truth ../shared/dev-calls
    # transcripts from the speech stage (a directory of <call_id>.json transcript files,
    # optionally with a "features" key) against the same labels
    .venv/bin/python scripts/eval_coaching.py --truth ../shared/dev-calls --transcripts out/transcripts

The dev calls are a smoke test.  The engine's figures come from scripts/eval_engine.py on
the labelled calls' locked test split.

Metrics: call-type accuracy, per-check accuracy (true/false/null must match exactly),
risk precision/recall (micro over calls), talk-ratio absolute error, interruption count
error (agent and customer).  Exit status 1 when a --require-* bar is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.join(str(ROOT), "pipelines"))   # the callcoach package of this tree

from callcoach.transcript import Transcript, Turn  # noqa: E402


def truth_transcript(d: dict) -> Transcript:
    turns = tuple(Turn(t["speaker"], float(t["start"]), float(t["end"]), t["text"]) for t in d["turns"])
    return Transcript(call_id=d["call_id"], duration_s=float(d["duration_s"]),
                      turns=tuple(sorted(turns, key=lambda t: (t.start, t.end))),
                      models={"asr": "truth", "diarization": "truth"}, language="en",
                      metadata={"company": d.get("company"), "industry": d.get("industry")})


def load_truth(truth_dir: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(truth_dir.glob("*.truth.json")):
        d = json.loads(p.read_text())
        out[d["call_id"]] = d
    if not out:
        raise SystemExit(f"no *.truth.json under {truth_dir}")
    return out


def evaluate(reports: dict[str, dict], truth: dict[str, dict]) -> tuple[dict, list[dict]]:
    rows = []
    ct_ok = 0
    chk_n = chk_ok = 0
    per_check: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    tp = fp = fn = 0
    per_risk: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    tr_err = []
    int_err = []
    cint_err = []
    for cid, d in truth.items():
        lab = d["labels"]
        r = reports.get(cid)
        if r is None:
            rows.append({"call": cid, "missing": True})
            continue
        ct = r["call_type"] == lab["call_type"]
        ct_ok += ct
        got_checks = {c["check"]: c["passed"] for c in r["process_checks"]}
        wrong = []
        for name, want in (lab.get("checks") or {}).items():
            got = got_checks.get(name, "absent")
            ok = got == want
            chk_n += 1
            chk_ok += ok
            per_check[name][0] += 1
            per_check[name][1] += ok
            if not ok:
                wrong.append(f"{name}={got}(want {want})")
        want_r = set(lab.get("risks") or [])
        got_r = {x["risk"] for x in r["risks"]}
        for x in got_r | want_r:
            if x in got_r and x in want_r:
                per_risk[x][0] += 1
            elif x in got_r:
                per_risk[x][1] += 1
            else:
                per_risk[x][2] += 1
        tp += len(got_r & want_r)
        fp += len(got_r - want_r)
        fn += len(want_r - got_r)
        e = abs(r["talk_ratio"]["agent"] - d["talk_ratio"]["agent"])
        tr_err.append(e)
        ie = abs(r["tone"]["interruptions"] - lab["agent_interruptions"])
        ce = abs(r["tone"]["customer_interruptions"] - lab["customer_interruptions"])
        int_err.append(ie)
        cint_err.append(ce)
        rows.append({"call": cid, "type": f"{r['call_type']} ({r['call_type_confidence']:.2f})"
                     + ("" if ct else f" want {lab['call_type']}"),
                     "checks": f"{len(lab.get('checks') or {}) - len(wrong)}/{len(lab.get('checks') or {})}",
                     "wrong": ", ".join(wrong), "fp": sorted(got_r - want_r), "fn": sorted(want_r - got_r),
                     "talk_err": e, "int": f"{r['tone']['interruptions']}/{lab['agent_interruptions']}",
                     "cint": f"{r['tone']['customer_interruptions']}/{lab['customer_interruptions']}"})
    n = len(truth)
    summary = {
        "calls": n,
        "call_type_accuracy": ct_ok / n,
        "check_accuracy": chk_ok / chk_n if chk_n else 1.0,
        "risk_precision": tp / (tp + fp) if tp + fp else 1.0,
        "risk_recall": tp / (tp + fn) if tp + fn else 1.0,
        "talk_ratio_max_abs_error": max(tr_err) if tr_err else 0.0,
        "agent_interruption_abs_error": sum(int_err),
        "customer_interruption_abs_error": sum(cint_err),
        "per_check": {k: v[1] / v[0] for k, v in sorted(per_check.items())},
        "per_risk": {k: {"tp": v[0], "fp": v[1], "fn": v[2]} for k, v in sorted(per_risk.items())},
    }
    return summary, rows


def markdown(summary: dict, rows: list[dict]) -> str:
    out = ["| call | call type | checks right | wrong checks | risk FP | risk FN | talk-ratio err | agent int (got/want) | cust int |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("missing"):
            out.append(f"| {r['call']} | MISSING | | | | | | | |")
            continue
        out.append(f"| {r['call']} | {r['type']} | {r['checks']} | {r['wrong'] or '-'} | "
                   f"{', '.join(r['fp']) or '-'} | {', '.join(r['fn']) or '-'} | {r['talk_err']:.4f} | "
                   f"{r['int']} | {r['cint']} |")
    s = summary
    out += ["", "| metric | value |", "|---|---|",
            f"| calls | {s['calls']} |",
            f"| call-type accuracy | {s['call_type_accuracy']:.3f} |",
            f"| per-check accuracy (all checks) | {s['check_accuracy']:.3f} |",
            f"| risk precision | {s['risk_precision']:.3f} |",
            f"| risk recall | {s['risk_recall']:.3f} |",
            f"| talk-ratio max abs error | {s['talk_ratio_max_abs_error']:.4f} |",
            f"| agent interruptions, total abs error | {s['agent_interruption_abs_error']} |",
            f"| customer interruptions, total abs error | {s['customer_interruption_abs_error']} |"]
    out += ["", "| check | accuracy |", "|---|---|"]
    out += [f"| {k} | {v:.3f} |" for k, v in s["per_check"].items()]
    out += ["", "| risk | TP | FP | FN |", "|---|---|---|---|"]
    out += [f"| {k} | {v['tp']} | {v['fp']} | {v['fn']} |" for k, v in s["per_risk"].items()]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
MAX_FPR = 0.05
# MiniLM gives unrelated call sentences cosines up to ~0.4: no threshold below that
SWEEP_FLOOR = 400


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truth", type=Path, default=ROOT.parent / "shared" / "dev-calls")
    ap.add_argument("--transcripts", type=Path, help="directory of transcript JSON files (speech stage output)")
    ap.add_argument("--rules", type=Path, help="rule file (default: pipelines/callcoach/rules/default.yaml)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON too")
    ap.add_argument("--reports-out", type=Path, help="write each report as JSON here")
    args = ap.parse_args(argv)

    from callcoach.coaching.rules import default_ruleset, load_ruleset
    from callcoach.coaching.score import score_batch
    from callcoach.report import validate_report

    rs = load_ruleset(args.rules) if args.rules else default_ruleset()
    truth = load_truth(args.truth)
    items = []
    if args.transcripts:
        for cid in truth:
            p = args.transcripts / f"{cid}.json"
            if not p.exists():
                continue
            d = json.loads(p.read_text())
            # the file name says which labelled call it is (a job names transcripts by
            # its own call_id, e.g. "<name>.mono16k"); the features stay valid (they are
            # keyed by the turns, not by the id)
            d["call_id"] = cid
            items.append((Transcript.from_dict(d), d.get("features")))
    else:
        items = [(truth_transcript(d), None) for d in truth.values()]
    reports = {}
    for r in score_batch(items, rs):
        validate_report(r)
        reports[r["call_id"]] = r
    if args.reports_out:
        args.reports_out.mkdir(parents=True, exist_ok=True)
        for cid, r in reports.items():
            (args.reports_out / f"{cid}.report.json").write_text(json.dumps(r, indent=1, ensure_ascii=False))
    summary, rows = evaluate(reports, truth)
    src = args.transcripts or "truth turns"
    print(f"ruleset {rs.version}; transcripts: {src}\n")
    print(markdown(summary, rows))
    if args.json:
        print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
