"""The `callcoach` command's console, as an operator sees it: a real subprocess over two
sample calls and a hidden file, with real Ray, decoding and Whisper.

  * a progress line comes as each call finishes: when the first `[1/2]` line arrives, the
    second call has not been transcribed yet (its transcript does not exist);
  * no known third-party chatter reaches the console (it is in the debug log instead);
  * a hidden input is not read, but counted (`skipped`) and given a failure row.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from callcoach.logs import NOISY_LINES

REPO = Path(__file__).resolve().parent.parent
CALLS = ("sample-02-handoff", "sample-04-handoff-good")
EXT = {"sample-02-handoff": ".wav", "sample-04-handoff-good": ".ogg"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    src, out = tmp_path_factory.mktemp("in"), tmp_path_factory.mktemp("out")
    debug = tmp_path_factory.mktemp("logs") / "debug.log"
    for name in CALLS:
        shutil.copy(REPO / "samples/calls" / f"{name}{EXT[name]}", src / f"{name}{EXT[name]}")
        shutil.copy(REPO / "samples/calls" / f"{name}.json", src / f"{name}.json")
    shutil.copy(REPO / "samples/calls/sample-02-handoff.wav", src / ".hidden.wav")
    cmd = [sys.executable, "-m", "callcoach.cli", "score", "--input", str(src), "--output", str(out),
           "--debug-log", str(debug)]
    env = dict(os.environ, RAY_ADDRESS="")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    stdout, seen_at_first = [], None
    for line in proc.stdout:                      # read as it comes
        stdout.append(line)
        if line.startswith("[1/2]") and seen_at_first is None:
            seen_at_first = sorted(p.stem for p in (out / "transcripts").glob("*.json"))
    stderr = proc.stderr.read()             # (Ray's and our logs are a few KB: no pipe stall)
    code = proc.wait(timeout=900)
    proc.stdout.close()
    proc.stderr.close()
    return {"code": code, "stdout": "".join(stdout), "stderr": stderr, "out": out,
            "debug": debug, "seen_at_first": seen_at_first}


def test_progress_line_as_each_call_finishes(console):
    assert console["code"] == 3, console["stderr"][-3000:]        # the hidden file: a failure row
    lines = [l for l in console["stdout"].splitlines() if re.match(r"\[\d/2\] ", l)]
    assert len(lines) == 2 and all("eta" in l for l in lines)
    assert console["seen_at_first"] is not None and len(console["seen_at_first"]) == 1


def test_no_third_party_chatter_on_the_console(console):
    noisy = [l for l in (console["stdout"] + console["stderr"]).splitlines() if NOISY_LINES.search(l)]
    assert not noisy, noisy
    assert "Warning" not in console["stderr"], console["stderr"][-3000:]
    assert console["debug"].is_file() and console["debug"].stat().st_size > 0
    assert f"debug log: {console['debug']}" in console["stdout"]


def test_a_hidden_input_is_counted_and_gets_a_failure_row(console):
    summary = json.loads(next(l for l in console["stdout"].splitlines() if l.startswith("{")))
    assert (summary["scored"], summary["skipped"], summary["failed"]) == (2, 1, 1)
    failures = pl.read_delta(str(console["out"] / "tables" / "failures"))
    assert failures["source_key"].to_list() == [".hidden.wav"]
    assert failures["stage"].to_list() == ["key"] and "hidden" in failures["reason"][0]
    assert "failed: " in console["stdout"] and ".hidden.wav" in console["stdout"]
    assert (console["out"] / "dashboard.html").is_file()
