"""The per-call coaching report: value types, names of the contract, validation.

Field names and vocabularies follow /work/shared/coaching-contract.md exactly; renaming any
of them is a breaking change and bumps REPORT_SCHEMA_VERSION.  Extra fields are allowed
(agent_id, team, started_at, features_version, call_type_scores, concerns, ...).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Mapping, TypedDict

from .contract import (AREAS, CALL_TYPES, CHECKS, CHECKS_BY_CALL_TYPE, CONFIDENCE_LEVELS,
                       EMPATHY_LEVELS, JARGON_LEVELS, MOMENT_KINDS, RISKS, SEQUENCE_STEPS,
                       SPEAKERS)

REPORT_SCHEMA = "callcoach.report"
REPORT_SCHEMA_VERSION = "1.0"

REQUIRED_FIELDS = ("call_id", "schema_version", "ruleset_version", "models", "duration_s", "call_type",
                   "call_type_confidence", "talk_ratio", "tone", "process_checks", "risks", "moments",
                   "sequence")


class Evidence(TypedDict, total=False):
    t: float
    speaker: Literal["agent", "customer"]
    quote: str
    concern: str                      # concern_not_addressed only


class ProcessCheck(TypedDict):
    check: str
    passed: bool | None
    evidence: Evidence | None


class Risk(TypedDict):
    risk: str
    evidence: Evidence | None


class Moment(TypedDict):
    t: float
    kind: Literal["improvement", "strength"]
    area: str
    issue: str
    suggestion: str


class TalkRatio(TypedDict):
    agent: float
    customer: float
    expected: list[float]
    within_expected: bool


class Tone(TypedDict):
    empathy: str
    confidence: str
    jargon: str
    interruptions: int
    customer_interruptions: int


class SequenceStep(TypedDict):
    step: str
    t: float


class Report(TypedDict, total=False):
    call_id: str
    schema_version: str
    ruleset_version: str
    models: dict[str, str]
    duration_s: float
    call_type: str
    call_type_confidence: float
    talk_ratio: TalkRatio
    tone: Tone
    process_checks: list[ProcessCheck]
    risks: list[Risk]
    moments: list[Moment]
    sequence: list[SequenceStep]


class ReportError(ValueError):
    pass


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _evidence(ev: Any, where: str, errors: list[str]) -> None:
    if ev is None:
        return
    if not isinstance(ev, Mapping):
        errors.append(f"{where}: evidence must be an object or null")
        return
    if not _num(ev.get("t")) or ev.get("t") < 0:
        errors.append(f"{where}: evidence.t must be seconds >= 0")
    if ev.get("speaker") not in SPEAKERS:
        errors.append(f"{where}: evidence.speaker must be one of {SPEAKERS}")
    if not isinstance(ev.get("quote"), str) or not ev.get("quote"):
        errors.append(f"{where}: evidence.quote must be non-empty text")


def report_errors(r: Any) -> list[str]:
    """Every way ``r`` departs from the contract (empty list when valid)."""
    errors: list[str] = []
    if not isinstance(r, Mapping):
        return ["report must be an object"]
    for f in REQUIRED_FIELDS:
        if f not in r:
            errors.append(f"missing field {f!r}")
    if errors:
        return errors
    if not isinstance(r["call_id"], str) or not r["call_id"]:
        errors.append("call_id must be non-empty text")
    if r["schema_version"] != REPORT_SCHEMA_VERSION:
        errors.append(f"schema_version must be {REPORT_SCHEMA_VERSION!r}")
    if not isinstance(r["ruleset_version"], str) or not r["ruleset_version"]:
        errors.append("ruleset_version must be non-empty text")
    m = r["models"]
    if not isinstance(m, Mapping) or not {"asr", "diarization"} <= set(m):
        errors.append("models must have asr and diarization")
    elif not all(isinstance(m[k], str) for k in ("asr", "diarization")):
        errors.append("models.asr and models.diarization must be text")
    if not _num(r["duration_s"]) or r["duration_s"] < 0:
        errors.append("duration_s must be a number >= 0")
    ct = r["call_type"]
    if ct not in CALL_TYPES:
        errors.append(f"call_type must be one of {CALL_TYPES}")
    c = r["call_type_confidence"]
    if not _num(c) or not 0 <= c <= 1:
        errors.append("call_type_confidence must be in 0..1")
    tr = r["talk_ratio"]
    if not isinstance(tr, Mapping):
        errors.append("talk_ratio must be an object")
    else:
        for k in ("agent", "customer"):
            if not _num(tr.get(k)) or not 0 <= tr[k] <= 1:
                errors.append(f"talk_ratio.{k} must be in 0..1")
        ex = tr.get("expected")
        if not (isinstance(ex, (list, tuple)) and len(ex) == 2 and all(_num(x) for x in ex) and ex[0] <= ex[1]):
            errors.append("talk_ratio.expected must be [lo, hi]")
        if not isinstance(tr.get("within_expected"), bool):
            errors.append("talk_ratio.within_expected must be true/false")
    tone = r["tone"]
    if not isinstance(tone, Mapping):
        errors.append("tone must be an object")
    else:
        for k, levels in (("empathy", EMPATHY_LEVELS), ("confidence", CONFIDENCE_LEVELS), ("jargon", JARGON_LEVELS)):
            if tone.get(k) not in levels:
                errors.append(f"tone.{k} must be one of {levels}")
        for k in ("interruptions", "customer_interruptions"):
            v = tone.get(k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                errors.append(f"tone.{k} must be an int >= 0")
    pcs = r["process_checks"]
    if not isinstance(pcs, list):
        errors.append("process_checks must be a list")
    else:
        seen = set()
        for i, pc in enumerate(pcs):
            w = f"process_checks[{i}]"
            if not isinstance(pc, Mapping):
                errors.append(f"{w} must be an object")
                continue
            if pc.get("check") not in CHECKS:
                errors.append(f"{w}: unknown check {pc.get('check')!r}")
            elif ct in CALL_TYPES and pc["check"] not in CHECKS_BY_CALL_TYPE[ct]:
                errors.append(f"{w}: check {pc['check']!r} does not apply to {ct} calls")
            if pc.get("check") in seen:
                errors.append(f"{w}: duplicate check {pc.get('check')!r}")
            seen.add(pc.get("check"))
            if pc.get("passed") not in (True, False, None):
                errors.append(f"{w}: passed must be true, false or null")
            if "evidence" not in pc:
                errors.append(f"{w}: evidence missing (use null)")
            _evidence(pc.get("evidence"), w, errors)
        if ct in ("escalation", "handoff") and seen != set(CHECKS_BY_CALL_TYPE[ct]):
            errors.append(f"process_checks must list every {ct} check: missing "
                          f"{sorted(set(CHECKS_BY_CALL_TYPE[ct]) - seen)}")
    rks = r["risks"]
    if not isinstance(rks, list):
        errors.append("risks must be a list")
    else:
        seen = set()
        for i, rk in enumerate(rks):
            w = f"risks[{i}]"
            if not isinstance(rk, Mapping):
                errors.append(f"{w} must be an object")
                continue
            if rk.get("risk") not in RISKS:
                errors.append(f"{w}: unknown risk {rk.get('risk')!r}")
            if rk.get("risk") in seen:
                errors.append(f"{w}: duplicate risk {rk.get('risk')!r}")
            seen.add(rk.get("risk"))
            if "evidence" not in rk:
                errors.append(f"{w}: evidence missing (use null)")
            _evidence(rk.get("evidence"), w, errors)
            if rk.get("risk") == "concern_not_addressed" and isinstance(rk.get("evidence"), Mapping) \
                    and not rk["evidence"].get("concern"):
                errors.append(f"{w}: concern_not_addressed evidence must name the concern")
    ms = r["moments"]
    if not isinstance(ms, list):
        errors.append("moments must be a list")
    else:
        for i, mo in enumerate(ms):
            w = f"moments[{i}]"
            if not isinstance(mo, Mapping):
                errors.append(f"{w} must be an object")
                continue
            if not _num(mo.get("t")) or mo["t"] < 0:
                errors.append(f"{w}: t must be seconds >= 0")
            if mo.get("kind") not in MOMENT_KINDS:
                errors.append(f"{w}: kind must be one of {MOMENT_KINDS}")
            if mo.get("area") not in AREAS:
                errors.append(f"{w}: area must be one of {AREAS}")
            if not isinstance(mo.get("issue"), str) or not mo.get("issue"):
                errors.append(f"{w}: issue must be text")
            if not isinstance(mo.get("suggestion"), str) or not mo["suggestion"].startswith("Try:"):
                errors.append(f"{w}: suggestion must start with 'Try:'")
    seq = r["sequence"]
    if not isinstance(seq, list):
        errors.append("sequence must be a list of {step, t}")
    else:
        last = -1.0
        steps = set()
        for i, s in enumerate(seq):
            if not isinstance(s, Mapping) or s.get("step") not in SEQUENCE_STEPS or not _num(s.get("t")):
                errors.append(f"sequence[{i}] must be {{step: {SEQUENCE_STEPS}, t: seconds}}")
                continue
            if s["step"] in steps:
                errors.append(f"sequence[{i}]: duplicate step {s['step']!r}")
            steps.add(s["step"])
            if s["t"] < last:
                errors.append("sequence must be in time order")
            last = s["t"]
    return errors


def validate_report(r: Any) -> Any:
    """Raise ReportError listing every departure from the contract; return ``r`` when valid."""
    errors = report_errors(r)
    if errors:
        cid = r.get("call_id") if isinstance(r, Mapping) else None
        raise ReportError(f"invalid report {cid!r}: " + "; ".join(errors))
    return r
