"""Per-call insights: issue category, escalation trigger, ticket references, commitments.

``call_insights(transcript, report, categories)`` (or ``insights_batch`` for many calls)
reads the same sentences the scorer reads (the transcript's stored coaching features:
sentence spans, normalised text, act-bank similarities; computed when absent or stale),
evaluates the scoring rule set's acts that the categories file refers to
(``specific_commitment``, ``transfer``, ``ask_manager``, ...) with the scorer's own
condition compiler (``callcoach.coaching.detectors``), then the category, trigger and
commitment conditions of the categories file, all in one columnar polars pass per batch.
No clock, no randomness: the same transcript, report, rule set and categories give the
same dict.

Result (JSON-ready)::

    {"schema": "callcoach.insights", "schema_version": "1", "call_id": str,
     "categories_version": str, "ruleset_version": str, "call_type": str,
     "agent_id", "team", "customer_id", "started_at": str | None,     # sidecar metadata
     "category": str, "category_label": str, "category_confidence": 0..1,
     "category_evidence": {t, speaker, quote} | None, "category_scores": {CATEGORY: float},
     "trigger": complexity|lack_of_authority|specialised_help|emotional_state|None,
     "trigger_basis": stated|inferred|fallback|None, "trigger_confidence": 0..1|None,
     "trigger_evidence": {t, speaker, quote} | None,
     "ticket_refs": [str],                       # upper case, spaces removed, first-mention order
     "commitments": [{t, quote, due, due_kind, who}],   # due: ISO-8601 with offset
     "commitments_unresolved": int}              # commitment sentences whose due could not be
                                                 # resolved (no started_at on the call)
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from ..coaching import detectors
from ..coaching.features import features_batch, features_valid
from ..coaching.rules import RuleSet, _act_refs, default_ruleset
from ..transcript import Transcript
from .categories import Categories, default_categories
from .due import call_clock, resolve

INSIGHTS_SCHEMA = "callcoach.insights"
INSIGHTS_SCHEMA_VERSION = "1"
QUOTE_MAX = 240


def _needed_acts(cats: Categories, rs: RuleSet) -> list[str]:
    """Acts the categories read, with everything they depend on, in dependency order."""
    todo = list(cats.acts_used())
    need: set[str] = set()
    while todo:
        n = todo.pop()
        if n in need:
            continue
        need.add(n)
        todo.extend(_act_refs(rs.acts[n].when))
    return [n for n in rs.act_order if n in need]


def _spoken_by(expr: pl.Expr, speaker: str) -> pl.Expr:
    expr = expr.fill_null(False)
    return expr if speaker == "any" else expr & (pl.col("speaker") == speaker)


class _Plan:
    """The columns one batch evaluates: rule-set acts, then every cue and the commitment
    condition, as boolean columns over the sentence frame."""

    def __init__(self, cats: Categories, rs: RuleSet):
        cats.check_acts(rs)
        self.acts = _needed_acts(cats, rs)
        self.rs, self.cats = rs, cats
        self.cue_exprs: list[pl.Expr] = []
        self.cat_cues: list[list[tuple[int, float]]] = []        # per category: (column, weight)
        for c in cats.categories.values():
            cols = []
            for q in c.cues:
                cols.append((len(self.cue_exprs), q.weight))
                self.cue_exprs.append(_spoken_by(detectors._expr(q.when), q.speaker))
            self.cat_cues.append(cols)
        self.trig_cues: dict[str, list[tuple[int, float, str]]] = {}
        for tn, t in cats.triggers.items():
            cols = []
            for q in t.cues:
                cols.append((len(self.cue_exprs), q.weight, q.tier))
                self.cue_exprs.append(_spoken_by(detectors._expr(q.when), q.speaker))
            self.trig_cues[tn] = cols
        self.commit_expr = _spoken_by(detectors._expr(cats.commitment_when), "agent")
        self.agent_re = re.compile(cats.commitment_agent_re)
        self.team_re = re.compile(cats.commitment_team_re)

    def evaluate(self, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        # eager, not lazy: measured ~6x faster on one call's frame (polars 2.1), and the
        # same on large batches
        for n in self.acts:
            if f"act:{n}" in frame.columns:      # detected once already (coaching.score.detect)
                continue
            act = self.rs.acts[n]
            frame = frame.with_columns(_spoken_by(detectors._expr(act.when), act.speaker).alias(f"act:{n}"))
        out = frame.select([e.alias(f"cue{i}") for i, e in enumerate(self.cue_exprs)]
                           + [self.commit_expr.alias("commit")])
        cues = out.select([f"cue{i}" for i in range(len(self.cue_exprs))]).to_numpy().astype(bool, copy=False)
        return cues, out["commit"].to_numpy().astype(bool, copy=False)


_PLANS: dict[tuple[int, int], tuple[Categories, RuleSet, _Plan]] = {}


def _plan(cats: Categories, rs: RuleSet) -> _Plan:
    key = (id(cats), id(rs))
    got = _PLANS.get(key)
    if got is None or got[0] is not cats or got[1] is not rs:
        got = _PLANS[key] = (cats, rs, _Plan(cats, rs))
    return got[2]


def _as_transcript(t: Any) -> Transcript:
    if isinstance(t, Transcript):
        return t
    if isinstance(t, Mapping):
        return Transcript.from_dict(t)
    raise TypeError(f"expected a Transcript or its dict, got {type(t).__name__}")


def _evidence(tr: Transcript, f: Mapping, speakers: Sequence[str], k: int) -> dict[str, Any]:
    turn = tr.turns[f["turn"][k]]
    a, b = f["span"][k]
    q = turn.text[a:b].strip()
    if len(q) > QUOTE_MAX:
        q = q[:QUOTE_MAX - 1].rstrip() + "\u2026"
    return {"t": round(float(f["t"][k]), 2), "speaker": speakers[k], "quote": q}


def _tickets(norms: Sequence[str], cats: Categories) -> list[str]:
    out: list[str] = []
    for s in norms:
        for m in cats.ticket_re.finditer(s):
            parts = m.group("ref").split()
            if len(parts) > 1 and parts[0] in cats.ticket_drop_prefix:
                parts = parts[1:]
            ref = "".join(parts).upper()
            if (len(ref) >= cats.ticket_min_length and sum(ch.isdigit() for ch in ref) >= 3
                    and ref not in out):
                out.append(ref)
    return out


def _category(cats: Categories, plan: _Plan, cues: np.ndarray, speakers: Sequence[str],
              team: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Per sentence and category: the contribution (max cue weight x speaker x opening)."""
    n = cues.shape[0]
    contrib = np.zeros((n, len(plan.cat_cues)), np.float64)
    for j, cols in enumerate(plan.cat_cues):
        for col, w in cols:
            np.maximum(contrib[:, j], np.where(cues[:, col], w, 0.0), out=contrib[:, j])
    mult = np.empty(n, np.float64)
    seen_c = 0
    for k, sp in enumerate(speakers):
        m = cats.speaker_weight.get(sp, 0.0)
        if sp == "customer":
            if seen_c < cats.opening_sentences:
                m *= cats.opening_boost
            seen_c += 1
        mult[k] = m
    contrib *= mult[:, None]
    allowed = np.array([not c.teams or (team in c.teams) for c in cats.categories.values()])
    contrib[:, ~allowed] = 0.0
    return contrib, contrib.sum(0)


