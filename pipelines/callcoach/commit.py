"""The table commit: this run's results folded into the Delta tables and the ledger."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from . import ledger as ledger_mod
from .ledger import Entry
from .storage import Store

if TYPE_CHECKING:
    from .flow import RunConfig


class _Results:
    """This run's results, folded in as they stream: each call's ledger entry replaces its
    old one at once, and its calls-table and insights rows are parsed into polars frames
    every CHUNK calls, so the driver holds columns, never a dict per call of the run."""

    CHUNK = 256

    def __init__(self, ledger: dict[str, Entry], pending_rows: dict[str, dict],
                 pending_insights: dict[str, dict]):
        self.ledger = ledger
        self.calls: list = []           # polars frames
        self.insights: list = []
        self._rows = list(pending_rows.values())
        self._ins = list(pending_insights.values())
        self.ok = dict.fromkeys(pending_rows, True)   # call_id -> its last result was ok
        self.count = 0

    def add(self, r: dict) -> None:
        entry = Entry(**r["entry"])
        self.ledger[entry.call_id] = entry
        self.count += 1
        self.ok[entry.call_id] = r["status"] == "ok"
        if r["status"] == "ok":
            self._rows.append(json.loads(r["table_row"]))
            self._ins.append(json.loads(r["insight_row"]))
            if len(self._rows) >= self.CHUNK:
                self._flush()

    def _flush(self) -> None:
        from .insights.tables import insights_frame
        from .tables import calls_frame

        if self._rows:
            self.calls.append(calls_frame(self._rows))
            self._rows = []
        if self._ins:
            self.insights.append(insights_frame(self._ins))
            self._ins = []

    def frames(self):
        """(calls rows, insights rows) of the calls whose last result is ok: one each."""
        import polars as pl

        from .insights.tables import INSIGHT_COLUMNS
        from .tables import CALL_COLUMNS

        self._flush()
        keep = sorted(cid for cid, ok in self.ok.items() if ok)

        def one(frames, schema):
            if not frames or not keep:
                return pl.DataFrame(schema=schema)
            df = pl.concat(frames, how="vertical_relaxed")
            return df.unique("call_id", keep="last", maintain_order=True) \
                .filter(pl.col("call_id").is_in(keep))

        return one(self.calls, CALL_COLUMNS), one(self.insights, INSIGHT_COLUMNS)


def _finish(out_store: Store, results: _Results, config: RunConfig,
            commit: dict[str, str] | None = None) -> dict:
    """Fold this run's results into the tables (one Delta commit per table, carrying
    ``commit``: run_id, rule set...) and commit the ledger.  Returns the tables written."""
    import polars as pl

    from .insights.tables import INSIGHT_COLUMNS, build_tables
    from .tables import CALL_COLUMNS, failures_frame, read_table, write_table, write_tables

    ledger = results.ledger
    new_calls, new_insights = results.frames()
    failed_ids = {cid for cid, e in ledger.items() if e.status != "scored"}
    drop = sorted(set(new_calls["call_id"].to_list()) | failed_ids)
    calls = read_table(out_store, "calls", CALL_COLUMNS)
    if drop:
        calls = calls.filter(~pl.col("call_id").is_in(drop))
    if new_calls.height:
        calls = pl.concat([calls, new_calls], how="vertical_relaxed")
    calls = calls.sort("call_id")
    failures = failures_frame([{"call_id": e.call_id, "source_key": e.source_key, "stage": e.stage,
                                "reason": e.reason, "size_bytes": e.size, "etag": e.etag}
                               for e in sorted(ledger.values(), key=lambda e: e.call_id)
                               if e.status != "scored"])
    write_tables(out_store, calls, failures, metadata=commit)

    insights = read_table(out_store, "insights", INSIGHT_COLUMNS)
    if drop:
        insights = insights.filter(~pl.col("call_id").is_in(drop))
    if new_insights.height:
        insights = pl.concat([insights, new_insights], how="vertical_relaxed")
    tables = {"calls": calls, "failures": failures,
              **build_tables(insights, calls, as_of=config.as_of)}
    for name, df in tables.items():
        if name not in ("calls", "failures"):
            write_table(out_store, name, df, metadata=commit)
    ledger_mod.commit(out_store, ledger)
    return tables
