"""callcoach.tables: per-call rows, contract aggregates and the Parquet tables, with figures
computed by hand from six reports written here (two days, two teams, three agents)."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from callcoach.contract import AREAS, CHECKS, ESCALATION_CHECKS, HANDOFF_CHECKS, RISKS
from callcoach.storage import LocalStore
from callcoach.tables import (AGGREGATES, CALL_COLUMNS, FAILURE_COLUMNS, aggregate, call_day,
                              call_row, calls_frame, history, read_table, write_table,
                              write_tables)
from callcoach.transcript import Transcript

D1, D2 = date(2024, 3, 4), date(2024, 3, 5)


def _checks(values: dict[str, bool | None]) -> list[dict]:
    return [{"check": name, "passed": passed,
             "evidence": None if passed is None else {"t": 12.0, "speaker": "agent", "quote": "..."}}
            for name, passed in values.items()]


def _report(call_id, *, call_type, duration, agent_ratio, lo, hi, within, interruptions,
            customer_interruptions, checks=None, risks=(), moments=(), **identity):
    return {
        "call_id": call_id, "schema_version": "1", "ruleset_version": "rules-abc123",
        "models": {"asr": "whisper-base@e42c50d4", "diarization": "channels@1"},
        "duration_s": duration, "call_type": call_type, "call_type_confidence": 0.8,
        "talk_ratio": {"agent": agent_ratio, "customer": round(1 - agent_ratio, 2),
                       "expected": [lo, hi], "within_expected": within},
        "tone": {"empathy": "medium", "confidence": "high", "jargon": "none",
                 "interruptions": interruptions, "customer_interruptions": customer_interruptions},
        "process_checks": _checks(checks or {}),
        "risks": [{"risk": r, "evidence": None} for r in risks],
        "moments": [{"t": 10.0 * i, "kind": kind, "area": area, "issue": "...",
                     "suggestion": "Try: ..."} for i, (kind, area) in enumerate(moments)],
        "sequence": [],
        **identity,
    }


def make_reports():
    """c2 carries no identity itself: agent, team and start come from its transcript."""
    c1 = _report("c1", agent_id="A1", team="billing", started_at="2024-03-04T09:15:00Z",
                 call_type="escalation", duration=300, agent_ratio=0.35, lo=0.30, hi=0.40,
                 within=True, interruptions=2, customer_interruptions=1,
                 checks={"issue_acknowledged": True, "acknowledged_before_solving": False,
                         "root_cause_explained": None, "action_plan_created": True,
                         "timeline_committed": False, "follow_up_scheduled": False,
                         "satisfaction_confirmed": True, "executive_escalation_offered": False},
                 risks=["resolution_timeline_vague", "no_follow_up_scheduled"],
                 moments=[("improvement", "control"), ("improvement", "commitment"),
                          ("strength", "empathy")])
    c2 = _report("c2", call_type="standard", duration=180, agent_ratio=0.55, lo=0.40, hi=0.60,
                 within=True, interruptions=0, customer_interruptions=0,
                 moments=[("improvement", "listening")])
    c3 = _report("c3", agent_id="A2", team="billing", started_at="2024-03-04T11:00:00+00:00",
                 call_type="escalation", duration=420, agent_ratio=0.52, lo=0.30, hi=0.40,
                 within=False, interruptions=4, customer_interruptions=2,
                 checks={"issue_acknowledged": False, "acknowledged_before_solving": False,
                         "root_cause_explained": True, "action_plan_created": False,
                         "timeline_committed": False, "follow_up_scheduled": True,
                         "satisfaction_confirmed": None, "executive_escalation_offered": True},
                 # the same risk twice (two unaddressed concerns) is one risk of the call
                 risks=["resolution_timeline_vague", "concern_not_addressed", "concern_not_addressed"],
                 moments=[("improvement", "empathy"), ("improvement", "control"),
                          ("improvement", "control")])
    c4 = _report("c4", agent_id="A3", team="tech", started_at="2024-03-04T16:30:00Z",
                 call_type="handoff", duration=240, agent_ratio=0.45, lo=0.40, hi=0.55,
                 within=True, interruptions=1, customer_interruptions=0,
                 checks={"issue_recap_given": True, "impact_assessed": True,
                         "ownership_stated": False, "specific_timeframe_given": False,
                         "ticket_reference_provided": True, "issue_documented": True,
                         "warm_handoff": None, "expectations_set": False},
                 risks=["no_escalation_timeframe", "ownership_unclear_after_handoff"],
                 moments=[("improvement", "ownership"), ("strength", "clarity")])
    c5 = _report("c5", agent_id="A3", team="tech", started_at="2024-03-05T08:00:00Z",
                 call_type="handoff", duration=360, agent_ratio=0.60, lo=0.40, hi=0.55,
                 within=False, interruptions=3, customer_interruptions=1,
                 checks={"issue_recap_given": False, "impact_assessed": True,
                         "ownership_stated": True, "specific_timeframe_given": True,
                         "ticket_reference_provided": None, "issue_documented": False,
                         "warm_handoff": False, "expectations_set": True},
                 risks=["customer_must_reexplain"],
                 moments=[("improvement", "clarity"), ("improvement", "listening")])
    c6 = _report("c6", agent_id="A1", team="billing", started_at="2024-03-05T10:00:00+01:00",
                 call_type="escalation", duration=600, agent_ratio=0.38, lo=0.30, hi=0.40,
                 within=True, interruptions=0, customer_interruptions=0,
                 checks={"issue_acknowledged": True, "acknowledged_before_solving": True,
                         "root_cause_explained": None, "action_plan_created": True,
                         "timeline_committed": True, "follow_up_scheduled": True,
                         "satisfaction_confirmed": True, "executive_escalation_offered": None},
                 moments=[("strength", "ownership"), ("improvement", "confidence")])
    return [c1, c2, c3, c4, c5, c6]


def c2_transcript() -> Transcript:
    return Transcript(call_id="c2", duration_s=180.0, turns=(), language="en",
                      metadata={"agent_id": "A1", "team": "billing",
                                "started_at": "2024-03-04T14:00:00Z"},
                      roles={"labels": {"L": "agent", "R": "customer"}, "confidence": 0.91,
                             "method": "sidecar"})


def make_rows():
    rows = []
    for report in make_reports():
        transcript = c2_transcript() if report["call_id"] == "c2" else None
        rows.append(call_row(report, transcript, source_key=f"in/{report['call_id']}.wav"))
    return rows


FAILURES = [
    {"call_id": "bad1", "source_key": "in/bad1.wav", "stage": "decode",
     "reason": "empty file (0 bytes)", "size_bytes": 0, "etag": "d41d8cd9"},
    {"call_id": "bad2", "source_key": "in/bad2.mp3", "stage": "speech",
     "reason": "RuntimeError: out of memory", "size_bytes": 1_234_567, "etag": "0badc0de"},
]


# -- rows --------------------------------------------------------------------------------

def test_call_row_flattens_a_report():
    rows = {r["call_id"]: r for r in make_rows()}
    c1 = rows["c1"]
    assert set(c1) == set(CALL_COLUMNS)
    assert (c1["agent_id"], c1["team"], c1["started_at"], c1["day"], c1["day_source"]) == \
        ("A1", "billing", "2024-03-04T09:15:00+00:00", "2024-03-04", "sidecar")
    assert c1["metadata_warning"] is None
    assert (c1["talk_ratio_agent"], c1["talk_ratio_expected_lo"], c1["talk_ratio_expected_hi"],
            c1["talk_ratio_within_expected"]) == (0.35, 0.30, 0.40, True)
    assert c1["check_issue_acknowledged"] is True
    assert c1["check_acknowledged_before_solving"] is False
    assert c1["check_root_cause_explained"] is None            # not applicable
    assert all(c1[f"check_{c}"] is None for c in HANDOFF_CHECKS)
    assert c1["risk_resolution_timeline_vague"] and c1["risk_no_follow_up_scheduled"]
    assert sum(c1[f"risk_{r}"] for r in RISKS) == c1["risks"] == 2
    assert (c1["moments_improvement"], c1["moments_strength"]) == (2, 1)
    assert {a: c1[f"moments_{a}"] for a in AREAS} == {
        "control": 1, "ownership": 0, "empathy": 0, "commitment": 1, "listening": 0,
        "clarity": 0, "confidence": 0}
    assert (c1["asr_model"], c1["diarization_model"], c1["ruleset_version"],
            c1["report_schema_version"], c1["source_key"]) == \
        ("whisper-base@e42c50d4", "channels@1", "rules-abc123", "1", "in/c1.wav")
    # identity from the transcript's sidecar metadata when the report has none
    c2 = rows["c2"]
    assert (c2["agent_id"], c2["team"], c2["day"], c2["language"], c2["role_confidence"]) == \
        ("A1", "billing", "2024-03-04", "en", 0.91)
    assert rows["c3"]["risks"] == 2 and rows["c3"]["risk_concern_not_addressed"] is True
    # started_at in UTC: 10:00 at +01:00 is 09:00 UTC, still the 5th
    assert (rows["c6"]["started_at"], rows["c6"]["day"]) == ("2024-03-05T09:00:00+00:00", "2024-03-05")


def test_day_is_the_utc_day_of_the_start():
    assert str(call_day("2024-03-05T00:30:00+02:00")) == "2024-03-04"   # 22:30 UTC the day before
    assert str(call_day("2024-03-04T23:30:00-05:00")) == "2024-03-05"
    assert str(call_day("2024-03-04T23:30:00")) == "2024-03-04"         # no offset: UTC
    assert call_day("yesterday afternoon") is None


def test_rows_survive_json_like_the_flow_sends_them():
    """stages.score.Score sends each row through json.dumps / json.loads before write_tables."""
    rows = make_rows()
    via_json = [json.loads(json.dumps(r)) for r in rows]
    assert calls_frame(via_json).equals(calls_frame(rows))
    assert calls_frame(via_json)["day"].to_list() == [D1, D1, D1, D1, D2, D2]


def test_missing_or_bad_start_time_takes_the_recordings_last_modified_time():
    mtime = 1709510400.0 + 3600 * 23.5            # 2024-03-04T23:30:00Z
    recorded = Transcript(call_id="x", duration_s=1.0, turns=(), audio={"modified": mtime})
    for started in (None, "", "yesterday afternoon"):
        row = call_row({"call_id": "x", "started_at": started, "call_type": "standard"}, recorded)
        assert (row["started_at"], row["day"], row["day_source"]) == \
            ("2024-03-04T23:30:00+00:00", "2024-03-04", "object_mtime")
    # a transcript stored before it recorded the time: the caller's fallback and its source
    row = call_row({"call_id": "x", "call_type": "standard"}, modified=mtime,
                   modified_source="transcript_mtime")
    assert (row["day"], row["day_source"]) == ("2024-03-04", "transcript_mtime")
    # nothing at all: no day (write_table files such rows under 1970-01-01, never NULL)
    frame = calls_frame([call_row({"call_id": "x", "call_type": "standard"})])
    assert frame["day"].to_list() == [None] and frame.schema == pl.Schema(CALL_COLUMNS)
    assert frame["risks"].to_list() == [0] and frame["check_warm_handoff"].to_list() == [None]


def test_metadata_warning_travels_from_the_transcript():
    t = Transcript(call_id="x", duration_s=1.0, turns=(),
                   metadata={"metadata_warning": "sidecar x.json ignored: not valid JSON"})
    row = call_row({"call_id": "x", "call_type": "standard"}, t)
    assert row["metadata_warning"] == "sidecar x.json ignored: not valid JSON"


# -- aggregates --------------------------------------------------------------------------

def test_aggregate_per_team_mixes_call_types():
    agg = aggregate(calls_frame(make_rows()), ("team",))
    assert agg["team"].to_list() == ["billing", "tech"]
    billing, tech = agg.row(0, named=True), agg.row(1, named=True)
    assert billing["calls"] == 4 and tech["calls"] == 2
    assert billing["audio_hours"] == pytest.approx(1500 / 3600)
    assert billing["escalation_rate"] == pytest.approx(0.75)      # c1, c3, c6 of 4
    assert tech["escalation_rate"] == pytest.approx(1.0)          # handoffs count too
    assert billing["mean_agent_talk_ratio"] == pytest.approx((0.35 + 0.55 + 0.52 + 0.38) / 4)
    assert billing["share_within_expected"] == pytest.approx(0.75)
    assert billing["interruptions_per_call"] == pytest.approx(6 / 4)
    assert billing["customer_interruptions_per_call"] == pytest.approx(3 / 4)
    assert billing["pass_rate_issue_acknowledged"] == pytest.approx(2 / 3)   # c2 null: excluded
    assert billing["pass_rate_root_cause_explained"] == pytest.approx(1.0)   # c3 only
    assert billing["pass_rate_executive_escalation_offered"] == pytest.approx(0.5)
    assert billing["pass_rate_warm_handoff"] is None                         # never applicable
    assert tech["pass_rate_impact_assessed"] == pytest.approx(1.0)
    assert tech["pass_rate_warm_handoff"] == pytest.approx(0.0)              # c5 only
    assert tech["pass_rate_ticket_reference_provided"] == pytest.approx(1.0)  # c4 only
    assert billing["risk_resolution_timeline_vague"] == 2
    assert billing["risk_concern_not_addressed"] == 1
    assert tech["risk_customer_must_reexplain"] == 1
    assert {a: billing[f"moments_{a}"] for a in AREAS} == {
        "control": 3, "ownership": 0, "empathy": 1, "commitment": 1, "listening": 1,
        "clarity": 0, "confidence": 1}
    assert {a: tech[f"moments_{a}"] for a in AREAS} == {
        "control": 0, "ownership": 1, "empathy": 0, "commitment": 0, "listening": 1,
        "clarity": 1, "confidence": 0}


def test_aggregate_per_agent_and_day():
    agg = aggregate(calls_frame(make_rows()), ("agent_id", "day"))
    got = {(r["agent_id"], r["day"]): r for r in agg.iter_rows(named=True)}
    assert sorted(got) == [("A1", D1), ("A1", D2), ("A2", D1), ("A3", D1), ("A3", D2)]
    a1 = got[("A1", D1)]
    assert a1["calls"] == 2 and a1["escalation_rate"] == pytest.approx(0.5)
    assert a1["mean_agent_talk_ratio"] == pytest.approx(0.45)
    assert a1["moments_control"] == 1 and a1["moments_listening"] == 1


# -- the Delta tables --------------------------------------------------------------------

@pytest.fixture
def written(tmp_path):
    store = LocalStore(tmp_path)
    counts = write_tables(store, make_rows(), FAILURES)
    return store, counts


def _read(store, name):
    """The table as BI tools read it: a Delta table, read by Polars and by deltalake's
    pyarrow reader.  Readers put partition columns last: put back to the writer's order
    here so the figures below compare exactly."""
    path = store.url(f"tables/{name}")
    order = (list(CALL_COLUMNS) if name == "calls" else list(FAILURE_COLUMNS) if name == "failures"
             else aggregate(calls_frame([]), AGGREGATES[name]).columns)
    keys = (["call_id"] if name in ("calls", "failures") else
            [c for c in ("agent_id", "team", "day", "call_type") if c in order])

    def logical(df: pl.DataFrame) -> pl.DataFrame:
        if "day" in df.columns and df.schema["day"] != pl.Date:
            df = df.with_columns(pl.col("day").cast(pl.String).str.to_date())
        return df.select(order).sort(keys, nulls_last=True)

    df = logical(pl.read_delta(path))
    table = logical(pl.from_arrow(DeltaTable(path).to_pyarrow_table())).to_arrow()
    return df, table


def test_write_tables_counts_and_files(written):
    store, counts = written
    assert counts == {"calls": 6, "failures": 2, "agent_daily": 5, "team_daily": 4,
                      "call_type_daily": 5}
    keys = [o.key for o in store.list("tables")]
    for n in ("calls", "failures", "agent_daily", "team_daily", "call_type_daily"):
        assert f"tables/{n}/_delta_log/00000000000000000000.json" in keys      # one commit
        assert not any(k.endswith("00000000000000000001.json") for k in keys)
    data = [k for k in keys if k.endswith(".parquet")]
    assert not any("__HIVE_DEFAULT_PARTITION__" in k for k in data)
    assert all(k.count("/") == 2 for k in data if k.startswith("tables/failures/"))   # no day
    for n in ("calls", "agent_daily", "team_daily", "call_type_daily"):   # partitioned by day
        days = sorted({k.split("/")[2] for k in data if k.startswith(f"tables/{n}/")})
        assert days == ["day=2024-03-04", "day=2024-03-05"], n
    d1 = [k for k in data if k.startswith("tables/calls/day=2024-03-04/")]
    meta = pq.ParquetFile(store.url(d1[0])).metadata
    assert meta.num_rows == 4 and meta.row_group(0).column(0).compression == "ZSTD"


def test_calls_table_reads_back_in_polars_and_pyarrow(written):
    store, _ = written
    df, table = _read(store, "calls")
    assert df.columns == list(CALL_COLUMNS) and df.schema == pl.Schema(CALL_COLUMNS)
    assert df["call_id"].to_list() == ["c1", "c2", "c3", "c4", "c5", "c6"]
    assert df["day"].to_list() == [D1, D1, D1, D1, D2, D2]
    assert table.schema.field("day").type == pa.date32()
    assert table.schema.field("check_warm_handoff").type == pa.bool_()
    assert table.schema.field("moments_control").type == pa.int64()
    assert table.column("check_issue_acknowledged").to_pylist() == [True, None, False, None, None, True]
    assert table.column("check_warm_handoff").to_pylist() == [None, None, None, None, False, None]
    assert table.column("risks").to_pylist() == [2, 0, 2, 2, 1, 0]
    assert table.column("duration_s").to_pylist() == [300.0, 180.0, 420.0, 240.0, 360.0, 600.0]
    assert table.column("role_confidence").to_pylist() == [None, 0.91, None, None, None, None]

    failures, ftable = _read(store, "failures")
    assert failures.schema == pl.Schema(FAILURE_COLUMNS)
    assert ftable.to_pylist() == FAILURES


def test_call_type_daily_figures(written):
    store, _ = written
    df, table = _read(store, "call_type_daily")
    assert [(r["day"], r["call_type"]) for r in table.to_pylist()] == [
        (D1, "escalation"), (D1, "handoff"), (D1, "standard"), (D2, "escalation"), (D2, "handoff")]
    rows = {(r["day"], r["call_type"]): r for r in df.iter_rows(named=True)}
    esc = rows[(D1, "escalation")]                                  # c1 + c3
    assert esc["calls"] == 2
    assert esc["audio_hours"] == pytest.approx(720 / 3600)
    assert esc["escalation_rate"] == 1.0
    assert esc["mean_agent_talk_ratio"] == pytest.approx(0.435)
    assert esc["share_within_expected"] == pytest.approx(0.5)
    assert esc["interruptions_per_call"] == pytest.approx(3.0)
    assert esc["customer_interruptions_per_call"] == pytest.approx(1.5)
    assert {c: esc[f"pass_rate_{c}"] for c in ESCALATION_CHECKS} == pytest.approx({
        "issue_acknowledged": 0.5, "acknowledged_before_solving": 0.0,
        "root_cause_explained": 1.0, "action_plan_created": 0.5, "timeline_committed": 0.0,
        "follow_up_scheduled": 0.5, "satisfaction_confirmed": 1.0,
        "executive_escalation_offered": 0.5})
    assert all(esc[f"pass_rate_{c}"] is None for c in HANDOFF_CHECKS)
    assert {r: esc[f"risk_{r}"] for r in RISKS} == {
        "resolution_timeline_vague": 2, "no_follow_up_scheduled": 1,
        "executive_escalation_not_offered": 0, "concern_not_addressed": 1,
        "no_escalation_timeframe": 0, "customer_must_reexplain": 0,
        "no_proactive_update_commitment": 0, "ownership_unclear_after_handoff": 0}
    assert {a: esc[f"moments_{a}"] for a in AREAS} == {
        "control": 3, "ownership": 0, "empathy": 1, "commitment": 1, "listening": 0,
        "clarity": 0, "confidence": 0}

    std = rows[(D1, "standard")]
    assert std["calls"] == 1 and std["escalation_rate"] == 0.0
    assert all(std[f"pass_rate_{c}"] is None for c in CHECKS)
    assert std["moments_listening"] == 1

    hand2 = rows[(D2, "handoff")]                                   # c5
    assert {c: hand2[f"pass_rate_{c}"] for c in HANDOFF_CHECKS} == {
        "issue_recap_given": 0.0, "impact_assessed": 1.0, "ownership_stated": 1.0,
        "specific_timeframe_given": 1.0, "ticket_reference_provided": None,
        "issue_documented": 0.0, "warm_handoff": 0.0, "expectations_set": 1.0}
    assert hand2["share_within_expected"] == 0.0 and hand2["mean_agent_talk_ratio"] == 0.60


def test_team_and_agent_daily_groups(written):
    store, _ = written
    team, _ = _read(store, "team_daily")
    # Per team and day across call types, so the escalation rate is a real share.
    assert [(r["team"], r["day"], r["calls"], r["escalation_rate"])
            for r in team.iter_rows(named=True)] == [
        ("billing", D1, 3, pytest.approx(2 / 3)), ("billing", D2, 1, 1.0),
        ("tech", D1, 1, 1.0), ("tech", D2, 1, 1.0)]
    agent, atable = _read(store, "agent_daily")
    assert [(r["agent_id"], r["team"], r["day"], r["calls"], r["escalation_rate"])
            for r in atable.to_pylist()] == [
        ("A1", "billing", D1, 2, 0.5), ("A1", "billing", D2, 1, 1.0),
        ("A2", "billing", D1, 1, 1.0), ("A3", "tech", D1, 1, 1.0), ("A3", "tech", D2, 1, 1.0)]
    a1_d2 = agent.filter((pl.col("agent_id") == "A1") & (pl.col("day") == D2)).row(0, named=True)
    assert a1_d2["pass_rate_executive_escalation_offered"] is None   # c6: not applicable
    assert a1_d2["pass_rate_timeline_committed"] == 1.0
    assert a1_d2["moments_confidence"] == 1 and a1_d2["moments_ownership"] == 0  # a strength
    assert a1_d2["audio_hours"] == pytest.approx(600 / 3600)
    assert agent["calls"].sum() == 6 and team["calls"].sum() == 6


def test_empty_input_writes_readable_tables_with_the_full_schema(tmp_path, written):
    full_store, _ = written
    store = LocalStore(tmp_path / "empty")
    counts = write_tables(store, [], [])
    assert counts == {"calls": 0, "failures": 0, "agent_daily": 0, "team_daily": 0,
                      "call_type_daily": 0}
    for name in ("calls", "failures", *AGGREGATES):
        df, table = _read(store, name)
        full_df, full_table = _read(full_store, name)
        assert df.height == 0 and table.num_rows == 0
        assert df.schema == full_df.schema, name               # same columns and types
        assert table.schema.equals(full_table.schema, check_metadata=False), name
    calls, _ = _read(store, "calls")
    assert calls.columns == list(CALL_COLUMNS)
    agg, _ = _read(store, "call_type_daily")
    assert agg.columns == ["day", "call_type", "calls", "audio_hours", "escalation_rate",
                           "mean_agent_talk_ratio", "share_within_expected",
                           "interruptions_per_call", "customer_interruptions_per_call",
                           *[f"pass_rate_{c}" for c in CHECKS], *[f"risk_{r}" for r in RISKS],
                           *[f"moments_{a}" for a in AREAS]]


def test_rewrite_replaces_tables_in_one_commit_and_keeps_the_old_version(written):
    store, _ = written
    assert write_tables(store, make_rows()[:1], [],
                        metadata={"run_id": "r2", "ruleset_version": "v2"})["calls"] == 1
    df, _ = _read(store, "calls")
    assert df["call_id"].to_list() == ["c1"]
    assert _read(store, "failures")[0].height == 0
    # time travel: version 0 is the table before the rewrite
    old = read_table(store, "calls", CALL_COLUMNS, version=0)
    assert sorted(old["call_id"]) == ["c1", "c2", "c3", "c4", "c5", "c6"]
    h = history(store, "calls")
    assert [c["version"] for c in h] == [1, 0]
    assert (h[0]["run_id"], h[0]["ruleset_version"]) == ("r2", "v2")


def test_types_counts_int64_and_start_a_utc_timestamp(written):
    store, _ = written
    assert read_table(store, "calls", CALL_COLUMNS).schema["started_at"] == pl.Datetime("us", "UTC")
    raw = pl.read_delta(store.url("tables/calls"))
    assert raw.schema["started_at"] == pl.Datetime("us", "UTC")
    for name in AGGREGATES:
        df = pl.read_delta(store.url(f"tables/{name}"))
        assert df.schema["calls"] == pl.Int64, name
        assert all(df.schema[c] == pl.Int64 for c in df.columns if c.startswith(("risk_", "moments_")))


def test_a_table_of_the_older_parquet_layout_is_converted(tmp_path):
    """Tables written before Delta (day=.../part-00000.parquet) are read once and replaced."""
    import io

    store = LocalStore(tmp_path)
    legacy = calls_frame(make_rows()).with_columns(pl.col("started_at").dt.to_string("%Y-%m-%dT%H:%M:%S%z"))
    for (day,), part in legacy.group_by("day"):
        buf = io.BytesIO()
        part.drop("day", "day_source", "metadata_warning").write_parquet(buf)
        store.write(f"tables/calls/day={day}/part-00000.parquet", buf.getvalue())
    old = read_table(store, "calls", CALL_COLUMNS)
    assert old.height == 6 and old.schema == pl.Schema(CALL_COLUMNS)
    write_table(store, "calls", old)
    assert not any(o.key.endswith("/part-00000.parquet") for o in store.list("tables/calls"))
    assert read_table(store, "calls", CALL_COLUMNS).sort("call_id")["started_at"].equals(
        old.sort("call_id")["started_at"])
