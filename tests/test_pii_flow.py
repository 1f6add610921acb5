"""Nothing unredacted is written: a transcript stored before redaction (a legacy archive)
is re-scored through the real Ray flow, and every file the run writes -- transcript,
report JSON and HTML, Parquet tables, ledger, run summary -- is searched for the seeded
values.  (The speech stage itself is covered on rendered audio in test_pii_audio.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callcoach.flow import RunConfig, run
from callcoach.pii import PiiConfig
from callcoach.transcript import Transcript, Turn

REPO = Path(__file__).resolve().parent.parent
CARD = "4539 1488 0343 6467"          # Luhn-valid test number
EMAIL = "jane.doe@example.com"
PHONE = "020 7946 0958"
SEEDED = ("4539", "1488", "0343", "6467", "jane.doe", "example.com", "7946", "0958")

pytestmark = pytest.mark.slow


def _legacy_transcript() -> Transcript:
    truth = json.loads((REPO / "samples/calls/sample-04-handoff-good.truth.json").read_text())
    turns = [Turn(t["speaker"], t["start"], t["end"], t["text"]) for t in truth["turns"]]
    c = turns[1]
    turns[1] = Turn(c.speaker, c.start, c.end,
                    f"{c.text} My card is {CARD}, email {EMAIL}, call me on {PHONE}.")
    return Transcript("legacy-call", truth["duration_s"], tuple(turns),
                      models={"asr": "legacy", "diarization": "legacy"},
                      audio={"source_key": "legacy-call.wav", "etag": "e", "size": 1},
                      metadata={"agent_id": "a1", "team": "t1",
                                "started_at": "2026-11-20T10:00:00+00:00"})


def _everything_written(out: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    import ray

    results = {}
    for label, pii in (("redacted", PiiConfig()), ("off", PiiConfig(enabled=False))):
        out = tmp_path_factory.mktemp(label)
        (out / "transcripts").mkdir()
        (out / "transcripts" / "legacy-call.json").write_bytes(_legacy_transcript().to_json())
        ray.shutdown()
        summary = run(RunConfig(input="", output=str(out), num_cpus=2, pii=pii), rescore_only=True)
        results[label] = (out, summary)
    ray.shutdown()
    return results


def test_no_seeded_value_survives_in_any_output(outputs):
    out, summary = outputs["redacted"]
    assert summary.rescored == 1 and summary.failed == 0
    written = _everything_written(out)
    for value in SEEDED:
        assert value.encode() not in written, value
    stored = Transcript.from_json((out / "transcripts" / "legacy-call.json").read_bytes())
    text = " ".join(t.text for t in stored.turns)
    assert "[CARD_NUMBER]" in text and "[EMAIL]" in text and "[PHONE]" in text
    assert stored.features is not None                     # recomputed on the redacted text
    assert summary.pii_redacted["CARD_NUMBER"] == 1 and summary.pii_redacted["EMAIL"] == 1
    assert stored.models["pii"].startswith("callcoach-pii@")


def test_the_agent_ticket_reference_survives_redaction(outputs):
    out, _ = outputs["redacted"]
    report = json.loads(next((out / "reports").glob("*/legacy-call.json")).read_text())
    ticket = [c for c in report["process_checks"] if c["check"] == "ticket_reference_provided"][0]
    assert ticket["passed"] is True


def test_redaction_can_be_switched_off_and_then_values_are_kept(outputs):
    out, summary = outputs["off"]
    assert summary.rescored == 1
    assert CARD.encode() in (out / "transcripts" / "legacy-call.json").read_bytes()
