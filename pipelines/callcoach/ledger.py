"""What was processed, from what, by which models and rules: the incremental-run ledger.

One entry per call_id:
    source_key, etag, size      the input object as listed (a changed object re-runs)
    audio_sha256                content hash of the audio bytes
    speech_fingerprint          the speech configuration that made the transcript
    asr_model, diarization_model
    ruleset_version             the rules that made the current report
    status, stage, reason       scored | failed (failed calls are retried every run)
    run_id

Workers record each finished call as ``state/entries/<call_id>.json`` (an atomic PUT)
together with its ``calls`` table row, so a run killed half-way loses nothing: the next
run merges those entries first.  At the end of a run the driver folds all entries into
the snapshot ``state/ledger.parquet`` (atomic replace) and then removes the entries.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, fields
from typing import Iterable, Mapping

import polars as pl

SNAPSHOT = "state/ledger.parquet"
ENTRIES = "state/entries"


@dataclass(frozen=True, slots=True)
class Entry:
    call_id: str
    source_key: str
    etag: str
    size: int
    audio_sha256: str = ""
    speech_fingerprint: str = ""
    asr_model: str = ""
    diarization_model: str = ""
    ruleset_version: str = ""
    categories_version: str = ""
    acts_model: str = ""          # version of the act model whose acts scored it
    status: str = "scored"
    stage: str = ""
    reason: str = ""
    run_id: str = ""

    def same_input(self, key: str, etag: str, size: int) -> bool:
        return self.source_key == key and self.etag == etag and self.size == size


def entry_for(call: Mapping, run_id: str, *, status: str = "scored", stage: str = "",
              reason: str = "", made_from: Mapping | None = None, **versions: str) -> Entry:
    """The one place a ledger entry is built, for a call (a row or a listed input: its
    call_id, key, etag, size) in run ``run_id``.

    A failed call records the input as listed.  A scored call records what its transcript
    was made from, ``made_from`` (the transcript's ``audio``: source_key, etag, size,
    sha256; what is missing there comes from the call), and ``versions``: the speech
    fingerprint, models and rule versions that made its report."""
    if made_from is None:
        source_key, etag, size, sha256 = call["key"], call["etag"], int(call["size"]), ""
    else:
        source_key = str(made_from.get("source_key", call["key"]))
        etag = str(made_from.get("etag", call["etag"]))
        size = int(made_from.get("size", call["size"]) or 0)
        sha256 = str(made_from.get("sha256", ""))
    return Entry(call_id=call["call_id"], source_key=source_key, etag=etag, size=size,
                 audio_sha256=sha256, status=status, stage=stage, reason=reason, run_id=run_id,
                 **versions)


_SCHEMA = {f.name: (pl.Int64 if f.name == "size" else pl.String) for f in fields(Entry)}


def load(store) -> tuple[dict[str, Entry], dict[str, dict], dict[str, dict]]:
    """The ledger (snapshot + pending entries), and the calls-table rows and insight rows
    of pending entries."""
    ledger: dict[str, Entry] = {}
    if store.exists(SNAPSHOT):
        df = pl.read_parquet(io.BytesIO(store.read(SNAPSHOT)))
        for row in df.iter_rows(named=True):
            ledger[row["call_id"]] = Entry(**{k: row[k] for k in _SCHEMA if k in row})
    pending_rows: dict[str, dict] = {}
    pending_insights: dict[str, dict] = {}
    for obj in store.list(ENTRIES, (".json",)):
        doc = json.loads(store.read(obj.key))
        entry = Entry(**doc["entry"])
        ledger[entry.call_id] = entry
        if doc.get("table_row"):
            pending_rows[entry.call_id] = doc["table_row"]
        if doc.get("insight_row"):
            pending_insights[entry.call_id] = doc["insight_row"]
    return ledger, pending_rows, pending_insights


def entry_key(call_id: str) -> str:
    return f"{ENTRIES}/{call_id}.json"


def record(store, entry: Entry, table_row: Mapping | None,
           insight_row: Mapping | None = None) -> None:
    doc = {"entry": asdict(entry), "table_row": dict(table_row) if table_row else None,
           "insight_row": dict(insight_row) if insight_row else None}
    store.write(entry_key(entry.call_id), json.dumps(doc, default=str).encode(), "application/json")


def commit(store, ledger: Mapping[str, Entry]) -> None:
    """Write the snapshot, then drop the per-call entries it now holds."""
    rows = [asdict(e) for e in sorted(ledger.values(), key=lambda e: e.call_id)]
    df = pl.DataFrame(rows, schema=_SCHEMA, orient="row") if rows else pl.DataFrame(schema=_SCHEMA)
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd")
    store.write(SNAPSHOT, buf.getvalue())
    for obj in list(store.list(ENTRIES, (".json",))):
        store.delete(obj.key)


def entries_from_dicts(items: Iterable[Mapping]) -> dict[str, Entry]:
    return {d["call_id"]: Entry(**d) for d in items}
