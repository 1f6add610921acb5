"""The coaching engine's data: the act corpus and the labelled whole calls, with their splits.

    samples/corpus/acts/*.jsonl     utterances labelled with acts (ACTS.md)
    samples/labeled/<author>/*.yaml whole calls with contract labels (LABELING.md)
    samples/labeled/splits.yaml     train / test by author, locked before training
    samples/labeled/asr/<id>.json   the speech stage's transcript of each rendered call
    samples/labeled/acts/<author>.jsonl  acts of every sentence of the TRAIN split's calls
    samples/labeled/concerns/<author>.jsonl  their customers' concerns and the agent sentence
                                    that answers each (or null)
    samples/corpus/episodes/*.jsonl stretches of calls around one concern, answered or not
                                    (scripts/check_episodes.py)

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
CALL_ACTS_DIR = CALLS_DIR / "acts"
CONCERNS_DIR = CALLS_DIR / "concerns"
EPISODES_DIR = ROOT / "samples" / "corpus" / "episodes"


def load_corpus(directory: Path = CORPUS_DIR) -> list[dict]:
    """Every utterance of the act corpus, validated."""
    from callcoach.coaching.acts import ACT_SPEAKER
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


def call_scripts(split: str | None = None, authors=None) -> Iterator[tuple[str, Path, dict]]:
    """(author, path, script) of every labelled call, of one split or all (only of the
    authors in ``authors`` when given; the others' files are not read)."""
    sp = splits()
    for author in sp[split] if split else sp["train"] + sp["test"]:
        if authors is not None and author not in authors:
            continue
        for p in sorted((CALLS_DIR / author).glob("*.yaml")):
            yield author, p, yaml.safe_load(p.read_text(encoding="utf-8"))


def script_transcript(script: dict):
    """A transcript straight from a script's turns (times from word counts): enough for
    text-only uses such as training the call head; the renders' truth has exact times."""
    from callcoach.transcript import Transcript, Turn
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
    from callcoach.transcript import Transcript, Turn
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
    from callcoach.transcript import Transcript, Turn
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
    from callcoach.transcript import Transcript
    d = json.loads(p.read_text())
    d.pop("features", None)
    return Transcript.from_dict(d)


def insights_dev_calls() -> list[tuple[object, str]]:
    """(transcript, call type) of the insights set's dev calls (samples/insights, set: dev):
    labelled with call types, usable for choices; its heldout calls are never returned."""
    from scripts.eval_insights import load_calls, to_transcript
    return [(to_transcript(d), d["labels"]["call_type"])
            for d in load_calls(ROOT / "samples" / "insights") if d.get("set", "dev") == "dev"]


def call_text(script: dict):
    """A call's exact text: the render's truth (exact times), or the script's turns where
    the call is not rendered."""
    return truth_transcript(script["call_id"]) or script_transcript(script)


def _train_label_rows(directory: Path, author: str, what: str) -> Iterator[tuple[Path, int, dict]]:
    """(file, line number, row) of one author's label file under ``directory``; only
    TRAIN-split authors may have labels, a test-split author is refused."""
    if author not in splits()["train"]:
        raise SystemExit(f"{what} of {author}: only train-split calls may be labelled")
    p = directory / f"{author}.jsonl"
    if not p.exists():
        return
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            yield p, n, json.loads(line)


def call_sentence_acts(author: str) -> dict[str, list[dict]]:
    """Sentence act labels of one author's calls (samples/labeled/acts/<author>.jsonl):
    call id -> rows {k, speaker, text, acts} in call order, one per sentence of
    ``script_transcript`` (the script's text, so the labels do not depend on a render).
    Only TRAIN-split authors have them; a test-split author's file is refused."""
    from callcoach.coaching.acts import ACT_SPEAKER
    out: dict[str, list[dict]] = {}
    for p, n, r in _train_label_rows(CALL_ACTS_DIR, author, "sentence labels"):
        bad = [a for a in r["acts"] if ACT_SPEAKER.get(a) != r["speaker"]]
        if bad:
            raise SystemExit(f"{p}:{n}: acts {bad} are not {r['speaker']} acts")
        out.setdefault(r["call_id"], []).append(r)
    return out


def cache_dir() -> Path:
    import os
    return Path(os.environ.get("CALLCOACH_CACHE") or Path.home() / ".cache" / "callcoach")


def heldout_dir(sha256: str) -> Path:
    """Where scripts/train_acts.py keeps the cross-fitted models of the artefact ``sha256``:
    one per train author, its sentence head fitted without that author's sentences."""
    return cache_dir() / f"heldout-{sha256[:16]}"


def crossfitted_authors(main) -> set[str]:
    """The train authors some head of the artefact ``main`` learned from: those with sentence
    labels (recorded in its acts.json) and those with a cross-fitted model beside the cache
    (train_acts writes one for every author whose concern labels the answer head read)."""
    labelled = set((main.meta.get("call_sentence_labels") or {}).get("authors", []))
    d = heldout_dir(main.sha256)
    if d.is_dir():
        labelled |= {p.name for p in d.iterdir() if (p / "acts.npz").exists()}
    return labelled


def train_features(transcripts: list, authors: list[str]) -> list[dict | None]:
    """Features of TRAIN-split calls for making choices on them: each call read by the
    heads that did not learn from its author (cross-fitting; the shipped call head on top).
    Calls of authors no head learned from get None (the shipped model's features are right
    for them).  Refuses when the cross-fitted models are
    missing: run ``python -m scripts.train_acts`` first."""
    from callcoach.coaching.acts import load_act_model
    from callcoach.coaching.features import FEATURES_VERSION, features_batch
    main = load_act_model()
    out: list[dict | None] = [None] * len(transcripts)
    for author in sorted(set(authors) & crossfitted_authors(main)):
        d = heldout_dir(main.sha256) / author
        if not (d / "acts.npz").exists():
            raise SystemExit(f"no cross-fitted model for {author} under {d}: run "
                             "`python -m scripts.train_acts` (it writes them) first")
        idx = [i for i, a in enumerate(authors) if a == author]
        feats = features_batch([transcripts[i] for i in idx], act_model=load_act_model(d))
        for i, f in zip(idx, feats):
            f["version"] = FEATURES_VERSION     # read as the shipped model's features
            out[i] = f
    return out


def call_concerns(author: str) -> dict[str, list[tuple[int, int | None]]]:
    """Concern labels of one TRAIN-split author's calls: call id -> [(customer sentence k,
    answering agent sentence k or None)], k as in ``call_sentence_acts``."""
    out: dict[str, list[tuple[int, int | None]]] = {}
    for _p, _n, r in _train_label_rows(CONCERNS_DIR, author, "concern labels"):
        out.setdefault(r["call_id"], []).append((int(r["k"]), r["answered_by"]))
    return out


def episodes(directory: Path = EPISODES_DIR) -> list[tuple[str, object, int, int | None]]:
    """(author, transcript, concern sentence, answering sentence or None) of every concern
    episode, sentences numbered as the engine splits the transcript.  Each file is checked
    first (scripts/check_episodes.py); a label that does not fall on one sentence of its
    turn is refused."""
    from callcoach.coaching.features import _segment
    from scripts.check_episodes import check
    out = []
    for p in sorted(directory.glob("*.jsonl")):
        problems = check(p)
        if problems:
            raise SystemExit("\n".join(problems))
        for line in p.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            e = json.loads(line)
            tr = script_transcript({"call_id": e["id"], "turns": e["turns"]})
            seg = _segment(tr)
            c = _sentence_of(seg, e["concern_turn"], e["concern"], f"{p}: {e['id']}")
            a = (None if e["answer_turn"] is None
                 else _sentence_of(seg, e["answer_turn"], e["answer"], f"{p}: {e['id']}"))
            out.append((e.get("author") or p.stem, tr, c, a))
    return out


def _sentence_of(seg: dict, turn: int, text: str, where: str) -> int:
    """The sentence of ``turn`` (in ``seg``, the engine's split of a transcript) holding
    most of ``text``'s words."""
    from callcoach.coaching.features import normalise
    want = normalise(text).split()
    best, at = 0, None
    for k, (t, n) in enumerate(zip(seg["turn"], seg["norm"])):
        if t == turn:
            have = set(n.split())
            hit = sum(w in have for w in want)
            if hit > best:
                best, at = hit, k
    if at is None:
        raise SystemExit(f"{where}: no sentence of turn {turn} holds {text!r}")
    return at