def _one(tr: Transcript, f: Mapping, speakers: list[str], report: Mapping, cues: np.ndarray,
         commit: np.ndarray, cats: Categories, plan: _Plan) -> dict[str, Any]:
    md = dict(tr.metadata or {})
    names = list(cats.categories)

    # category -------------------------------------------------------------------------
    contrib, totals = _category(cats, plan, cues, speakers, md.get("team"))
    best = int(np.argmax(totals)) if len(names) else 0
    best_total = float(totals[best]) if len(names) else 0.0
    if best_total >= cats.min_score and best_total > 0:
        category = names[best]
        label = cats.categories[category].label
        share = best_total / float(totals.sum())
        conf = share * best_total / (best_total + cats.confidence_scale)
        col = contrib[:, best]
        k = int(np.flatnonzero(col == col.max())[0])
        cat_ev = _evidence(tr, f, speakers, k)
    else:
        category, label = cats.fallback, "Other"
        conf = 1.0 - (best_total / cats.min_score if cats.min_score else 0.0)
        cat_ev = None

    # trigger --------------------------------------------------------------------------
    call_type = report.get("call_type")
    trigger = basis = trig_conf = trig_ev = None
    if call_type in cats.trigger_applies_to:
        totals_t: dict[str, dict[str, float]] = {"stated": {}, "inferred": {}}
        first: dict[str, dict[str, tuple[float, int]]] = {"stated": {}, "inferred": {}}
        for tn, cols in plan.trig_cues.items():
            for col, w, tier in cols:
                hits = np.flatnonzero(cues[:, col])
                if hits.size == 0:
                    continue
                totals_t[tier][tn] = totals_t[tier].get(tn, 0.0) + w
                k = int(hits[0])
                cur = first[tier].get(tn)
                # evidence: the heaviest cue of the trigger, earliest on ties
                if cur is None or (w, -k) > (cur[0], -cur[1]):
                    first[tier][tn] = (w, k)
        for tier in ("stated", "inferred"):
            if totals_t[tier]:
                order = {t: i for i, t in enumerate(cats.trigger_order)}
                trigger = max(totals_t[tier], key=lambda t: (totals_t[tier][t], -order[t]))
                basis = tier
                trig_conf = totals_t[tier][trigger] / sum(totals_t[tier].values()) * cats.tier_factor[tier]
                trig_ev = _evidence(tr, f, speakers, first[tier][trigger][1])
                break
        if trigger is None and call_type in cats.trigger_fallback:
            trigger, basis = cats.trigger_fallback[call_type], "fallback"
            trig_conf = cats.tier_factor["fallback"]

    # commitments ------------------------------------------------------------------------
    start = call_clock(md.get("started_at"), md.get("timezone"))
    commitments: list[dict[str, Any]] = []
    unresolved = 0
    for k in np.flatnonzero(commit).tolist():
        norm = f["norm"][k]
        if start is None:
            unresolved += 1
            continue
        now = start + timedelta(seconds=float(f["t"][k]))
        dues = resolve(norm, now, cats.day_parts, cats.pm_below)
        if not dues:
            unresolved += 1
            continue
        ev = _evidence(tr, f, speakers, k)
        # who owns each deadline: the last subject before it in its own clause (text since
        # the previous deadline): "I'll ..." -> agent; "we'll", "the team will", "who will",
        # "you'll have ..." -> team; none there: the owner of the previous deadline
        who = "agent" if plan.agent_re.search(norm) else "team"
        prev = 0
        for d in dues:
            seg = norm[prev:d.span[1]]
            last = -1
            for owner, rx in (("agent", plan.agent_re), ("team", plan.team_re)):
                for m in rx.finditer(seg):
                    if m.start() > last or (m.start() == last and owner == "agent"):
                        last, who = m.start(), owner
            prev = d.span[1]
            commitments.append({"t": ev["t"], "quote": ev["quote"], "due": d.iso(),
                                "due_kind": d.kind, "who": who})

    cid = md.get("customer_id")
    return {
        "schema": INSIGHTS_SCHEMA,
        "schema_version": INSIGHTS_SCHEMA_VERSION,
        "call_id": tr.call_id,
        "categories_version": cats.version,
        "ruleset_version": report.get("ruleset_version"),
        "call_type": call_type,
        "agent_id": _str(report.get("agent_id") or md.get("agent_id")),
        "team": _str(report.get("team") or md.get("team")),
        "customer_id": _str(cid),
        "started_at": _str(report.get("started_at") or md.get("started_at")),
        "category": category,
        "category_label": label,
        "category_confidence": round(max(0.0, min(1.0, conf)), 3),
        "category_evidence": cat_ev,
        "category_scores": {n: round(float(v), 3) for n, v in zip(names, totals) if v > 0},
        "trigger": trigger,
        "trigger_basis": basis,
        "trigger_confidence": None if trig_conf is None else round(trig_conf, 3),
        "trigger_evidence": trig_ev,
        "ticket_refs": _tickets(f["norm"], cats),
        "commitments": commitments,
        "commitments_unresolved": unresolved,
    }


