"""The run: plan the calls, stream them through the Ray Data graph, commit the results.

    planning (driver, no Ray: list, call ids, what each call needs)
      -> stages.decode     read + decode (CPU)
      -> stages.transcribe speech (actors, models loaded once, GPU when configured)
      -> stages.score      reports, per-call writes (CPU actors, batches of calls)
      -> commit            tables + ledger (driver)
      -> summary           runs/<run_id>.json, dashboards (driver)

This module only wires them: the run's configuration, Ray set-up, the graph and its
retries.  Each call is a row (stages.rows); one bad call never stops a run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from . import ledger as ledger_mod
from .commit import _finish, _Results
from .ledger import Entry
from .pii import PiiConfig
from .planning import (IMPORT_FINGERPRINT, _disambiguate, _stored_transcripts,
                       list_calls, list_transcript_files, load_rules, plan, speech_fingerprint)
from .speech.stage import SpeechConfig
from .stages.decode import ReadDecode
from .stages.rows import _failed, _row, table_rows
from .stages.score import SCORE_BATCH, Score
from .stages.transcribe import SpeechActor
from .storage import Store, open_store
from .summary import RunSummary, write_summary

log = logging.getLogger("callcoach")


@dataclass(frozen=True)
class RunConfig:
    input: str
    output: str
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    ruleset: str | None = None              # path to a rule-set YAML; None: the default
    categories: str | None = None           # path to an issue-categories YAML; None: default
    as_of: str | None = None                # commitments' "now" (ISO); None: latest call
    speech_actors: int = 1
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    max_duration_s: float = 4 * 3600.0
    call_timeout_s: float = 120.0            # speech-stage budget per call: base ...
    call_timeout_factor: float = 3.0         # ... plus this many seconds per audio second
    limit: int | None = None
    since: float | None = None               # only inputs modified at/after this epoch time
    prefix: str = ""                         # only inputs under this sub-prefix
    ray_address: str | None = None
    num_cpus: int | None = None              # local Ray only
    pii: PiiConfig = field(default_factory=PiiConfig)   # redaction of everything written
    sse: dict | None = None                  # server-side encryption of every output write
                                             # (S3 PutObject args), None: the bucket default
    max_call_memory_mb: float = 2048.0       # per-call budget for decoded audio (float32 PCM)
    max_task_retries: int = 3                # retries of a call whose worker died under it
    input_kind: str = "audio"                # "audio": recordings; "transcripts": existing
                                             # transcripts (callcoach score-transcripts)


def output_store(config: RunConfig) -> Store:
    """The run's output store: server-side encryption, when configured, on every write."""
    if config.sse:
        if not config.output.startswith("s3://"):
            raise ValueError("server-side encryption (--sse) needs an s3:// output")
        return open_store(config.output, sse=dict(config.sse))
    return open_store(config.output)


# Written and deleted by the driver before any work, to prove the output is writable (with
# its encryption settings).  Under state/entries/, where the job may delete; hidden, so no
# listing ever sees it.
PROBE_KEY = f"{ledger_mod.ENTRIES}/.preflight"


def preflight(config: RunConfig, out_store: Store, rescore_only: bool) -> None:
    """Fail before any work starts (StorageError) when the output cannot be written or the
    input cannot be read: unreachable endpoint, missing bucket or folder, refused
    credentials, unusable encryption key."""
    out_store.check(PROBE_KEY)
    if not rescore_only:
        open_store(config.input).check()


def init_ray(config: RunConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    # Workers never phone home and never reach for a model hub.
    env = {"PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    # Where object storage is: the driver's endpoint and region go to every worker.  On a
    # local Ray the driver's credentials go too; on a cluster workers use their own role.
    shared = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
              "CALLCOACH_MODELS", "CALLCOACH_MODEL_CACHE")
    local_only = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                  "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
    for name in shared + (() if address else local_only):
        if os.environ.get(name):
            env[name] = os.environ[name]
    from . import logs

    # each worker silences known third-party noise at start (pipelines/callcoach/logs.py)
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": True,
                              "runtime_env": {"env_vars": env,
                                              "worker_process_setup_hook": "callcoach.logs.quiet_worker"},
                              # with the command's log routing, Ray's records go through it
                              "configure_logging": not logs.routed()}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=config.num_cpus or os.cpu_count(), include_dashboard=False, **kwargs)
    import ray.data     # configures Ray Data's own console logging: taken off just below

    logs.route_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def _versions(config: RunConfig) -> tuple[str, str]:
    """(rule-set version, categories version); loading them here also fails fast, before
    any work starts, on a malformed rule or categories file."""
    rules, cats = load_rules(config.ruleset, config.categories)
    return rules.version, cats.version


