"""The rows that travel between the stages.

Each call is a row.  A stage that fails on a call turns the row into a failure (stage and
reason) that later stages pass through untouched, so one bad call never stops a run.
"""

from __future__ import annotations

import dataclasses
import functools

from ..ledger import Entry
from ..pii import PiiConfig, redact_text


def _failed(row: dict, stage: str, reason: str, pii: PiiConfig | None = None) -> dict:
    """A failure row.  Reasons can quote content (an exception message), so they are
    redacted like everything else that is written."""
    out = dict(row)
    out.update(status="failed", stage=stage, error=redact_text(reason, pii or PiiConfig())[0][:500])
    return out


def _ok(row: dict, **values) -> dict:
    out = dict(row)
    out.update(values)
    return out


# Every stage returns rows with the same columns (ROW), so the transcribe path and the
# rescore path can stream through one union.  ROW holds each column's default; row_schema()
# its Arrow type.  Nested values travel typed (audio, timings, pii, entry); four columns
# stay JSON text, each for a reason given in row_schema().

ROW = {"key": "", "call_id": "", "size": 0, "etag": "", "path": "transcribe", "status": "ok",
       "stage": "", "error": "", "metadata": "{}", "pcm": b"", "channels": 0,
       "duration_s": 0.0, "audio": None, "transcript": "", "timings": None, "table_row": "",
       "entry": None, "pii": None, "insight_row": "", "modified": 0.0, "modified_source": ""}


def _row(item: dict, **values) -> dict:
    out = dict(ROW)
    out.update({k: item[k] for k in ROW if k in item})
    out.update(values)
    return out


def rows_table(rows: list[dict]):
    """Rows as a pyarrow table with ROW's columns and row_schema()'s types (every batch the
    same schema)."""
    import pyarrow as pa

    return pa.Table.from_pylist([{k: r.get(k, v) for k, v in ROW.items()} for r in rows],
                                schema=row_schema())


def table_rows(batch) -> list[dict]:
    """A pyarrow batch of rows back as dicts (maps as dicts, as the stages made them)."""
    return batch.to_pylist(maps_as_pydicts="strict")


@functools.cache
def row_schema():
    """The Arrow schema of a row between stages (and of every batch Score hands on)."""
    import pyarrow as pa

    text, entry_fields = pa.string(), dataclasses.fields(Entry)
    schema = pa.schema([
        ("key", text), ("call_id", text), ("size", pa.int64()), ("etag", text),
        ("path", text),                  # transcribe | rescore | import
        ("status", text), ("stage", text), ("error", text),
        # JSON text: the input's sidecar, a document of the customer's own (agent_id, team,
        # started_at and whatever else it holds), with no schema of ours to type it by
        ("metadata", text),
        ("pcm", pa.binary()),            # decoded audio, float32, channels after each other
        ("channels", pa.int64()), ("duration_s", pa.float64()),
        ("audio", pa.struct([("source_rate", pa.int64()), ("codec", text), ("sha256", text)])),
        # JSON text: the transcript artifact exactly as it is stored (transcripts/<id>.json,
        # versioned in transcript.py); Score parses it once
        ("transcript", text),
        ("timings", pa.map_(text, pa.float64())),        # speech stage: seconds per step
        # JSON text, like table_row's twin insight_row below: the very document the
        # ledger keeps for the call under state/entries/ (ledger.record), which a resumed
        # run folds back in from JSON; one form for both keeps the tables the same
        ("table_row", text),
        ("entry", pa.struct([(f.name, pa.int64() if f.name == "size" else text)
                             for f in entry_fields])),    # the call's ledger entry
        ("pii", pa.map_(text, pa.int64())),               # values redacted, per kind
        ("insight_row", text),
        ("modified", pa.float64()), ("modified_source", text)])
    assert schema.names == list(ROW), "ROW and row_schema() name the same columns"
    return schema
