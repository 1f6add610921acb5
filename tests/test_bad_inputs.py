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

from badinputs import SIDECARS, corpus
from pipelines.flow import RunConfig, run

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
    shutil.copy(REPO / f"samples/calls/{GOOD}.json", src / f"{GOOD}.json")
    ray.shutdown()
    summary = run(RunConfig(input=str(src), output=str(out), max_duration_s=MAX_DURATION, num_cpus=2))
    ray.shutdown()
    failures = pl.read_parquet(out / "tables" / "failures")
    calls = pl.read_parquet(out / "tables" / "calls", hive_partitioning=True)
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
    assert all(failures["stage"].is_in(["read", "decode", "sidecar", "speech"]))


def test_the_good_call_beside_them_is_scored(outcome):
    _, summary, _, calls, out = outcome
    assert summary.scored == 1 and calls["call_id"].to_list() == [GOOD]
    assert (out / "transcripts" / f"{GOOD}.json").is_file()
    assert not [p for p in (out / "transcripts").iterdir() if p.stem != GOOD]
