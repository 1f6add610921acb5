"""Resolve the time expressions of a commitment sentence to due datetimes.

Input is a sentence already normalised by ``callcoach.coaching.features.normalise`` (lower
case, spoken numbers as digits: "four pm" -> "4 pm", "ten a.m." -> "10 am"), which has
already been found to carry a specific time by the rule set's ``specific_commitment`` act
(or the bare-day branch of the insights file).  The coaching engine only *detects* that a
time is specific (the ``<<WHEN>>`` macro of the rule set); nothing in it turns "by four
tomorrow" into a datetime, so this module does that one thing, for exactly the forms the
``<<WHEN>>`` macro and the insights file accept.

Resolution (``now`` = the moment the sentence was spoken: call start + sentence offset, in
the call's timezone):

- clock times: "4 pm", "4:30 pm", "4 30 pm", "16:00", "4 o'clock", "noon", "midday",
  "midnight", "half past 3", "quarter to 5"; a bare hour after by/before/at/until/till
  ("by 4") is read in business hours: below ``pm_below`` it is pm (4 -> 16:00), else am.
- day parts: morning, lunchtime, afternoon, evening, tonight, end of (the) day / business /
  play, close of business, first thing: their END (the deadline) from ``day_parts``.
- days: today, tonight, tomorrow, the day after tomorrow, weekdays (the next one strictly
  after today; "next Friday" = the Friday of next week), "end of the week" (Friday),
  dates ("the 14th", "14th of March", "March 14"; the next such date on or after today).
- relative: "within / in (the next) N minutes|hours|days|working days|business days|weeks",
  "within the hour", "within an hour".

Due time: a clock or day part gives that time on the day (today when no day is named, or
tomorrow when that time has already passed: ``due_kind`` "time"); a day without a time is
the end of that day (23:59:59), or its start for "before <day>" (``due_kind`` "date");
relative periods are added to ``now`` (minutes, hours, calendar days) or counted in working
days (Mon-Fri) to the end of that day (``due_kind`` "relative").

A sentence with two deadlines ("by 4 pm today and I'll call you tomorrow at 10 am") gives
two: mentions join into one deadline unless a second day is named, the same kind of time
is named twice, or a clause boundary (and, then, but, or, so ...) or more than four words
separate them.  A "between 8 am and 1 pm" window gives its end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Mapping

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
_ORDINAL_WORDS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30, "twenty first": 21,
    "twenty second": 22, "twenty third": 23, "twenty fourth": 24, "twenty fifth": 25,
    "twenty sixth": 26, "twenty seventh": 27, "twenty eighth": 28, "twenty ninth": 29,
    "thirty first": 31,
}
DEFAULT_DAY_PARTS = {"morning": "12:00", "lunchtime": "14:00", "afternoon": "17:00",
                     "evening": "21:00", "tonight": "23:59", "end_of_day": "17:00",
                     "first_thing": "10:00"}

_WD = "|".join(WEEKDAYS)
_MO = "|".join(MONTHS)
_ORD = "|".join(sorted(_ORDINAL_WORDS, key=len, reverse=True))
_DN = r"(?:[12]\d|3[01]|0?[1-9])"

# Every mention kind, one alternation with named groups; scanned left to right.
_MENTION = re.compile(
    r"(?P<between>\bbetween (?P<b1>\d{1,2}(?:[:.]\d{2}| \d{2})?(?: ?(?:am|pm))?) and "
    r"(?P<b2>\d{1,2}(?:[:.]\d{2}| \d{2})?(?: ?(?:am|pm))?|noon|midday))"
    r"|(?P<rel>\b(?:within|in) (?:the next |the |an? |another )?(?P<rn>\d+|an?|the)? ?"
    r"(?P<ru>minutes?|mins?|hours?|hrs?|days?|working days?|business days?|weeks?)\b)"
    r"|(?P<half>\b(?P<hq>half|quarter) (?P<hd>past|to) (?P<hh>\d{1,2})\b(?: ?(?P<hap>am|pm))?)"
    r"|(?P<clock>\b(?P<ch>\d{1,2})(?:(?::|\.| )(?P<cm>[0-5]\d))? ?(?P<cap>am|pm)\b)"
    r"|(?P<h24>\b(?P<h24h>[01]?\d|2[0-3]):(?P<h24m>[0-5]\d)\b)"
    r"|(?P<oclock>\b(?P<oh>\d{1,2}) o'clock\b)"
    r"|(?P<named>\b(?:12 )?(?P<nm>noon|midday|midnight)\b)"
    r"|(?P<eod>\b(?:end of (?:the )?(?:day|business|play|today)|close of (?:business|play)|cob|eod)\b)"
    r"|(?P<eow>\bend of (?:the|this) week\b)"
    r"|(?P<first>\bfirst thing\b)"
    r"|(?P<dat>\bthe day after tomorrow\b)"
    r"|(?P<reld>\b(?P<rdw>today|tonight|tomorrow)\b(?: (?P<rdp>morning|afternoon|evening|lunchtime|night))?)"
    r"|(?P<this>\bthis (?P<tp>morning|afternoon|evening)\b)"
    r"|(?P<date1>\b(?P<d1>" + _DN + r")(?:st|nd|rd|th)? (?:of )?(?P<m1>" + _MO + r")\b)"
    r"|(?P<date2>\b(?P<m2>" + _MO + r") (?:the )?(?P<d2>" + _DN + r")(?:st|nd|rd|th)?\b)"
    r"|(?P<date3>\bthe (?P<d3>" + _DN + r")(?:st|nd|rd|th)\b(?: of (?P<m3>" + _MO + r")\b)?)"
    r"|(?P<date4>\bthe (?P<d4>" + _ORD + r")\b(?: of (?P<m4>" + _MO + r")\b)?)"
    r"|(?P<wday>\b(?P<wmod>next |this |on |by |before |until |till )?(?P<wd>" + _WD + r")\b"
    r"(?: (?P<wp>morning|afternoon|evening|lunchtime|night))?)"
    r"|(?P<bare>\b(?P<bp>by|before|at|until|till|for) (?P<bh>\d{1,2})(?:[:. ](?P<bm>[0-5]\d))?\b"
    r"(?! ?(?:[:.]?\d|am\b|pm\b|o'clock|noon|midday|midnight|minutes?|mins?|hours?|hrs?|days?|working|business|weeks?|months?|years?"
    r"|st\b|nd\b|rd\b|th\b|of\b|pounds?|percent|%|items?|people|users|" + _MO + r")))"
)
_DATE_LEAD = re.compile(r"\b(?:on|by|before|until|till|for|from|after|" + _WD + r") $")
_CLAUSE = re.compile(r"\b(?:and|then|but|or|also|plus|while|so)\b")
_BEFORE_DAY = re.compile(r"\bbefore (?:the |this |next )?$")


@dataclass(frozen=True)
class Due:
    due: datetime           # timezone-aware
    kind: str               # "time" | "date" | "relative"
    span: tuple[int, int]   # character span of the expression in the normalised text

    def iso(self) -> str:
        return self.due.isoformat(timespec="seconds")


def _hm(s: str) -> tuple[int, int]:
    h, m = s.split(":")
    return int(h), int(m)


def _business_hour(h: int, pm_below: int) -> int:
    if h == 12:
        return 12
    if 1 <= h < pm_below:
        return h + 12
    return h


def _clock(h: int, m: int, ap: str | None) -> tuple[int, int] | None:
    if ap == "pm" and h < 12:
        h += 12
    elif ap == "am" and h == 12:
        h = 0
    if not (0 <= h <= 23 and 0 <= m <= 59):
        return None
    return h, m


def _add_working_days(d: date, n: int) -> date:
    while n > 0:
        d += timedelta(days=1)
        if d.weekday() < 5:
            n -= 1
    return d


class _Group:
    __slots__ = ("day", "day_start", "clock", "part", "rel", "a", "b", "clock_implied_pm")

    def __init__(self):
        self.day = None          # date
        self.day_start = False   # "before <day>": the start of that day
        self.clock = None        # (h, m, explicit_ampm)
        self.part = None         # day-part name
        self.rel = None          # ("minutes"|"hours"|"days"|"wdays"|"weeks", n)
        self.a = self.b = -1

    def empty(self) -> bool:
        return self.day is None and self.clock is None and self.part is None and self.rel is None


def resolve(norm: str, now: datetime, day_parts: Mapping[str, str] | None = None,
            pm_below: int = 8) -> list[Due]:
    """Due datetimes named in one normalised sentence, in order of mention.

    ``now``: timezone-aware moment the sentence was spoken (the call's local timezone)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    parts = dict(DEFAULT_DAY_PARTS)
    if day_parts:
        parts.update(day_parts)
    today = now.date()
    groups: list[_Group] = []
    g = _Group()

    def push_new():
        nonlocal g
        if not g.empty():
            groups.append(g)
        g = _Group()

    def set_day(d: date, a: int, b: int, start: bool = False):
        if g.day is not None:       # a second day named: another deadline
            push_new()
        g.day = d
        g.day_start = start or g.day_start
        g.a = a if g.a < 0 else g.a
        g.b = b

    def set_clock(h: int, m: int, a: int, b: int, explicit: bool):
        if g.clock is not None or g.rel is not None:
            push_new()
        g.clock = (h, m, explicit)
        g.a = a if g.a < 0 else g.a
        g.b = b

    def set_part(p: str, a: int, b: int):
        if (g.part is not None and g.part != p) or g.rel is not None:
            push_new()
        g.part = p
        g.a = a if g.a < 0 else g.a
        g.b = b

    for m in _MENTION.finditer(norm):
        a, b = m.span()
        # a clause boundary ("... by 4 pm and I'll call you ...") or a long gap ends a deadline
        if not g.empty() and (_CLAUSE.search(norm, g.b, a) or len(norm[g.b:a].split()) > 4):
            push_new()
        kind = m.lastgroup
        gd = m.groupdict()
        if gd["between"]:
            end = gd["b2"]
            if end in ("noon", "midday"):
                set_clock(12, 0, a, b, True)
                continue
            mm = re.fullmatch(r"(\d{1,2})(?:[:. ](\d{2}))?(?: ?(am|pm))?", end)
            h, mi, ap = int(mm.group(1)), int(mm.group(2) or 0), mm.group(3)
            if ap is None:
                h = _business_hour(h, pm_below)
            c = _clock(h, mi, ap)
            if c:
                set_clock(c[0], c[1], a, b, ap is not None)
        elif gd["rel"]:
            n_s, unit = gd["rn"], gd["ru"]
            n = 1 if n_s in (None, "a", "an", "the") else int(n_s)
            if unit.startswith(("working", "business")):
                u = "wdays"
            elif unit.startswith("min"):
                u = "minutes"
            elif unit.startswith("h"):
                u = "hours"
            elif unit.startswith("day"):
                u = "days"
            else:
                u = "weeks"
            push_new()
            g.rel = (u, n)
            g.a, g.b = a, b
            push_new()
        elif gd["half"]:
            h = int(gd["hh"])
            mi = 30 if gd["hq"] == "half" else 15
            if gd["hd"] == "to":
                h, mi = h - 1, 60 - mi
            ap = gd["hap"]
            if ap is None:
                h = _business_hour(h % 12 or 12, pm_below) if h else 12
            c = _clock(h, mi, ap)
            if c:
                set_clock(c[0], c[1], a, b, ap is not None)
        elif gd["clock"]:
            c = _clock(int(gd["ch"]), int(gd["cm"] or 0), gd["cap"])
            if c:
                set_clock(c[0], c[1], a, b, True)
        elif gd["h24"]:
            h, mi = int(gd["h24h"]), int(gd["h24m"])
            if h >= 13 or h == 0:
                set_clock(h, mi, a, b, True)
            else:
                set_clock(_business_hour(h, pm_below), mi, a, b, False)
        elif gd["oclock"]:
            c = _clock(_business_hour(int(gd["oh"]), pm_below), 0, None)
            if c:
                set_clock(c[0], c[1], a, b, False)
        elif gd["named"]:
            set_clock(0 if gd["nm"] == "midnight" else 12, 0, a, b, True)
        elif gd["eod"]:
            set_part("end_of_day", a, b)
        elif gd["eow"]:
            d = today + timedelta(days=(4 - today.weekday()) % 7)
            set_day(d, a, b)
        elif gd["first"]:
            set_part("first_thing", a, b)
        elif gd["dat"]:
            set_day(today + timedelta(days=2), a, b)
        elif gd["reld"]:
            w = gd["rdw"]
            d = today + timedelta(days=1 if w == "tomorrow" else 0)
            set_day(d, a, b, start=bool(_BEFORE_DAY.search(norm[:a])) and w == "tomorrow")
            p = gd["rdp"]
            if w == "tonight":
                set_part("tonight", a, b)
            elif p:
                set_part("tonight" if p == "night" else p, a, b)
        elif gd["this"]:
            set_day(today, a, b)
            set_part(gd["tp"], a, b)
        elif gd["date1"] or gd["date2"]:
            dn = int(gd["d1"] or gd["d2"])
            mo = MONTHS.index(gd["m1"] or gd["m2"]) + 1
            d = _date_on_or_after(today, mo, dn)
            if d is not None:
                set_day(d, a, b, start=bool(_BEFORE_DAY.search(norm[:a])))
        elif gd["date3"] or gd["date4"]:
            mon = gd["m3"] or gd["m4"]
            # "the 14th" / "the fourteenth" is a date after on/by/before..., a weekday, or
            # with its month; "the first slot", "the 3rd time" are not
            if not mon and not _DATE_LEAD.search(norm, 0, a):
                continue
            dn = int(gd["d3"]) if gd["date3"] else _ORDINAL_WORDS[gd["d4"]]
            d = (_date_on_or_after(today, MONTHS.index(mon) + 1, dn) if mon
                 else _day_of_month_on_or_after(today, dn))
            if d is not None:
                set_day(d, a, b, start=bool(_BEFORE_DAY.search(norm[:a])))
        elif gd["wday"]:
            wd = WEEKDAYS.index(gd["wd"])
            mod = (gd["wmod"] or "").strip()
            if mod == "next":
                monday_next = today + timedelta(days=7 - today.weekday())
                d = monday_next + timedelta(days=wd)
            else:
                ahead = (wd - today.weekday()) % 7 or 7
                d = today + timedelta(days=ahead)
            # "friday the 14th": the date wins when it follows the weekday
            nxt = _MENTION.match(norm, b + 1) if b + 1 < len(norm) else None
            if nxt and (nxt.group("date3") or nxt.group("date4") or nxt.group("date1")):
                continue
            set_day(d, a, b, start=(mod == "before"))
            p = gd["wp"]
            if p:
                set_part("tonight" if p == "night" else p, a, b)
        elif gd["bare"]:
            h = int(gd["bh"])
            if h > 23:
                continue
            mi = int(gd["bm"] or 0)
            if h <= 12:
                h = _business_hour(h, pm_below)
            c = _clock(h, mi, None)
            if c:
                set_clock(c[0], c[1], a, b, False)
    push_new()

    out: list[Due] = []
    for gr in groups:
        due = _due(gr, now, today, parts, pm_below)
        if due is not None and all(o.due != due.due for o in out):
            out.append(due)
    return out


def _due(gr: _Group, now: datetime, today: date, parts: Mapping[str, str], pm_below: int) -> Due | None:
    tz = now.tzinfo
    span = (gr.a, gr.b)
    if gr.rel is not None:
        u, n = gr.rel
        if u == "minutes":
            return Due(now + timedelta(minutes=n), "relative", span)
        if u == "hours":
            return Due(now + timedelta(hours=n), "relative", span)
        if u == "days":
            d = today + timedelta(days=n)
        elif u == "weeks":
            d = today + timedelta(days=7 * n)
        else:
            d = _add_working_days(today, n)
        return Due(_at(d, time(23, 59, 59), tz), "relative", span)
    hm = None
    if gr.clock is not None:
        h, m, explicit = gr.clock
        if gr.part in ("morning", "first_thing") and not explicit and h >= 12 and h != 12:
            h -= 12            # "10 tomorrow morning": a bare hour in the morning is am
        elif gr.part in ("afternoon", "evening", "tonight") and not explicit and h < 12:
            h += 12
        hm = (h, m)
    elif gr.part is not None:
        hm = _hm(parts[gr.part])
    if hm is not None:
        d = gr.day if gr.day is not None else today
        due = _at(d, time(hm[0], hm[1]), tz)
        if gr.day is None and due <= now:
            due = _at(d + timedelta(days=1), time(hm[0], hm[1]), tz)
        return Due(due, "time", span)
    if gr.day is not None:
        t = time(0, 0) if gr.day_start else time(23, 59, 59)
        return Due(_at(gr.day, t, tz), "date", span)
    return None


def _at(d: date, t: time, tz: tzinfo) -> datetime:
    """A wall-clock time on a day in ``tz`` (zoneinfo resolves the day's own offset)."""
    return datetime.combine(d, t).replace(tzinfo=tz)


def _date_on_or_after(today: date, month: int, day: int) -> date | None:
    for y in (today.year, today.year + 1):
        try:
            d = date(y, month, day)
        except ValueError:
            continue
        if d >= today:
            return d
    return None


def _day_of_month_on_or_after(today: date, day: int) -> date | None:
    y, m = today.year, today.month
    for _ in range(13):
        try:
            d = date(y, m, day)
            if d >= today:
                return d
        except ValueError:
            pass
        m += 1
        if m > 12:
            y, m = y + 1, 1
    return None


def call_clock(started_at: str | None, tz_name: str | None = None) -> datetime | None:
    """The call's start as an aware datetime in the call's timezone: the sidecar's
    ``timezone`` (IANA name) when given, else the offset written in ``started_at``.  A
    ``started_at`` without an offset is read as UTC.  None when absent or unparseable."""
    if not started_at:
        return None
    try:
        dt = datetime.fromisoformat(str(started_at).replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    if tz_name:
        try:
            from zoneinfo import ZoneInfo
            dt = dt.astimezone(ZoneInfo(str(tz_name)))
        except Exception:
            pass
    return dt
