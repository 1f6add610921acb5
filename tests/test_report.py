"""validate_report checks every contract field and name."""

from __future__ import annotations

import copy

import pytest

from callcoach.report import REPORT_SCHEMA_VERSION, ReportError, report_errors, validate_report

GOOD = {
    "call_id": "c1", "schema_version": REPORT_SCHEMA_VERSION, "ruleset_version": "2026.11.0-abcd1234",
    "models": {"asr": "whisper@1", "diarization": "pyannote@4"}, "duration_s": 90.0,
    "call_type": "handoff", "call_type_confidence": 0.8,
    "talk_ratio": {"agent": 0.5, "customer": 0.5, "expected": [0.4, 0.55], "within_expected": True},
    "tone": {"empathy": "medium", "confidence": "high", "jargon": "none", "interruptions": 1,
             "customer_interruptions": 0},
    "process_checks": [{"check": c, "passed": True, "evidence": {"t": 1.0, "speaker": "agent", "quote": "x"}}
                       for c in ("issue_recap_given", "impact_assessed", "ownership_stated", "specific_timeframe_given",
                                 "ticket_reference_provided", "issue_documented", "warm_handoff", "expectations_set")],
    "risks": [{"risk": "concern_not_addressed",
               "evidence": {"t": 3.0, "speaker": "customer", "quote": "refund?", "concern": "refund"}}],
    "moments": [{"t": 1.0, "kind": "strength", "area": "ownership", "issue": "kept it", "suggestion": "Try: again"}],
    "sequence": [{"step": "acknowledge", "t": 1.0}, {"step": "act", "t": 2.0}],
}


def test_good_report_validates():
    assert validate_report(copy.deepcopy(GOOD)) == GOOD


@pytest.mark.parametrize("mutate,needle", [
    (lambda r: r.pop("tone"), "missing field 'tone'"),
    (lambda r: r.update(call_type="complaint"), "call_type"),
    (lambda r: r.update(call_type_confidence=1.5), "call_type_confidence"),
    (lambda r: r["talk_ratio"].update(expected=[0.5]), "expected"),
    (lambda r: r["tone"].update(empathy="huge"), "tone.empathy"),
    (lambda r: r["tone"].update(interruptions=-1), "tone.interruptions"),
    (lambda r: r["process_checks"][0].update(check="issue_acknowledged"), "does not apply"),
    (lambda r: r["process_checks"].pop(), "must list every handoff check"),
    (lambda r: r["process_checks"][0].update(passed="yes"), "passed"),
    (lambda r: r["process_checks"][0].update(evidence={"t": 1.0, "speaker": "bot", "quote": "x"}), "speaker"),
    (lambda r: r["risks"].append({"risk": "bad_vibes", "evidence": None}), "unknown risk"),
    (lambda r: r["risks"][0]["evidence"].pop("concern"), "name the concern"),
    (lambda r: r["moments"][0].update(area="charisma"), "area"),
    (lambda r: r["moments"][0].update(suggestion="Do this"), "Try:"),
    (lambda r: r["sequence"].reverse(), "time order"),
    (lambda r: r["models"].pop("asr"), "models"),
    (lambda r: r.update(schema_version="0.1"), "schema_version"),
])
def test_each_violation_is_reported(mutate, needle):
    r = copy.deepcopy(GOOD)
    mutate(r)
    errs = report_errors(r)
    assert any(needle in e for e in errs), errs
    with pytest.raises(ReportError):
        validate_report(r)
