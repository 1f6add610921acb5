"""Tables for BI: one row per call, failures, and daily aggregates, as Delta Lake tables.

Every table has a fixed schema (below), so a run with no calls, or with calls that lack a
metric, still writes a readable table with the same columns.  Each table is a Delta Lake
table (``tables/<name>/``: Parquet files partitioned by ``day`` plus a ``_delta_log``): a
run replaces a table's content in one atomic commit whose metadata names the run and the
rule set, so a reader sees the old table or the new one, never a mix, and can read any
earlier version (docs/tables.md).

``day`` is defined once, here (``call_day``): the UTC calendar day of the call's start,
``started_at`` from its sidecar or, without one, the recording object's last-modified time
(``day_source`` says which).

calls             one row per scored call: identity, every scalar metric, one column per
                  process check (check_NAME: true/false/null) and risk (risk_NAME: bool)
failures          one row per call that could not be scored: stage and reason
agent_daily       per agent_id, team, day            \
team_daily        per team, day                       } contract aggregates
call_type_daily   per day, call_type                 /
"""

from __future__ import annotations

import io
import logging
from datetime import date, datetime, timezone
from typing import Any, Mapping, Sequence

import polars as pl

from .contract import AREAS, CHECKS, RISKS

log = logging.getLogger("callcoach.tables")
UTC_US = pl.Datetime("us", "UTC")
# where a call's start (and so its day) came from
DAY_SOURCES = ("sidecar", "object_mtime", "transcript_mtime")

CALL_COLUMNS: dict[str, pl.DataType] = {
    "call_id": pl.String, "source_key": pl.String, "agent_id": pl.String, "team": pl.String,
    "started_at": UTC_US, "day": pl.Date, "day_source": pl.String, "duration_s": pl.Float64,
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
    "metadata_warning": pl.String,
}
FAILURE_COLUMNS: dict[str, pl.DataType] = {
    "call_id": pl.String, "source_key": pl.String, "stage": pl.String, "reason": pl.String,
    "size_bytes": pl.Int64, "etag": pl.String,
}


def parse_utc(value: Any) -> datetime | None:
    """An ISO 8601 time (or a datetime) as an aware UTC datetime; a time without an offset
    is read as UTC.  None when missing or unparseable."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def call_day(started_at: Any) -> date | None:
    """THE definition of a call's ``day`` in every table: the UTC calendar day of its start."""
    dt = parse_utc(started_at)
    return dt.date() if dt else None


def _day(started_at: Any) -> str | None:
    """``call_day`` as an ISO string (rows must survive json.dumps in the flow)."""
    d = call_day(started_at)
    return d.isoformat() if d else None


def call_start(report: Mapping, transcript=None, modified: float | None = None,
               modified_source: str = "object_mtime") -> tuple[str | None, str | None]:
    """(start time as a UTC ISO string, day_source) of a call: the sidecar's ``started_at``
    when it parses; else the recording object's last-modified time, recorded in the
    transcript (``audio.modified``) when it was made, or ``modified`` (from ``modified_source``)."""
    meta = dict(getattr(transcript, "metadata", {}) or {})
    dt = parse_utc(report.get("started_at") or meta.get("started_at"))
    if dt is not None:
        return dt.isoformat(), "sidecar"
    audio = dict(getattr(transcript, "audio", {}) or {})
    if audio.get("modified"):
        mtime, source = audio["modified"], "object_mtime"
    elif modified:
        mtime, source = modified, modified_source
    else:
        return None, None
    return datetime.fromtimestamp(float(mtime), timezone.utc).isoformat(), source


