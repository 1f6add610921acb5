"""Tables for BI: one row per call, failures, and daily aggregates (Parquet).

Every table has a fixed schema (below), so a run with no calls, or with calls that lack a
metric, still writes a readable table with the same columns.

calls             one row per scored call: identity, every scalar metric, one column per
                  process check (check_NAME: true/false/null) and risk (risk_NAME: bool)
failures          one row per call that could not be scored: stage and reason
agent_daily       per agent_id, team, day            \
team_daily        per team, day                       } contract aggregates
call_type_daily   per day, call_type                 /
"""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any, Mapping, Sequence

import polars as pl

from .contract import AREAS, CHECKS, RISKS

CALL_COLUMNS: dict[str, pl.DataType] = {
    "call_id": pl.String, "source_key": pl.String, "agent_id": pl.String, "team": pl.String,
    "started_at": pl.String, "day": pl.Date, "duration_s": pl.Float64,
    "call_type": pl.String, "call_type_confidence": pl.Float64,
    "talk_ratio_agent": pl.Float64, "talk_ratio_customer": pl.Float64,
    "talk_ratio_expected_lo": pl.Float64, "talk_ratio_expected_hi": pl.Float64,
    "talk_ratio_within_expected": pl.Boolean,
    "interruptions": pl.Int64, "customer_interruptions": pl.Int64,
    "empathy": pl.String, "confidence": pl.String, "jargon": pl.String,
    **{f"check_{c}": pl.Boolean for c in CHECKS},
    **{f"risk_{r}": pl.Boolean for r in RISKS},
    "risks": pl.Int64, "moments_improvement": pl.Int64, "moments_strength": pl.Int64,
    **{f"moments_{a}": pl.Int64 for a in AREAS},
    "language": pl.String, "ruleset_version": pl.String, "report_schema_version": pl.String,
    "asr_model": pl.String, "diarization_model": pl.String, "role_confidence": pl.Float64,
}
FAILURE_COLUMNS: dict[str, pl.DataType] = {
    "call_id": pl.String, "source_key": pl.String, "stage": pl.String, "reason": pl.String,
    "size_bytes": pl.Int64, "etag": pl.String,
}