def _str(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def insights_batch(items: Iterable[tuple], categories: Categories | None = None,
                   ruleset: RuleSet | None = None, detected=None) -> list[dict[str, Any]]:
    """Insights for many calls in one columnar pass.

    ``items``: ``(transcript, report)`` or ``(transcript, report, features)``; the transcript
    is a Transcript or its dict, ``report`` the scorer's report of that transcript (its
    call type decides whether a trigger applies), ``features`` stored coaching features or
    None (then the transcript's own, recomputed when absent or stale).  ``detected``: the
    scorer's ``Detected`` of the same calls in the same order, so acts are not detected twice."""
    cats = categories or default_categories()
    rs = ruleset or default_ruleset()
    plan = _plan(cats, rs)
    if detected is not None:
        reps = [it[1] for it in items]
        return _from_detected(detected, reps, cats, plan)
    trs: list[Transcript] = []
    reps: list[Mapping] = []
    feats: list[Mapping | None] = []
    for it in items:
        tr = _as_transcript(it[0])
        trs.append(tr)
        reps.append(it[1])
        f = it[2] if len(it) > 2 and it[2] is not None else tr.features
        if f is None and isinstance(it[0], Mapping):
            f = it[0].get("features")
        feats.append(f)
    if not trs:
        return []
    missing = [i for i, (tr, f) in enumerate(zip(trs, feats)) if not features_valid(tr, f)]
    if missing:
        for i, f in zip(missing, features_batch([trs[i] for i in missing])):
            feats[i] = f
    speakers = [[tr.turns[i].speaker for i in f["turn"]] for tr, f in zip(trs, feats)]
    batch = detectors.build_frame(feats, speakers, rs)
    if batch.frame.height:
        cues, commit = plan.evaluate(batch.frame)
    else:
        cues = np.zeros((0, len(plan.cue_exprs)), bool)
        commit = np.zeros(0, bool)
    out = []
    off = batch.offsets
    for i, (tr, f, sp, rep) in enumerate(zip(trs, feats, speakers, reps)):
        a, b = int(off[i]), int(off[i + 1])
        out.append(_one(tr, f, sp, rep, cues[a:b], commit[a:b], cats, plan))
    return out


def _from_detected(d, reps: list[Mapping], cats: Categories, plan: "_Plan") -> list[dict[str, Any]]:
    if len(reps) != len(d.transcripts):
        raise ValueError(f"{len(reps)} reports for {len(d.transcripts)} detected calls")
    if d.batch.frame.height:
        cues, commit = plan.evaluate(d.batch.frame)
    else:
        cues = np.zeros((0, len(plan.cue_exprs)), bool)
        commit = np.zeros(0, bool)
    off = d.batch.offsets
    return [_one(tr, f, sp, rep, cues[int(off[i]):int(off[i + 1])], commit[int(off[i]):int(off[i + 1])],
                 cats, plan)
            for i, (tr, f, sp, rep) in enumerate(zip(d.transcripts, d.features, d.speakers, reps))]


def call_insights(transcript: Any, report: Mapping, categories: Categories | None = None, *,
                  ruleset: RuleSet | None = None, features: Mapping | None = None) -> dict[str, Any]:
    """Insights of one call (see module doc).  ``ruleset``: the rule set that scored the
    report (default rule set when None); ``features``: stored coaching features, if the
    caller holds them apart from the transcript."""
    return insights_batch([(transcript, report, features)], categories, ruleset)[0]
