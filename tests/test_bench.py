"""The benchmark tooling (scripts/bench) stays runnable.

Figures are not asserted here (they are benchmarks, reported in notes and in
scripts/bench/RESULTS.md); what is asserted is what those figures rest on: the seeded
archive is one a real rescore accepts and re-scores whole, and the GPU script refuses
clearly, without touching results, on a machine without a usable GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_seeded_archive_is_a_real_archive_the_rescore_path_reads(tmp_path):
    from callcoach.ledger import load
    from callcoach.storage import open_store
    from callcoach.transcript import Transcript
    from scripts.bench.common import seed_archive

    facts = seed_archive(tmp_path / "a", 12, seed=3)
    files = sorted((tmp_path / "a" / "transcripts").glob("*.json"))
    assert facts["n"] == 12 and len(files) == 12
    ledger, _, _ = load(open_store(str(tmp_path / "a")))
    assert sorted(ledger) == sorted(f.stem for f in files)
    assert {e.ruleset_version for e in ledger.values()} == {"old-00000000"}   # all stale
    tr = Transcript.from_dict(json.loads(files[0].read_bytes()))
    assert tr.turns and all(t.words for t in tr.turns)          # word timings, as stored
    assert {t.speaker for t in tr.turns} == {"agent", "customer"}
    # same seed, same archive: benchmark runs compare like with like
    seed_archive(tmp_path / "b", 12, seed=3)
    assert [f.read_bytes() for f in files] == \
        [(tmp_path / "b" / "transcripts" / f.name).read_bytes() for f in files]


@pytest.mark.skipif(Path("/dev/nvidia0").exists(), reason="a GPU is present")
def test_gpu_benchmark_refuses_without_a_gpu_and_writes_no_result(tmp_path):
    out = REPO / "scripts" / "bench" / "out" / "gpu-refusal-test.json"
    p = subprocess.run([sys.executable, "-m", "scripts.bench.gpu", "--device", "cuda",
                        "--files", str(REPO / "samples" / "calls" / "sample-02-handoff.wav"),
                        "--output", str(tmp_path / "o"), "--result-name", out.stem],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "no usable CUDA GPU" in p.stderr + p.stdout
    assert not out.exists() and not (tmp_path / "o").exists()
