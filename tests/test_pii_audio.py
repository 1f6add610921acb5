"""PII redaction on real speech: a scripted call rendered with espeak-ng, transcribed by the
real speech stage (Whisper base, channel diarization), then redacted.

The customer reads a Luhn-valid card number digit by digit, a London phone number and an
e-mail address; the agent gives a case number.  Whisper base writes the card as
"4716 2093 5581 7721", the phone as "020 -7946 -1234" and the address as
"Peter Jones at Outlook .com": the test first checks the ASR really heard them (else a
redactor that does nothing would pass), then that none survive in the text or the words,
while the agent's case number does.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from callcoach.audio import decode
from callcoach.pii import CARD_NUMBER, EMAIL, PHONE, redact_transcript

ROOT = Path(__file__).resolve().parents[1]
RENDER = ROOT / "scripts" / "render_calls.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                       reason="espeak-ng and sox are not installed "
                              "(apt-get install -y espeak-ng sox)"),
]

CARD = "4716209355817721"          # Luhn-valid, read in groups of four
SCRIPT = {
    "call_id": "pii-payment", "company": "Northgate Telecom", "industry": "telecoms",
    "seed": 11,
    "voices": {"agent": {"voice": "en-gb+m3", "pitch": 42, "speed": 165},
               "customer": {"voice": "en-us+f2", "pitch": 64, "speed": 145}},
    "lead_in": 0.5, "tail": 0.8, "pause_after": 0.5, "pause_jitter": 0.1,
    # stereo: the channels diarizer, so the test is about redaction, not speaker turns
    "output": {"format": "wav", "layout": "stereo", "rate": 16000},
    "metadata": {"agent_id": "agt-pii", "team": "team-pii",
                 "started_at": "2025-03-04T10:00:00+00:00"},
    "labels": {"call_type": "standard", "checks": {}, "risks": [], "agent_interruptions": 0,
               "customer_interruptions": 0, "notes": "customer reads card, phone and e-mail"},
    "turns": [
        {"speaker": "agent",
         "text": "Thank you for calling Northgate Telecom, this is Ruth, how can I help?"},
        {"speaker": "customer",
         "text": "Hi Ruth, I'd like to pay my bill. My card is four seven one six, two oh nine "
                 "three, five five eight one, seven seven two one."},
        {"speaker": "agent",
         "text": "Thank you, that's paid. Your case number is seven seven three one nine. "
                 "What's the best phone number and email for you?"},
        {"speaker": "customer",
         "text": "Call me on oh two oh, seven nine four six, one two three four. You can email "
                 "me at peter jones at outlook dot com."},
    ],
}
DIGIT_WORDS = re.compile(r"\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double)\b",
                         re.I)


@pytest.fixture(scope="module")
def transcript(tmp_path_factory):
    from callcoach.speech.stage import SpeechConfig, SpeechStage

    tmp = tmp_path_factory.mktemp("pii-audio")
    (tmp / "scripts").mkdir()
    (tmp / "scripts" / "pii-payment.yaml").write_text(yaml.safe_dump(SCRIPT, sort_keys=False))
    proc = subprocess.run([sys.executable, str(RENDER), str(tmp / "scripts"), str(tmp / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    audio = decode((tmp / "out" / "pii-payment.wav").read_bytes())
    sidecar = json.loads((tmp / "out" / "pii-payment.json").read_text())
    tr, _ = SpeechStage(SpeechConfig())(audio, "pii-payment", sidecar)
    return tr


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def test_asr_heard_the_seeded_values(transcript):
    """Guards the test itself: what must be redacted is really in the raw transcript."""
    speakers = [t.speaker for t in transcript.turns]
    assert speakers == ["agent", "customer", "agent", "customer"]
    cust = " ".join(t.text for t in transcript.turns if t.speaker == "customer")
    assert CARD in _digits(cust)
    assert "7946" in _digits(cust) and "1234" in _digits(cust)
    assert "outlook" in cust.lower() and "jones" in cust.lower()
    assert "77319" in transcript.turns[2].text


def test_redacted_call_keeps_no_seeded_value(transcript):
    red, counts = redact_transcript(transcript)
    assert counts[CARD_NUMBER] == 1 and counts[PHONE] == 1 and counts[EMAIL] == 1
    for turn in red.turns:
        texts = [turn.text, " ".join(w.w for w in turn.words)]
        if turn.speaker == "customer":
            for s in texts:
                assert _digits(s) == "", s               # no card or phone digit left
                assert not DIGIT_WORDS.search(s), s
                assert "outlook" not in s.lower() and "jones" not in s.lower(), s
                assert "peter" not in s.lower(), s
        assert texts[0] == texts[1]                     # words say what the text says
    stored = red.to_json().decode()
    assert CARD[:4] not in stored and "7946" not in stored and "outlook" not in stored.lower()
    # the agent's case number survives, in the text and in the words
    agent = red.turns[2]
    assert "case number is 77319" in agent.text
    assert any(w.w.startswith("77319") for w in agent.words)
    # the redacted words keep the timeline: one word per value, spanning the original ones
    card_words = [w for w in red.turns[1].words if w.w.startswith("[CARD_NUMBER]")]
    assert len(card_words) == 1
    raw_card = [w for w in transcript.turns[1].words if _digits(w.w)]
    assert card_words[0].start == raw_card[0].start and card_words[0].end == raw_card[-1].end
