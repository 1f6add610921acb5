"""score_call / score_batch: transcript (+ stored features) in, the contract's report out.

Deterministic: the same transcript, features and rule set give byte-identical reports
(no clocks, no randomness).  Batch-first: every act of every call in a batch is detected
in one columnar pass (detectors.py); stored features are used when they match the
transcript and FEATURES_VERSION, otherwise they are computed (model in numpy, seconds).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from ..report import REPORT_SCHEMA, REPORT_SCHEMA_VERSION
from ..transcript import Transcript
from . import detectors
from .acts import CALL_EVIDENCE_ACTS, ActModel, call_evidence_names, load_act_model, opening_sentences
from .features import FEATURES_VERSION, features_batch, features_valid
from .rules import RuleSet, default_ruleset

QUOTE_MAX = 240


def _as_transcript(t: Any) -> tuple[Transcript, Mapping | None]:
    if isinstance(t, Transcript):
        return t, t.features
    if isinstance(t, Mapping):
        return Transcript.from_dict(t), t.get("features")
    raise TypeError(f"expected a Transcript or its dict, got {type(t).__name__}")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class _Call:
    """Per-call view of features + transcript for report assembly."""
    __slots__ = ("tr", "f", "speakers", "hits")

    def __init__(self, tr: Transcript, f: Mapping, speakers: list[str], hits: dict[str, list[int]]):
        self.tr, self.f, self.speakers, self.hits = tr, f, speakers, hits

    def evidence(self, k: int) -> dict[str, Any]:
        f = self.f
        turn = self.tr.turns[f["turn"][k]]
        a, b = f["span"][k]
        q = turn.text[a:b].strip()
        if len(q) > QUOTE_MAX:
            q = q[:QUOTE_MAX - 1].rstrip() + "\u2026"
        return {"t": round(float(f["t"][k]), 2), "speaker": self.speakers[k], "quote": q}

    def anchor(self, names: Sequence[str]) -> dict[str, Any] | None:
        """Evidence at the first hit of the first anchor (in priority order) that fired."""
        for n in names:
            if n.startswith("@"):
                k = self._builtin(n)
            else:
                h = self.hits.get(n)
                k = h[0] if h else None
            if k is not None:
                return self.evidence(k)
        return None

    def _builtin(self, name: str) -> int | None:
        sp = self.speakers
        if name == "@last_agent":
            for k in range(len(sp) - 1, -1, -1):
                if sp[k] == "agent":
                    return k
        elif name == "@first_customer":
            for k, s in enumerate(sp):
                if s == "customer":
                    return k
        elif name in ("@longest_agent", "@longest_customer"):
            who = name.split("_")[1]
            best, best_d = None, -1.0
            for i, t in enumerate(self.tr.turns):
                if t.speaker == who and t.duration > best_d:
                    best, best_d = i, t.duration
            if best is not None:
                for k, ti in enumerate(self.f["turn"]):
                    if ti == best:
                        return k
        return None


def _talk_ratio(tr: Transcript, lo_hi: tuple[float, float]) -> dict[str, Any]:
    a = c = 0.0
    for t in tr.turns:
        if t.speaker == "agent":
            a += t.duration
        elif t.speaker == "customer":
            c += t.duration
    tot = a + c
    ra = round(a / tot, 4) if tot > 0 else 0.0
    rc = round(c / tot, 4) if tot > 0 else 0.0
    lo, hi = lo_hi
    return {"agent": ra, "customer": rc, "expected": [lo, hi],
            "within_expected": bool(tot > 0 and lo <= ra <= hi)}


_WORD_RE = re.compile(r"[a-z']+(?:-[a-z']+)*")


def interruptions(tr: Transcript, min_overlap_s: float,
                  max_pause_s: float = 0.0, backchannel: str | None = None,
                  backchannel_words: int = 0) -> tuple[list[int], list[int]]:
    """Indices of agent turns that start while a customer turn is still running (by at
    least ``min_overlap_s``), and of customer turns that start inside an agent turn.

    A speaker still holds the floor through a pause shorter than ``max_pause_s``: an agent
    turn that starts in such a customer pause, with the customer going on while the agent
    talks, interrupted the customer (and the customer's going on is not an interruption
    of the agent); the same holds the other way round.  Diarization often cuts a turn at
    exactly the moment the other speaker barges in.

    A turn of at most ``backchannel_words`` words, every one of them matching
    ``backchannel`` ("mhm", "okay", "bye bye"), takes no floor: saying goodbye over the
    caller's goodbye, or "mhm" while they talk, interrupts nobody."""
    turns = tr.turns
    bc = re.compile(backchannel) if backchannel and backchannel_words > 0 else None

    def is_backchannel(t) -> bool:
        if bc is None:
            return False
        words = _WORD_RE.findall(t.text.lower())
        return 0 < len(words) <= backchannel_words and all(bc.fullmatch(w) for w in words)
    last_end = {"agent": -1.0, "customer": -1.0}
    other = {"agent": "customer", "customer": "agent"}
    out: dict[str, list[int]] = {"agent": [], "customer": []}
    resumed: set[int] = set()       # turns that carry on a paused turn someone cut into
    for i, t in enumerate(turns):
        # (whether a turn is a backchannel is asked only of a turn that would otherwise
        # interrupt: the word match is the costly part of rescoring a call)
        if t.speaker in other and i not in resumed:
            o = other[t.speaker]
            if last_end[o] - t.start >= min_overlap_s:
                if not is_backchannel(t):
                    out[t.speaker].append(i)
            elif max_pause_s > 0 and last_end[o] >= 0 and t.start >= last_end[o] - min_overlap_s:
                # did the other speaker carry on, after a short pause, over this turn?
                for j in range(i + 1, len(turns)):
                    u = turns[j]
                    if u.start > t.end - min_overlap_s:
                        break
                    if u.speaker == o:
                        if u.start - last_end[o] <= max_pause_s and not is_backchannel(t):
                            out[t.speaker].append(i)
                            resumed.add(j)
                        break
        if t.speaker in last_end and t.end > last_end[t.speaker]:
            last_end[t.speaker] = t.end
    return out["agent"], out["customer"]


