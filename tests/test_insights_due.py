"""Due times of commitment sentences: every form the resolver documents, resolved exactly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from callcoach.coaching.features import normalise
from callcoach.insights.due import call_clock, resolve

BST = timezone(timedelta(hours=1))
NOW = datetime(2025, 3, 4, 9, 30, tzinfo=BST)          # Tuesday 09:30 +01:00


@pytest.mark.parametrize("text,want", [
    ("I'll call you by four tomorrow.", [("2025-03-05T16:00:00+01:00", "time")]),
    ("You'll have an update before Friday.", [("2025-03-07T00:00:00+01:00", "date")]),
    ("I'll ring you at 4:30pm on the 14th of March.", [("2025-03-14T16:30:00+01:00", "time")]),
    ("We will call you within 2 working days.", [("2025-03-06T23:59:59+01:00", "relative")]),
    ("I will call you at half past three tomorrow.", [("2025-03-05T15:30:00+01:00", "time")]),
    ("by quarter to five", [("2025-03-04T16:45:00+01:00", "time")]),
    ("by 10am Monday", [("2025-03-10T10:00:00+01:00", "time")]),
    ("by end of day tomorrow", [("2025-03-05T17:00:00+01:00", "time")]),
    ("by close of business Thursday", [("2025-03-06T17:00:00+01:00", "time")]),
    ("in the next forty eight hours", [("2025-03-06T09:30:00+01:00", "relative")]),
    ("within the hour", [("2025-03-04T10:30:00+01:00", "relative")]),
    ("in 30 minutes", [("2025-03-04T10:00:00+01:00", "relative")]),
    ("within a week", [("2025-03-11T23:59:59+01:00", "relative")]),
    ("at three thirty this afternoon", [("2025-03-04T15:30:00+01:00", "time")]),
    ("at 7 o'clock this evening", [("2025-03-04T19:00:00+01:00", "time")]),
    ("at 10 tomorrow morning", [("2025-03-05T10:00:00+01:00", "time")]),
    ("first thing tomorrow", [("2025-03-05T10:00:00+01:00", "time")]),
    ("tomorrow afternoon", [("2025-03-05T17:00:00+01:00", "time")]),
    ("tonight", [("2025-03-04T23:59:00+01:00", "time")]),
    ("by 12 noon", [("2025-03-04T12:00:00+01:00", "time")]),
    ("by midnight", [("2025-03-05T00:00:00+01:00", "time")]),
    ("by 16:00 tomorrow", [("2025-03-05T16:00:00+01:00", "time")]),
    ("at 9.30 on Monday", [("2025-03-10T09:30:00+01:00", "time")]),
    ("at 10 30 am", [("2025-03-04T10:30:00+01:00", "time")]),
    # a time already past today, with no day named, is tomorrow's
    ("by 8 am", [("2025-03-05T08:00:00+01:00", "time")]),
    ("by 9", [("2025-03-05T09:00:00+01:00", "time")]),
    # weekdays: the next one strictly after today; "next" = the one in the following week
    ("on Tuesday", [("2025-03-11T23:59:59+01:00", "date")]),
    ("by Thursday", [("2025-03-06T23:59:59+01:00", "date")]),
    ("next Thursday", [("2025-03-13T23:59:59+01:00", "date")]),
    ("friday the 14th", [("2025-03-14T23:59:59+01:00", "date")]),
    ("by the end of the week", [("2025-03-07T23:59:59+01:00", "date")]),
    ("the day after tomorrow", [("2025-03-06T23:59:59+01:00", "date")]),
    ("before tomorrow", [("2025-03-05T00:00:00+01:00", "date")]),
    ("on the 2nd", [("2025-04-02T23:59:59+01:00", "date")]),        # already past this month
    ("the fourteenth of april", [("2025-04-14T23:59:59+01:00", "date")]),
    ("by 1 March", [("2026-03-01T23:59:59+01:00", "date")]),         # past this year
    ("on Thursday between 8 am and 1 pm", [("2025-03-06T13:00:00+01:00", "time")]),
    # two deadlines in one sentence
    ("I'm refunding it now, all by 4pm today, and I'll call you tomorrow at 10am.",
     [("2025-03-04T16:00:00+01:00", "time"), ("2025-03-05T10:00:00+01:00", "time")]),
    ("They'll have a finding by Thursday, and I'll ring you on Thursday evening.",
     [("2025-03-06T23:59:59+01:00", "date"), ("2025-03-06T21:00:00+01:00", "time")]),
    ("I'll speak to her this evening and call you back before ten tomorrow morning.",
     [("2025-03-04T21:00:00+01:00", "time"), ("2025-03-05T10:00:00+01:00", "time")]),
    # not deadlines: amounts, durations, counts, ordinals that are not dates
    ("I'm booking the first slot available.", []),
    ("This is the 3rd time I've asked.", []),
    ("It costs 12 pounds for 3 months.", []),
    ("We have been a customer for 10 years.", []),
    ("That's 2 items at 4 each.", [("2025-03-04T16:00:00+01:00", "time")]),   # "at 4" is a time
])
def test_resolve(text, want):
    got = [(d.iso(), d.kind) for d in resolve(normalise(text), NOW)]
    assert got == want


def test_span_points_at_the_expression():
    n = normalise("Okay, I'll call you by four tomorrow to confirm.")
    (d,) = resolve(n, NOW)
    assert n[d.span[0]:d.span[1]] == "by 4 tomorrow"


def test_day_parts_and_pm_below_are_configurable():
    n = normalise("I'll call you this afternoon, or by 7.")
    assert [d.iso() for d in resolve(n, NOW)] == ["2025-03-04T17:00:00+01:00", "2025-03-04T19:00:00+01:00"]
    got = resolve(n, NOW, day_parts={"afternoon": "15:30"}, pm_below=7)
    assert [d.iso() for d in got] == ["2025-03-04T15:30:00+01:00", "2025-03-05T07:00:00+01:00"]


def test_naive_now_is_refused():
    with pytest.raises(ValueError):
        resolve("by 4 pm", datetime(2025, 3, 4, 9, 30))


def test_call_clock_offsets_and_timezone_names():
    assert call_clock("2025-03-04T09:12:30Z") == datetime(2025, 3, 4, 9, 12, 30, tzinfo=timezone.utc)
    assert call_clock("2025-03-04T09:12:30") == datetime(2025, 3, 4, 9, 12, 30, tzinfo=timezone.utc)
    assert call_clock("2025-03-04T09:12:30-05:00").utcoffset() == timedelta(hours=-5)
    assert call_clock(None) is None and call_clock("yesterday") is None
    # a sidecar timezone name: the wall clock of each day follows its own offset (DST ends
    # in London on Sunday 26 October 2025)
    start = call_clock("2025-10-24T17:00:00+01:00", "Europe/London")
    assert str(start.tzinfo) == "Europe/London"
    (d,) = resolve(normalise("I'll call you by 10 am on Monday."), start)
    assert d.iso() == "2025-10-27T10:00:00+00:00"
    fixed = call_clock("2025-10-24T17:00:00+01:00")
    (d,) = resolve(normalise("I'll call you by 10 am on Monday."), fixed)
    assert d.iso() == "2025-10-27T10:00:00+01:00"
    # an unknown zone name falls back to the written offset
    assert call_clock("2025-10-24T17:00:00+01:00", "Mars/Olympus") == fixed
