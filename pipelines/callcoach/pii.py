"""PII redaction of transcripts: card numbers, SSNs, phone numbers, e-mail addresses,
account-type identifiers and dates of birth, written or spoken.

    redact_text(text, config)              -> (redacted text, [Span(kind, start, end)])
    redact_transcript(transcript, config)  -> (redacted Transcript, {kind: count})

Everything callcoach writes (transcripts, reports, HTML, tables, logs) is meant to come
from a redacted transcript; see docs/pii.md for what is redacted, how, and the limits.

How it works (regex + a small state machine over the whitespace tokens of a turn; no
model; about 0.7 ms for a whole sample call):

1. Tokens are the whitespace-separated pieces of the text (Whisper's words joined by
   spaces are exactly these), each with a "core" stripped of surrounding punctuation.
2. Triggers: phrases that say what comes next ("card number", "call me on", "sort code",
   "date of birth", "e-mail", and "ticket/case/reference" which PROTECTS what follows).
   A trigger governs a value that starts within a few tokens after it in the same
   sentence; a trigger left dangling at the end of a turn ("What's your account
   number?") governs the start of the next turn.
3. E-mail addresses: written (``jane.doe@example.com``) or spoken / half-rendered
   (``jane dot doe at example dot com``, ``Peter Jones at Outlook .com``), anchored on
   "at <domain> dot <known TLD>"; after an "e-mail" trigger everything up to the TLD.
4. Values after account-type and date-of-birth triggers: the first run of code elements
   (digits, spoken digits, single letters, alphanumerics) or date words.
5. Digit runs: maximal sequences of digit groups, written ("4539", "-1488", "O20,") or
   spoken ("four", "oh", "double four", "fifty three"), across Whisper tokens and
   punctuation.  A run (or its longest sub-run that qualifies) is a
   - CARD_NUMBER: 13-19 digits passing Luhn (anywhere, even after "reference"), or 8-19
     digits after a card trigger (a misheard card number fails Luhn but is still one);
   - SSN: written ``123-45-6789`` (valid area/group/serial), or 9 / 4 digits after
     "social security" / "SSN";
   - PHONE: 7-15 digits after a phone trigger, or the shape of a UK (0 + 9-10 digits,
     +44) / US (NANP, 10 digits, optional leading 1) / "+" international number;
   unless the nearest trigger is a ticket/case/reference/order one (not personal data)
   or the run is a quantity (followed by "pounds", "minutes", "pm"...).

Overlapping spans are merged and replaced by ``config.token_format.format(kind=KIND)``.
Idempotent: tokens contain no digits, "@" or spaces, a token already in the text reads as
an already-claimed value (never as the trigger "phone"), and distances count a run of
numbers or a claimed value as one token, so redacting a redacted text changes nothing.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from .numwords import SPOKEN_DIGITS, TEENS, TENS, UNITS
from .transcript import Transcript, Turn, Word

PII_VERSION = "1"

CARD_NUMBER = "CARD_NUMBER"
SSN = "SSN"
PHONE = "PHONE"
EMAIL = "EMAIL"
ACCOUNT_NUMBER = "ACCOUNT_NUMBER"
DATE_OF_BIRTH = "DATE_OF_BIRTH"
ALL_KINDS: frozenset[str] = frozenset({CARD_NUMBER, SSN, PHONE, EMAIL, ACCOUNT_NUMBER,
                                       DATE_OF_BIRTH})
# when two candidate spans overlap, the earlier kind here wins
_PRIORITY = (CARD_NUMBER, EMAIL, SSN, DATE_OF_BIRTH, ACCOUNT_NUMBER, PHONE)


@dataclass(frozen=True)
class PiiConfig:
    """What to redact and how the replacement looks.

    ``token_format`` must contain ``{kind}`` and produce no digits and no "@" (so a
    redacted text is a fixed point of the redactor)."""
    enabled: bool = True
    kinds: frozenset = field(default_factory=lambda: ALL_KINDS)
    token_format: str = "[{kind}]"

    def __post_init__(self):
        kinds = frozenset(str(k).upper() for k in self.kinds)
        unknown = kinds - ALL_KINDS
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {sorted(ALL_KINDS)}")
        object.__setattr__(self, "kinds", kinds)
        if "{kind}" not in self.token_format:
            raise ValueError("token_format must contain '{kind}'")
        for k in ALL_KINDS:
            tok = self.token(k)
            if any(c.isdigit() for c in tok) or "@" in tok or any(c.isspace() for c in tok):
                raise ValueError(f"token_format gives {tok!r}: tokens may not contain digits, "
                                 f"'@' or spaces")

    def token(self, kind: str) -> str:
        return self.token_format.format(kind=kind)

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.kinds)

    def describe(self) -> dict:
        """For run summaries and provenance (no values, just the settings)."""
        return {"version": PII_VERSION, "enabled": self.enabled,
                "kinds": sorted(self.kinds), "token_format": self.token_format}

    @staticmethod
    def from_options(enabled: bool = True, kinds: str | Iterable[str] | None = None,
                     token_format: str | None = None) -> "PiiConfig":
        """From CLI-style options: ``kinds`` as "card_number,phone" (case-insensitive),
        "all" or None (all kinds)."""
        if kinds is None or (isinstance(kinds, str) and kinds.strip().lower() in ("", "all")):
            ks: frozenset = ALL_KINDS
        else:
            parts = kinds.split(",") if isinstance(kinds, str) else list(kinds)
            ks = frozenset(p.strip().upper() for p in parts if p.strip())
        return PiiConfig(enabled=enabled, kinds=ks,
                         token_format=token_format or PiiConfig.token_format)


DEFAULT_CONFIG = PiiConfig()


@dataclass(frozen=True, slots=True)
class Span:
    kind: str
    start: int      # character offsets in the ORIGINAL text
    end: int


# ---------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------
# spoken digits as digit strings; a tens word is its leading digit ("forty" -> "4")
_UNITS = {w: str(v) for w, v in {**UNITS, **SPOKEN_DIGITS}.items()}
_TEENS = {w: str(v) for w, v in TEENS.items()}
_TENS = {w: str(v // 10) for w, v in TENS.items()}
_MULT = {"double": 2, "triple": 3, "treble": 3}
_FILLERS = {"um", "uh", "er", "erm", "ah", "hmm", "mm", "uhm", "dash", "hyphen"}
# a number followed by one of these is a quantity, never an identifier
_QUANTITY = {"pound", "pounds", "quid", "dollar", "dollars", "bucks", "euro", "euros",
             "pence", "p", "cent", "cents", "percent", "per", "pm", "am", "p.m", "a.m",
             "o'clock", "oclock", "hour", "hours", "hr", "hrs", "minute", "minutes", "min",
             "mins", "second", "seconds", "secs", "day", "days", "week", "weeks", "month",
             "months", "year", "years", "times", "gb", "mb", "gig", "gigs", "kg", "miles",
             "people", "users", "items", "customers", "calls", "pm.", "am."}
_CURRENCY = {"£", "$", "€", "usd", "gbp", "eur"}
_MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december", "jan", "feb", "mar", "apr",
           "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
_ORDINALS = {"first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
             "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth",
             "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth",
             "twentieth", "thirtieth"}
_TLDS = {"com", "net", "org", "co", "uk", "io", "gov", "edu", "info", "biz", "us", "ca",
         "ie", "de", "fr", "au", "nz", "eu", "ac"}
# words that end the local part of a spoken e-mail address (scanning backwards from "at")
_EMAIL_STOP = {"is", "it's", "its", "it", "me", "my", "at", "email", "e-mail", "mail",
               "address", "to", "on", "the", "and", "or", "send", "write", "was", "be",
               "that's", "thats", "please", "yes", "yeah", "sure", "so", "you", "can",
               "your", "our", "email's", "i", "use", "try", "under", "from", "by", "a",
               "an", "here", "okay", "ok", "right", "then", "also", "just", "reach",
               "contact", "with", "via", "in", "of", "for", "um", "uh", "er", "us", "we",
               "them", "him", "her", "they", "visit", "find", "go", "look", "online",
               "website", "site", "web", "page", "there", "home", "work", "office"}

_CAPS_WORDS = {"OK", "AM", "PM", "US", "UK", "IT", "IS", "ON", "NO", "TV", "ID", "OR", "AND",
               "THE", "SO", "MY", "BY", "TO", "IN", "OF", "AT", "AN", "BE", "DO", "GO", "HI",
               "OH", "UM", "UH", "ER"}
_LEAD = "\"'[{<\u2018\u201c-\u2013\u2014*"
_TRAIL = ".,;:!?\"']}>\u2019\u201d\u2026*"
_TRAIL_PAREN = _TRAIL + ")"
_TOKEN_RE = re.compile(r"\S+")
_DIGIT_TOKEN_RE = re.compile(r"[+(]?[0-9Oo][0-9Oo().\-]*")
_DECIMAL_RE = re.compile(r"\d+\.\d{1,2}")
_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_UK_PHONE_RE = re.compile(r"0[1-9]\d{8,9}|44[1-9]\d{8,9}")      # 07700 900123, +44 20 ...
_US_PHONE_RE = re.compile(r"1?[2-9]\d\d[2-9]\d{6}")              # NANP, optional 1
_SSN_SHAPE_RE = re.compile(r"(\d{3})-(\d{2})-(\d{4})")
_ALNUM_CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/\-.]*")
_NOT_CODE_RE = re.compile(r"\d+(?:st|nd|rd|th|am|pm|p|k|s|%|x)|\d{1,2}:\d{2}\w*", re.I)
_DATE_TOKEN_RE = re.compile(r"\d{1,4}(?:[/.\-]\d{1,4}){1,2}|\d{1,2}(?:st|nd|rd|th)|\d{2,4}",
                            re.I)
_EMAIL_WRITTEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_DOMAIN_TOKEN_RE = re.compile(r"([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*)\.([A-Za-z]{2,4})")
_DOT_TLD_RE = re.compile(r"(?:\.[A-Za-z]{2,4})+")
_LOCAL_RE = re.compile(r"[A-Za-z0-9._\-']+")

# Triggers, matched on the lower-cased cores joined by single spaces.  Alternatives are
# tried left to right at each position, so longer/more specific phrases come first.
_TRIGGERS: list[tuple[str, str]] = [
    ("account", r"(?:bank |savings |current )?account (?:number|no|num|id|code|ref|reference|"
                r"details)|acct(?: number| no)?|account(?:'s| is)|sort code|iban|routing number|"
                r"roll number|card (?:ending|ends|end)(?: in| with)?|last (?:four|4|three|3|five|"
                r"5|six|6) (?:digits|numbers|of)|(?:membership|member|customer|"
                r"policy|patient|nhs|student|employee|passport|licen[cs]e|driving licen[cs]e|"
                r"national insurance|ni|pin|meter) (?:number|no|id|reference|ref)|"
                r"member(?:ship)? id|national insurance|security code|cvv2?|cvc2?|csc|"
                r"(?:three|3) digits? on the back|expiry(?: date)?|expiration(?: date)?|"
                r"valid (?:until|thru|through)|pin|passcode"),
    # a bare "ends in" also ends contracts in 2026: years are not taken after it
    ("ending", r"ending in|ends in|ending with|end in|end with"),
    ("ssn", r"social security(?: number| no)?|ssn|s s n|ss number|social|tax ?id|"
            r"taxpayer id|itin"),
    ("dob", r"date of birth|dob|d o b|birth ?date|birthday|born on|born in"),
    ("email", r"e-?mail(?: address)?|e mail(?: address)?"),
    ("ref", r"(?:ticket|case|(?<!customer )reference|ref|incident|complaint|claim|job|"
            r"(?<!in )order|tracking|confirmation|booking|merchant|invoice|serial|parcel|"
            r"consignment|work order|service request|fault|sr|crime)"
            r"(?: number| no| id| code| ref| reference)?(?: is| was| it's| will be| of)?"),
    ("phone", r"(?:tele)?phone|mobile|cell|landline|fax|(?:contact|callback|call back|best|"
              r"home|work|daytime|direct|extension) number|number to (?:reach|call|contact|"
              r"ring|text)|(?:reach|call|ring|text|phone|contact) (?:me|you|us|him|her|them) "
              r"(?:on|at|back on)|(?:my|your|his|her|the|a|best|new|old) number|"
              r"number (?:is|was|to|on)|extension|ext"),
    ("card", r"credit card|debit card|card number|card no|long number|card|visa|"
             r"master ?card|amex|american express|discover|maestro|pan"),
]
_TRIGGER_RE = re.compile("|".join(f"(?P<{name}>\\b(?:{pat})\\b)" for name, pat in _TRIGGERS))
_YEAR_RE = re.compile(r"(?:19|20)\d\d")

TRIGGER_WINDOW = 8      # a value must start within this many tokens after its trigger
PROMPT_WINDOW = 10      # ... or within this many tokens of the start of the next turn
DANGLING_TAIL = 12      # a trigger this close to the end of a turn may prompt the next


# ---------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------
class _Tok:
    __slots__ = ("s", "e", "raw", "cs", "ce", "core", "low", "brk", "soft")

    def __init__(self, s: int, e: int, raw: str, neutral: re.Pattern | None = None):
        self.s, self.e, self.raw = s, e, raw
        if neutral is not None:
            m = None
            for m in neutral.finditer(raw):
                pass
            if m is not None:       # holds a redaction token: "[PHONE]." reads as nothing
                self.cs, self.ce, self.core, self.low = s, e, "\x00", "\x00"
                tail = raw[m.end():]
                self.brk = any(c in tail for c in "?!;")
                self.soft = "." in tail or ":" in tail
                return
        if raw.isalnum():       # the common case: a plain word or number
            self.cs, self.ce, self.core, self.low = s, e, raw, raw.lower()
            self.brk = self.soft = False
            return
        a = len(raw) - len(raw.lstrip(_LEAD))
        core = raw[a:]
        core = core.rstrip(_TRAIL if "(" in core else _TRAIL_PAREN)
        if not core:            # punctuation only
            a, core = 0, ""
        self.cs = s + a
        self.ce = self.cs + len(core)
        self.core = core
        self.low = core.lower()
        tail = raw[a + len(core):] if core else raw
        self.brk = "?" in tail or "!" in tail or ";" in tail    # hard break after this token
        self.soft = "." in tail or ":" in tail                  # sentence-ish end


def _tokens(text: str, neutral: re.Pattern | None = None) -> list[_Tok]:
    return [_Tok(m.start(), m.end(), m.group(), neutral) for m in _TOKEN_RE.finditer(text)]


def _digit_token(t: _Tok) -> str | None:
    """Digits of a written digit token ("4539", "-1488", "O20,", "(555)", "+44"), else None."""
    c = t.core
    if not c or not _DIGIT_TOKEN_RE.fullmatch(c):
        return None
    if _DECIMAL_RE.fullmatch(c) or _ISO_DATE_RE.fullmatch(c):
        return None          # 12.50, 2025-03-04: amounts and dates
    real = sum(ch.isdigit() for ch in c)
    if real == 0 or (real < 2 and any(ch in "Oo" for ch in c)):
        return None          # "O", "O2": letters
    return "".join("0" if ch in "Oo" else ch for ch in c if ch.isdigit() or ch in "Oo")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# ---------------------------------------------------------------------------------------
# Digit groups: the state machine that reads written and spoken digits across tokens
# ---------------------------------------------------------------------------------------
def _group_at(toks: list[_Tok], i: int, continuing: bool,
              taken: list[bool] | None = None) -> tuple[int, str] | None:
    """(tokens consumed, digits) of the digit group starting at token i, or None.
    Digits, spoken digits ("oh" = 0), "double/triple X", teens and tens ("fifty three"
    = 53: card and phone numbers are read in pairs too); "hundred" ("oh eight hundred")
    only continues a run.  Amounts ("twenty five pounds") are dropped later as quantities."""
    t = toks[i]
    d = _digit_token(t)
    if d is not None:
        return 1, d
    low = t.low
    if low in _UNITS:
        return 1, _UNITS[low]
    if low in _MULT and i + 1 < len(toks) and not t.brk and not (taken and taken[i + 1]):
        nxt = toks[i + 1]
        nd = _UNITS.get(nxt.low)
        if nd is None:
            dd = _digit_token(nxt)
            nd = dd if dd is not None and len(dd) == 1 else None
        if nd is not None:
            return 2, nd * _MULT[low]
        return None
    if "-" in low:          # "forty-four"
        a, _, b = low.partition("-")
        if a in _TENS and b in _UNITS and b not in ("oh", "o"):
            return 1, _TENS[a] + _UNITS[b]
        return None
    if low in _TEENS:
        return 1, _TEENS[low]
    if low in _TENS:
        if i + 1 < len(toks) and not t.brk and toks[i + 1].low in _UNITS \
                and not (taken and taken[i + 1]) \
                and toks[i + 1].low not in ("oh", "o", "zero", "nought", "naught"):
            return 2, _TENS[low] + _UNITS[toks[i + 1].low]
        return 1, _TENS[low] + "0"
    if low == "hundred" and continuing:
        return 1, "00"
    return None


@dataclass
class _Run:
    groups: list[tuple[int, int, str]]     # (first token, last token, digits)

    @property
    def i0(self) -> int:
        return self.groups[0][0]

    @property
    def i1(self) -> int:
        return self.groups[-1][1]

    def digits(self, a: int = 0, b: int | None = None) -> str:
        return "".join(g[2] for g in self.groups[a:b])


def _digit_runs(toks: list[_Tok], taken: list[bool]) -> list[_Run]:
    runs: list[_Run] = []
    i, n = 0, len(toks)
    while i < n:
        if taken[i]:
            i += 1
            continue
        g = _group_at(toks, i, False, taken)
        if g is None:
            i += 1
            continue
        groups = [(i, i + g[0] - 1, g[1])]
        j = i + g[0]
        while j < n and not toks[j - 1].brk:
            k = j
            while k < n and toks[k].low in _FILLERS and not toks[k].brk and not taken[k]:
                k += 1          # "four five, um, three nine"
            if k >= n or taken[k]:
                break
            g = _group_at(toks, k, True, taken)
            if g is None:
                break
            groups.append((k, k + g[0] - 1, g[1]))
            j = k + g[0]
        runs.append(_Run(groups))
        i = j
    return runs


# ---------------------------------------------------------------------------------------
# The redactor
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Trigger:
    kind: str       # account | ending | ssn | dob | email | ref | phone | card
    i0: int         # first token (-1: a prompt from the previous turn)
    i1: int         # last token


_NEUTRAL_CACHE: dict[str, re.Pattern] = {}


def _neutral_re(config: PiiConfig) -> re.Pattern:
    """The redaction tokens of this config (all kinds): text the redactor already wrote."""
    pat = _NEUTRAL_CACHE.get(config.token_format)
    if pat is None:
        pat = re.compile("|".join(re.escape(config.token(k)) for k in sorted(ALL_KINDS)))
        _NEUTRAL_CACHE[config.token_format] = pat
    return pat


def _triggers(toks: list[_Tok]) -> list[_Trigger]:
    starts: list[int] = []
    parts: list[str] = []
    pos = 0
    for t in toks:
        starts.append(pos)
        parts.append(t.low)
        pos += len(t.low) + 1
    joined = " ".join(parts)
    out = []
    for m in _TRIGGER_RE.finditer(joined):
        kind = m.lastgroup
        i0 = bisect.bisect_right(starts, m.start()) - 1
        i1 = bisect.bisect_right(starts, m.end() - 1) - 1
        out.append(_Trigger(kind, i0, i1))
    return out


class _Redactor:
    def __init__(self, text: str, config: PiiConfig, prompt: frozenset[str] = frozenset()):
        self.text = text
        self.cfg = config
        neutral = _neutral_re(config)
        self.toks = _tokens(text, neutral if neutral.search(text) else None)
        # tokens already claimed by a value; a redaction token is claimed from the start
        self.taken = [t.low == "\x00" for t in self.toks]
        # number-like tokens: with claimed ones they form "blocks" that count as one unit
        # of distance, so "card number is 4916 3385 0627 1146" and "card number is
        # [CARD_NUMBER]" measure alike (that keeps redaction idempotent)
        self.numeric: list[bool | None] = [True if t else None for t in self.taken]
        self.spans: list[Span] = []
        trig = _triggers(self.toks)
        self.prompt = [_Trigger(k, -1, -1) for k in sorted(prompt)]
        self.triggers = self.prompt + trig

    # -- helpers ------------------------------------------------------------------------
    def _block(self, k: int) -> bool:
        if self.taken[k]:
            return True
        v = self.numeric[k]
        if v is None:           # computed on first use: most tokens are never asked
            v = self.numeric[k] = _group_at(self.toks, k, True) is not None
        return v

    def _units(self, a: int, b: int) -> int:
        """Distance from token a to token b: words count one each, a block of numbers or
        claimed tokens counts one."""
        n, prev = 0, False
        for k in range(max(a, 0), b):
            blk = self._block(k)
            if not (blk and prev):
                n += 1
            prev = blk
        return n

    def _gap_ok(self, a: int, b: int) -> bool:
        """No sentence end in tokens [a, b) (inside a block only its last token counts)."""
        for k in range(max(a, 0), b):
            if k + 1 < b and self._block(k) and self._block(k + 1):
                continue
            if self.toks[k].brk or self.toks[k].soft:
                return False
        return True

    def _live(self, tr: _Trigger) -> bool:
        """A trigger inside a claimed value (a word of an e-mail address) is no trigger."""
        return tr.i0 == -1 or not any(self.taken[k] for k in range(tr.i0, tr.i1 + 1))

    def _add(self, kind: str, i0: int, i1: int, start: int | None = None,
             end: int | None = None) -> None:
        """Claim tokens i0..i1 for ``kind``; a disabled kind claims them too (so a card
        number is never re-read as a phone number) but leaves the text as it is."""
        for k in range(i0, i1 + 1):
            self.taken[k] = True
        if kind in self.cfg.kinds:
            s = self.toks[i0].cs if start is None else start
            e = self.toks[i1].ce if end is None else end
            self.spans.append(Span(kind, s, e))

    def _governing(self, i: int) -> list[_Trigger]:
        """Triggers that govern a value starting at token i, nearest first."""
        found: list[_Trigger] = []
        for tr in self.triggers:
            if tr.i0 == -1:
                if self._units(0, i) < PROMPT_WINDOW and not any(
                        self.toks[k].brk for k in range(0, i)):
                    found.append(tr)
                continue
            if tr.i1 >= i or not self._live(tr) or self._units(tr.i1 + 1, i) >= TRIGGER_WINDOW:
                continue
            # no sentence end between the trigger and the value (the trigger's own
            # punctuation is allowed: "account number? It's ...")
            if not self._gap_ok(tr.i1 + 1, i):
                continue
            found.append(tr)
        # nearest first: prompts (-1) last; same end: the longer (earlier-starting) first
        found.sort(key=lambda tr: (-tr.i1, tr.i0))
        return found

    # -- e-mail ---------------------------------------------------------------------------
    def _domain_end(self, j: int) -> int | None:
        """Last token of a domain starting at token j ("example dot co dot uk",
        "Outlook .com", "example.com"), or None."""
        toks, n = self.toks, len(self.toks)
        if j >= n:
            return None
        t = toks[j]
        m = _DOMAIN_TOKEN_RE.fullmatch(t.core)
        if m and m.group(2).lower() in _TLDS:
            return j
        if not t.core.isalnum() or t.brk:
            return None
        k, last, labels = j + 1, None, 1
        while k < n and labels < 5:
            c = toks[k]
            if c.low == "dot" and k + 1 < n and not c.brk and toks[k + 1].core.isalnum():
                labels += 1
                if toks[k + 1].low in _TLDS:
                    last = k + 1
                if toks[k + 1].brk:
                    break
                k += 2
                continue
            if _DOT_TLD_RE.fullmatch(c.core):
                labels += 1
                if all(p.lower() in _TLDS for p in c.core.split(".")[1:]):
                    last = k
                if c.brk:
                    break
                k += 1
                continue
            break
        return last

    def _emails(self) -> None:
        toks, n = self.toks, len(self.toks)
        # written addresses, anywhere inside a token
        for i, t in enumerate(toks):
            for m in _EMAIL_WRITTEN_RE.finditer(t.raw):
                a, b = t.s + m.start(), t.s + m.end()
                while b > a and self.text[b - 1] in _TRAIL:
                    b -= 1
                self._add(EMAIL, i, i, a, b)
        # spoken: <local words> at <domain>
        for i, t in enumerate(toks):
            if t.low not in ("at", "@") or self.taken[i] or t.brk:
                continue
            end = self._domain_end(i + 1)
            if end is None:
                continue
            k, local = i - 1, 0
            while k >= 0 and local < 5 and not self.taken[k]:
                c = toks[k]
                if (c.low in _EMAIL_STOP or not c.core or c.brk or c.soft
                        or c.raw.endswith(",") or not _LOCAL_RE.fullmatch(c.core)):
                    break
                local += 1
                k -= 1
            if local:
                self._add(EMAIL, k + 1, end)
        # after an "e-mail" trigger: everything up to the last TLD in the window
        for tr in self.triggers:
            if tr.kind != "email":
                continue
            start = tr.i1 + 1
            if tr.i1 >= 0:
                # only where an address is being stated: "e-mail is", "e-mail address:",
                # not "I'll e-mail you the link to example.com"
                if toks[tr.i1].brk or not (toks[tr.i1].raw.endswith(":") or (
                        start < n and toks[start].low in ("is", "it's", "was", "address"))):
                    continue
            while start < n and toks[start].low in ("is", "it's", "its", "address", "me",
                                                    "at", "was", "um", "uh", "er", "my"):
                start += 1
            if start >= n or self.taken[start]:
                continue
            last = None
            if not self._live(tr):
                continue
            for k in range(start, n):
                if self.taken[k] or self._units(start, k) >= TRIGGER_WINDOW:
                    break
                c = toks[k]
                dm = _DOMAIN_TOKEN_RE.fullmatch(c.core)
                if (dm and dm.group(2).lower() in _TLDS) or \
                        (_DOT_TLD_RE.fullmatch(c.core) and
                         all(p.lower() in _TLDS for p in c.core.split(".")[1:])) or \
                        (c.low in _TLDS and k > start and toks[k - 1].low == "dot"):
                    last = k
                if c.brk or (c.soft and k != start and not _DOT_TLD_RE.fullmatch(c.core)):
                    break
            if last is not None:
                self._add(EMAIL, start, last)

    # -- values after account / date-of-birth triggers -----------------------------------
    def _is_code(self, k: int) -> bool:
        t = self.toks[k]
        if self.taken[k] or not t.core:
            return False
        if _group_at(self.toks, k, True, self.taken) is not None or t.low in _MULT:
            return True
        if len(t.core) == 1 and t.core.isalpha():
            if t.core in "aiAI":
                return (t.core in "AI" and k + 1 < len(self.toks) and not t.brk
                        and self._is_code_strict(k + 1))
            return True
        if 2 <= len(t.core) <= 4 and t.core.isalpha() and t.core.isupper() \
                and t.core not in _CAPS_WORDS:
            return True          # "HX 40917", "GB82 WEST 1234"
        return bool(_ALNUM_CODE_RE.fullmatch(t.core) and any(c.isdigit() for c in t.core)
                    and not _NOT_CODE_RE.fullmatch(t.core) and len(t.core) <= 24)

    def _is_code_strict(self, k: int) -> bool:
        t = self.toks[k]
        return (not self.taken[k] and bool(t.core) and
                ((len(t.core) == 1 and t.core.isalpha() and t.core not in "aiAI")
                 or _group_at(self.toks, k, True, self.taken) is not None))

    def _code_value(self, start: int, window: int) -> tuple[int, int, str] | None:
        """First run of code elements with enough digits, starting within ``window``."""
        toks, n = self.toks, len(self.toks)
        k = start
        while k < n and self._units(start, k) < window:
            if toks[k].brk and k > start:
                return None
            if not self._is_code(k):
                if self.taken[k] or (toks[k].soft and k > start):
                    return None
                k += 1
                continue
            j, digits, letters = k, "", 0
            last = k
            while j < n and (self._is_code(j) or (toks[j].low in _FILLERS and j > k)):
                g = _group_at(toks, j, True, self.taken)
                if g is not None:
                    digits += g[1]
                    last = j + g[0] - 1
                    j += g[0]
                elif toks[j].low in _FILLERS:
                    j += 1
                    continue
                else:
                    t = toks[j]
                    digits += "".join(c for c in t.core if c.isdigit())
                    letters += sum(c.isalpha() for c in t.core)
                    last = j
                    j += 1
                if toks[last].brk or toks[last].soft:
                    break
            nxt = toks[last + 1].low if last + 1 < n else ""
            quantity = nxt in _QUANTITY or (k > 0 and toks[k - 1].low in _CURRENCY)
            if not quantity and (len(digits) >= 3 or (len(digits) >= 2 and letters)):
                return k, last, digits
            if toks[last].brk or toks[last].soft:
                return None
            k = last + 1
        return None

    def _is_date_word(self, k: int) -> bool:
        t = self.toks[k]
        low = t.low
        if self.taken[k] or not low:
            return False
        return (low in _MONTHS or low in _ORDINALS or low in _UNITS or low in _TEENS
                or low in _TENS or low in ("of", "the", "hundred", "thousand", "and", "th")
                or bool(_DATE_TOKEN_RE.fullmatch(t.core))
                or ("-" in low and all(p in _TENS or p in _UNITS or p in _ORDINALS
                                       for p in low.split("-"))))

    def _date_value(self, start: int, window: int) -> tuple[int, int] | None:
        toks, n = self.toks, len(self.toks)
        k = start
        while k < n and self._units(start, k) < window:
            if not self._is_date_word(k) or toks[k].low in ("of", "the", "and"):
                if self.taken[k] or toks[k].brk or (toks[k].soft and k > start):
                    return None
                k += 1
                continue
            j, last, meaningful = k, k, 0
            while j < n and self._is_date_word(j):
                if toks[j].low not in ("of", "the", "and"):
                    last = j
                    meaningful += 1
                if toks[j].brk or (toks[j].soft and not toks[j].raw.endswith(",")):
                    break
                j += 1
            if meaningful >= 2 or (meaningful == 1 and _DATE_TOKEN_RE.fullmatch(toks[k].core)
                                   and not toks[k].core.isdigit()):
                return k, last
            k = j + 1
        return None

    def _values(self) -> None:
        for tr in self.triggers:
            if tr.kind not in ("account", "ending", "dob") or not self._live(tr):
                continue
            if tr.i0 == -1:
                start, window = 0, PROMPT_WINDOW
            else:
                start, window = tr.i1 + 1, TRIGGER_WINDOW
            if tr.kind == "dob":
                v = self._date_value(start, window)
                if v and self._governed_by(tr, v[0]):
                    self._add(DATE_OF_BIRTH, v[0], v[1])
                continue
            v3 = self._code_value(start, window)
            if v3 and tr.kind == "ending" and _YEAR_RE.fullmatch(v3[2]) \
                    and v3[0] == v3[1] and self.toks[v3[0]].core.isdigit():
                continue
            if v3 and self._governed_by(tr, v3[0]):
                kind = CARD_NUMBER if 13 <= len(v3[2]) <= 19 and _luhn(v3[2]) else ACCOUNT_NUMBER
                self._add(kind, v3[0], v3[1])

    def _governed_by(self, tr: _Trigger, i: int) -> bool:
        """True when no other trigger (a card one aside) sits between tr and token i."""
        for g in self._governing(i):
            if g == tr:
                return True
            if g.kind != "card" and g.i0 != -1:
                return False
        return False

    # -- digit runs ------------------------------------------------------------------------
    def _classify(self, run: _Run, a: int, b: int, govern: list[_Trigger]) -> str | None:
        d = run.digits(a, b)
        n = len(d)
        kinds = [g.kind for g in govern]
        if 13 <= n <= 19 and _luhn(d):
            return CARD_NUMBER
        if kinds and kinds[0] == "ref":
            return None
        first, last = run.groups[a][0], run.groups[b - 1][1]
        if first == last:
            m = _SSN_SHAPE_RE.fullmatch(self.toks[first].core)
            if m and m.group(1) not in ("000", "666") and m.group(1)[0] != "9" \
                    and m.group(2) != "00" and m.group(3) != "0000":
                return SSN
        for kind in kinds:            # nearest trigger first
            if kind == "card" and 8 <= n <= 19:
                return CARD_NUMBER
            if kind == "ssn" and n in (9, 4):
                return SSN
            if kind == "account" and n >= 3:
                return ACCOUNT_NUMBER
            if kind == "ending" and n >= 3 and not _YEAR_RE.fullmatch(d):
                return ACCOUNT_NUMBER
            if kind == "phone" and 7 <= n <= 15:
                return PHONE
        if _UK_PHONE_RE.fullmatch(d):
            return PHONE
        if _US_PHONE_RE.fullmatch(d):
            return PHONE
        if (self.toks[first].core.startswith("+") or self._plus(first)) and 8 <= n <= 15:
            return PHONE
        return None

    def _runs(self) -> None:
        toks = self.toks
        for run in _digit_runs(toks, self.taken):
            # quantities: "412 pounds", "£ 25", "3 30 pm" are amounts and times
            ng = len(run.groups)
            a, b = 0, ng
            if run.i1 + 1 < len(toks) and toks[run.i1 + 1].low in _QUANTITY:
                b -= 1
            if run.i0 > 0 and toks[run.i0 - 1].low in _CURRENCY:
                a += 1
            self._classify_range(run, a, b)

    def _plus(self, i: int) -> bool:
        return i > 0 and self.toks[i - 1].low == "plus" and not self.taken[i - 1] \
            and not self.toks[i - 1].brk

    def _classify_range(self, run: _Run, a: int, b: int) -> None:
        if b <= a:
            return
        # the longest sub-run that qualifies (leftmost first), then what is left either side
        for length in range(b - a, 0, -1):
            for s in range(a, b - length + 1):
                e = s + length
                if len(run.digits(s, e)) < 4:
                    continue
                govern = self._governing(run.groups[s][0])
                kind = self._classify(run, s, e, govern)
                if kind is not None:
                    i0 = run.groups[s][0]
                    if kind == PHONE and self._plus(i0):
                        i0 -= 1         # "plus four four ..." -> the "plus" goes too
                    self._add(kind, i0, run.groups[e - 1][1])
                    self._classify_range(run, a, s)
                    self._classify_range(run, e, b)
                    return

    # -- the result -------------------------------------------------------------------------
    def run(self) -> tuple[str, list[Span], frozenset[str]]:
        if self.toks:
            self._emails()
            self._values()
            self._runs()
        spans = _merge(self.spans)
        out, pos = [], 0
        for sp in spans:
            out.append(self.text[pos:sp.start])
            out.append(self.cfg.token(sp.kind))
            pos = sp.end
        out.append(self.text[pos:])
        return "".join(out), spans, self._dangling()

    def _dangling(self) -> frozenset[str]:
        """Trigger kinds at the end of this text with no value after them: they govern the
        start of the next turn ("What's your account number?" -> "It's H E 4 7 2 9")."""
        n = len(self.toks)
        last_taken = max((k for k in range(n) if self.taken[k]), default=-1)
        out = set()
        for tr in self.triggers:
            if tr.i0 >= 0 and tr.i1 > last_taken and self._units(tr.i1 + 1, n) < DANGLING_TAIL \
                    and tr.kind in ("account", "ending", "ssn", "dob", "email", "phone", "card"):
                out.add(tr.kind)
        return frozenset(out)


def _merge(spans: list[Span]) -> list[Span]:
    """Non-overlapping spans in text order; an overlap keeps the higher-priority kind and
    the union of the extents; adjacent spans of one kind (only spaces between) stay apart."""
    if not spans:
        return []
    spans = sorted(spans, key=lambda s: (s.start, -s.end))
    out = [spans[0]]
    for sp in spans[1:]:
        cur = out[-1]
        if sp.start < cur.end:
            kind = min(cur.kind, sp.kind, key=_PRIORITY.index)
            out[-1] = Span(kind, cur.start, max(cur.end, sp.end))
        else:
            out.append(sp)
    return out


def _redact(text: str, config: PiiConfig, prompt: frozenset[str] = frozenset()
            ) -> tuple[str, list[Span], frozenset[str]]:
    if not config.active or not text:
        return text, [], frozenset()
    return _Redactor(text, config, prompt).run()


def redact_text(text: str, config: PiiConfig = DEFAULT_CONFIG) -> tuple[str, list[Span]]:
    """``text`` with every PII value replaced by its kind's token, and the spans (kind,
    start, end) of what was replaced, as offsets in the ORIGINAL text."""
    red, spans, _ = _redact(text, config)
    return red, spans


# ---------------------------------------------------------------------------------------
# Transcripts
# ---------------------------------------------------------------------------------------
def _redact_words(words: tuple[Word, ...], spans: list[Span], config: PiiConfig
                  ) -> tuple[Word, ...]:
    """Apply spans (offsets in " ".join(w.w for w in words)) to the words: every run of
    words a span touches becomes one Word from the first word's start to the last word's
    end, p = the lowest of theirs; text outside the span inside those words is kept."""
    if not spans:
        return words
    offs, pos = [], 0
    for w in words:
        offs.append(pos)
        pos += len(w.w) + 1
    ends = [o + len(w.w) for o, w in zip(offs, words)]
    # word range of each span, then ranges merged where they share a word
    groups: list[list] = []   # [w0, w1, [spans]]
    for sp in spans:
        w0 = bisect.bisect_right(offs, sp.start) - 1
        w1 = bisect.bisect_left(ends, sp.end)
        w0, w1 = max(w0, 0), min(w1, len(words) - 1)
        if groups and w0 <= groups[-1][1]:
            groups[-1][1] = max(groups[-1][1], w1)
            groups[-1][2].append(sp)
        else:
            groups.append([w0, w1, [sp]])
    joined = " ".join(w.w for w in words)
    out: list[Word] = []
    k = 0
    for w0, w1, sps in groups:
        out.extend(words[k:w0])
        seg_start, seg_end = offs[w0], ends[w1]
        parts, pos = [], seg_start
        for sp in sps:
            parts.append(joined[pos:sp.start])
            parts.append(config.token(sp.kind))
            pos = sp.end
        parts.append(joined[pos:seg_end])
        chunk = words[w0:w1 + 1]
        out.append(Word("".join(parts), chunk[0].start, chunk[-1].end, min(x.p for x in chunk)))
        k = w1 + 1
    out.extend(words[k:])
    return tuple(out)


def redact_turns(turns: Iterable[Turn], config: PiiConfig = DEFAULT_CONFIG
                 ) -> tuple[list[Turn], Counter]:
    """Redact turns in order (a trigger dangling at the end of one turn governs the start
    of the next); returns the new turns and the count of values per kind."""
    counts: Counter = Counter()
    out: list[Turn] = []
    prompt: frozenset[str] = frozenset()
    for turn in turns:
        text, spans, dangling = _redact(turn.text, config, prompt)
        words = turn.words
        if words:
            joined = " ".join(w.w for w in words)
            wspans = spans if joined == turn.text else _redact(joined, config, prompt)[1]
            words = _redact_words(words, wspans, config)
        counts.update(sp.kind for sp in spans)
        out.append(dataclasses.replace(turn, text=text, words=words)
                   if spans or words is not turn.words else turn)
        prompt = dangling
    return out, counts


def redact_transcript(transcript: Transcript, config: PiiConfig = DEFAULT_CONFIG
                      ) -> tuple[Transcript, dict[str, int]]:
    """The transcript with PII redacted in every turn's text and words, and the number of
    values redacted per kind (every configured kind, zeros included; never the values).

    Stored coaching ``features`` hold normalised sentence text, so they are dropped when
    anything changed (recompute them from the redacted transcript).  ``models["pii"]``
    records that the transcript went through this redactor and with which settings."""
    if not config.active:
        return transcript, {}
    turns, counts = redact_turns(transcript.turns, config)
    changed = any(a is not b for a, b in zip(turns, transcript.turns))
    marker = f"callcoach-pii@{PII_VERSION}:{','.join(sorted(config.kinds))}"
    models = dict(transcript.models)
    models["pii"] = marker
    out = dataclasses.replace(
        transcript, turns=tuple(turns), models=models,
        features=None if changed else transcript.features)
    return out, {k: counts.get(k, 0) for k in sorted(config.kinds)}
