"""The development calls (../shared/dev-calls) are a smoke test, not a target: no sentence of
theirs may be copied into a test, a rule file, the act corpus, the labelled calls or the
sample scripts.  Everyday phrases ("can I take your postcode", "bear with me") are shared by any two
contact-centre texts, so the check is on whole sentences of six words or more, compared as
lower-case words without punctuation."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEV_CALLS = Path(os.environ.get("CALLCOACH_DEV_CALLS", REPO.parent / "shared" / "dev-calls"))
MIN_WORDS = 6

# Where a copied sentence would turn a measurement into a self-fulfilling one.
GUARDED = ("tests/*.py", "pipelines/callcoach/rules/*.yaml", "samples/scripts/*.yaml",
           "samples/corpus/acts/*.jsonl", "samples/corpus/answers/*.jsonl", "samples/corpus/unused/*.jsonl",
           "samples/labeled/author-*/*.yaml", "samples/insights/*.yaml")


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("\u2019", "'")).split())


def dev_sentences(directory: Path) -> set[str]:
    out = set()
    for p in sorted(directory.glob("*.truth.json")):
        for turn in json.loads(p.read_text()).get("turns", []):
            for s in re.split(r"(?<=[.?!])\s+", turn.get("text", "")):
                w = _words(s)
                if len(w.split()) >= MIN_WORDS:
                    out.add(w)
    return out


def copied(sentences: set[str], text: str) -> list[str]:
    hay = f" {_words(text)} "
    return sorted(s for s in sentences if f" {s} " in hay)


def test_the_check_finds_a_copied_sentence():
    sents = {"the parcel was left at the wrong door again"}
    assert copied(sents, "Agent: OK. The parcel was left at the wrong door, again!") == sorted(sents)
    assert copied(sents, "the parcel was left at the right door again") == []


@pytest.mark.skipif(not DEV_CALLS.is_dir(), reason=f"no development calls at {DEV_CALLS}")
def test_no_dev_call_sentence_is_copied_into_our_data_tests_or_rules():
    sents = dev_sentences(DEV_CALLS)
    assert len(sents) > 50, f"too few dev-call sentences read from {DEV_CALLS}"
    hits = {}
    for pattern in GUARDED:
        for p in sorted(REPO.glob(pattern)):
            if p.name == Path(__file__).name:
                continue
            found = copied(sents, p.read_text(encoding="utf-8"))
            if found:
                hits[str(p.relative_to(REPO))] = found
    assert not hits, hits
