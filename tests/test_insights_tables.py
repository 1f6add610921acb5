"""Cross-call tables on a scripted series of calls (tests/test_insights_helpers.SERIES):
the commitments ledger, recurring issues, commitments per agent and recognition, asserted
exactly; the per-call rows, as-of semantics, empty inputs and the Parquet round trip."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from callcoach.coaching.rules import default_ruleset
from callcoach.coaching.score import score_batch
from callcoach.insights.categories import default_categories
from callcoach.insights.detect import insights_batch
from callcoach.insights.tables import (COMMITMENT_AGENT_COLUMNS, COMMITMENT_COLUMNS, INSIGHT_COLUMNS,
                                       RECOGNITION_COLUMNS, RECURRING_COLUMNS, TABLES, build_tables,
                                       commitments, commitments_by_agent, insight_row, insights_frame,
                                       recognition, recurring_issues)
from callcoach.tables import call_row, calls_frame
from test_insights_helpers import featured, scripted_call, series_calls

UTC = timezone.utc


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


@pytest.fixture(scope="module")
def series():
    rs, cats = default_ruleset(), default_categories()
    calls = series_calls()
    reports = score_batch([(c, None) for c in calls], rs)
    ins = insights_batch(list(zip(calls, reports)), cats, rs)
    by_id = {c.call_id: (c, r, i) for c, r, i in zip(calls, reports, ins)}
    rows = [insight_row(i, r) for i, r in zip(ins, reports)]
    return {"calls": by_id, "insights": insights_frame(rows), "rows": rows,
            "calls_table": calls_frame([call_row(r, c) for c, r in zip(calls, reports)])}


def _t(tr, sentence: str) -> float:
    for tt in tr.turns:
        if sentence in tt.text:
            return round(tt.start + (tt.end - tt.start) * tt.text.index(sentence) / len(tt.text), 2)
    raise KeyError(sentence)


def test_series_per_call_detection(series):
    """What the tables are built from: call types from the real scorer, insights per call."""
    got = {cid: (r["call_type"], i["category"], i["ticket_refs"],
                 [(c["due"], c["due_kind"], c["who"]) for c in i["commitments"]])
           for cid, (_, r, i) in series["calls"].items()}
    assert got == {
        "A1": ("escalation", "outage", ["FL2034"], [("2025-03-04T16:00:00+00:00", "time", "agent")]),
        "B1": ("standard", "billing", [], [("2025-03-07T23:59:59+00:00", "date", "agent")]),
        "A2": ("standard", "other", [], []),
        "C1": ("handoff", "delivery", ["TR5022"], [("2025-03-06T12:00:00+01:00", "time", "team")]),
        "C2": ("standard", "delivery", ["TR5022"], []),
        "A3": ("escalation", "outage", [], [("2025-03-10T17:00:00+00:00", "time", "agent")]),
        "D1": ("standard", "billing", [], [("2025-03-14T00:00:00+00:00", "date", "agent")]),
        "A4": ("standard", "outage", [], []),
        "E1": ("standard", "billing", [], []),
    }
    a1 = series["calls"]["A1"][1]
    c1 = series["calls"]["C1"][1]
    a3 = series["calls"]["A3"][1]
    # A1: every escalation check passed (recovered); C1: every handoff check, no risk (clean)
    assert all(c["passed"] for c in a1["process_checks"]) and a1["risks"] == []
    assert all(c["passed"] for c in c1["process_checks"]) and c1["risks"] == []
    assert [c["check"] for c in a3["process_checks"] if c["passed"] is False] == [
        "issue_acknowledged", "acknowledged_before_solving", "root_cause_explained",
        "action_plan_created", "satisfaction_confirmed", "executive_escalation_offered"]
    row = {r["call_id"]: r for r in series["rows"]}
    assert (row["A1"]["all_checks_passed"], row["A3"]["all_checks_passed"], row["B1"]["all_checks_passed"]) == (True, False, None)
    assert (row["C1"]["clean_handoff"], row["A1"]["clean_handoff"]) == (True, None)
    assert (row["C1"]["day"], row["C1"]["week_start"], row["C1"]["iso_week"]) == ("2025-03-05", "2025-03-03", "2025-W10")
    assert row["C1"]["started_at_utc"] == "2025-03-05T09:00:00.000000+00:00"


def test_commitments_ledger_exact(series):
    ledger = commitments(series["insights"], series["calls_table"])
    tr = {cid: c for cid, (c, _, _) in series["calls"].items()}
    as_of = utc(2025, 3, 12, 14, 0)          # the latest call start: E1
    q = {"A1": "I'll call you by four tomorrow to confirm.",
         "B1": "I'll email you the corrected statement by Friday.",
         "C1": "Sam will call you by midday on Thursday with a new date.",
         "A3": "I'll call you by 5 pm today with an update.",
         "D1": "I'll ring you back before Friday once it's reversed."}
    rows = [
        # kept: cust-A called again on Tue 15:30, before the 16:00 due
        ("A1#0", "A1", "agt-1", "north", "cust-A", ["FL2034"], date(2025, 3, 3), utc(2025, 3, 3, 9),
         "2025-03-04T16:00:00+00:00", utc(2025, 3, 4, 16), "time", "agent", "kept", "A2", utc(2025, 3, 4, 15, 30)),
        # broken: no later call from cust-B; due Fri 23:59:59 is before the as-of time
        ("B1#0", "B1", "agt-1", "north", "cust-B", [], date(2025, 3, 3), utc(2025, 3, 3, 11),
         "2025-03-07T23:59:59+00:00", utc(2025, 3, 7, 23, 59, 59), "date", "agent", "broken", None, None),
        # kept through the ticket: C2 (no customer id) quotes TR5022 at 11:30 +01:00 < 12:00 +01:00
        ("C1#0", "C1", "agt-2", "south", None, ["TR5022"], date(2025, 3, 5), utc(2025, 3, 5, 9),
         "2025-03-06T12:00:00+01:00", utc(2025, 3, 6, 11), "time", "team", "kept", "C2", utc(2025, 3, 6, 10, 30)),
        # broken: cust-A's next call A4 came the morning after the 17:00 due
        ("A3#0", "A3", "agt-3", "north", "cust-A", [], date(2025, 3, 10), utc(2025, 3, 10, 10),
         "2025-03-10T17:00:00+00:00", utc(2025, 3, 10, 17), "time", "agent", "broken", None, None),
        # open: "before Friday" = Fri 00:00, after the as-of time, no call yet
        ("D1#0", "D1", "agt-3", "north", "cust-D", [], date(2025, 3, 11), utc(2025, 3, 11, 9),
         "2025-03-14T00:00:00+00:00", utc(2025, 3, 14), "date", "agent", "open", None, None),
    ]
    want = pl.DataFrame([{
        "commitment_id": r[0], "call_id": r[1], "agent_id": r[2], "team": r[3], "customer_id": r[4],
        "ticket_refs": r[5], "day": r[6], "made_at_utc": r[7], "t": _t(tr[r[1]], q[r[1]]),
        "quote": q[r[1]], "due": r[8], "due_utc": r[9], "due_kind": r[10], "who": r[11],
        "status": r[12], "kept_by_call_id": r[13], "kept_at_utc": r[14], "as_of_utc": as_of,
    } for r in rows], schema=COMMITMENT_COLUMNS, orient="row")
    assert_frame_equal(ledger, want)


def test_commitments_as_of(series):
    ins, calls = series["insights"], series["calls_table"]
    status = lambda df: dict(zip(df["commitment_id"], df["status"]))  # noqa: E731
    # Tue noon: only the promises made by then exist; both still due
    early = commitments(ins, calls, as_of="2025-03-04T12:00:00Z")
    assert status(early) == {"A1#0": "open", "B1#0": "open"}
    # a call after the as-of time does not keep a promise yet
    assert early["kept_by_call_id"].to_list() == [None, None]
    # Sat 00:00: B1's Friday 23:59:59 has passed; A1 and C1 were kept
    sat = commitments(ins, calls, as_of=datetime(2025, 3, 8, 1, 0, tzinfo=timezone(timedelta(hours=1))))
    assert status(sat) == {"A1#0": "kept", "B1#0": "broken", "C1#0": "kept"}
    assert sat["as_of_utc"].unique().to_list() == [utc(2025, 3, 8)]
    with pytest.raises(ValueError):
        commitments(ins, calls, as_of=datetime(2025, 3, 8))


def test_same_call_and_earlier_calls_do_not_keep(series):
    """A promise is kept only by a LATER call: the call itself and calls before it never
    count, and a linked call with a different customer id but the same ticket does."""
    rs, cats = default_ruleset(), default_categories()
    calls = featured([
        scripted_call("P0", [("c", "My parcel is late."), ("a", "Okay.")], "2025-03-03T08:00:00+00:00", "cust-P"),
        scripted_call("P1", [("c", "My parcel is late again."),
                             ("a", "Your case number is P Q four four one two. I'll call you by 4 pm today.")],
                      "2025-03-03T09:00:00+00:00", "cust-P"),
        scripted_call("Q1", [("c", "Hi, I'm calling for my neighbour about case P Q four four one two.")],
                      "2025-03-03T15:00:00+00:00", "cust-Q"),
    ])
    reps = score_batch([(c, None) for c in calls], rs)
    ins = insights_frame([insight_row(i, r) for i, r in zip(insights_batch(list(zip(calls, reps)), cats, rs), reps)])
    ct = calls_frame([call_row(r, c) for c, r in zip(calls, reps)])
    led = commitments(ins, ct)
    assert led.select("commitment_id", "status", "kept_by_call_id").rows() == [("P1#0", "kept", "Q1")]
    alone = commitments(ins.filter(pl.col("call_id") != "Q1"), ct.filter(pl.col("call_id") != "Q1"),
                        as_of="2025-03-03T18:00:00Z")
    assert alone.select("commitment_id", "status", "kept_by_call_id").rows() == [("P1#0", "broken", None)]


def test_recurring_issues_exact(series):
    got = recurring_issues(series["insights"], series["calls_table"])
    w10, w11 = date(2025, 3, 3), date(2025, 3, 10)
    N = None
    # week, category, team, calls, escalations, rate, recovered, share, prev_calls, prev_rate,
    # prev_share, change, change_pct, rate_change, share_change
    rows = [
        (w10, "billing", "north", 1, 0, 0.0, 0, N, 0, N, N, 1, N, N, N),              # B1
        (w10, "delivery", "south", 2, 1, 0.5, 1, 1.0, 0, N, N, 2, N, N, N),          # C1 clean handoff, C2
        (w10, "other", "north", 1, 0, 0.0, 0, N, 0, N, N, 1, N, N, N),                # A2
        (w10, "outage", "north", 1, 1, 1.0, 1, 1.0, 0, N, N, 1, N, N, N),             # A1 recovered
        (w11, "billing", "north", 1, 0, 0.0, 0, N, 1, 0.0, N, 0, 0.0, 0.0, N),        # D1 vs B1
        (w11, "billing", "south", 1, 0, 0.0, 0, N, 0, N, N, 1, N, N, N),              # E1
        (w11, "delivery", "south", 0, 0, N, 0, N, 2, 0.5, 1.0, -2, -1.0, N, N),       # gone
        (w11, "other", "north", 0, 0, N, 0, N, 1, 0.0, N, -1, -1.0, N, N),            # gone
        (w11, "outage", "north", 2, 1, 0.5, 0, 0.0, 1, 1.0, 1.0, 1, 1.0, -0.5, -1.0),  # A3 failed, A4
    ]
    want = pl.DataFrame([{
        "day": r[0], "week_start": r[0], "iso_week": "2025-W10" if r[0] == w10 else "2025-W11",
        "category": r[1], "team": r[2], "calls": r[3], "escalations": r[4], "escalation_rate": r[5],
        "recovered": r[6], "recovered_share": r[7], "prev_calls": r[8], "prev_escalation_rate": r[9],
        "prev_recovered_share": r[10], "calls_change": r[11], "calls_change_pct": r[12],
        "escalation_rate_change": r[13], "recovered_share_change": r[14],
    } for r in rows], schema=RECURRING_COLUMNS, orient="row")
    assert_frame_equal(got, want)


def test_commitments_by_agent_and_recognition_exact(series):
    ledger = commitments(series["insights"], series["calls_table"])
    w10, w11 = date(2025, 3, 3), date(2025, 3, 10)
    as_of = utc(2025, 3, 12, 14)
    want = pl.DataFrame([
        {"day": w10, "week_start": w10, "iso_week": "2025-W10", "agent_id": "agt-1", "team": "north",
         "commitments": 2, "open": 0, "kept": 1, "broken": 1, "kept_rate": 0.5, "by_agent": 2, "by_team": 0,
         "as_of_utc": as_of},
        {"day": w10, "week_start": w10, "iso_week": "2025-W10", "agent_id": "agt-2", "team": "south",
         "commitments": 1, "open": 0, "kept": 1, "broken": 0, "kept_rate": 1.0, "by_agent": 0, "by_team": 1,
         "as_of_utc": as_of},
        {"day": w11, "week_start": w11, "iso_week": "2025-W11", "agent_id": "agt-3", "team": "north",
         "commitments": 2, "open": 1, "kept": 0, "broken": 1, "kept_rate": 0.0, "by_agent": 2, "by_team": 0,
         "as_of_utc": as_of},
    ], schema=COMMITMENT_AGENT_COLUMNS)
    assert_frame_equal(commitments_by_agent(ledger), want)

    rec = recognition(series["calls_table"], ledger)
    want = pl.DataFrame([
        # week, agent, team, calls, escalations, recovered, rate, handoffs, clean, rate, kept, broken
        (w10, "2025-W10", "agt-1", "north", 3, 1, 1, 1.0, 0, 0, None, 1, 1),     # A1 recovered
        (w10, "2025-W10", "agt-2", "south", 2, 0, 0, None, 1, 1, 1.0, 1, 0),     # C1 clean handoff
        (w11, "2025-W11", "agt-3", "north", 3, 1, 0, 0.0, 0, 0, None, 0, 1),     # A3 not recovered
        (w11, "2025-W11", "agt-2", "south", 1, 0, 0, None, 0, 0, None, 0, 0),    # E1
    ], schema=[c for c in RECOGNITION_COLUMNS if c != "day"], orient="row")
    want = want.with_columns(pl.col("week_start").alias("day")).select(list(RECOGNITION_COLUMNS))
    assert_frame_equal(rec, want)
    # without a ledger the commitment counts are 0
    assert recognition(series["calls_table"])["commitments_kept"].to_list() == [0, 0, 0, 0]


def test_empty_inputs_keep_their_schemas():
    ins, calls = insights_frame([]), calls_frame([])
    assert ins.schema == pl.Schema(INSIGHT_COLUMNS)
    out = build_tables(ins, calls)
    assert list(out) == list(TABLES)
    for name, df in out.items():
        assert df.is_empty() and df.schema == pl.Schema(TABLES[name]), name


def test_rows_survive_json_and_tables_round_trip_delta(series, tmp_path):
    """insight_row is JSON-safe (it travels in ledger entries like call rows), and every
    table is written and read back as a Delta table partitioned by day."""
    from callcoach.storage import LocalStore
    from callcoach.tables import read_table, write_table

    back = insights_frame(json.loads(json.dumps(series["rows"])))
    assert_frame_equal(back, series["insights"])
    out = build_tables(series["insights"], series["calls_table"])
    store = LocalStore(tmp_path)
    for name, df in out.items():
        assert write_table(store, name, df) == df.height
        sort = [c for c in ("day", "call_id", "commitment_id", "category", "team", "agent_id") if c in df.columns]
        assert_frame_equal(read_table(store, name, TABLES[name]).sort(sort, nulls_last=True),
                           df.sort(sort, nulls_last=True))
    days = sorted({o.key.split("/")[2] for o in store.list("tables/recurring_issues", (".parquet",))})
    assert days == ["day=2025-03-03", "day=2025-03-10"]
    for name in out:                                      # typed counts, never UInt32
        schema = pl.read_delta(store.url(f"tables/{name}")).schema
        assert not any(t in (pl.UInt32, pl.Int32) for t in schema.values()), name
    # build_tables keeps only calls present in the calls table (a call that later failed)
    fewer = build_tables(series["insights"], series["calls_table"].filter(pl.col("call_id") != "A2"))
    assert "A2" not in fewer["insights"]["call_id"].to_list()
    assert fewer["commitments"]["status"].to_list() == ["broken", "broken", "kept", "broken", "open"]
