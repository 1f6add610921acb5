"""The candidate gate (scripts/gate.py): the behaviour tests run with a candidate rule file
or act model in place of the shipped one, on a copy of the working tree, and a candidate
that breaks a behaviour is refused.  Real pytest runs on the real engine; the candidates
are made here."""
from __future__ import annotations

import shutil

import pytest

from callcoach.coaching.acts import MODEL_DIR
from callcoach.coaching.rules import DEFAULT_RULES
from scripts.gate import MODEL_FILES, gate

FAST = ("tests/test_insights_detect.py",)


def test_the_shipped_engine_passes_and_nothing_in_the_tree_changes():
    before = DEFAULT_RULES.read_bytes(), (MODEL_DIR / "acts.npz").read_bytes()
    res = gate(tests=FAST)
    assert res.passed and not res.failed and "passed" in res.summary
    assert (DEFAULT_RULES.read_bytes(), (MODEL_DIR / "acts.npz").read_bytes()) == before


def test_a_rule_file_that_types_an_upset_caller_standard_is_refused(tmp_path):
    """Call-type confidences no call reaches: the insights series' upset callers are typed
    standard, which those tests pin."""
    text = DEFAULT_RULES.read_text()
    bad = tmp_path / "cand.yaml"
    bad.write_text(text.replace("min_confidence: {escalation: 0.5, handoff: 0.7}",
                                "min_confidence: {escalation: 0.99, handoff: 0.99}"))
    assert bad.read_text() != text
    res = gate(rules=bad, tests=FAST)
    assert not res.passed
    assert res.failed and all(f.startswith("tests/test_insights_detect.py::") for f in res.failed)


def test_the_candidate_model_is_the_one_the_tests_read(tmp_path):
    """A model directory whose npz does not match its acts.json checksum fails every test
    that loads it: the copy, not the shipped model, is what ran."""
    for n in MODEL_FILES:
        shutil.copyfile(MODEL_DIR / n, tmp_path / n)
    blob = bytearray((tmp_path / "acts.npz").read_bytes())
    blob[-100] ^= 0xFF
    (tmp_path / "acts.npz").write_bytes(bytes(blob))
    res = gate(model=tmp_path, tests=FAST)
    assert not res.passed and res.failed


def test_a_missing_candidate_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no rule file"):
        gate(rules=tmp_path / "nope.yaml", tests=FAST)
    with pytest.raises(FileNotFoundError, match="not an act model directory"):
        gate(model=tmp_path, tests=FAST)