def call_evidence_rows(feats: Sequence[Mapping], model: ActModel | None = None) -> np.ndarray:
    """[n_calls, call evidence] of stored features, in the act model's evidence layout."""
    model = model or load_act_model()
    if not feats:
        return np.zeros((0, len(call_evidence_names(model.call_kinds))), np.float32)
    return np.stack([model.call_evidence({a: np.asarray(f["prob"].get(a, ()), np.float32) / 1000.0
                                          for a in CALL_EVIDENCE_ACTS}, f["n"], opening_sentences(f["turn"]))
                     for f in feats])


def call_type_probs(feats: Sequence[Mapping], model: ActModel | None = None) -> np.ndarray:
    """[n_calls, 3] P(escalation, handoff, standard) from the act model's call head."""
    model = model or load_act_model()
    if not feats:
        return np.zeros((0, 3), np.float32)
    return model.call_type_probs(call_evidence_rows(feats, model))


def _classify(p: np.ndarray, rs: RuleSet) -> tuple[str, float, dict[str, float]]:
    """The call's type: escalation or handoff when the call head is sure enough (the rule
    set's min_confidence), or when it is sure the call is one of the two (P(escalation) +
    P(handoff) over the higher threshold: the likelier one); else the default, standard."""
    mc = rs.classify["min_confidence"]
    pe, ph, ps = (float(x) for x in p)
    scores = {"escalation": round(pe, 3), "handoff": round(ph, 3), "standard": round(ps, 3)}
    if pe >= mc["escalation"] and pe >= ph:
        return "escalation", round(pe, 3), scores
    if ph >= mc["handoff"]:
        return "handoff", round(ph, 3), scores
    if pe + ph >= max(mc["escalation"], mc["handoff"]):
        # sure it is not routine, unsure which of the two: the likelier one
        return ("escalation", round(pe, 3), scores) if pe >= ph else ("handoff", round(ph, 3), scores)
    return "standard", round(ps, 3), scores


def _level(count: float, medium: float, high: float, names=("low", "medium", "high")) -> str:
    if count >= high:
        return names[2]
    if count >= medium:
        return names[1]
    return names[0]


def _tone(call: _Call, rs: RuleSet, n_int: int, n_cint: int) -> dict[str, Any]:
    tone = rs.tone
    sp = call.speakers
    n_agent = sum(1 for s in sp if s == "agent")
    emp = len(call.hits.get(tone["empathy"]["act"]) or ())
    empathy = _level(emp, tone["empathy"]["medium"], tone["empathy"]["high"])
    hedges = len(call.hits.get(tone["confidence"]["act"]) or ())
    share = hedges / n_agent if n_agent else 0.0
    c = tone["confidence"]
    confidence = "low" if share >= c["low"] else ("medium" if share >= c["medium"] else "high")
    jar = len(call.hits.get(tone["jargon"]["act"]) or ())
    if jar:
        words = sum(len(call.f["norm"][k].split()) for k in range(len(sp)) if sp[k] == "agent")
        per100 = 100.0 * jar / words if words else 0.0
    else:
        per100 = 0.0
    j = tone["jargon"]
    jargon = "heavy" if per100 >= j["heavy"] else ("some" if per100 >= j["some"] and jar > 0 else "none")
    return {"empathy": empathy, "confidence": confidence, "jargon": jargon,
            "interruptions": n_int, "customer_interruptions": n_cint}


