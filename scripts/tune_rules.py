#!/usr/bin/env python
"""Choose the rule set's act-probability thresholds on the TRAIN split of the labelled calls.

    .venv/bin/python -m scripts.tune_rules                 # print the proposed thresholds
    .venv/bin/python -m scripts.tune_rules --write         # and write them into default.yaml
    .venv/bin/python -m scripts.tune_rules --out F.yaml    # or into a candidate file
    .venv/bin/python -m scripts.tune_rules --only answered,classify   # move only these, hold the rest

A tuned file is put through the behaviour tests (scripts/gate.py) before it is written or
offered: `--write` refuses one that fails, `--out` writes it and exits 1.

Every `{model: ACT, min: P}` leaf of the rule file (and `classify.min_confidence`) is a
threshold.  Coordinate ascent: for each threshold in turn, try a grid of values and take the
best one that beats the current value on the train split's transcripts (exact text, the
same text in lower case without punctuation, and the speech stage's transcripts) AND on at
least SUPPORT of the paired bootstrap resamples of the train calls, so that no move rests
on one or two calls, AND lowering the objective of at most MAX_AUTHORS_LOSING train authors,
so that no move rests on one author's labelling habit; then go round again.  Objective: call-type accuracy + per-check
accuracy + risk F1, minus the share of standard calls typed otherwise and their false
risks per call, and a penalty for going over the routine-call bars (2% typed otherwise,
0.05 false risks per call).  The insights set's dev calls (call types only) add their
call-type accuracy.  The validation and test splits are never read (whether a re-tuned
rule set ships is decided on validation by ``eval_engine --split validation``).  Train
calls whose sentences trained the act model are read by the cross-fitted model of their
author (``coaching_data.train_features``), as a new call would be.  Features are computed
once; each trial only re-applies rules.
"""

from __future__ import annotations

import argparse
import re
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.join(str(ROOT), "pipelines"))   # the callcoach package of this tree

from callcoach.coaching.rules import DEFAULT_RULES, parse_ruleset  # noqa: E402
from callcoach.coaching.score import detect, reports  # noqa: E402
from scripts import coaching_data, eval_engine  # noqa: E402

