"""The run summary (runs/<run_id>.json) and the supervisor's dashboards."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from .storage import Store

log = logging.getLogger("callcoach")


@dataclass
class RunSummary:
    run_id: str = ""
    calls: int = 0            # inputs considered
    transcribed: int = 0      # calls that went through ASR this run
    rescored: int = 0         # calls re-scored from their stored transcript
    imported: int = 0         # existing transcripts read in (score-transcripts)
    unchanged: int = 0        # calls skipped: same audio, models and rules
    skipped: int = 0          # input keys not read (hidden, '..'): each a failure row
    scored: int = 0           # calls with a fresh report this run
    failed: int = 0
    audio_s: float = 0.0      # audio transcribed this run
    wall_s: float = 0.0
    asr_s: float = 0.0
    diarize_s: float = 0.0
    ruleset_version: str = ""
    pii_redacted: dict = field(default_factory=dict)   # values redacted per kind (never the values)
    pii_config: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)

    @property
    def rtf(self) -> float:
        return self.wall_s / self.audio_s if self.audio_s else 0.0

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "calls": self.calls, "transcribed": self.transcribed,
                "imported": self.imported, "rescored": self.rescored, "unchanged": self.unchanged,
                "skipped": self.skipped, "scored": self.scored,
                "failed": self.failed, "audio_hours": round(self.audio_s / 3600, 4),
                "wall_s": round(self.wall_s, 1), "real_time_factor": round(self.rtf, 4),
                "asr_s": round(self.asr_s, 1), "diarize_s": round(self.diarize_s, 1),
                "ruleset_version": self.ruleset_version, "pii_redacted": self.pii_redacted,
                "pii_config": self.pii_config, "failures": self.failures}

    def add(self, row: dict) -> None:
        """Count one call's result as it comes out of the graph."""
        if row["status"] != "ok":
            self.fail(row["call_id"], row["key"], row["stage"], row["error"])
            return
        self.scored += 1
        timings = row["timings"] or {}
        for kind, n in (row["pii"] or {}).items():
            self.pii_redacted[kind] = self.pii_redacted.get(kind, 0) + n
        if row["path"] == "import":
            self.imported += 1
        elif row["path"] == "transcribe":
            self.transcribed += 1
            self.audio_s += float(row["duration_s"])
            self.asr_s += timings.get("asr_s", 0.0)
            self.diarize_s += timings.get("diarize_s", 0.0)
        else:
            self.rescored += 1

    def fail(self, call_id: str, source_key: str, stage: str, reason: str) -> None:
        self.failed += 1
        self.failures.append({"call_id": call_id, "source_key": source_key, "stage": stage,
                              "reason": reason})


def write_summary(out_store: Store, summary: RunSummary, tables: dict) -> None:
    """runs/<run_id>.json and runs/latest.json, then the dashboards."""
    doc = json.dumps(summary.to_dict(), indent=1).encode()
    out_store.write(f"runs/{summary.run_id}.json", doc, "application/json")
    out_store.write("runs/latest.json", doc, "application/json")
    _write_dashboards(out_store, tables, summary)


def _write_dashboards(out_store: Store, tables: dict, summary: RunSummary) -> None:
    """The supervisor's pages: runs/<run_id>/dashboard.html and dashboard.html (latest).
    A page that cannot be written is logged, never fails a run whose tables are committed."""
    from .dashboard import write_dashboards

    try:
        write_dashboards(out_store, tables, summary.to_dict())
    except Exception:
        log.exception("could not write the dashboard")