def _as_date(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return date.fromisoformat(v[:10])
        except ValueError:
            return None
    return v


def call_row(report: Mapping, transcript=None, source_key: str = "",
             modified: float | None = None, modified_source: str = "object_mtime") -> dict:
    """Flatten one report into a row of the ``calls`` table (JSON-safe: times as ISO
    strings).  ``modified``: the recording's last-modified time (epoch seconds), the day's
    fallback when neither the report nor the transcript carries a start time."""
    meta = dict(getattr(transcript, "metadata", {}) or {})
    tr = report.get("talk_ratio") or {}
    expected = tr.get("expected") or [None, None]
    tone = report.get("tone") or {}
    checks = {c["check"]: c.get("passed") for c in report.get("process_checks") or ()}
    risks = {r["risk"] for r in report.get("risks") or ()}
    moments = report.get("moments") or ()
    started_at, day_source = call_start(report, transcript, modified, modified_source)
    roles = getattr(transcript, "roles", {}) or {}
    row = {
        "call_id": report["call_id"], "source_key": source_key,
        "agent_id": _str(report.get("agent_id") or meta.get("agent_id")),
        "team": _str(report.get("team") or meta.get("team")),
        "started_at": started_at, "day": _day(started_at), "day_source": day_source,
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
        "metadata_warning": _str(report.get("metadata_warning") or meta.get("metadata_warning")),
    }
    return row


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _cell(k: str, v: Any) -> Any:
    if k == "day":
        return _as_date(v)
    if k == "started_at":
        return parse_utc(v)
    return v


def calls_frame(rows: Sequence[Mapping]) -> pl.DataFrame:
    data = [{k: _cell(k, r.get(k)) for k in CALL_COLUMNS} for r in rows]
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
        pl.len().cast(pl.Int64).alias("calls"),
        (pl.col("duration_s").sum() / 3600).alias("audio_hours"),
        pl.col("call_type").is_in(["escalation", "handoff"]).mean().alias("escalation_rate"),
        pl.col("talk_ratio_agent").mean().alias("mean_agent_talk_ratio"),
        pl.col("talk_ratio_within_expected").cast(pl.Float64).mean().alias("share_within_expected"),
        pl.col("interruptions").mean().alias("interruptions_per_call"),
        pl.col("customer_interruptions").mean().alias("customer_interruptions_per_call"),
        *[pl.col(f"check_{c}").cast(pl.Float64).mean().alias(f"pass_rate_{c}") for c in CHECKS],
        *[pl.col(f"risk_{r}").cast(pl.Int64).sum().alias(f"risk_{r}") for r in RISKS],
        *[pl.col(f"moments_{a}").sum().cast(pl.Int64).alias(f"moments_{a}") for a in AREAS],
    ]
    return calls.group_by(list(by)).agg(exprs).sort(list(by), nulls_last=True)


AGGREGATES = {
    "agent_daily": ("agent_id", "team", "day"),
    "team_daily": ("team", "day"),
    "call_type_daily": ("day", "call_type"),
}


PARTITION = "day"
LEGACY_PART_FILE = "part-00000.parquet"   # the Hive layout written before Delta Lake
DELTA_LOG = "_delta_log"


def table_key(name: str) -> str:
    return f"tables/{name}"


def table_uri(store, name: str) -> str:
    """Where a Delta reader finds the table: a local path or an s3:// URI."""
    return store.url(table_key(name))


def storage_options(store, *, write: bool = False) -> dict[str, str] | None:
    """Options for deltalake / Polars (object_store) to reach ``store``: None for a local
    folder; for S3 the endpoint, region and credentials of the standard AWS environment,
    and for writes the store's server-side encryption and conditional puts (a commit is a
    put-if-absent of the next log entry, so two writers can never both commit a version)."""
    fn = getattr(store, "delta_options", None)
    return fn(write=write) if fn else None


def is_delta(store, name: str) -> bool:
    return next(iter(store.list(f"{table_key(name)}/{DELTA_LOG}")), None) is not None


def _legacy_files(store, name: str) -> list[str]:
    """Parquet files of the pre-Delta layout (``day=.../part-00000.parquet``)."""
    return [o.key for o in store.list(table_key(name), (".parquet",))
            if o.key.rsplit("/", 1)[-1] == LEGACY_PART_FILE]


