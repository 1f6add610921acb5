"""The Ray Data graph: the only module that moves bytes between storage and stages.

    list (driver) -> read + decode (CPU tasks) -> speech (actors, models loaded once,
    GPU when configured) -> score (CPU tasks) -> per-call writes -> tables (driver)

Each call is a row.  A stage that fails on a call turns the row into a failure (stage and
reason) that later stages pass through untouched, so one bad call never stops a run.
Rows carry bytes and scalars only (decoded audio travels as raw float32 PCM).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from .audio import AUDIO_EXTENSIONS, Audio, AudioError, SAMPLE_RATE, decode
from .speech.stage import SpeechConfig
from .storage import ObjectInfo, Store, open_store

log = logging.getLogger("callcoach")

TRANSCRIPTS = "transcripts"
REPORTS = "reports"
TABLES = "tables"


@dataclass(frozen=True)
class RunConfig:
    input: str
    output: str
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    ruleset: str | None = None              # path to a rule-set YAML; None: the default
    speech_actors: int = 1
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    max_duration_s: float = 4 * 3600.0
    limit: int | None = None
    ray_address: str | None = None
    num_cpus: int | None = None              # local Ray only


# -- naming ------------------------------------------------------------------------------

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def call_ids(keys: list[str]) -> dict[str, str]:
    """call_id for each input key: the file name without extension, made safe.

    Never trusted as a path: unsafe characters are replaced, and when that changed the name
    or two keys share a stem, a short hash of the full key keeps ids unique.
    """
    stems = {}
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        stem = name.rsplit(".", 1)[0] if "." in name else name
        stems[key] = stem
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem] = counts.get(stem, 0) + 1
    out = {}
    for key, stem in stems.items():
        safe = _SAFE.sub("_", stem).strip("._")[:120] or "call"
        if safe != stem or counts[stem] > 1:
            safe = f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
        out[key] = safe
    return out


def list_calls(store: Store, limit: int | None = None) -> list[dict]:
    objects: list[ObjectInfo] = list(store.list("", AUDIO_EXTENSIONS))
    ids = call_ids([o.key for o in objects])
    rows = [{"key": o.key, "call_id": ids[o.key], "size": o.size, "etag": o.etag} for o in objects]
    rows.sort(key=lambda r: r["call_id"])
    return rows[:limit] if limit else rows


def sidecar_key(audio_key: str) -> str:
    return audio_key.rsplit(".", 1)[0] + ".json"


# -- row helpers ------------------------------------------------------------------------

def _failed(row: dict, stage: str, reason: str) -> dict:
    out = dict(row)
    out.update(status="failed", stage=stage, error=reason[:500])
    return out


def _ok(row: dict, **values) -> dict:
    out = dict(row)
    out.update(values)
    return out


# -- stages -----------------------------------------------------------------------------

class ReadDecode:
    """CPU: read the audio and its sidecar, decode to 16 kHz PCM."""

    def __init__(self, input_uri: str, max_duration_s: float):
        self.store = open_store(input_uri)
        self.max_duration_s = max_duration_s

    def __call__(self, row: dict) -> dict:
        base = dict(row, status="ok", stage="", error="", metadata="{}", pcm=b"", channels=0,
                    duration_s=0.0, audio="{}", transcript="", timings="{}", report="",
                    table_row="")
        try:
            metadata = {}
            skey = sidecar_key(row["key"])
            if self.store.exists(skey):
                try:
                    metadata = json.loads(self.store.read(skey))
                    if not isinstance(metadata, dict):
                        raise ValueError("sidecar is not a JSON object")
                except ValueError as exc:
                    return _failed(base, "sidecar", f"invalid sidecar JSON {skey}: {exc}")
            data = self.store.read(row["key"])
            audio = decode(data, max_duration_s=self.max_duration_s)
            return _ok(base, metadata=json.dumps(metadata), pcm=audio.samples.tobytes(),
                       channels=audio.channels, duration_s=audio.duration_s,
                       audio=json.dumps({"source_rate": audio.source_rate, "codec": audio.codec,
                                         "sha256": audio.sha256}))
        except AudioError as exc:
            return _failed(base, "decode", str(exc))
        except Exception as exc:
            return _failed(base, "read", f"{type(exc).__name__}: {exc}")


def _audio_from_row(row: dict) -> Audio:
    info = json.loads(row["audio"])
    samples = np.frombuffer(row["pcm"], dtype=np.float32).reshape(int(row["channels"]), -1)
    return Audio(samples, SAMPLE_RATE, info["source_rate"], info["codec"], info["sha256"])


class SpeechActor:
    """GPU (or CPU) actor: diarization + ASR + roles; writes the transcript artifact."""

    def __init__(self, output_uri: str, speech: SpeechConfig):
        from .speech.stage import SpeechStage

        self.store = open_store(output_uri)
        self.stage = SpeechStage(speech)

    def __call__(self, row: dict) -> dict:
        if row["status"] != "ok":
            return row
        try:
            audio = _audio_from_row(row)
            metadata = json.loads(row["metadata"])
            transcript, timings = self.stage(audio, row["call_id"], metadata)
            transcript = _with_source(transcript, row)
            data = transcript.to_json()
            self.store.write(f"{TRANSCRIPTS}/{row['call_id']}.json", data, "application/json")
            return _ok(row, pcm=b"", transcript=data.decode("utf-8"), timings=json.dumps(timings))
        except Exception as exc:
            log.error("speech failed for %s: %s", row["call_id"], traceback.format_exc())
            return _failed(dict(row, pcm=b""), "speech", f"{type(exc).__name__}: {exc}")


def _with_source(transcript, row):
    from dataclasses import replace

    meta = dict(transcript.metadata)
    audio = dict(transcript.audio, source_key=row["key"], etag=row["etag"], size=row["size"])
    return replace(transcript, metadata=meta, audio=audio)


class Score:
    """CPU: transcript -> coaching report; writes report JSON and HTML."""

    def __init__(self, output_uri: str, ruleset_path: str | None):
        from .coaching.rules import default_ruleset, load_ruleset

        self.store = open_store(output_uri)
        self.ruleset = load_ruleset(ruleset_path) if ruleset_path else default_ruleset()

    def __call__(self, row: dict) -> dict:
        if row["status"] != "ok":
            return row
        try:
            from .coaching.score import score_call
            from .reports import render_html, report_json
            from .tables import call_row
            from .transcript import Transcript

            transcript = Transcript.from_json(row["transcript"])
            report = score_call(transcript, self.ruleset)
            prefix = f"{REPORTS}/{report['ruleset_version']}/{row['call_id']}"
            self.store.write(prefix + ".json", report_json(report), "application/json")
            self.store.write(prefix + ".html", render_html(report, transcript).encode("utf-8"),
                             "text/html; charset=utf-8")
            table_row = call_row(report, transcript, source_key=row["key"])
            return _ok(row, transcript="", report="", table_row=json.dumps(table_row))
        except Exception as exc:
            log.error("scoring failed for %s: %s", row["call_id"], traceback.format_exc())
            return _failed(dict(row, transcript=""), "score", f"{type(exc).__name__}: {exc}")


# -- the run ----------------------------------------------------------------------------

@dataclass
class RunSummary:
    calls: int = 0
    scored: int = 0
    failed: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    asr_s: float = 0.0
    diarize_s: float = 0.0
    failures: list = field(default_factory=list)

    @property
    def rtf(self) -> float:
        return self.wall_s / self.audio_s if self.audio_s else 0.0

    def to_dict(self) -> dict:
        return {"calls": self.calls, "scored": self.scored, "failed": self.failed,
                "audio_hours": round(self.audio_s / 3600, 4), "wall_s": round(self.wall_s, 1),
                "real_time_factor": round(self.rtf, 4), "asr_s": round(self.asr_s, 1),
                "diarize_s": round(self.diarize_s, 1), "failures": self.failures}


def init_ray(config: RunConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    # Workers never phone home and never reach for a model hub.
    env = {"PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": True,
                              "runtime_env": {"env_vars": env}}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=config.num_cpus or os.cpu_count(), include_dashboard=False, **kwargs)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def run(config: RunConfig, progress=None) -> RunSummary:
    """Score every call under ``config.input``; write artifacts and tables to ``config.output``."""
    import ray

    from .tables import write_tables

    started = time.perf_counter()
    in_store, out_store = open_store(config.input), open_store(config.output)
    calls = list_calls(in_store, config.limit)
    summary = RunSummary(calls=len(calls))
    if not calls:
        write_tables(out_store, [], [])
        summary.wall_s = time.perf_counter() - started
        return summary

    init_ray(config)
    ds = ray.data.from_items(calls, override_num_blocks=min(len(calls), 200))
    ds = ds.map(ReadDecode, fn_constructor_args=(config.input, config.max_duration_s),
                concurrency=(1, max(1, (os.cpu_count() or 2))), num_cpus=0.5)
    ds = ds.map(SpeechActor, fn_constructor_args=(config.output, config.speech),
                concurrency=config.speech_actors, num_gpus=config.gpus_per_actor or None,
                num_cpus=config.cpus_per_actor)
    ds = ds.map(Score, fn_constructor_args=(config.output, config.ruleset),
                concurrency=(1, 2), num_cpus=0.5)

    rows, failures = [], []
    for out in ds.iter_rows():
        if out["status"] == "ok":
            row = json.loads(out["table_row"])
            rows.append(row)
            timings = json.loads(out["timings"])
            summary.scored += 1
            summary.audio_s += float(out["duration_s"])
            summary.asr_s += timings.get("asr_s", 0.0)
            summary.diarize_s += timings.get("diarize_s", 0.0)
        else:
            failure = {"call_id": out["call_id"], "source_key": out["key"], "stage": out["stage"],
                       "reason": out["error"], "size_bytes": int(out["size"]), "etag": out["etag"]}
            failures.append(failure)
            summary.failed += 1
            summary.failures.append(failure)
        if progress:
            progress(summary.scored + summary.failed, summary.calls, out)
    write_tables(out_store, rows, failures)
    summary.wall_s = time.perf_counter() - started
    out_store.write("runs/latest.json", json.dumps(summary.to_dict(), indent=1).encode(),
                    "application/json")
    return summary