_COMPILED: dict[int, tuple[RuleSet, dict[str, Any]]] = {}


def _compiled(rs: RuleSet) -> dict[str, Any]:
    got = _COMPILED.get(id(rs))
    if got is None or got[0] is not rs:
        c = {}
        for n, r in rs.checks.items():
            c[("check", n)] = detectors.compile_cond(r.when, rs)
            c[("na", n)] = detectors.compile_cond(r.na, rs) if r.na is not None else None
        for n, r in rs.risks.items():
            c[("risk", n)] = detectors.compile_cond(r.when, rs)
        got = _COMPILED[id(rs)] = (rs, c)
    return got[1]


def _report(tr: Transcript, f: Mapping, speakers: list[str], hits: dict[str, list[int]],
            rs: RuleSet, type_p: np.ndarray) -> dict[str, Any]:
    call = _Call(tr, f, speakers, hits)
    comp = _compiled(rs)
    call_type, conf, type_scores = _classify(type_p, rs)
    spec = rs.call_types[call_type]
    talk = _talk_ratio(tr, spec.talk_ratio)
    ti = rs.tone["interruptions"]
    a_int, c_int = interruptions(tr, float(ti["min_overlap_s"]), float(ti.get("max_pause_s", 0.0)),
                                 ti.get("backchannel"), int(ti.get("backchannel_words", 0)))
    tone = _tone(call, rs, len(a_int), len(c_int))

    moments: list[dict[str, Any]] = []
    strength_sugg = rs.coaching["strength_suggestion"]

    checks = []
    for cn in spec.checks:
        rule = rs.checks[cn]
        if comp[("check", cn)](hits):
            passed, ev = True, call.anchor(rule.evidence)
        elif rule.na is not None and comp[("na", cn)](hits):
            passed, ev = None, call.anchor(rule.na_evidence)
        else:
            passed, ev = False, call.anchor(rule.fail_evidence)
        checks.append({"check": cn, "passed": passed, "evidence": ev})
        if ev is not None and passed is False:
            moments.append({"t": ev["t"], "kind": "improvement", "area": rule.area,
                            "issue": rule.issue, "suggestion": rule.suggestion, "source": cn})
        elif ev is not None and passed is True:
            moments.append({"t": ev["t"], "kind": "strength", "area": rule.area,
                            "issue": rule.strength, "suggestion": strength_sugg, "source": cn})

    risks = []
    concerns_out = []
    for rn in spec.risks:
        rule = rs.risks[rn]
        if "unanswered_concern" in rule.when:
            un = detectors.unanswered_concerns(
                hits, rs, {"turn": f["turn"], "speaker": speakers, "norm": f["norm"]})
            concerns_out = [dict(call.evidence(k), concern=rs.concerns[c].label if c in rs.concerns
                                 else detectors.LEARNED_CONCERN_LABEL) for k, c in un]
            if not un:
                continue
            ev = concerns_out[0]
        else:
            if not comp[("risk", rn)](hits):
                continue
            ev = call.anchor(rule.evidence)
        risks.append({"risk": rn, "evidence": ev})
        if ev is not None:
            moments.append({"t": ev["t"], "kind": "improvement", "area": rule.area,
                            "issue": rule.issue + (f": {ev['concern']}" if "concern" in ev else ""),
                            "suggestion": rule.suggestion, "source": rn})

    co = rs.coaching
    for i in a_int:
        moments.append({"t": round(tr.turns[i].start, 2), "kind": "improvement",
                        "area": co["interruption"]["area"], "issue": co["interruption"]["issue"],
                        "suggestion": co["interruption"]["suggestion"], "source": "interruption"})
    if not talk["within_expected"] and (talk["agent"] + talk["customer"]) > 0:
        key, who = (("talk_ratio_high", "agent") if talk["agent"] > spec.talk_ratio[1]
                    else ("talk_ratio_low", "customer"))
        longest = max((t for t in tr.turns if t.speaker == who), key=lambda t: t.duration, default=None)
        if longest is not None:
            moments.append({"t": round(longest.start, 2), "kind": "improvement", "area": co[key]["area"],
                            "issue": co[key]["issue"], "suggestion": co[key]["suggestion"], "source": key})

    # one moment per (time, area, kind): the first rule that placed it there explains it
    seen = set()
    uniq = []
    for m in moments:
        key = (m["t"], m["area"], m["kind"])
        if key in seen:
            continue
        seen.add(key)
        uniq.append(m)
    uniq.sort(key=lambda m: (m["t"], m["kind"] != "improvement", m["area"]))

    seq = []
    for step, acts in rs.sequence.items():
        k = detectors.first_of(hits, acts)
        if k is not None:
            seq.append({"step": step, "t": round(float(f["t"][k]), 2), "_k": k})
    seq.sort(key=lambda s: (s["_k"], s["step"]))
    order = [s["step"] for s in seq]
    canonical = [s for s in rs.sequence if s in order]
    for s in seq:
        del s["_k"]

    md = tr.metadata or {}
    models = dict(tr.models or {})
    rep: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "call_id": tr.call_id,
        "schema_version": REPORT_SCHEMA_VERSION,
        "ruleset_version": rs.version,
        "ruleset": rs.name,
        "features_version": FEATURES_VERSION,
        "models": {"asr": str(models.get("asr", "unknown")),
                   "diarization": str(models.get("diarization", "unknown")),
                   **{k: str(v) for k, v in models.items() if k not in ("asr", "diarization")},
                   "acts": str(f.get("acts_model", "unknown"))},
        "agent_id": md.get("agent_id"),
        "team": md.get("team"),
        "started_at": md.get("started_at"),
        "duration_s": round(float(tr.duration_s), 3),
        "call_type": call_type,
        "call_type_confidence": conf,
        "call_type_scores": type_scores,
        "talk_ratio": talk,
        "tone": tone,
        "process_checks": checks,
        "risks": risks,
        "concerns_unanswered": concerns_out,
        "moments": uniq,
        "sequence": seq,
        "sequence_in_order": order == canonical,
        "sequence_missing": [s for s in rs.sequence if s not in order],
    }
    return rep


