"""Cross-call insight tables for BI: pure polars functions with fixed schemas.

Inputs are the per-call ``insights`` table (rows from ``insight_row``) and the ``calls``
table of ``callcoach.tables`` (the authority for agent, team, day, call type, checks and
risks of every scored call).  Every function returns its schema even with no rows, is
deterministic (sorted output, no clock: "as of" is the latest call start unless given),
and carries a ``day`` Date column so ``callcoach.tables.write_table`` can partition it.

insights               one row per call: category, trigger, tickets, commitments (INSIGHT_COLUMNS)
recurring_issues       per ISO week, category, team: calls, escalation rate, recovered share,
                       change against the previous week (RECURRING_COLUMNS)
commitments            the ledger: one row per commitment, open | kept | broken (COMMITMENT_COLUMNS)
commitments_by_agent   per ISO week of the promise, agent, team: open, kept, broken (COMMITMENT_AGENT_COLUMNS)
recognition            per ISO week, agent, team: recovered escalations, clean handoffs (RECOGNITION_COLUMNS)

Definitions (docs/insights.md):
- escalated call: call type ``escalation`` or ``handoff`` (the contract's escalation rate);
- recovered: an escalated call on which no process check failed (every check passed or,
  for ``root_cause_explained``, was not applicable);
- recovered escalation: recovered, call type ``escalation``;
- clean handoff: call type ``handoff``, no check failed, no risk;
- day of a call: ``callcoach.tables.call_day`` (the UTC day of its start; the calls table
  is the authority); its ISO week is the ISO week of that day.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Mapping, Sequence

import polars as pl

from ..contract import CHECKS
from ..tables import _day, conform, parse_utc
from .due import call_clock

ESCALATED = ("escalation", "handoff")
UTC_US = pl.Datetime("us", "UTC")
COMMITMENT_STRUCT = pl.Struct({"t": pl.Float64, "quote": pl.String, "due": pl.String,
                               "due_kind": pl.String, "who": pl.String})

INSIGHT_COLUMNS: dict[str, pl.DataType] = {
    "call_id": pl.String, "agent_id": pl.String, "team": pl.String, "customer_id": pl.String,
    "started_at": UTC_US, "started_at_utc": UTC_US, "day": pl.Date, "week_start": pl.Date,
    "iso_week": pl.String, "call_type": pl.String,
    "category": pl.String, "category_confidence": pl.Float64,
    "category_evidence_t": pl.Float64, "category_evidence_speaker": pl.String,
    "category_evidence_quote": pl.String,
    "trigger": pl.String, "trigger_basis": pl.String, "trigger_confidence": pl.Float64,
    "trigger_evidence_t": pl.Float64, "trigger_evidence_speaker": pl.String,
    "trigger_evidence_quote": pl.String,
    "ticket_refs": pl.List(pl.String), "commitments": pl.List(COMMITMENT_STRUCT),
    "n_commitments": pl.Int64, "commitments_unresolved": pl.Int64,
    "all_checks_passed": pl.Boolean, "clean_handoff": pl.Boolean,
    "categories_version": pl.String, "ruleset_version": pl.String,
}

RECURRING_COLUMNS: dict[str, pl.DataType] = {
    "day": pl.Date, "week_start": pl.Date, "iso_week": pl.String,
    "category": pl.String, "team": pl.String,
    "calls": pl.Int64, "escalations": pl.Int64, "escalation_rate": pl.Float64,
    "recovered": pl.Int64, "recovered_share": pl.Float64,
    "prev_calls": pl.Int64, "prev_escalation_rate": pl.Float64, "prev_recovered_share": pl.Float64,
    "calls_change": pl.Int64, "calls_change_pct": pl.Float64,
    "escalation_rate_change": pl.Float64, "recovered_share_change": pl.Float64,
}

COMMITMENT_COLUMNS: dict[str, pl.DataType] = {
    "commitment_id": pl.String, "call_id": pl.String, "agent_id": pl.String, "team": pl.String,
    "customer_id": pl.String, "ticket_refs": pl.List(pl.String),
    "day": pl.Date, "made_at_utc": UTC_US, "t": pl.Float64, "quote": pl.String,
    "due": pl.String, "due_utc": UTC_US, "due_kind": pl.String, "who": pl.String,
    "status": pl.String, "kept_by_call_id": pl.String, "kept_at_utc": UTC_US,
    "as_of_utc": UTC_US,
}

COMMITMENT_AGENT_COLUMNS: dict[str, pl.DataType] = {
    "day": pl.Date, "week_start": pl.Date, "iso_week": pl.String,
    "agent_id": pl.String, "team": pl.String,
    "commitments": pl.Int64, "open": pl.Int64, "kept": pl.Int64, "broken": pl.Int64,
    "kept_rate": pl.Float64, "by_agent": pl.Int64, "by_team": pl.Int64, "as_of_utc": UTC_US,
}

RECOGNITION_COLUMNS: dict[str, pl.DataType] = {
    "day": pl.Date, "week_start": pl.Date, "iso_week": pl.String,
    "agent_id": pl.String, "team": pl.String,
    "calls": pl.Int64, "escalations": pl.Int64, "recovered_escalations": pl.Int64,
    "recovery_rate": pl.Float64, "handoffs": pl.Int64, "clean_handoffs": pl.Int64,
    "clean_handoff_rate": pl.Float64, "commitments_kept": pl.Int64, "commitments_broken": pl.Int64,
}

TABLES = {
    "insights": INSIGHT_COLUMNS,
    "recurring_issues": RECURRING_COLUMNS,
    "commitments": COMMITMENT_COLUMNS,
    "commitments_by_agent": COMMITMENT_AGENT_COLUMNS,
    "recognition": RECOGNITION_COLUMNS,
}


# ---------------------------------------------------------------------------------------
# per-call rows
# ---------------------------------------------------------------------------------------
def _utc_iso(started_at: Any) -> str | None:
    """``started_at`` in UTC (an offset-less time is read as UTC), None when unparseable."""
    dt = call_clock(started_at)
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds") if dt else None


def _week(day_iso: str | None) -> tuple[str | None, str | None]:
    if not day_iso:
        return None, None
    d = date.fromisoformat(day_iso)
    y, w, wd = d.isocalendar()
    return date.fromordinal(d.toordinal() - (wd - 1)).isoformat(), f"{y}-W{w:02d}"


def _ev(e: Mapping | None, k: str) -> Any:
    return None if not e else e.get(k)


def insight_row(insights: Mapping, report: Mapping) -> dict[str, Any]:
    """Flatten one call's insights (with its report) into a row of the ``insights`` table.
    JSON-safe (dates as ISO strings), so it can travel in a ledger entry like call_row."""
    ct = report.get("call_type")
    checks = report.get("process_checks") or ()
    escalated = ct in ESCALATED
    all_passed = (not any(c.get("passed") is False for c in checks)) if escalated else None
    started_at = insights.get("started_at") or report.get("started_at")
    day = _day(started_at)
    week_start, iso_week = _week(day)
    cev, tev = insights.get("category_evidence"), insights.get("trigger_evidence")
    commitments = [{k: c.get(k) for k in ("t", "quote", "due", "due_kind", "who")}
                   for c in insights.get("commitments") or ()]
    return {
        "call_id": report.get("call_id") or insights.get("call_id"),
        "agent_id": insights.get("agent_id"), "team": insights.get("team"),
        "customer_id": insights.get("customer_id"),
        "started_at": started_at, "started_at_utc": _utc_iso(started_at),
        "day": day, "week_start": week_start, "iso_week": iso_week, "call_type": ct,
        "category": insights.get("category"),
        "category_confidence": insights.get("category_confidence"),
        "category_evidence_t": _ev(cev, "t"), "category_evidence_speaker": _ev(cev, "speaker"),
        "category_evidence_quote": _ev(cev, "quote"),
        "trigger": insights.get("trigger"), "trigger_basis": insights.get("trigger_basis"),
        "trigger_confidence": insights.get("trigger_confidence"),
        "trigger_evidence_t": _ev(tev, "t"), "trigger_evidence_speaker": _ev(tev, "speaker"),
        "trigger_evidence_quote": _ev(tev, "quote"),
        "ticket_refs": list(insights.get("ticket_refs") or ()),
        "commitments": commitments, "n_commitments": len(commitments),
        "commitments_unresolved": int(insights.get("commitments_unresolved") or 0),
        "all_checks_passed": all_passed,
        "clean_handoff": (bool(all_passed) and not report.get("risks")) if ct == "handoff" else None,
        "categories_version": insights.get("categories_version"),
        "ruleset_version": report.get("ruleset_version"),
    }


def insights_frame(rows: Sequence[Mapping]) -> pl.DataFrame:
    """Rows of ``insight_row`` (or read back from JSON) -> the ``insights`` table."""
    if not rows:
        return pl.DataFrame(schema=INSIGHT_COLUMNS)
    conv = {"day", "week_start", "started_at_utc", "started_at"}
    data = [{k: r.get(k) for k in INSIGHT_COLUMNS if k not in conv} for r in rows]
    df = pl.DataFrame(data, schema={k: v for k, v in INSIGHT_COLUMNS.items() if k not in conv},
                      orient="row")
    extra = pl.DataFrame({
        "day": pl.Series([r.get("day") for r in rows], dtype=pl.String).str.to_date(),
        "week_start": pl.Series([r.get("week_start") for r in rows], dtype=pl.String).str.to_date(),
        "started_at_utc": pl.Series([r.get("started_at_utc") for r in rows], dtype=pl.String)
        .str.to_datetime(time_zone="UTC", time_unit="us"),
        "started_at": pl.Series([parse_utc(r.get("started_at")) for r in rows], dtype=UTC_US),
    })
    return pl.concat([df, extra], how="horizontal").select(list(INSIGHT_COLUMNS))


def _empty(schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=dict(schema))


def _conform(df: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    return conform(df, schema)


def _week_cols(day: str = "day") -> list[pl.Expr]:
    return [pl.col(day).dt.truncate("1w").alias("week_start"),
            (pl.col(day).dt.iso_year().cast(pl.String) + "-W"
             + pl.col(day).dt.week().cast(pl.String).str.zfill(2)).alias("iso_week")]


def _not_failed() -> pl.Expr:
    """No process check of the call failed (null = not applicable / not this call type)."""
    return ~pl.any_horizontal([(pl.col(f"check_{c}") == False).fill_null(False)  # noqa: E712
                               for c in CHECKS])


def _calls_view(calls: pl.DataFrame) -> pl.DataFrame:
    return calls.select(
        "call_id", "agent_id", "team", "day", "call_type", "risks",
        pl.col("started_at").cast(UTC_US).alias("started_at_utc"),
        pl.col("call_type").is_in(list(ESCALATED)).fill_null(False).alias("escalated"),
        _not_failed().alias("no_check_failed"),
    )


def _ratio(num: str, den: str) -> pl.Expr:
    return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(None)


# ---------------------------------------------------------------------------------------
# recurring issues
# ---------------------------------------------------------------------------------------
def recurring_issues(insights: pl.DataFrame, calls: pl.DataFrame) -> pl.DataFrame:
    """Per ISO week, category and team: calls, escalations (escalation + handoff calls),
    escalation rate, recovered escalations and their share, and the change against the
    previous week of the same category and team.  A category and team that had calls the
    previous week and none this week (up to the last week in the data) gets a row with 0
    calls, so a drop to zero shows.  Calls without a start time (no week) are left out."""
    base = (insights.select("call_id", "category")
            .join(_calls_view(calls), on="call_id", how="inner")
            .filter(pl.col("day").is_not_null())
            .with_columns(_week_cols()))
    if base.is_empty():
        return _empty(RECURRING_COLUMNS)
    keys = ["category", "team"]
    cur = (base.group_by(["week_start", "iso_week", *keys])
           .agg(pl.len().cast(pl.Int64).alias("calls"),
                pl.col("escalated").sum().cast(pl.Int64).alias("escalations"),
                (pl.col("escalated") & pl.col("no_check_failed")).sum().cast(pl.Int64).alias("recovered")))
    last_week = cur["week_start"].max()
    # rows for (category, team) that vanished in the following week
    nxt = (cur.select(*keys, (pl.col("week_start") + pl.duration(weeks=1)).alias("week_start"))
           .filter(pl.col("week_start") <= last_week)
           .join(cur.select(*keys, "week_start"), on=[*keys, "week_start"], how="anti", nulls_equal=True)
           .with_columns(pl.lit(0, pl.Int64).alias("calls"), pl.lit(0, pl.Int64).alias("escalations"),
                         pl.lit(0, pl.Int64).alias("recovered"),
                         (pl.col("week_start").dt.iso_year().cast(pl.String) + "-W"
                          + pl.col("week_start").dt.week().cast(pl.String).str.zfill(2)).alias("iso_week")))
    cur = pl.concat([cur, nxt.select(cur.columns)], how="vertical")
    cur = cur.with_columns(_ratio("escalations", "calls").alias("escalation_rate"),
                           _ratio("recovered", "escalations").alias("recovered_share"))
    prev = cur.select(*keys, (pl.col("week_start") + pl.duration(weeks=1)).alias("week_start"),
                      pl.col("calls").alias("prev_calls"),
                      pl.col("escalation_rate").alias("prev_escalation_rate"),
                      pl.col("recovered_share").alias("prev_recovered_share"))
    out = (cur.join(prev, on=[*keys, "week_start"], how="left", nulls_equal=True)
           .with_columns(pl.col("prev_calls").fill_null(0))
           .with_columns(
               (pl.col("calls") - pl.col("prev_calls")).alias("calls_change"),
               pl.when(pl.col("prev_calls") > 0)
               .then((pl.col("calls") - pl.col("prev_calls")) / pl.col("prev_calls"))
               .otherwise(None).alias("calls_change_pct"),
               (pl.col("escalation_rate") - pl.col("prev_escalation_rate")).alias("escalation_rate_change"),
               (pl.col("recovered_share") - pl.col("prev_recovered_share")).alias("recovered_share_change"),
               pl.col("week_start").alias("day"))
           .sort(["week_start", "category", "team"], nulls_last=True))
    return _conform(out, RECURRING_COLUMNS)


# ---------------------------------------------------------------------------------------
# commitments ledger
# ---------------------------------------------------------------------------------------
def _as_utc(as_of: Any) -> datetime | None:
    if as_of is None:
        return None
    if isinstance(as_of, str):
        as_of = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    if not isinstance(as_of, datetime):
        raise TypeError(f"as_of: expected a datetime or ISO string, got {type(as_of).__name__}")
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return as_of.astimezone(timezone.utc)


def commitments(insights: pl.DataFrame, calls: pl.DataFrame, as_of: Any = None) -> pl.DataFrame:
    """The commitments ledger: every commitment with a resolved due time, and its status
    as of ``as_of`` (a timezone-aware datetime or ISO string; default: the latest call
    start in ``calls``).  Only promises made at or before ``as_of`` are listed.

    A *later call* of a commitment is another scored call that starts after the call where
    the promise was made and no later than ``as_of``, with the same ``customer_id``
    (sidecar) or a ticket reference spoken on both calls.  ``kept``: a later call started at
    or before the due time (``kept_by_call_id`` is the first); ``broken``: none did and the
    due time is before ``as_of``; ``open``: otherwise."""
    view = _calls_view(calls)
    joined = (insights.select("call_id", "customer_id", "ticket_refs", "commitments")
              .join(view.select("call_id", "agent_id", "team", "day", "started_at_utc"),
                    on="call_id", how="inner"))
    as_of_utc = _as_utc(as_of)
    if as_of_utc is None:
        latest = view["started_at_utc"].max()
        as_of_utc = latest if latest is not None else None
    items = (joined.filter(pl.col("commitments").list.len() > 0)
             .with_columns(pl.int_ranges(0, pl.col("commitments").list.len()).alias("k"))
             .explode(["commitments", "k"])
             .unnest("commitments")
             .filter(pl.col("due").is_not_null())
             .with_columns(
                 (pl.col("call_id") + "#" + pl.col("k").cast(pl.String)).alias("commitment_id"),
                 pl.col("due").str.to_datetime(time_zone="UTC", time_unit="us").alias("due_utc"),
                 pl.col("started_at_utc").alias("made_at_utc")))
    if as_of_utc is None:
        return _empty(COMMITMENT_COLUMNS)
    as_of_lit = pl.lit(as_of_utc, dtype=UTC_US)
    # as of a time, only the promises already made exist
    items = items.filter(pl.col("made_at_utc") <= as_of_lit)
    if items.is_empty():
        return _empty(COMMITMENT_COLUMNS)
    later = (joined.select("call_id", "customer_id", "ticket_refs", "started_at_utc")
             .filter(pl.col("started_at_utc").is_not_null() & (pl.col("started_at_utc") <= as_of_lit)))
    c = items.select("commitment_id", "call_id", "customer_id", "ticket_refs", "made_at_utc", "due_utc")
    by_customer = (c.filter(pl.col("customer_id").is_not_null())
                   .join(later.select(pl.col("call_id").alias("later_id"), "customer_id",
                                      pl.col("started_at_utc").alias("later_at")),
                         on="customer_id", how="inner"))
    by_ticket = (c.explode("ticket_refs").filter(pl.col("ticket_refs").is_not_null())
                 .join(later.explode("ticket_refs")
                       .select(pl.col("call_id").alias("later_id"), "ticket_refs",
                               pl.col("started_at_utc").alias("later_at")),
                       on="ticket_refs", how="inner"))
    links = pl.concat([by_customer.select("commitment_id", "later_id", "later_at", "made_at_utc", "due_utc", "call_id"),
                       by_ticket.select("commitment_id", "later_id", "later_at", "made_at_utc", "due_utc", "call_id")],
                      how="vertical")
    kept = (links.filter((pl.col("later_id") != pl.col("call_id"))
                         & (pl.col("later_at") > pl.col("made_at_utc"))
                         & (pl.col("later_at") <= pl.col("due_utc")))
            .sort(["commitment_id", "later_at", "later_id"])
            .group_by("commitment_id", maintain_order=True)
            .agg(pl.col("later_id").first().alias("kept_by_call_id"),
                 pl.col("later_at").first().alias("kept_at_utc")))
    out = (items.join(kept, on="commitment_id", how="left")
           .with_columns(
               pl.when(pl.col("kept_by_call_id").is_not_null()).then(pl.lit("kept"))
               .when(pl.col("due_utc") < as_of_lit).then(pl.lit("broken"))
               .otherwise(pl.lit("open")).alias("status"),
               as_of_lit.alias("as_of_utc"))
           .sort(["made_at_utc", "call_id", "k"], nulls_last=True))
    return _conform(out, COMMITMENT_COLUMNS)


def commitments_by_agent(ledger: pl.DataFrame) -> pl.DataFrame:
    """Per ISO week in which the promises were made, agent and team: commitments and how
    many are open, kept and broken as of the ledger's ``as_of_utc``; kept_rate = kept /
    (kept + broken); by_agent / by_team = who owns them ("I'll call you" vs "we'll ...")."""
    if ledger.is_empty():
        return _empty(COMMITMENT_AGENT_COLUMNS)
    out = (ledger.filter(pl.col("day").is_not_null()).with_columns(_week_cols())
           .group_by(["week_start", "iso_week", "agent_id", "team"])
           .agg(pl.len().cast(pl.Int64).alias("commitments"),
                *[(pl.col("status") == s).sum().cast(pl.Int64).alias(s) for s in ("open", "kept", "broken")],
                (pl.col("who") == "agent").sum().cast(pl.Int64).alias("by_agent"),
                (pl.col("who") == "team").sum().cast(pl.Int64).alias("by_team"),
                pl.col("as_of_utc").max().alias("as_of_utc"))
           .with_columns(pl.when((pl.col("kept") + pl.col("broken")) > 0)
                         .then(pl.col("kept") / (pl.col("kept") + pl.col("broken")))
                         .otherwise(None).alias("kept_rate"),
                         pl.col("week_start").alias("day"))
           .sort(["week_start", "team", "agent_id"], nulls_last=True))
    return _conform(out, COMMITMENT_AGENT_COLUMNS)


# ---------------------------------------------------------------------------------------
# recognition
# ---------------------------------------------------------------------------------------
def recognition(calls: pl.DataFrame, ledger: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per ISO week, agent and team: escalation calls and how many were recovered (no check
    failed), handoff calls and how many were clean (no check failed and no risk), and, from
    the commitments ledger when given, the agent's commitments (made that week) kept and
    broken."""
    v = (_calls_view(calls).filter(pl.col("day").is_not_null()).with_columns(_week_cols()))
    if v.is_empty():
        return _empty(RECOGNITION_COLUMNS)
    keys = ["week_start", "iso_week", "agent_id", "team"]
    esc = pl.col("call_type") == "escalation"
    hand = pl.col("call_type") == "handoff"
    out = (v.group_by(keys)
           .agg(pl.len().cast(pl.Int64).alias("calls"),
                esc.sum().cast(pl.Int64).alias("escalations"),
                (esc & pl.col("no_check_failed")).sum().cast(pl.Int64).alias("recovered_escalations"),
                hand.sum().cast(pl.Int64).alias("handoffs"),
                (hand & pl.col("no_check_failed") & (pl.col("risks").fill_null(0) == 0))
                .sum().cast(pl.Int64).alias("clean_handoffs"))
           .with_columns(_ratio("recovered_escalations", "escalations").alias("recovery_rate"),
                         _ratio("clean_handoffs", "handoffs").alias("clean_handoff_rate")))
    if ledger is not None and not ledger.is_empty():
        per = (ledger.filter(pl.col("day").is_not_null()).with_columns(_week_cols())
               .group_by(keys)
               .agg((pl.col("status") == "kept").sum().cast(pl.Int64).alias("commitments_kept"),
                    (pl.col("status") == "broken").sum().cast(pl.Int64).alias("commitments_broken")))
        out = out.join(per, on=keys, how="left", nulls_equal=True)
    else:
        out = out.with_columns(pl.lit(None, pl.Int64).alias("commitments_kept"),
                               pl.lit(None, pl.Int64).alias("commitments_broken"))
    out = (out.with_columns(pl.col("commitments_kept").fill_null(0), pl.col("commitments_broken").fill_null(0),
                            pl.col("week_start").alias("day"))
           .sort(["week_start", "team", "agent_id"], nulls_last=True))
    return _conform(out, RECOGNITION_COLUMNS)


def build_tables(insights: pl.DataFrame, calls: pl.DataFrame, as_of: Any = None) -> dict[str, pl.DataFrame]:
    """Every insight table from the full insights and calls tables (the nightly rebuild).
    The insights table is restricted to calls present in ``calls`` (scored calls)."""
    # the calls table is the authority for a call's day (a call whose day came from its
    # recording's last-modified time has no started_at in its insights row)
    insights = (insights.drop("day", "week_start", "iso_week")
                .join(calls.select("call_id", "day"), on="call_id", how="inner")
                .with_columns(_week_cols())
                .sort("call_id"))
    ledger = commitments(insights, calls, as_of)
    return {
        "insights": _conform(insights, INSIGHT_COLUMNS),
        "recurring_issues": recurring_issues(insights, calls),
        "commitments": ledger,
        "commitments_by_agent": commitments_by_agent(ledger),
        "recognition": recognition(calls, ledger),
    }
