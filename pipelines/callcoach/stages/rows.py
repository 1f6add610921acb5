"""The rows that travel between the stages.

Each call is a row.  A stage that fails on a call turns the row into a failure (stage and
reason) that later stages pass through untouched, so one bad call never stops a run.
"""

from __future__ import annotations

import functools

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
# rescore path can stream through one union.

ROW = {"key": "", "call_id": "", "size": 0, "etag": "", "path": "transcribe", "status": "ok",
       "stage": "", "error": "", "metadata": "{}", "pcm": b"", "channels": 0,
       "duration_s": 0.0, "audio": "{}", "transcript": "", "timings": "{}", "table_row": "",
       "entry": "", "pii": "{}", "insight_row": "", "modified": 0.0, "modified_source": ""}


def _row(item: dict, **values) -> dict:
    out = dict(ROW)
    out.update({k: item[k] for k in ROW if k in item})
    out.update(values)
    return out


def rows_table(rows: list[dict]):
    """Rows as a pyarrow table with ROW's columns and types (every batch the same schema)."""
    import pyarrow as pa

    return pa.Table.from_pylist([{k: r.get(k, v) for k, v in ROW.items()} for r in rows],
                                schema=_row_schema())


@functools.cache
def _row_schema():
    import pyarrow as pa

    kinds = {str: pa.string(), bytes: pa.binary(), int: pa.int64(), float: pa.float64()}
    return pa.schema([(k, kinds[type(v)]) for k, v in ROW.items()])
