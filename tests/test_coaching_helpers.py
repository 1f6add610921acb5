"""Shared helpers for the coaching tests: small transcripts written for the tests."""

from __future__ import annotations

from callcoach.transcript import Transcript, Turn

# Openings that make the call type unambiguous without touching the act under test.
UPSET = [("c", "This is the fourth time I've phoned about this and it's a joke."),
         ("c", "I'm completely fed up with your company."),
         ("c", "If it isn't sorted this week I'm taking my business elsewhere.")]
CALM_TRANSFER = [("c", "Hello, the invoices in our portal won't download."),
                 ("a", "Right, this needs to go to our second line support team.")]


def make_call(lines, call_id="t-call", gap=0.6, overlaps=None) -> Transcript:
    """lines: [("a"|"c", text)]; each turn lasts 0.06 s per character.  overlaps: {index:
    seconds} starts that turn that many seconds before the previous turn ends."""
    overlaps = overlaps or {}
    turns = []
    t = 0.5
    for i, (who, text) in enumerate(lines):
        dur = max(0.8, 0.06 * len(text))
        start = t
        if i in overlaps:
            start = turns[-1].end - overlaps[i]
        end = start + dur
        turns.append(Turn("agent" if who == "a" else "customer", round(start, 3), round(end, 3), text))
        t = end + gap
    return Transcript(call_id=call_id, duration_s=round(t + 0.8, 3), turns=tuple(turns),
                      models={"asr": "test-asr@1", "diarization": "test-diar@1"},
                      metadata={"agent_id": "a1", "team": "blue", "started_at": "2026-11-02T10:00:00Z"})


def check(report, name):
    for c in report["process_checks"]:
        if c["check"] == name:
            return c
    raise KeyError(name)


def risks(report):
    return {r["risk"] for r in report["risks"]}
