"""scripts/eval_insights.py: the metrics on constructed results, and the labelled calls as a
regression bar (the bars sit below the figures reported in docs/insights.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ev():
    spec = importlib.util.spec_from_file_location("eval_insights", ROOT / "scripts" / "eval_insights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _doc(cid, cat, trig, ct, commitments=(), tickets=()):
    return {"call_id": cid, "labels": {"category": cat, "trigger": trig, "call_type": ct,
                                       "ticket_refs": list(tickets), "commitments": list(commitments)}}


def _res(cat, trig, commitments=(), tickets=()):
    return {"category": cat, "trigger": trig, "trigger_basis": "stated" if trig else None,
            "ticket_refs": list(tickets), "commitments": list(commitments)}


def test_metrics_on_constructed_results(ev):
    c = lambda due, kind="time", who="agent": {"due": due, "due_kind": kind, "who": who}  # noqa: E731
    docs = [_doc("a", "billing", "complexity", "escalation", [c("2025-03-04T16:00:00+00:00")], ["TL44"]),
            _doc("b", "outage", None, "standard", [c("2025-03-04T10:00:00+00:00", "relative", "team")]),
            _doc("c", "delivery", "emotional_state", "escalation")]
    results = [_res("billing", "complexity", [c("2025-03-04T17:00:00+01:00", "time", "team")], ["TL44"]),
               # 4 min 59 s late is within the 5-minute tolerance; the extra one is a false positive
               _res("billing", None, [c("2025-03-04T10:04:59+00:00", "relative", "team"),
                                      c("2025-03-05T10:00:00+00:00")]),
               _res("delivery", "lack_of_authority")]
    reports = [{"call_type": "escalation"}, {"call_type": "standard"}, {"call_type": "handoff"}]
    s, rows = ev.evaluate(docs, results, reports)
    assert s["category_accuracy"] == 2 / 3
    assert (s["trigger_accuracy"], s["trigger_calls"]) == (0.5, 2)
    assert (s["no_trigger_accuracy"], s["no_trigger_calls"]) == (1.0, 1)
    assert s["call_type_accuracy"] == 2 / 3
    assert s["ticket_exact"] == 1.0
    assert (s["commitments_labelled"], s["commitments_predicted"], s["commitments_matched"]) == (2, 3, 2)
    assert s["who_accuracy"] == 0.5 and s["due_kind_accuracy"] == 1.0
    assert s["per_category"]["billing"] == {"support": 1, "correct": 1, "precision": 0.5, "recall": 1.0}
    assert rows[2]["wrong"] == ["trigger=lack_of_authority[stated] (want emotional_state)",
                                "call_type=handoff (want escalation)"]
    assert ev.match_commitments([c("2025-03-04T10:05:01+00:00")], [c("2025-03-04T10:00:00+00:00")]) == []


def test_labelled_calls_stay_above_the_bars(ev, capsys):
    # trigger accuracy counts a trigger only where the scorer typed the call escalation or
    # handoff; since the call type is held to the routine-call bar (at most 2% of standard
    # calls typed otherwise, issue 15) it types some mildly upset calls standard: 0.69 here
    rc = ev.main(["--require-category", "0.9", "--require-trigger", "0.65"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "| heldout | 10 |" in out and "| dev | 26 |" in out
    assert "| ticket references exact | 100.0% |" in out
