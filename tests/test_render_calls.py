"""scripts/render_calls.py: scripted calls -> audio + ground truth, and the committed samples."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from callcoach.audio import decode

ROOT = Path(__file__).resolve().parents[1]
RENDER = ROOT / "scripts" / "render_calls.py"
SAMPLES = ROOT / "samples"

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are not installed (apt-get install -y espeak-ng sox)")


def tiny_script(call_id: str, fmt: str = "flac", layout: str = "mono", rate: int = 16000,
                **label_overrides) -> dict:
    """A 2-turn standard call; the customer cuts in 0.4 s before the agent finishes."""
    labels = {"call_type": "standard", "checks": {}, "risks": [], "agent_interruptions": 0,
              "customer_interruptions": 1, "notes": "tiny test call with one customer interruption"}
    labels.update(label_overrides)
    return {
        "call_id": call_id, "company": "Testco", "industry": "testing", "seed": 7,
        "voices": {"agent": {"voice": "en-us+f2", "pitch": 64, "speed": 175},
                   "customer": {"voice": "en-gb+m3", "pitch": 40, "speed": 165}},
        "lead_in": 0.5, "tail": 0.8, "pause_after": 0.6, "pause_jitter": 0.1,
        "output": {"format": fmt, "layout": layout, "rate": rate},
        "metadata": {"agent_id": "agt-test", "team": "team-test",
                     "started_at": "2025-03-04T10:00:00+00:00"},
        "labels": labels,
        "turns": [
            {"speaker": "agent", "text": "Thank you for calling Testco, this is Anna, how can I help?"},
            {"speaker": "customer", "overlap": 0.4, "text": "Hi Anna, I'd like to check my order, please."},
        ],
    }


def write_script(folder: Path, script: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{script['call_id']}.yaml"
    path.write_text(yaml.safe_dump(script, sort_keys=False), encoding="utf-8")
    return path


def run_renderer(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RENDER), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def span(t: dict) -> slice:
    return slice(int(round(t["start"] * 16000)), int(round(t["end"] * 16000)))


@needs_espeak
@pytest.mark.parametrize("fmt,layout,rate", [("flac", "mono", 16000), ("wav", "stereo", 8000),
                                             ("mp3", "mono", 16000), ("ogg", "mono", 16000)])
def test_render_tiny_call_audio_matches_truth(tmp_path, fmt, layout, rate):
    script = tiny_script(f"tiny-{fmt}", fmt, layout, rate)
    write_script(tmp_path / "scripts", script)
    out = tmp_path / "out"
    proc = run_renderer(tmp_path / "scripts", out)
    assert proc.returncode == 0, proc.stderr

    name = script["call_id"]
    truth = json.loads((out / f"{name}.truth.json").read_text())
    audio = decode((out / f"{name}.{fmt}").read_bytes())
    channels = 2 if layout == "stereo" else 1
    assert audio.channels == channels == truth["audio"]["channels"]
    assert audio.source_rate == rate or fmt == "ogg"          # opus always decodes at 48 kHz
    assert abs(audio.duration_s - truth["duration_s"]) < 0.02

    agent, customer = truth["turns"]
    assert [agent["speaker"], customer["speaker"]] == ["agent", "customer"]
    assert agent["start"] == pytest.approx(0.5, abs=1e-3)
    assert truth["duration_s"] == pytest.approx(max(agent["end"], customer["end"]) + 0.8, abs=2e-3)
    assert agent["text"] == script["turns"][0]["text"]

    # The speech is where the truth says it is: silence before the first turn and after the last.
    mono = audio.mono().astype(np.float64)
    rms = lambda x: float(np.sqrt(np.mean(x ** 2))) if len(x) else 0.0  # noqa: E731
    assert rms(mono[span(agent)]) > 0.01
    assert rms(mono[span(customer)]) > 0.01
    assert rms(mono[: int(0.45 * 16000)]) < 1e-3
    assert rms(mono[int((customer["end"] + 0.05) * 16000):]) < 1e-3
    if channels == 2:                                       # left = agent, right = customer
        assert rms(audio.samples[0][span(agent)]) > 0.01
        assert rms(audio.samples[1][: span(customer).start]) < 1e-3
        assert rms(audio.samples[0][span(agent).stop + 800:]) < 1e-3

    sidecar = json.loads((out / f"{name}.json").read_text())
    assert sidecar["agent_id"] == "agt-test" and sidecar["team"] == "team-test"
    assert sidecar["started_at"] == "2025-03-04T10:00:00+00:00"
    assert ("agent_channel" in sidecar) == (channels == 2)
    assert sidecar["company"] == "Testco"                  # context for the recogniser


@needs_espeak
def test_overlap_is_an_interruption_in_the_truth(tmp_path):
    script = tiny_script("tiny-overlap")
    write_script(tmp_path / "scripts", script)
    proc = run_renderer(tmp_path / "scripts", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    truth = json.loads((tmp_path / "out" / "tiny-overlap.truth.json").read_text())
    agent, customer = truth["turns"]
    assert customer["overlap_s"] == 0.4
    assert customer["start"] == pytest.approx(agent["end"] - 0.4, abs=1e-3)
    assert truth["interruptions"] == {"agent": 0, "customer": 1}
    assert truth["overlaps"] == [{"turn": 1, "interrupter": "customer", "interrupted": "agent",
                                  "interrupted_turn": 0, "start": customer["start"],
                                  "end": agent["end"], "duration": 0.4}]
    assert truth["speech_s"] == pytest.approx(customer["end"] - agent["start"], abs=2e-3)
    tr = truth["talk_ratio"]
    assert tr["agent_speech_s"] == pytest.approx(agent["end"] - agent["start"], abs=2e-3)
    assert tr["agent"] + tr["customer"] == pytest.approx(1.0)
    assert truth["labels"] == script["labels"]


@needs_espeak
def test_render_is_byte_reproducible(tmp_path):
    write_script(tmp_path / "scripts", tiny_script("tiny-repro", "mp3"))
    digests = []
    for out in ("a", "b"):
        assert run_renderer(tmp_path / "scripts", tmp_path / out).returncode == 0
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted((tmp_path / out).iterdir())})
    assert digests[0] == digests[1] and len(digests[0]) == 3


def test_check_accepts_a_valid_script(tmp_path):
    write_script(tmp_path, tiny_script("tiny-ok"))
    proc = run_renderer("--check", tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("overrides,needle", [
    ({"risks": ["customer_was_rude"]}, "customer_was_rude"),
    ({"call_type": "complaint"}, "complaint"),
    ({"call_type": "handoff", "checks": {"issue_acknowledged": True}}, "issue_acknowledged"),
    ({"customer_interruptions": 0}, "customer_interruptions"),
])
def test_check_rejects_labels_outside_the_contract(tmp_path, overrides, needle):
    write_script(tmp_path, tiny_script("tiny-bad", **overrides))
    proc = run_renderer("--check", tmp_path)
    assert proc.returncode == 1
    assert needle in proc.stderr


HANDOFF_CHECKS = {"issue_recap_given": True, "impact_assessed": False, "ownership_stated": True,
                  "specific_timeframe_given": True, "ticket_reference_provided": True,
                  "issue_documented": False, "warm_handoff": False, "expectations_set": True}


@pytest.mark.parametrize("warm,risks,ok", [
    (False, [], False),                             # neither documented nor warm: risk required
    (False, ["customer_must_reexplain"], True),
    (True, [], True),
    (True, ["customer_must_reexplain"], True),      # warm, but told to explain it all again
])
def test_check_customer_must_reexplain_as_labeling_md_defines_it(tmp_path, warm, risks, ok):
    script = tiny_script("tiny-ho", call_type="handoff", risks=risks,
                         checks=dict(HANDOFF_CHECKS, warm_handoff=warm))
    write_script(tmp_path, script)
    proc = run_renderer("--check", tmp_path)
    assert (proc.returncode == 0) == ok, proc.stderr
    if not ok:
        assert "customer_must_reexplain" in proc.stderr


def test_committed_sample_scripts_pass_check():
    proc = run_renderer("--check", SAMPLES / "scripts")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", sorted((SAMPLES / "scripts").glob("*.yaml")), ids=lambda p: p.stem)
def test_committed_sample_audio_matches_its_truth(script):
    calls = SAMPLES / "calls"
    truth = json.loads((calls / f"{script.stem}.truth.json").read_text())
    spec = yaml.safe_load(script.read_text())
    assert truth["labels"] == spec["labels"]
    assert [t["text"] for t in truth["turns"]] == [t["text"] for t in spec["turns"]]
    audio = decode((calls / truth["audio"]["file"]).read_bytes())
    assert audio.channels == (2 if spec["output"]["layout"] == "stereo" else 1)
    assert abs(audio.duration_s - truth["duration_s"]) < 0.1
    sidecar = json.loads((calls / f"{script.stem}.json").read_text())
    assert {"agent_id", "team", "started_at", "company"} <= set(sidecar)