def _fill_days(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """A row without a day would land in ``day=__HIVE_DEFAULT_PARTITION__``: only rows of a
    table written before days had a fallback can lack one; they go to 1970-01-01 (with
    ``day_source`` "unknown" where the table has it) until ``rescore --force`` rebuilds them."""
    missing = df[PARTITION].null_count()
    if not missing:
        return df
    log.warning("table %s: %d rows without a day (written by an older version); filed under "
                "1970-01-01 until `callcoach rescore --force` recomputes them", name, missing)
    out = df.with_columns(pl.col(PARTITION).fill_null(date(1970, 1, 1)))
    if "day_source" in df.columns:
        out = out.with_columns(pl.when(df[PARTITION].is_null()).then(pl.lit("unknown"))
                               .otherwise(pl.col("day_source")).alias("day_source"))
    return out


def write_table(store, name: str, df: pl.DataFrame, *, partition: bool = True,
                metadata: Mapping[str, str] | None = None) -> int:
    """Replace the content of Delta table ``tables/<name>`` with ``df`` in one commit.

    The commit (mode overwrite: remove every old file, add the new ones) is atomic: a
    reader sees the whole old table or the whole new one.  ``metadata`` (run_id,
    ruleset_version, ...) is stored in the commit, so the table's history says what wrote
    each version.  Partitioned by ``day`` unless ``partition`` is False.  A table of the
    older plain-Parquet layout is converted: its files are removed once the commit exists."""
    from deltalake import CommitProperties, WriterProperties

    legacy = [] if is_delta(store, name) else _legacy_files(store, name)
    if partition:
        df = _fill_days(df, name)
    options = {"schema_mode": "overwrite",
               "writer_properties": WriterProperties(compression="ZSTD"),
               "commit_properties": CommitProperties(
                   custom_metadata={k: str(v) for k, v in (metadata or {}).items()})}
    if partition:
        options["partition_by"] = [PARTITION]
    df.write_delta(table_uri(store, name), mode="overwrite",
                   storage_options=storage_options(store, write=True),
                   delta_write_options=options)
    for key in legacy:
        store.delete(key)
    return df.height


def conform(df: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """``df`` with exactly ``schema``'s columns and types (missing columns null; ISO
    strings of older tables parsed to UTC timestamps)."""
    cols = []
    for c, t in schema.items():
        if c not in df.columns:
            cols.append(pl.lit(None, dtype=t).alias(c))
        elif df.schema[c] == pl.String and isinstance(t, pl.Datetime):
            cols.append(pl.col(c).map_elements(parse_utc, return_dtype=t, skip_nulls=True).alias(c))
        else:
            cols.append(pl.col(c).cast(t))
    return df.select(cols)


def read_table(store, name: str, schema: Mapping[str, pl.DataType],
               version: int | None = None) -> pl.DataFrame:
    """Read a table written by this module back (its latest version, or ``version``), with
    its schema.  Reads the older plain-Parquet layout too."""
    if is_delta(store, name):
        df = pl.read_delta(table_uri(store, name), version=version,
                           storage_options=storage_options(store))
        return conform(df, schema)
    if version is not None:
        raise ValueError(f"table {name} has no versions (not a Delta table yet)")
    return conform(_read_legacy(store, name, schema), schema)


def _read_legacy(store, name: str, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    frames = []
    for obj in store.list(table_key(name), (".parquet",)):
        df = pl.read_parquet(io.BytesIO(store.read(obj.key)))
        part = [p for p in obj.key.split("/") if p.startswith(f"{PARTITION}=")]
        if PARTITION in schema and PARTITION not in df.columns:
            value = part[0].split("=", 1)[1] if part else None
            if value == "__HIVE_DEFAULT_PARTITION__":
                value = None
            df = df.with_columns(pl.lit(value, dtype=pl.String).str.to_date().alias(PARTITION))
        frames.append(df)
    if not frames:
        return pl.DataFrame(schema=dict(schema))
    return pl.concat(frames, how="diagonal_relaxed")


def history(store, name: str) -> list[dict]:
    """The table's commits, newest first: version, timestamp (ms), operation and the
    metadata the run stored (run_id, ruleset_version, command)."""
    from deltalake import DeltaTable

    dt = DeltaTable(table_uri(store, name), storage_options=storage_options(store))
    return dt.history()


def write_tables(store, calls: pl.DataFrame | Sequence[Mapping],
                 failures: pl.DataFrame | Sequence[Mapping],
                 metadata: Mapping[str, str] | None = None) -> dict[str, int]:
    """Write every table from the full set of calls and failures (one commit each)."""
    calls = calls if isinstance(calls, pl.DataFrame) else calls_frame(calls)
    fails = failures if isinstance(failures, pl.DataFrame) else failures_frame(failures)
    written = {"calls": write_table(store, "calls", calls, metadata=metadata),
               "failures": write_table(store, "failures", fails, partition=False,
                                       metadata=metadata)}
    for name, by in AGGREGATES.items():
        written[name] = write_table(store, name, aggregate(calls, by), metadata=metadata)
    return written