def _day(started_at: Any) -> str | None:
    """The call's calendar day as an ISO string (rows must survive json.dumps in the flow)."""
    if not started_at:
        return None
    try:
        return datetime.fromisoformat(str(started_at).replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        return None


def _as_date(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return date.fromisoformat(v[:10])
        except ValueError:
            return None
    return v


def call_row(report: Mapping, transcript=None, source_key: str = "") -> dict:
    """Flatten one report into a row of the ``calls`` table."""
    meta = dict(getattr(transcript, "metadata", {}) or {})
    tr = report.get("talk_ratio") or {}
    expected = tr.get("expected") or [None, None]
    tone = report.get("tone") or {}
    checks = {c["check"]: c.get("passed") for c in report.get("process_checks") or ()}
    risks = {r["risk"] for r in report.get("risks") or ()}
    moments = report.get("moments") or ()
    started_at = report.get("started_at") or meta.get("started_at")
    roles = getattr(transcript, "roles", {}) or {}
    row = {
        "call_id": report["call_id"], "source_key": source_key,
        "agent_id": _str(report.get("agent_id") or meta.get("agent_id")),
        "team": _str(report.get("team") or meta.get("team")),
        "started_at": _str(started_at), "day": _day(started_at),
        "duration_s": report.get("duration_s"),
        "call_type": report.get("call_type"),
        "call_type_confidence": report.get("call_type_confidence"),
        "talk_ratio_agent": tr.get("agent"), "talk_ratio_customer": tr.get("customer"),
        "talk_ratio_expected_lo": expected[0], "talk_ratio_expected_hi": expected[1],
        "talk_ratio_within_expected": tr.get("within_expected"),
        "interruptions": tone.get("interruptions"),
        "customer_interruptions": tone.get("customer_interruptions"),
        "empathy": tone.get("empathy"), "confidence": tone.get("confidence"),
        "jargon": tone.get("jargon"),
        **{f"check_{c}": checks.get(c) for c in CHECKS},
        **{f"risk_{r}": r in risks for r in RISKS},
        "risks": len(risks),
        "moments_improvement": sum(1 for m in moments if m.get("kind") == "improvement"),
        "moments_strength": sum(1 for m in moments if m.get("kind") == "strength"),
        **{f"moments_{a}": sum(1 for m in moments if m.get("area") == a
                               and m.get("kind") == "improvement") for a in AREAS},
        "language": getattr(transcript, "language", None),
        "ruleset_version": report.get("ruleset_version"),
        "report_schema_version": report.get("schema_version"),
        "asr_model": (report.get("models") or {}).get("asr"),
        "diarization_model": (report.get("models") or {}).get("diarization"),
        "role_confidence": roles.get("confidence"),
    }
    return row


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def calls_frame(rows: Sequence[Mapping]) -> pl.DataFrame:
    data = [{k: (_as_date(r.get(k)) if k == "day" else r.get(k)) for k in CALL_COLUMNS}
            for r in rows]
    return pl.DataFrame(data, schema=CALL_COLUMNS, orient="row") if data else \
        pl.DataFrame(schema=CALL_COLUMNS)


def failures_frame(rows: Sequence[Mapping]) -> pl.DataFrame:
    data = [{k: r.get(k) for k in FAILURE_COLUMNS} for r in rows]
    return pl.DataFrame(data, schema=FAILURE_COLUMNS, orient="row") if data else \
        pl.DataFrame(schema=FAILURE_COLUMNS)


def aggregate(calls: pl.DataFrame, by: Sequence[str]) -> pl.DataFrame:
    """Contract aggregates per group: calls, audio hours, escalation rate, talk ratio,
    check pass rates, risk counts, interruptions and moments per area."""
    exprs = [
        pl.len().alias("calls"),
        (pl.col("duration_s").sum() / 3600).alias("audio_hours"),
        pl.col("call_type").is_in(["escalation", "handoff"]).mean().alias("escalation_rate"),
        pl.col("talk_ratio_agent").mean().alias("mean_agent_talk_ratio"),
        pl.col("talk_ratio_within_expected").cast(pl.Float64).mean().alias("share_within_expected"),
        pl.col("interruptions").mean().alias("interruptions_per_call"),
        pl.col("customer_interruptions").mean().alias("customer_interruptions_per_call"),
        *[pl.col(f"check_{c}").cast(pl.Float64).mean().alias(f"pass_rate_{c}") for c in CHECKS],
        *[pl.col(f"risk_{r}").cast(pl.Int64).sum().alias(f"risk_{r}") for r in RISKS],
        *[pl.col(f"moments_{a}").sum().alias(f"moments_{a}") for a in AREAS],
    ]
    return calls.group_by(list(by)).agg(exprs).sort(list(by), nulls_last=True)


AGGREGATES = {
    "agent_daily": ("agent_id", "team", "day"),
    "team_daily": ("team", "day"),
    "call_type_daily": ("day", "call_type"),
}


def parquet_bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd", statistics=True)
    return buf.getvalue()


PARTITION = "day"
NO_DAY = "__HIVE_DEFAULT_PARTITION__"   # Hive's (and Athena's) name for a null partition
PART_FILE = "part-00000.parquet"


def write_partitioned(store, name: str, df: pl.DataFrame) -> int:
    """Write ``tables/<name>/day=YYYY-MM-DD/part-00000.parquet`` (Hive layout).

    Each partition is one file replaced by one atomic write, so a reader sees a whole
    old or a whole new partition, never a partial file; partitions that no longer have
    rows are removed after the new ones are in place.  A table with no rows at all is
    one empty file at the table's root holding the full schema (day included), so it
    stays readable with its columns; it is removed once partitions exist.
    """
    prefix = f"tables/{name}"
    old = {o.key for o in store.list(prefix, (".parquet",))}
    written = set()
    if df.is_empty():
        key = f"{prefix}/{PART_FILE}"
        store.write(key, parquet_bytes(df))
        written.add(key)
    else:
        for (day,), part in df.sort(PARTITION, nulls_last=True).group_by(
                PARTITION, maintain_order=True):
            label = NO_DAY if day is None else day.isoformat()
            key = f"{prefix}/{PARTITION}={label}/{PART_FILE}"
            store.write(key, parquet_bytes(part.drop(PARTITION)))
            written.add(key)
    for key in sorted(old - written):
        store.delete(key)
    return df.height


def write_plain(store, name: str, df: pl.DataFrame) -> int:
    prefix = f"tables/{name}"
    key = f"{prefix}/{PART_FILE}"
    old = {o.key for o in store.list(prefix, (".parquet",))}
    store.write(key, parquet_bytes(df))
    for stale in sorted(old - {key}):
        store.delete(stale)
    return df.height


def read_table(store, name: str, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Read a table written by this module back (all partitions), with its schema."""
    frames = []
    for obj in store.list(f"tables/{name}", (".parquet",)):
        df = pl.read_parquet(io.BytesIO(store.read(obj.key)))
        part = [p for p in obj.key.split("/") if p.startswith(f"{PARTITION}=")]
        if PARTITION in schema and PARTITION not in df.columns:
            value = part[0].split("=", 1)[1] if part else NO_DAY
            # typed: an untyped null literal (the NO_DAY partition) has no .str namespace
            df = df.with_columns(pl.lit(None if value == NO_DAY else value, dtype=pl.String)
                                 .str.to_date().alias(PARTITION))
        frames.append(df)
    if not frames:
        return pl.DataFrame(schema=dict(schema))
    df = pl.concat(frames, how="diagonal_relaxed")
    return df.select([pl.col(c).cast(t) if c in df.columns else pl.lit(None, dtype=t).alias(c)
                      for c, t in schema.items()])


def write_tables(store, calls: pl.DataFrame | Sequence[Mapping],
                 failures: pl.DataFrame | Sequence[Mapping]) -> dict[str, int]:
    """Write every table from the full set of calls and failures."""
    calls = calls if isinstance(calls, pl.DataFrame) else calls_frame(calls)
    fails = failures if isinstance(failures, pl.DataFrame) else failures_frame(failures)
    written = {"calls": write_partitioned(store, "calls", calls),
               "failures": write_plain(store, "failures", fails)}
    for name, by in AGGREGATES.items():
        written[name] = write_partitioned(store, name, aggregate(calls, by))
    return written
