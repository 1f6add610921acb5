"""The score stage: transcripts -> reports, insights and ledger entries (CPU actors)."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import sys
import traceback
from typing import Any

from .. import ledger as ledger_mod
from ..coaching.features import features_valid
from ..pii import PiiConfig, redact_text, redact_transcript
from ..planning import REPORTS, TRANSCRIPTS
from ..storage import LocalStore
from . import _as_store
from .decode import ImportTranscript, ReadTranscript
from .rows import _failed, _ok, rows_table, table_rows

log = logging.getLogger("callcoach")

SCORE_BATCH = 64      # calls per Score batch (one columnar scoring pass)


@functools.cache
def _malloc_trim():
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):      # not glibc
        return None


def _trim_heap() -> None:
    """Give the heap pages a finished batch freed back to the OS.  A long-lived actor
    otherwise keeps its high-water mark, which creeps up with every batch it scores
    (fragmentation), so its memory would grow with the size of the run."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class Score:
    """CPU: transcripts -> coaching reports, a batch of calls at a time; writes each call's
    report JSON + HTML and its ledger entry.

    The scorer and the insights run over the whole batch in one columnar pass (one call at
    a time, polars' per-query overhead made them ~50 ms a call; scripts/bench/rescore.py).
    A batch that raises is scored again call by call, so one bad transcript fails alone."""

    def __init__(self, output_uri: str, ruleset_path: str | None, speech_fingerprint: str,
                 run_id: str, pii: PiiConfig | None = None, categories_path: str | None = None,
                 input_uri: str | None = None):
        self.store = _as_store(output_uri)
        self.importer = ImportTranscript(input_uri) if input_uri else None
        from ..coaching.engine import Engine

        self.engine = Engine.load(ruleset_path, categories_path)
        self.ruleset, self.categories = self.engine.ruleset, self.engine.categories
        self.fingerprint = speech_fingerprint
        self.run_id = run_id
        self.pii = pii or PiiConfig()
        self.reader = ReadTranscript(self.store)
        self._threads = None

    def __call__(self, batch):
        """Ray ``map_batches`` entry point: a pyarrow batch of rows in, one out."""
        out = rows_table(self.score_rows(table_rows(batch)))
        _trim_heap()
        return out

    def one(self, row: dict) -> dict:
        return self.score_rows([row])[0]

    def score_rows(self, rows: list[dict]) -> list[dict]:
        from ..coaching.features import features_batch
        from ..transcript import Transcript

        rows = self._read_stored(rows)
        out: list[dict | None] = [None] * len(rows)
        todo: list[int] = []           # rows still in play
        transcripts: dict[int, Any] = {}
        pii_counts: dict[int, dict] = {}
        changed: dict[int, bool] = {}
        for i, row in enumerate(rows):
            if row["status"] != "ok":
                out[i] = self._finish_failed(row)
                continue
            try:
                transcript = Transcript.from_json(row["transcript"])
                # Idempotent on redacted transcripts; redacts any stored before redaction
                # (or with other settings) and replaces the stored artifact.
                redacted, pii_counts[i] = redact_transcript(transcript, self.pii)
                changed[i] = redacted.turns != transcript.turns or redacted.models != transcript.models
                transcripts[i] = redacted
                todo.append(i)
            except Exception as exc:
                out[i] = self._fail(row, exc)

        # Features stored before this features version (or of a transcript redacted just
        # now): computed once here, in one encoder pass, for the scorer and the insights
        # alike, and stored, so the next rescore does not pay for the sentence encoder.
        stale = [i for i in todo if not features_valid(transcripts[i], transcripts[i].features)]
        for i, feats in zip(stale, _batch_or_each(features_batch, [transcripts[i] for i in stale])):
            if isinstance(feats, Exception):
                out[i] = self._fail(rows[i], feats)
            else:
                transcripts[i] = dataclasses.replace(transcripts[i], features=feats)
                changed[i] = True
        todo = [i for i in todo if out[i] is None]

        # one engine pass per batch: acts detected once, for the report and the insights
        scored = _batch_or_each(self.engine.score, [(transcripts[i], None) for i in todo])
        for i, res in zip(todo, scored):
            if isinstance(res, Exception):
                out[i] = self._fail(rows[i], res)
                continue
            report, ins = res
            try:
                out[i] = self._write(rows[i], transcripts[i], changed[i], report, ins, pii_counts[i])
            except Exception as exc:
                out[i] = self._fail(rows[i], exc)
        return out

    def _read_stored(self, rows: list[dict]) -> list[dict]:
        """Rescore rows come without their transcript: read them here, a few at a time
        in threads (object-store latency), rather than in a stage of actors of their own
        (two more processes to start and feed for milliseconds of work per call)."""
        rows = list(rows)
        for i, r in enumerate(rows):
            if r["path"] == "import" and r["status"] == "ok" and not r["transcript"]:
                rows[i] = self.importer(r)
        todo = [i for i, r in enumerate(rows)
                if r["path"] == "rescore" and r["status"] == "ok" and not r["transcript"]]
        if not todo:
            return rows
        if len(todo) == 1 or isinstance(self.store, LocalStore):
            read = map(self.reader, [rows[i] for i in todo])
        else:
            read = self._pool().map(self.reader, [rows[i] for i in todo])
        for i, r in zip(todo, read):
            rows[i] = r
        return rows

    def _pool(self):
        if self._threads is None:
            from concurrent.futures import ThreadPoolExecutor

            self._threads = ThreadPoolExecutor(8, thread_name_prefix="read-transcript")
        return self._threads

    def _write(self, row: dict, transcript, changed: bool, report: dict, insights: dict,
               pii_counts: dict) -> dict:
        from ..insights.tables import insight_row
        from ..render import render_html, report_json
        from ..tables import call_row

        if changed:
            self.store.write(f"{TRANSCRIPTS}/{row['call_id']}.json", transcript.to_json(),
                             "application/json")
        warning = (transcript.metadata or {}).get("metadata_warning")
        if warning:
            report = dict(report, metadata_warning=warning)
        irow = insight_row(insights, report)
        prefix = f"{REPORTS}/{report['ruleset_version']}/{row['call_id']}"
        self.store.write(prefix + ".json", report_json(report), "application/json")
        self.store.write(prefix + ".html", render_html(report, transcript).encode("utf-8"),
                         "text/html; charset=utf-8")
        table_row = call_row(report, transcript, source_key=transcript.audio.get("source_key", row["key"]),
                             modified=row.get("modified") or None,
                             modified_source=row.get("modified_source") or "object_mtime")
        entry = ledger_mod.entry_for(
            row, self.run_id, made_from=transcript.audio,
            speech_fingerprint=self._fingerprint_of(row),
            asr_model=str(transcript.models.get("asr", "")),
            diarization_model=str(transcript.models.get("diarization", "")),
            ruleset_version=report["ruleset_version"],
            categories_version=self.categories.version, acts_model=self.engine.act_model.version)
        ledger_mod.record(self.store, entry, table_row, irow)
        return _ok(row, transcript="", duration_s=float(transcript.duration_s),
                   table_row=json.dumps(table_row, default=str),
                   insight_row=json.dumps(irow, default=str),
                   entry=dataclasses.asdict(entry),
                   # a fresh transcript was redacted (and counted) by the speech stage
                   pii=row["pii"] if row["path"] == "transcribe" else pii_counts)

    def _fail(self, row: dict, exc: BaseException) -> dict:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("scoring failed for %s: %s", row["call_id"], redact_text(tb, self.pii)[0])
        return self._finish_failed(_failed(dict(row, transcript=""), "score",
                                           f"{type(exc).__name__}: {exc}", self.pii))

    def _fingerprint_of(self, row: dict) -> str:
        """A fresh transcript has this run's fingerprint; a re-scored one keeps its own."""
        if row["path"] in ("transcribe", "import"):
            return self.fingerprint
        return str((row["entry"] or {}).get("speech_fingerprint", ""))

    def _finish_failed(self, row: dict) -> dict:
        entry = ledger_mod.entry_for(row, self.run_id, status="failed", stage=row["stage"],
                                     reason=row["error"])
        try:
            ledger_mod.record(self.store, entry, None)
        except Exception:
            log.error("could not record failure of %s", row["call_id"])
        return dict(row, pcm=b"", transcript="", entry=dataclasses.asdict(entry))


def _batch_or_each(fn, items: list) -> list:
    """``fn`` over all ``items`` at once (it returns one result per item); if that raises,
    over each item alone, so one bad item fails alone: its slot holds the exception."""
    if not items:
        return []
    try:
        results = list(fn(items))
        if len(results) != len(items):
            raise RuntimeError(f"{len(results)} results for {len(items)} items")
        return results
    except Exception:
        if len(items) == 1:
            return [sys.exc_info()[1]]
        out: list = []
        for item in items:
            try:
                out.append(fn([item])[0])
            except Exception as exc:
                out.append(exc)
        return out
