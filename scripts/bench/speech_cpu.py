#!/usr/bin/env python
"""Speech stage on CPU: callcoach's ``SpeechStage`` (diarization + batched Whisper per
speaker region + roles) against plain WhisperX on the same files, same model, same compute
type, same thread count.

    .venv/bin/python -m scripts.bench.speech_cpu [--files F ...] [--repeats 1] [--cli]

Method
  * Every file is decoded once with ``callcoach.audio.decode`` (16 kHz float32); decode
    time is reported but timed for neither pipeline.  WhisperX gets the mono mix
    (``Audio.mono()``), which is what ``whisperx.load_audio`` would give it.
  * Both pipelines are loaded once before timing (load times reported separately) and
    warmed up on a 15 s clip of a mono and of a stereo file (this also loads callcoach's
    lazily built diarizers); warm-up is excluded.
  * WhisperX: ``whisperx.load_model(<whisper-base dir>, device="cpu", compute_type="int8",
    vad_method="pyannote", language="en", threads=T)`` + ``model.transcribe(audio,
    batch_size=8)``; no alignment (it needs downloads).  callcoach: ``SpeechStage`` with
    ``device="cpu", compute_type="int8", cpu_threads=T, batch_size=8`` (beam 5, as WhisperX).
  * Files run one after another; for each file the two pipelines run back to back and
    the order alternates from file to file (and repeat to repeat), so background load
    hits both alike.  Wall time (perf_counter) and this process's CPU time
    (process_time: all threads) are recorded; CPU time is the figure least disturbed by
    other processes on a shared machine.
  * callcoach also reports its per-call work outside ``SpeechStage`` that the Ray actor
    does (PII redaction + coaching features): column "actor extras", not in the ratio.
  * WER against the truth transcripts (Whisper English normaliser) shows that neither
    side bought speed with accuracy.
  * ``--cli``: also runs the ``whisperx`` command (``--no_align``) once over all files;
    its wall time includes its imports and model load (a CLI cannot exclude them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.bench.common import (OUT, ROOT, command_line, loadavg, md_table, save_result,
                                  small_png, verdict)

TARGET_RATIO = 1.2
DEV = Path(os.environ.get("CALLCOACH_DEV_CALLS", ROOT.parent / "shared" / "dev-calls"))


def default_files() -> list[Path]:
    samples = sorted(p for p in (ROOT / "samples" / "calls").iterdir()
                     if p.suffix in (".flac", ".wav", ".mp3", ".ogg"))
    dev = sorted(DEV.glob("*.mono16k.flac"))[:4] if DEV.is_dir() else []
    return samples + dev


def truth_for(path: Path) -> dict | None:
    name = path.name.split(".")[0]
    t = path.parent / f"{name}.truth.json"
    return json.loads(t.read_text()) if t.is_file() else None


def sidecar_for(path: Path) -> dict:
    s = path.with_suffix(".json")
    if s.is_file() and not s.name.endswith(".truth.json"):
        try:
            d = json.loads(s.read_text())
            return d if isinstance(d, dict) else {}
        except ValueError:
            return {}
    return {}


def wer(ref: str, hyp: str) -> tuple[float, int]:
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    r, h = norm(ref), norm(hyp)
    n = len(r.split())
    return (jiwer.wer(r, h) if n else 0.0), n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", nargs="*", type=Path, help="audio files (default: 4 samples + 4 dev calls)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--cli", action="store_true", help="also time the whisperx CLI (--no_align)")
    ap.add_argument("--model", default=str(ROOT / "models" / "whisper-base"))
    args = ap.parse_args(argv)
    files = args.files or default_files()
    T = args.threads

    import numpy as np
    import torch

    torch.set_num_threads(T)
    from callcoach.audio import decode
    from callcoach.coaching.features import get_encoder, turn_features
    from callcoach.models import ModelConfig
    from callcoach.pii import PiiConfig, redact_transcript
    from callcoach.speech.stage import SpeechConfig, SpeechStage

    # -- decode (not timed for either side) ----------------------------------------------
    audios = []
    for f in files:
        t0 = time.perf_counter()
        a = decode(f.read_bytes())
        audios.append((f, a, time.perf_counter() - t0))
    total_audio = sum(a.duration_s for _, a, _ in audios)
    print(f"{len(files)} files, {total_audio:.0f} s audio; threads {T}; load {loadavg()}", file=sys.stderr)

    # -- load ----------------------------------------------------------------------------
    loads = {}
    t0 = time.perf_counter()
    stage = SpeechStage(SpeechConfig(models=ModelConfig(asr=args.model), device="cpu",
                                     compute_type="int8", cpu_threads=T, batch_size=args.batch_size))
    loads["callcoach SpeechStage"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    get_encoder()
    loads["callcoach sentence encoder (actor extras)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    import whisperx

    loads["whisperx import"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    wx = whisperx.load_model(args.model, device="cpu", compute_type="int8", vad_method="pyannote",
                             language="en", threads=T)
    loads["whisperx load_model"] = time.perf_counter() - t0
    torch.set_num_threads(T)

    # -- warm-up (excluded) ----------------------------------------------------------------
    from callcoach.audio import Audio

    warm = {}
    seen = set()
    for f, a, _ in audios:
        kind = a.channels
        if kind in seen:
            continue
        seen.add(kind)
        clip = Audio(np.ascontiguousarray(a.samples[:, : 15 * 16000]), a.sample_rate, a.source_rate,
                     a.codec, a.sha256)
        t0 = time.perf_counter()
        tr, _ = stage(clip, "warmup", sidecar_for(f))
        redact_transcript(tr, PiiConfig())
        turn_features(tr)
        warm[f"callcoach {kind}ch"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        wx.transcribe(clip.mono(), batch_size=args.batch_size)
        warm[f"whisperx {kind}ch"] = time.perf_counter() - t0

    # -- timed -----------------------------------------------------------------------------
    rows = []
    k = 0
    for rep in range(args.repeats):
        for f, a, dec_s in audios:
            meta = sidecar_for(f)
            order = ("cc", "wx") if k % 2 == 0 else ("wx", "cc")
            k += 1
            r = {"file": f.name, "repeat": rep, "duration_s": a.duration_s, "channels": a.channels,
                 "decode_s": dec_s, "order": "/".join(order), "load_before": loadavg()}
            for side in order:
                if side == "cc":
                    c0, t0 = time.process_time(), time.perf_counter()
                    tr, timings = stage(a, f.stem, meta)
                    r["cc_wall"] = time.perf_counter() - t0
                    r["cc_cpu"] = time.process_time() - c0
                    r["cc_diarize"] = timings.get("diarize_s", 0.0)
                    r["cc_asr"] = timings.get("asr_s", 0.0)
                    r["cc_other"] = r["cc_wall"] - r["cc_diarize"] - r["cc_asr"]
                    t0 = time.perf_counter()
                    red, _ = redact_transcript(tr, PiiConfig())
                    turn_features(red)
                    r["cc_extras"] = time.perf_counter() - t0
                    r["cc_text"] = " ".join(t.text for t in tr.turns)
                    r["cc_turns"] = len(tr.turns)
                    r["cc_backend"] = tr.roles.get("diarization_backend", "")
                else:
                    c0, t0 = time.process_time(), time.perf_counter()
                    res = wx.transcribe(a.mono(), batch_size=args.batch_size)
                    r["wx_wall"] = time.perf_counter() - t0
                    r["wx_cpu"] = time.process_time() - c0
                    r["wx_text"] = " ".join(s["text"].strip() for s in res["segments"])
            r["load_after"] = loadavg()
            truth = truth_for(f)
            if truth:
                ref = " ".join(t["text"] for t in truth["turns"])
                r["cc_wer"], r["ref_words"] = wer(ref, r["cc_text"])
                r["wx_wer"], _ = wer(ref, r["wx_text"])
            r["cc_words"] = len(r["cc_text"].split())
            r["wx_words"] = len(r["wx_text"].split())
            del r["cc_text"], r["wx_text"]
            rows.append(r)
            print(f"  {f.name}: callcoach {r['cc_wall']:.1f}s  whisperx {r['wx_wall']:.1f}s "
                  f"(load {r['load_after']})", file=sys.stderr, flush=True)

    # -- optional: the whisperx CLI ---------------------------------------------------------
    cli = None
    if args.cli:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [str(Path(sys.executable).parent / "whisperx"), *map(str, files), "--model", args.model,
                   "--device", "cpu", "--compute_type", "int8", "--no_align", "--language", "en",
                   "--vad_method", "pyannote", "--threads", str(T), "--batch_size", str(args.batch_size),
                   "--output_dir", tmp, "--output_format", "json", "--log-level", "warning"]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True,
                               env=dict(os.environ, HF_HUB_OFFLINE="1"))
            wall = time.perf_counter() - t0
            ok = p.returncode == 0 and len(list(Path(tmp).glob("*.json"))) == len(files)
            cli = {"ok": ok, "wall_s": wall, "rc": p.returncode, "outputs": len(list(Path(tmp).glob("*.json"))),
                   "stderr_tail": p.stderr[-800:], "command": " ".join(cmd[:1] + ["FILES..."] + cmd[1 + len(files):]),
                   "load": loadavg()}

    # -- report ----------------------------------------------------------------------------
    S = lambda key: sum(r[key] for r in rows)  # noqa: E731
    audio_s = S("duration_s")
    tot = {"audio_s": audio_s, "cc_wall": S("cc_wall"), "wx_wall": S("wx_wall"), "cc_cpu": S("cc_cpu"),
           "wx_cpu": S("wx_cpu"), "cc_diarize": S("cc_diarize"), "cc_asr": S("cc_asr"),
           "cc_other": S("cc_other"), "cc_extras": S("cc_extras")}
    tot["cc_rtf"] = tot["cc_wall"] / audio_s
    tot["wx_rtf"] = tot["wx_wall"] / audio_s
    tot["ratio_wall"] = tot["cc_wall"] / tot["wx_wall"]
    tot["ratio_cpu"] = tot["cc_cpu"] / tot["wx_cpu"]
    tot["ratio_asr_only"] = tot["cc_asr"] / tot["wx_wall"]
    ref_words = sum(r.get("ref_words", 0) for r in rows)
    if ref_words:
        tot["cc_wer"] = sum(r.get("cc_wer", 0) * r.get("ref_words", 0) for r in rows) / ref_words
        tot["wx_wer"] = sum(r.get("wx_wer", 0) * r.get("ref_words", 0) for r in rows) / ref_words
    met = tot["ratio_wall"] <= TARGET_RATIO

    table = md_table(
        ["file", "audio s", "ch", "callcoach s (RTF)", "diarize s", "ASR s", "roles+rest s",
         "whisperx s (RTF)", "ratio wall", "ratio CPU", "actor extras s", "WER cc / wx", "load avg"],
        [[r["file"], f"{r['duration_s']:.1f}", r["channels"],
          f"{r['cc_wall']:.1f} ({r['cc_wall'] / r['duration_s']:.3f})", f"{r['cc_diarize']:.1f}",
          f"{r['cc_asr']:.1f}", f"{r['cc_other']:.2f}",
          f"{r['wx_wall']:.1f} ({r['wx_wall'] / r['duration_s']:.3f})",
          f"{r['cc_wall'] / r['wx_wall']:.2f}", f"{r['cc_cpu'] / r['wx_cpu']:.2f}", f"{r['cc_extras']:.2f}",
          (f"{r['cc_wer']:.1%} / {r['wx_wer']:.1%}" if "cc_wer" in r else "-"), r["load_after"]]
         for r in rows]
        + [[f"**all ({len(rows)})**", f"{audio_s:.0f}", "",
            f"**{tot['cc_wall']:.1f} ({tot['cc_rtf']:.3f})**", f"{tot['cc_diarize']:.1f}",
            f"{tot['cc_asr']:.1f}", f"{tot['cc_other']:.2f}",
            f"**{tot['wx_wall']:.1f} ({tot['wx_rtf']:.3f})**", f"**{tot['ratio_wall']:.2f}**",
            f"**{tot['ratio_cpu']:.2f}**", f"{tot['cc_extras']:.1f}",
            (f"{tot['cc_wer']:.1%} / {tot['wx_wer']:.1%}" if "cc_wer" in tot else "-"), loadavg()]])
    loads_t = md_table(["model load / warm-up (excluded from timing)", "s"],
                       [[k, f"{v:.1f}"] for k, v in loads.items()]
                       + [[f"warm-up {k} (15 s clip)", f"{v:.1f}"] for k, v in warm.items()])
    summary = (f"callcoach/whisperx wall ratio **{tot['ratio_wall']:.2f}** (target <= {TARGET_RATIO}: "
               f"{verdict(met)}); CPU-time ratio {tot['ratio_cpu']:.2f}; callcoach ASR alone "
               f"{tot['ratio_asr_only']:.2f}x whisperx; RTF callcoach {tot['cc_rtf']:.3f}, whisperx "
               f"{tot['wx_rtf']:.3f}; {T} threads, batch {args.batch_size}, int8, whisper-base.")
    text = [summary, "", table, "", loads_t]
    if cli:
        text += ["", f"whisperx CLI (`--no_align`, all {len(files)} files in one invocation, incl. import + "
                     f"model load): {'ok' if cli['ok'] else 'FAILED rc=' + str(cli['rc'])}, "
                     f"{cli['wall_s']:.1f} s wall = RTF {cli['wall_s'] / (audio_s / args.repeats):.3f} "
                     f"(load {cli['load']})"]
    print("\n".join(text))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 3.6))
        names = [r["file"].split(".")[0][:16] for r in rows]
        x = np.arange(len(rows))
        d = np.array([r["cc_diarize"] / r["duration_s"] for r in rows])
        s = np.array([r["cc_asr"] / r["duration_s"] for r in rows])
        o = np.array([r["cc_other"] / r["duration_s"] for r in rows])
        ax.bar(x - 0.2, d, 0.4, label="callcoach diarize", color="#7aa6c2")
        ax.bar(x - 0.2, s, 0.4, bottom=d, label="callcoach ASR", color="#1f5f8b")
        ax.bar(x - 0.2, o, 0.4, bottom=d + s, label="callcoach roles+rest", color="#0b2e44")
        ax.bar(x + 0.2, [r["wx_wall"] / r["duration_s"] for r in rows], 0.4, label="whisperx (VAD+ASR)",
               color="#e07b39")
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("real-time factor (lower is better)")
        ax.set_title(f"Speech stage vs WhisperX on CPU ({T} threads): ratio {tot['ratio_wall']:.2f}", fontsize=9)
        ax.legend(fontsize=7)
        small_png(fig, "speech_cpu")
    except Exception as exc:  # a plot must not lose the figures
        print(f"(plot failed: {exc})", file=sys.stderr)

    save_result("speech_cpu", {"command": command_line(), "threads": T, "batch_size": args.batch_size,
                               "files": [str(f) for f in files], "loads_s": loads, "warmup_s": warm,
                               "rows": rows, "totals": tot, "target_ratio": TARGET_RATIO, "met": met,
                               "cli": cli, "loadavg_end": loadavg(), "markdown": "\n".join(text)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
