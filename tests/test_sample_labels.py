"""README's four sample calls, scored from their exact script text: the report must carry
the verdicts each script was written to have (call type, every check, every risk).  The
same holds from audio for the two calls the end-to-end test transcribes (test_e2e.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipelines.coaching.score import score_batch
from pipelines.transcript import Transcript, Turn

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
NAMES = sorted(p.stem for p in (SAMPLES / "scripts").glob("*.yaml"))


@pytest.fixture(scope="module")
def reports():
    trs = []
    for name in NAMES:
        d = json.loads((SAMPLES / "calls" / f"{name}.truth.json").read_text())
        trs.append(Transcript(name, float(d["duration_s"]),
                              tuple(Turn(t["speaker"], t["start"], t["end"], t["text"]) for t in d["turns"])))
    return {r["call_id"]: r for r in score_batch([(t, None) for t in trs])}


@pytest.mark.parametrize("name", NAMES)
def test_sample_report_matches_its_script(reports, name):
    labels = yaml.safe_load((SAMPLES / "scripts" / f"{name}.yaml").read_text())["labels"]
    r = reports[name]
    assert r["call_type"] == labels["call_type"]
    assert {c["check"]: c["passed"] for c in r["process_checks"]} == labels["checks"]
    assert {x["risk"] for x in r["risks"]} == set(labels["risks"])
    assert r["tone"]["interruptions"] == labels["agent_interruptions"]
    assert r["tone"]["customer_interruptions"] == labels["customer_interruptions"]
