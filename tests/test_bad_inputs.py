"""One nightly run over a corpus of malformed and hostile recordings beside a good call.

Every bad input becomes exactly one failure row whose reason says what is wrong; the good
call is scored; the run finishes (exit code 'partial'), nothing hangs, and nothing else is
lost.  Real Ray, real decoding, real speech stage for inputs that decode.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from badinputs import SIDECARS, WARNED, corpus
from callcoach.flow import RunConfig, run

REPO = Path(__file__).resolve().parent.parent
GOOD = "sample-02-handoff"
MAX_DURATION = 60.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    import ray

    src, out = tmp_path_factory.mktemp("bad-in"), tmp_path_factory.mktemp("bad-out")
    cases = corpus(MAX_DURATION)
    for name, (data, _) in cases.items():
        (src / name).write_bytes(data)
    for name, data in SIDECARS.items():
        (src / name).write_bytes(data)
    shutil.copy(REPO / f"samples/calls/{GOOD}.wav", src / f"{GOOD}.wav")
    for name in WARNED:
        shutil.copy(REPO / f"samples/calls/{GOOD}.wav", src / f"{name}.wav")
    shutil.copy(REPO / f"samples/calls/{GOOD}.json", src / f"{GOOD}.json")
    ray.shutdown()
    summary = run(RunConfig(input=str(src), output=str(out), max_duration_s=MAX_DURATION, num_cpus=2))
    ray.shutdown()
    failures = pl.read_delta(str(out / "tables" / "failures"))
    calls = pl.read_delta(str(out / "tables" / "calls"))
    return cases, summary, failures, calls, out


def test_corpus_is_large_enough(outcome):
    cases, *_ = outcome
    assert len(cases) >= 30


def test_every_bad_input_is_one_failure_row_with_a_clear_reason(outcome):
    cases, summary, failures, _, _ = outcome
    reasons = dict(zip(failures["source_key"], failures["reason"]))
    assert len(failures) == len(reasons) == len(cases)            # one row each, no duplicates
    unexplained = {name: reasons.get(name) for name, (_, words) in cases.items()
                   if not any(w.lower() in (reasons.get(name) or "").lower() for w in words)}
    assert not unexplained, unexplained
    assert summary.failed == len(cases)
    assert all(failures["stage"].is_in(["read", "decode", "speech"]))


def test_the_good_call_beside_them_is_scored(outcome):
    _, summary, _, calls, out = outcome
    assert summary.scored == 1 + len(WARNED)
    assert sorted(calls["call_id"]) == sorted([GOOD, *WARNED])
    assert (out / "transcripts" / f"{GOOD}.json").is_file()
    assert not [p for p in (out / "transcripts").iterdir() if p.stem not in (GOOD, *WARNED)]


def test_a_bad_sidecar_gives_a_scored_call_with_a_metadata_warning(outcome):
    import json

    _, _, failures, calls, out = outcome
    assert not set(WARNED) & set(failures["call_id"])
    warnings = dict(zip(calls["call_id"], calls["metadata_warning"]))
    assert warnings[GOOD] is None
    version = calls["ruleset_version"][0]
    for name in WARNED:
        assert f"sidecar {name}.json ignored" in warnings[name]
        report = json.loads((out / "reports" / version / f"{name}.json").read_text())
        assert report["metadata_warning"] == warnings[name]
        assert "sidecar" in (out / "reports" / version / f"{name}.html").read_text()
        row = calls.filter(pl.col("call_id") == name).row(0, named=True)
        assert row["agent_id"] is None and row["day"] is not None      # day: the file's time
        assert row["day_source"] == "object_mtime"
