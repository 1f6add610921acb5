"""The per-call HTML page, as a supervisor opens it: rendered by headless Chromium.

The report comes from the real scorer on one of our sample calls' truth turns, with a
hostile line planted in the transcript: it must show as text, never run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from callcoach.coaching.rules import default_ruleset
from callcoach.coaching.score import score_call
from callcoach.render import render_html
from callcoach.transcript import Transcript, Turn

REPO = Path(__file__).resolve().parent.parent
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("Chromium is not installed: scripts/setup.sh installs it (apt package chromium)")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    truth = json.loads((REPO / "samples/calls/sample-02-handoff.truth.json").read_text())
    turns = [Turn(t["speaker"], t["start"], t["end"], t["text"]) for t in truth["turns"]]
    turns[3] = Turn(turns[3].speaker, turns[3].start, turns[3].end, turns[3].text + " " + HOSTILE)
    transcript = Transcript("sample-02-handoff", truth["duration_s"], tuple(turns),
                            models={"asr": "truth", "diarization": "truth"},
                            metadata={"agent_id": "agt-7", "team": "parcels"})
    report = score_call(transcript, default_ruleset())
    out = tmp_path_factory.mktemp("html")
    path = out / "report.html"
    path.write_text(render_html(report, transcript), encoding="utf-8")
    return report, path, out


def _run(args, cwd):
    user_data = cwd / "profile"
    return subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={user_data}", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_page_renders_with_every_section(page):
    report, path, out = page
    dom = _run(["--dump-dom", path.as_uri()], out).stdout
    assert "<title>Call sample-02-handoff" in dom           # title untouched by the planted script
    for element in ('id="call-type"', 'id="timeline"', 'id="talk-ratio"', 'id="checks"',
                    'id="risks"', 'id="moments"', 'id="transcript"'):
        assert element in dom, element
    assert f">{report['call_type']}<" in dom
    for check in report["process_checks"]:
        assert check["check"] in dom
    for risk in report["risks"]:
        assert risk["risk"] in dom
    assert dom.count("Try:") >= sum(m["kind"] == "improvement" for m in report["moments"]) >= 1
    assert dom.count('<div class="turn ') == 8


def test_transcript_text_is_escaped_not_executed(page):
    _, path, out = page
    dom = _run(["--dump-dom", path.as_uri()], out).stdout
    assert "pwned" not in dom.split("<title>")[1].split("</title>")[0]
    assert "<script>" not in dom and "<img" not in dom
    assert "&lt;script&gt;" in dom                           # shown to the reader as text


def test_screenshot_shows_a_page(page):
    _, path, out = page
    shot = out / "report.png"
    result = _run([f"--screenshot={shot}", "--window-size=1100,1600", path.as_uri()], out)
    assert shot.is_file(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 30_000          # a blank or error page compresses to a few KB
