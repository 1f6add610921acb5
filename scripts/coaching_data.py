"""The coaching engine's data: the act corpus and the labelled whole calls, with their splits.

    samples/corpus/acts/*.jsonl     utterances labelled with acts (ACTS.md)
    samples/labeled/<author>/*.yaml whole calls with contract labels (LABELING.md)
    samples/labeled/splits.yaml     train / test by author, locked before training
    samples/labeled/asr/<id>.json   the speech stage's transcript of each rendered call

Used by scripts/train_acts.py and scripts/eval_engine.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import yaml

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = ROOT / "samples" / "corpus" / "acts"
CALLS_DIR = ROOT / "samples" / "labeled"
ASR_DIR = CALLS_DIR / "asr"
AUDIO_DIR = CALLS_DIR / "audio"          # renders (git-ignored): audio, truth, sidecar


def load_corpus(directory: Path = CORPUS_DIR) -> list[dict]:
    """Every utterance of the act corpus, validated."""
    from pipelines.coaching.acts import ACT_SPEAKER
    out: list[dict] = []
    seen: set[str] = set()
    for p in sorted(directory.glob("*.jsonl")):
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError as e:
                raise SystemExit(f"{p}:{n}: not JSON: {e}")
            if r.get("speaker") not in ("agent", "customer") or not str(r.get("text", "")).strip():
                raise SystemExit(f"{p}:{n}: needs speaker agent|customer and text")
            bad = [a for a in r.get("acts", []) if ACT_SPEAKER.get(a) != r["speaker"]]
            if bad:
                raise SystemExit(f"{p}:{n}: acts {bad} are not {r['speaker']} acts")
            if r["id"] in seen:
                raise SystemExit(f"{p}:{n}: duplicate id {r['id']}")
            seen.add(r["id"])
            r.setdefault("context", "")
            r.setdefault("author", p.stem)
            out.append(r)
    return out


def splits() -> dict[str, list[str]]:
    return yaml.safe_load((CALLS_DIR / "splits.yaml").read_text())


def call_scripts(split: str | None = None) -> Iterator[tuple[str, Path, dict]]:
    """(author, path, script) of every labelled call, of one split or all."""
    sp = splits()
    authors = sp[split] if split else sp["train"] + sp["test"]
    for author in authors:
        for p in sorted((CALLS_DIR / author).glob("*.yaml")):
            yield author, p, yaml.safe_load(p.read_text(encoding="utf-8"))


def script_transcript(script: dict):
    """A transcript straight from a script's turns (times from word counts): enough for
    text-only uses such as training the call head; the renders' truth has exact times."""
    from pipelines.transcript import Transcript, Turn
    t = 0.5
    turns = []
    for turn in script["turns"]:
        words = max(1, len(str(turn["text"]).split()))
        d = 0.35 * words
        start = t - float(turn.get("overlap", 0.0))
        turns.append(Turn(turn["speaker"], start, start + d, str(turn["text"])))
        t = start + d + 0.5
    return Transcript(call_id=script["call_id"], duration_s=t, turns=tuple(turns),
                      models={"asr": "script", "diarization": "script"}, language="en",
                      metadata=dict(script.get("metadata") or {}))


def truth_transcript(call_id: str):
    """The render's exact truth (text and times), or None when the call is not rendered."""
    p = AUDIO_DIR / f"{call_id}.truth.json"
    if not p.exists():
        return None
    from pipelines.transcript import Transcript, Turn
    d = json.loads(p.read_text())
    turns = tuple(Turn(t["speaker"], float(t["start"]), float(t["end"]), t["text"]) for t in d["turns"])
    return Transcript(call_id=d["call_id"], duration_s=float(d["duration_s"]),
                      turns=tuple(sorted(turns, key=lambda t: (t.start, t.end))),
                      models={"asr": "truth", "diarization": "truth"}, language="en")


def plain_text(text: str) -> str:
    """Text as a recogniser without punctuation writes it: lower case, no punctuation."""
    import re
    return " ".join(re.sub(r"[^\w' ]+", " ", text.lower()).split())


def plain_transcript(tr):
    """The same transcript in lower case without punctuation."""
    from pipelines.transcript import Transcript, Turn
    return Transcript(tr.call_id, tr.duration_s,
                      tuple(Turn(t.speaker, t.start, t.end, plain_text(t.text)) for t in tr.turns),
                      models=tr.models, language=tr.language, metadata=tr.metadata)


def truth_doc(call_id: str) -> dict | None:
    p = AUDIO_DIR / f"{call_id}.truth.json"
    return json.loads(p.read_text()) if p.exists() else None


def asr_transcript(call_id: str):
    """The speech stage's transcript of the rendered call, or None."""
    p = ASR_DIR / f"{call_id}.json"
    if not p.exists():
        return None
    from pipelines.transcript import Transcript
    d = json.loads(p.read_text())
    d.pop("features", None)
    return Transcript.from_dict(d)


def insights_dev_calls() -> list[tuple[object, str]]:
    """(transcript, call type) of the insights set's dev calls (samples/insights, set: dev):
    labelled with call types, usable for choices; its heldout calls are never returned."""
    from scripts.eval_insights import load_calls, to_transcript
    return [(to_transcript(d), d["labels"]["call_type"])
            for d in load_calls(ROOT / "samples" / "insights") if d.get("set", "dev") == "dev"]
