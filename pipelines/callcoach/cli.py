"""The ``callcoach`` command.

    callcoach score --input URI --output URI [options]   transcribe + score new or changed calls
    callcoach rescore --output URI [--ruleset FILE]      re-score stored transcripts (CPU, no ASR)
    callcoach score-transcripts --input URI --output URI score transcripts you already have

Exit codes: 0 every call scored; 3 the run finished but some calls failed (see
OUTPUT/tables/failures/); 1 fatal error (nothing or not everything could run); 2 usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callcoach", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="transcribe, diarize and score every call under --input")
    s.add_argument("--input", required=True, help="folder or s3:// prefix with recorded calls")
    s.add_argument("--output", required=True, help="folder or s3:// prefix for results")
    s.add_argument("--ruleset", default=None, help="rule-set YAML (default: the built-in rules)")
    s.add_argument("--categories", default=None,
                   help="issue-categories YAML (default: pipelines/callcoach/rules/categories.yaml)")
    s.add_argument("--as-of", default=None,
                   help="'now' for open/broken commitments, ISO 8601 (default: latest call)")
    s.add_argument("--models", default=None,
                   help="model root, folder or s3:// (default: $CALLCOACH_MODELS or ./models)")
    s.add_argument("--asr-model", default="whisper-base", help="ASR model dir under --models")
    s.add_argument("--diarization-model", default=None,
                   help="pyannote pipeline dir under --models (enables the pyannote backend)")
    s.add_argument("--alignment-model", default=None,
                   help="wav2vec2 CTC model dir under --models: word timings by forced alignment "
                        "(WhisperX's method) instead of Whisper's own")
    s.add_argument("--diarization", default="auto",
                   choices=["auto", "channels", "embedded", "pyannote"])
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument("--compute-type", default="auto")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--language", default="en", help="language code, or 'auto' to detect")
    s.add_argument("--speech-actors", type=int, default=1)
    s.add_argument("--gpus-per-actor", type=float, default=0.0)
    s.add_argument("--limit", type=int, default=None, help="score at most N calls")
    s.add_argument("--since", default=None,
                   help="only inputs modified at or after this ISO date/time (e.g. 2026-11-21)")
    s.add_argument("--prefix", default="", help="only inputs under this sub-folder of --input")
    s.add_argument("--force", action="store_true",
                   help="re-process every selected call even if the ledger says it is unchanged")
    s.add_argument("--max-duration", type=float, default=4 * 3600.0,
                   help="calls longer than this many seconds fail instead of being scored")
    s.add_argument("--max-call-memory", type=float, default=2048.0, metavar="MIB",
                   help="calls whose decoded audio (16 kHz float32, all channels) would exceed "
                        "this many MiB fail instead of being scored (default 2048)")
    s.add_argument("--ray-address", default=None, help="join this Ray cluster (default: $RAY_ADDRESS or local)")
    _pii_options(s)
    _sse_options(s)
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="json: one JSON object per log line, progress included")
    _debug_option(s)

    t = sub.add_parser("score-transcripts",
                       help="score existing transcripts (no audio): callcoach transcript JSON, Amazon "
                            "Transcribe / Call Analytics JSON, or JSONL/CSV of turns")
    t.add_argument("--input", required=True,
                   help="folder or s3:// prefix with *.json / *.jsonl / *.csv transcripts "
                        "(optional NAME.meta.json sidecar: agent_id, team, started_at, agent_channel)")
    t.add_argument("--output", required=True, help="folder or s3:// prefix for results")
    t.add_argument("--ruleset", default=None, help="rule-set YAML (default: the built-in rules)")
    t.add_argument("--categories", default=None, help="issue-categories YAML")
    t.add_argument("--as-of", default=None, help="'now' for commitments, ISO 8601")
    t.add_argument("--limit", type=int, default=None, help="score at most N transcripts")
    t.add_argument("--since", default=None, help="only inputs modified at or after this ISO date/time")
    t.add_argument("--prefix", default="", help="only inputs under this sub-folder of --input")
    t.add_argument("--force", action="store_true", help="re-import and re-score every selected file")
    t.add_argument("--ray-address", default=None)
    _pii_options(t)
    _sse_options(t)
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--log-format", choices=["text", "json"], default="text")
    _debug_option(t)

    r = sub.add_parser("rescore", help="re-score every stored transcript with a rule set "
                                       "(CPU only: no audio is read, nothing is transcribed)")
    r.add_argument("--output", required=True, help="the folder or s3:// prefix of an earlier run")
    r.add_argument("--ruleset", default=None, help="rule-set YAML (default: the built-in rules)")
    r.add_argument("--categories", default=None, help="issue-categories YAML")
    r.add_argument("--as-of", default=None, help="'now' for commitments, ISO 8601")
    r.add_argument("--force", action="store_true",
                   help="re-score calls already scored with this rule-set version")
    r.add_argument("--ray-address", default=None)
    _pii_options(r)
    _sse_options(r)
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--log-format", choices=["text", "json"], default="text")
    _debug_option(r)
    return p


def _debug_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug-log", default=None, metavar="FILE",
                   help="where third-party warnings and debug lines go (default: "
                        "$TMPDIR/callcoach/debug.log; '' for none)")


def _pii_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-pii-redaction", action="store_true",
                   help="write transcripts, reports and tables unredacted (default: redact)")
    p.add_argument("--pii-kinds", default="all",
                   help="comma-separated kinds to redact: card_number, ssn, phone, email, "
                        "account_number, date_of_birth (default: all)")
    p.add_argument("--pii-token", default=None, help="replacement, default '[{kind}]'")


def _sse_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sse", default=None, choices=["AES256", "aws:kms"],
                   help="server-side encryption of every object written to an s3:// output: "
                        "AES256 (SSE-S3) or aws:kms (SSE-KMS; default: the bucket's setting)")
    p.add_argument("--sse-kms-key-id", default=None, metavar="KEY",
                   help="KMS key id or ARN for --sse aws:kms (default: the account's aws/s3 key)")


def _sse(args) -> dict | None:
    """PutObject arguments for the requested server-side encryption (ValueError: misuse)."""
    if args.sse_kms_key_id and args.sse != "aws:kms":
        raise ValueError("--sse-kms-key-id needs --sse aws:kms")
    if not args.sse:
        return None
    if not args.output.startswith("s3://"):
        raise ValueError("--sse applies to an s3:// --output only")
    sse = {"ServerSideEncryption": args.sse}
    if args.sse_kms_key_id:
        sse["SSEKMSKeyId"] = args.sse_kms_key_id
    return sse


def _since(value: str | None) -> float | None:
    if not value:
        return None
    from datetime import datetime, timezone

    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _config(args):
    from .flow import RunConfig
    from .models import ModelConfig, default_model_root
    from .pii import PiiConfig
    from .speech.stage import SpeechConfig

    pii = PiiConfig.from_options(enabled=not args.no_pii_redaction, kinds=args.pii_kinds,
                                 token_format=args.pii_token)
    if args.command == "rescore":
        return RunConfig(input="", output=args.output, ruleset=args.ruleset,
                         categories=args.categories, as_of=args.as_of,
                         ray_address=args.ray_address, pii=pii, sse=_sse(args))
    if args.command == "score-transcripts":
        return RunConfig(input=args.input, output=args.output, ruleset=args.ruleset,
                         categories=args.categories, as_of=args.as_of, limit=args.limit,
                         since=_since(args.since), prefix=args.prefix, ray_address=args.ray_address,
                         pii=pii, sse=_sse(args), input_kind="transcripts")

    models = ModelConfig(root=args.models or default_model_root(), asr=args.asr_model,
                         diarization=args.diarization_model, alignment=args.alignment_model)
    speech = SpeechConfig(models=models, diarization=args.diarization, device=args.device,
                          compute_type=args.compute_type, batch_size=args.batch_size,
                          language=None if args.language == "auto" else args.language)
    return RunConfig(input=args.input, output=args.output, speech=speech, ruleset=args.ruleset,
                     categories=args.categories, as_of=args.as_of,
                     speech_actors=args.speech_actors, gpus_per_actor=args.gpus_per_actor,
                     max_duration_s=args.max_duration, limit=args.limit,
                     since=_since(args.since), prefix=args.prefix, ray_address=args.ray_address,
                     pii=pii, sse=_sse(args), max_call_memory_mb=args.max_call_memory)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines (CloudWatch, Loki, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
               "logger": record.name, "msg": record.getMessage()}
        for key in ("event", "call_id", "done", "total", "status", "stage", "elapsed_s", "eta_s"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        return json.dumps(doc, default=str)


def _setup_logging(args) -> str | None:
    """Console: the job's own lines (and anyone's errors); everything else, third-party
    warnings included, goes to the debug log (pipelines/callcoach/logs.py).  Returns its path."""
    from . import logs

    if getattr(args, "log_format", "text") == "json":
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    debug_log = args.debug_log
    if debug_log is None:
        import tempfile

        debug_log = os.path.join(tempfile.gettempdir(), "callcoach", "debug.log")
    return logs.setup(logging.WARNING if args.quiet else logging.INFO, formatter,
                      debug_log or None)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    debug_log = _setup_logging(args)
    from .flow import run

    try:
        config = _config(args)
    except ValueError as exc:
        print(f"callcoach: {exc}", file=sys.stderr)
        return EXIT_USAGE
    started = time.time()

    def progress(done, total, row):
        if args.quiet:
            return
        status = "ok" if row["status"] == "ok" else f"FAILED at {row['stage']}: {row['error']}"
        elapsed = time.time() - started
        eta = elapsed / done * (total - done) if done else 0
        if args.log_format == "json":
            logging.getLogger("callcoach.progress").info(
                "call done", extra={"event": "call_done", "call_id": row["call_id"], "done": done,
                                    "total": total, "status": row["status"],
                                    "stage": row["stage"] or None,
                                    "elapsed_s": round(elapsed, 1), "eta_s": round(eta, 1)})
            return
        print(f"[{done}/{total}] {row['call_id']}: {status} (elapsed {elapsed:.0f}s, eta {eta:.0f}s)",
              flush=True)

    from .logs import StderrFilter

    try:
        with StderrFilter(debug_log):
            summary = run(config, progress=progress, rescore_only=args.command == "rescore",
                          force=args.force)
    except Exception as exc:
        logging.getLogger("callcoach").exception("fatal: %s", exc)
        print(f"callcoach: fatal: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FATAL
    print(json.dumps({k: v for k, v in summary.to_dict().items() if k != "failures"}), flush=True)
    for f in summary.failures:
        print(f"failed: {f['call_id']} ({f['source_key']}) at {f['stage']}: {f['reason']}", flush=True)
    if not args.quiet:
        print(f"dashboard: {_where(args.output, 'dashboard.html')}", flush=True)
        if debug_log:
            print(f"debug log: {debug_log}", flush=True)
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def _where(output: str, key: str) -> str:
    return f"{output.rstrip('/')}/{key}"


if __name__ == "__main__":
    sys.exit(main())