@dataclass
class Detected:
    """Acts of a batch of calls, detected once: what the report and the insights read."""
    transcripts: list[Transcript]
    features: list[Mapping]
    speakers: list[list[str]]
    batch: detectors.Batch           # sentence frame, with one boolean column per act
    hits: list[dict[str, list[int]]]
    type_p: np.ndarray               # [n_calls, 3] P(escalation, handoff, standard)


def detect(items: Iterable[tuple[Any, Mapping | None]], ruleset: RuleSet | None = None) -> Detected:
    """Features (stored, or computed in one batched model pass when absent or stale),
    every act of the rule set on every sentence, and the call head's type probabilities."""
    rs = ruleset or default_ruleset()
    trs: list[Transcript] = []
    feats: list[Mapping | None] = []
    for t, f in items:
        tr, embedded = _as_transcript(t)
        trs.append(tr)
        feats.append(f if f is not None else embedded)
    missing = [i for i, (tr, f) in enumerate(zip(trs, feats)) if not features_valid(tr, f)]
    if missing:
        fresh = features_batch([trs[i] for i in missing])
        for i, f in zip(missing, fresh):
            feats[i] = f
    speakers = [[tr.turns[i].speaker for i in f["turn"]] for tr, f in zip(trs, feats)]
    batch = detectors.build_frame(feats, speakers, rs)
    names, mat = detectors.detect_acts(batch, rs)
    if batch.frame.height:
        batch = detectors.Batch(batch.offsets, batch.frame.with_columns(
            [pl.Series(f"act:{n}", mat[:, j]) for j, n in enumerate(names)]))
    per_call = detectors.hits_per_call(names, mat, batch.offsets)
    return Detected(trs, feats, speakers, batch, per_call, call_type_probs(feats))


def reports(d: Detected, ruleset: RuleSet | None = None) -> list[dict[str, Any]]:
    rs = ruleset or default_ruleset()
    return [_report(tr, f, sp, h, rs, p)
            for tr, f, sp, h, p in zip(d.transcripts, d.features, d.speakers, d.hits, d.type_p)]


def score_batch(items: Iterable[tuple[Any, Mapping | None]], ruleset: RuleSet | None = None) -> list[dict[str, Any]]:
    """Score many calls at once.  ``items``: (Transcript or its dict, features or None).
    Features that are absent or stale are computed (one batched model pass)."""
    rs = ruleset or default_ruleset()
    return reports(detect(items, rs), rs)


def score_call(transcript: Any, ruleset: RuleSet | None = None, features: Mapping | None = None) -> dict[str, Any]:
    """Score one call: the contract's per-call report (a JSON-ready dict)."""
    return score_batch([(transcript, features)], ruleset)[0]