def _execute(config: RunConfig, out_uri: str | Store, transcribe: list[dict], rescore: list[dict],
             fingerprint: str, run_id: str, *, isolate: bool = False) -> Iterator[dict]:
    """Stream every planned call through the stages; yields one row per call that came out.

    A worker that dies under a call (killed, out of memory) is restarted and its task
    retried, at most max_task_retries times; a task that still kills its worker is dropped
    from the stream rather than failing the run (max_errored_blocks), with every call in
    it.  ``isolate``: one call per task and one task at a time per actor, so a call that
    keeps killing its worker takes no other call with it (run() re-runs dropped calls so)."""
    import ray

    init_ray(config)
    ray.data.DataContext.get_current().max_errored_blocks = -1
    retry = {"max_restarts": -1, "max_task_retries": max(0, config.max_task_retries)}
    in_flight = {"max_tasks_in_flight_per_actor": 1} if isolate else {}

    def pool(**sizes):
        return ray.data.ActorPoolStrategy(**sizes, **in_flight)

    def score_blocks(n: int) -> int:
        """Blocks for calls that go straight to Score (imports, rescores): about a Score
        batch each, or one call each when isolating."""
        return n if isolate else min(2000, -(-n // SCORE_BATCH))

    # Fixed-size CPU pools (not autoscaled): the same workers, so the same memory,
    # whether the run holds 100 calls or a million (scripts/bench/memory.py)
    parts = []
    if transcribe and config.input_kind == "transcripts":
        # existing transcripts: Score imports each file itself (ImportTranscript), like a
        # rescore reads a stored transcript; no audio, no speech actors
        parts.append(ray.data.from_items([_row(c, path="import") for c in transcribe],
                                         override_num_blocks=score_blocks(len(transcribe))))
    elif transcribe:
        # one call per block: speech is seconds per call, so blocks need no batching
        ds = ray.data.from_items(transcribe, override_num_blocks=min(len(transcribe), 1000))
        ds = ds.map(ReadDecode, fn_constructor_args=(config.input, config.max_duration_s,
                                                     config.max_call_memory_mb),
                    compute=pool(min_size=1, max_size=max(1, os.cpu_count() or 2)),
                    num_cpus=0.5, **retry)
        ds = ds.map(SpeechActor, fn_constructor_args=(out_uri, config.speech, config.call_timeout_s,
                                                      config.call_timeout_factor, config.pii),
                    compute=pool(size=config.speech_actors),
                    num_gpus=config.gpus_per_actor or None, num_cpus=config.cpus_per_actor, **retry)
        parts.append(ds)
    if rescore:
        # rescoring is milliseconds per call: blocks of about a Score batch
        # the Score actors read each stored transcript themselves (Score._read_stored)
        ds = ray.data.from_items([_row(c, path="rescore") for c in rescore],
                                 override_num_blocks=score_blocks(len(rescore)))
        parts.append(ds)
    ds = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    # batch = block: a transcribed call (one per block) is scored and comes out as soon as
    # its speech is done, so progress (and ETA) moves call by call, while rescore blocks
    # (made above) still hold about SCORE_BATCH calls each; a fixed batch_size would hold
    # finished calls back until SCORE_BATCH of them had arrived.
    ds = ds.map_batches(Score, batch_size=None, batch_format="pyarrow",
                        fn_constructor_args=(out_uri, config.ruleset, fingerprint, run_id,
                                             config.pii, config.categories,
                                             config.input if config.input_kind == "transcripts" else None),
                        compute=pool(size=2), num_cpus=0.5, **retry)
    # each block as it comes (no prefetch: it would hold a finished call back until the
    # next one is ready)
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
        yield from table_rows(batch)


def _stream(config: RunConfig, out_uri: str | Store, transcribe: list[dict], rescore: list[dict],
            fingerprint: str, run_id: str) -> Iterator[dict]:
    """_execute, then the calls it dropped once more, each alone (isolate=True): a task
    holds many calls and an actor runs several tasks, so one call that kills its worker
    on every retry drops its neighbours too.  Whatever is still missing gets a failure row
    (_with_lost_calls), so no call is ever silently lost."""
    seen: set[str] = set()
    for row in _execute(config, out_uri, transcribe, rescore, fingerprint, run_id):
        seen.add(row["call_id"])
        yield row
    again_t = [c for c in transcribe if c["call_id"] not in seen]
    again_r = [c for c in rescore if c["call_id"] not in seen]
    if again_t or again_r:
        log.warning("%d calls were dropped with a worker that died; running them again, "
                    "one at a time", len(again_t) + len(again_r))
        yield from _with_lost_calls(
            _execute(config, out_uri, again_t, again_r, fingerprint, run_id, isolate=True),
            again_t + again_r, config, run_id)


def run(config: RunConfig, progress=None, *, rescore_only: bool = False, force: bool = False
        ) -> RunSummary:
    """Process every call under ``config.input`` that is new or changed (or, with
    ``rescore_only``, re-score every stored transcript under ``config.output``)."""
    started = time.perf_counter()
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + os.urandom(3).hex()
    out_store = output_store(config)
    importing = config.input_kind == "transcripts"
    fingerprint = IMPORT_FINGERPRINT if importing else speech_fingerprint(config.speech)
    ruleset_version, categories_version = _versions(config)
    from .coaching.acts import load_act_model
    acts_version = load_act_model().version      # fails fast on a missing or corrupt model
    preflight(config, out_store, rescore_only)
    if hasattr(out_store, "remove_temp_files"):   # local: temp files of killed writes
        out_store.remove_temp_files()
    ledger, pending_rows, pending_insights = ledger_mod.load(out_store)

    skipped: list[dict] = []
    if rescore_only:
        calls = _stored_transcripts(out_store, ledger)
    else:
        lister = list_transcript_files if importing else list_calls
        calls = lister(open_store(config.input), config.limit, config.since, config.prefix,
                       skipped=skipped)
        both = _disambiguate(calls + skipped, ledger)
        calls, skipped = both[:len(calls)], both[len(calls):]
    the_plan = plan(calls, ledger, fingerprint, ruleset_version, force, categories_version,
                    acts_version, stored=rescore_only)

    summary = RunSummary(run_id=run_id, calls=len(calls), unchanged=len(the_plan.unchanged),
                         ruleset_version=ruleset_version, pii_config=config.pii.describe())
    _record_skipped(skipped, ledger, summary, run_id)
    log.info("run %s: %d calls: %d to transcribe, %d to re-score, %d unchanged", run_id,
             len(calls), len(the_plan.transcribe), len(the_plan.rescore), len(the_plan.unchanged))
    results = _Results(ledger, pending_rows, pending_insights)
    todo = len(the_plan.transcribe) + len(the_plan.rescore)
    if todo:
        for out in _stream(config, out_store, the_plan.transcribe, the_plan.rescore,
                           fingerprint, run_id):
            results.add(out)
            summary.add(out)
            if progress:
                progress(results.count, todo, out)
    commit = {"run_id": run_id, "command": "rescore" if rescore_only else "score",
              "ruleset_version": ruleset_version, "categories_version": categories_version}
    tables = _finish(out_store, results, config, commit)
    summary.wall_s = time.perf_counter() - started
    write_summary(out_store, summary, tables)
    return summary


def _record_skipped(skipped: list[dict], ledger: dict[str, Entry], summary: RunSummary,
                    run_id: str) -> None:
    """Input keys that are not read (hidden, '..'): counted in the summary every run, and
    one failure row each (a ledger entry, stage "key"); a new one counts as failed once."""
    for c in skipped:
        summary.skipped += 1
        log.warning("input %r not read: %s", c["key"], c["reason"])
        e = ledger.get(c["call_id"])
        if e is not None and e.status == "failed" and e.stage == "key" \
                and e.same_input(c["key"], c["etag"], c["size"]):
            continue
        ledger[c["call_id"]] = ledger_mod.entry_for(c, run_id, status="failed", stage="key",
                                                    reason=c["reason"])
        summary.fail(c["call_id"], c["key"], "key", c["reason"])


def _with_lost_calls(rows: Iterator[dict], planned: list[dict], config: RunConfig,
                     run_id: str) -> Iterator[dict]:
    """The stream's rows, then a failure row for every planned call the stream dropped
    (its worker died under it on every retry), so no call is ever silently lost."""
    seen = set()
    for row in rows:
        seen.add(row["call_id"])
        yield row
    reason = (f"lost: the worker processing this call died {config.max_task_retries + 1} "
              "times (killed, e.g. for running out of memory); it is retried next run")
    for c in planned:
        if c["call_id"] in seen:
            continue
        log.error("call %s lost: %s", c["call_id"], reason)
        row = _failed(_row(c), "worker", reason)
        entry = ledger_mod.entry_for(row, run_id, status="failed", stage="worker", reason=reason)
        yield dict(row, entry=dataclasses.asdict(entry))
