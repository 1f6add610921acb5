"""How well the act model tells an answered concern from an unanswered one, per labelled
concern of the TRAIN split's calls (samples/labeled/concerns), each call read by the models
that did not learn from its author (cross-fitted; run ``python -m scripts.train_acts`` first).

    python -m scripts.eval_concerns [--model DIR] [--turns 3] [--json F]

For every labelled concern, in each form of its call (text, lower case without punctuation,
recognised), the score is the answer head's best P(answers it) over the agent's next
``--turns`` turns; a concern counts as answered at score >= ``--at`` (the rule set's
``concern_answered`` threshold).  Printed per form and overall: the number of concerns and
of unanswered ones, the AUC of (1 - score) for "unanswered", the share of unanswered
concerns caught at the threshold and the share of answered ones wrongly flagged, and how
many unanswered concerns the act model does not read as a concern at all (P(concern) under
``--raised``).  Only train calls: this is where choices are made.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, os.path.join(str(Path(__file__).resolve().parents[1]), "pipelines"))   # the callcoach package of this tree

from scripts import coaching_data as data  # noqa: E402


def auc(pos: list[float], neg: list[float]) -> float:
    """P(a random positive scores above a random negative), ties half."""
    if not len(pos) or not len(neg):
        return float("nan")
    p = np.asarray(pos)[:, None]
    n = np.asarray(neg)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def concern_scores(model_dir: Path | None = None, turns: int = 3) -> list[dict]:
    """One row per (labelled concern, form of its call): author, call, form, unanswered,
    score (best answer probability within ``turns`` agent turns), P(concern)."""
    from callcoach.coaching.acts import load_act_model
    from callcoach.coaching.features import features_batch
    from scripts.train_acts import concern_items
    main = load_act_model(model_dir)
    labelled = data.crossfitted_authors(main)
    rows = []
    for author in data.splits()["train"]:
        if not data.call_concerns(author):
            continue
        d = data.heldout_dir(main.sha256) / author
        if author in labelled and not (d / "acts.npz").exists():
            raise SystemExit(f"no cross-fitted model for {author} under {d}: run "
                             "`python -m scripts.train_acts` first")
        model = load_act_model(d) if author in labelled else main
        items = concern_items(author)
        seen: set[str] = set()
        for (tr, labs), f in zip(items, features_batch([t for t, _ in items], act_model=model)):
            # concern_items gives each call as written, then lower case, then recognised
            form = ("asr" if tr.models.get("asr") not in (None, "script")
                    else "plain" if tr.call_id in seen else "text")
            seen.add(tr.call_id)
            for c, a in labs:
                rows.append({"author": author, "call": tr.call_id, "form": form,
                             "unanswered": a is None,
                             "score": max(f["answer"][c][:turns]) / 1000.0,
                             "concern": f["prob"]["concern"][c] / 1000.0})
    return rows


def summary(rows: list[dict], at: float, raised: float) -> dict:
    un = [r for r in rows if r["unanswered"]]
    an = [r for r in rows if not r["unanswered"]]
    return {"concerns": len(rows), "unanswered": len(un),
            "auc": round(auc([1 - r["score"] for r in un], [1 - r["score"] for r in an]), 3),
            "unanswered_caught": round(sum(r["score"] < at for r in un) / max(1, len(un)), 3),
            "answered_flagged": round(sum(r["score"] < at for r in an) / max(1, len(an)), 3),
            "unanswered_not_raised": sum(r["concern"] < raised for r in un)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="act model directory (default: shipped)")
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--at", type=float, default=0.2)
    ap.add_argument("--raised", type=float, default=0.9)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rows = concern_scores(args.model, args.turns)
    out = {form: summary([r for r in rows if r["form"] == form], args.at, args.raised)
           for form in ("text", "plain", "asr")}
    out["all"] = summary(rows, args.at, args.raised)
    print("| form | concerns | unanswered | AUC | unanswered caught | answered flagged | unanswered not raised |")
    print("|---|---|---|---|---|---|---|")
    for form, s in out.items():
        print(f"| {form} | {s['concerns']} | {s['unanswered']} | {s['auc']} | {s['unanswered_caught']} | "
              f"{s['answered_flagged']} | {s['unanswered_not_raised']} |")
    if args.json:
        args.json.write_text(json.dumps({"summary": out, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