LEAF_RE = re.compile(r"\{model: (\w+), min: ([0-9.]+)\}")
CONF_RE = re.compile(r"(min_confidence: \{escalation: )([0-9.]+)(, handoff: )([0-9.]+)(\})")
GRID = (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
CONF_GRID = (0.35, 0.4, 0.5, 0.6, 0.7)


# The bars a routine call must meet (issue 15): at most 2% of standard calls typed
# escalation or handoff, at most 0.05 false risks per standard call.  Going over a bar costs
# PENALTY times the excess, so the tuner trades accuracy elsewhere for staying under it: a
# false escalation on a routine call is what a supervisor trusts least.
STANDARD_TYPED_BAR = 0.02
FALSE_RISKS_BAR = 0.05
PENALTY = 5.0

# A move away from the current value must be backed by more than a call or two: the train
# calls are resampled with replacement BOOTSTRAP times (fixed seed), and a candidate value is
# taken only when it beats the current one on at least SUPPORT of the resamples.  A gain that
# rests on one call is absent from ~37% of resamples, so it can never pass; this is what keeps
# ~100 train calls from tuning thresholds to their own quirks (which the locked test split
# showed happening once: a re-tune that gained on train lost on test).
BOOTSTRAP = 200
SUPPORT = 0.8
SEED = 15

# Calls of one author share a labelling convention, so a move can win on resampled calls and
# still rest on one author's habit.  A move must also leave the objective of every train
# author but at most MAX_AUTHORS_LOSING no lower.  (It is a guard, not a cure: on 2026-12-07
# re-tuned act thresholds kept per-check accuracy level on the train calls and lost 5-11
# points of it on other authors, and the largest of those moves, acknowledge 0.9 -> 0.1,
# lowered no train author's objective.)
MAX_AUTHORS_LOSING = 1


def objective_counts(sets: list[np.ndarray], typed: np.ndarray | None = None) -> np.ndarray:
    """The objective from summed per-call counts (eval_engine.COUNTS): ``sets`` holds one
    array (..., len(COUNTS)) per transcript source; ``typed`` the insights calls' (..., 2)
    sums of (calls, call type right).  Same leading shape out (one value per resample)."""
    total = 0.0
    for c in sets:
        c = np.asarray(c, dtype=float)
        calls, type_ok, chk, chk_ok, tp, fp, fn, std, typed_o, false = np.moveaxis(c, -1, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ct = np.where(calls > 0, type_ok / calls, 0.0)
            ca = np.where(chk > 0, chk_ok / chk, 1.0)
            p = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
            r = np.where(tp + fn > 0, tp / (tp + fn), 1.0)
            f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
            ty = np.where(std > 0, typed_o / std, 0.0)
            fa = np.where(std > 0, false / std, 0.0)
        total = total + (ct + ca + f1 - ty - fa
                         - PENALTY * np.maximum(0.0, ty - STANDARD_TYPED_BAR)
                         - PENALTY * np.maximum(0.0, fa - FALSE_RISKS_BAR))
    total = total / len(sets)
    if typed is not None:
        typed = np.asarray(typed, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            acc = np.where(typed[..., 0] > 0, typed[..., 1] / typed[..., 0], 0.0)
        total = total + acc / (len(sets) + 1)
    return total


class Tuner:
    def __init__(self, text: str, bootstrap: int = BOOTSTRAP, seed: int = SEED):
        self.text = text
        self.sets = []
        for source in eval_engine.SOURCES:
            trs, truth = eval_engine.transcripts("train", source)
            if not trs:
                continue
            # features once, each call's from the model that did not learn its sentences
            feats = eval_engine.cross_fitted(trs, truth)
            d = detect(list(zip(trs, feats)), parse_ruleset(text.encode()))
            self.sets.append(([(t, f) for t, f in zip(d.transcripts, d.features)], truth))
        # the insights set's dev calls are labelled with call types only (never its heldout)
        calls = coaching_data.insights_dev_calls()
        d = detect([(t, None) for t, _ in calls], parse_ruleset(text.encode()))
        self.typed = ([(t, f) for t, f in zip(d.transcripts, d.features)],
                      {t.call_id: call_type for t, call_type in calls})
        # each call's author, for the per-author gate
        author_of = {s["call_id"]: a for a, _p, s in coaching_data.call_scripts("train")}
        self.authors = sorted({author_of[t.call_id] for items, _truth in self.sets for t, _f in items})
        self.author_masks = [np.array([[author_of[t.call_id] == a for t, _f in items] for a in self.authors],
                                      dtype=float) for items, _truth in self.sets]
        # paired bootstrap weights: one resample of the train calls (the same call weighs the
        # same in every source) and one of the insights calls
        rng = np.random.default_rng(seed)
        ids = sorted({cid for _items, truth in self.sets for cid in truth})
        w = rng.multinomial(len(ids), [1 / len(ids)] * len(ids), size=bootstrap)
        col = {cid: j for j, cid in enumerate(ids)}
        self.weights = [w[:, [col[t.call_id] for t, _f in items]] for items, _truth in self.sets]
        n = len(self.typed[0])
        self.typed_weights = rng.multinomial(n, [1 / n] * n, size=bootstrap) if n else None

    def counts(self, text: str) -> tuple[list[np.ndarray], np.ndarray | None]:
        rs = parse_ruleset(text.encode())
        out = []
        for items, truth in self.sets:
            reps = {r["call_id"]: r for r in reports(detect(items, rs), rs)}
            out.append(np.array([eval_engine.call_counts(reps[t.call_id], truth[t.call_id]["labels"])
                                 for t, _f in items], dtype=float))
        items, want = self.typed
        if not items:
            return out, None
        reps = {r["call_id"]: r for r in reports(detect(items, rs), rs)}
        typed = np.array([(1.0, float(reps[t.call_id]["call_type"] == want[t.call_id]))
                          for t, _f in items])
        return out, typed

    def evaluate(self, text: str) -> tuple[float, np.ndarray, np.ndarray]:
        """(objective on the train calls, objective on each bootstrap resample, objective on
        each train author's calls)."""
        sets, typed = self.counts(text)
        full = float(objective_counts([c.sum(0) for c in sets],
                                      None if typed is None else typed.sum(0)))
        boot = objective_counts([w @ c for w, c in zip(self.weights, sets)],
                                None if typed is None else self.typed_weights @ typed)
        per_author = objective_counts([m @ c for m, c in zip(self.author_masks, sets)])
        return full, boot, per_author


def better(cand: tuple, cur: tuple, support: float = SUPPORT,
           max_authors_losing: int = MAX_AUTHORS_LOSING) -> bool:
    """True when ``cand`` gains on the train calls and on at least ``support`` of the
    resamples and, where per-author objectives are given (a third element), loses on at most
    ``max_authors_losing`` authors."""
    if not (cand[0] > cur[0] + 1e-6 and float(np.mean(cand[1] > cur[1] + 1e-9)) >= support):
        return False
    if len(cand) > 2 and len(cur) > 2:
        return int(np.sum(np.asarray(cand[2]) < np.asarray(cur[2]) - 1e-9)) <= max_authors_losing
    return True


def _set_leaf(text: str, k: int, value: float) -> str:
    m = list(LEAF_RE.finditer(text))[k]
    return text[:m.start(2)] + f"{value:g}" + text[m.end(2):]


def _set_conf(text: str, which: int, value: float) -> str:
    m = CONF_RE.search(text)
    g = 2 if which == 0 else 4
    return text[:m.start(g)] + f"{value:g}" + text[m.end(g):]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--support", type=float, default=SUPPORT,
                    help="share of bootstrap resamples a move must win (0 = plain coordinate ascent)")
    ap.add_argument("--max-authors-losing", type=int, default=MAX_AUTHORS_LOSING,
                    help="train authors whose objective a move may lower (-1: no per-author gate)")
    ap.add_argument("--write", action="store_true", help="write the tuned thresholds into --rules")
    ap.add_argument("--out", type=Path, help="write the tuned rule file here instead (a candidate "
                    "to score with `eval_engine --rules`)")
    ap.add_argument("--only", default=None,
                    help="comma-separated model acts whose thresholds may move (\"classify\" for "
                    "the call-type confidences); the rest are held (default: all)")
    ap.add_argument("--no-gate", action="store_true",
                    help="skip the behaviour tests (scripts/gate.py) on the tuned file")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    text = args.rules.read_text()
    tuner = Tuner(text)
    cur = tuner.evaluate(text)
    print(f"start: objective {cur[0]:.4f}", flush=True)
    n_leaves = len(LEAF_RE.findall(text))

    max_losing = args.max_authors_losing if args.max_authors_losing >= 0 else 10 ** 6

    def step(cands: list[tuple[str, str]], label: str) -> bool:
        nonlocal text, cur
        scored = [(tuner.evaluate(c), c, v) for c, v in cands if c != text]
        ok = [x for x in scored if better(x[0], cur, args.support, max_losing)]
        if not ok:
            return False
        (res, c, v) = max(ok, key=lambda x: x[0][0])
        win = float(np.mean(res[1] > cur[1] + 1e-9))
        by_author = (f"; lower for {int(np.sum(res[2] < cur[2] - 1e-9))} of {len(res[2])} authors"
                     if len(res) > 2 else "")
        print(f"  {label} -> {v}: {res[0]:.4f} (wins {win:.0%} of resamples{by_author})", flush=True)
        text, cur = c, res
        return True

    for p in range(args.passes):
        changed = False
        for k in range(n_leaves):
            act, _cur = LEAF_RE.findall(text)[k]
            if only is not None and act not in only:
                continue
            changed |= step([(_set_leaf(text, k, v), f"{v:g}") for v in GRID],
                            f"pass {p + 1}: leaf {k} ({act}) {_cur}")
        for which in ((0, 1) if only is None or "classify" in only else ()):
            changed |= step([(_set_conf(text, which, v), f"{v:g}") for v in CONF_GRID],
                            f"pass {p + 1}: min_confidence[{which}]")
        if not changed:
            break
    print(f"end: objective {cur[0]:.4f}")
    passed = True
    if (args.out or args.write) and not args.no_gate:
        # a tuned file must keep every pinned behaviour before it is a candidate at all
        # (scripts/gate.py); --write never overwrites the shipped rules with one that fails
        from scripts.gate import gate
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            cand = Path(tmp) / "tuned.yaml"
            cand.write_text(text)
            res = gate(rules=cand)
        passed = res.passed
        print(res.report())
    if args.out:
        args.out.write_text(text)
    elif args.write:
        if not passed:
            print(f"not written: the tuned rules fail the behaviour tests; {args.rules} is unchanged")
            return 1
        args.rules.write_text(text)
        print(f"wrote {args.rules}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
