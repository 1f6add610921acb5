#!/usr/bin/env python
"""Where the speech stage's time goes, with evidence for a fix.

    .venv/bin/python -m scripts.bench.profile_speech [--files F ...] [--repeats 2]

For each file: diarize once, cut the clips exactly as ``SpeechStage`` does, then time the
ASR step in variants on the same clips (CPU seconds of this process, the figure least
disturbed by other load; min over --repeats; wall time beside it):

  as-is       one Whisper window per clip (``pack_s=0``; the stage before packing)
  no-words    the same windows, ``word_timestamps=False`` (what word timings cost)
  packed      ``Transcriber.transcribe(clips)``: consecutive clips packed into windows of
              <= 28 s (0.4 s silence between), words mapped back to their clip by time
  whisperx    ``whisperx`` model.transcribe on the mono mix (VAD chunks <= 30 s)

plus the number of 30 s encoder windows each variant feeds Whisper (Whisper pads every
window to 30 s, so encoder work grows with the number of windows, not with the audio),
and WER of each variant against the truth.  Finally a cProfile of one full
``SpeechStage`` call (top functions by cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import os
import pstats
import sys
import time
from pathlib import Path

from scripts.bench.common import command_line, loadavg, md_table, save_result
from scripts.bench.speech_cpu import default_files, sidecar_for, truth_for, wer


def clips_of(stage, audio):
    """Diarize and cut clips exactly as SpeechStage.__call__ does."""
    from callcoach.speech.stage import cut_clips, merge_regions

    backend = stage.backend_for(audio)
    diarizer = stage.diarizer(backend)
    t0 = time.perf_counter()
    regions = merge_regions(diarizer(audio))
    diarize_s = time.perf_counter() - t0
    clips, _ = cut_clips(audio, backend, regions)
    return backend, regions, clips, diarize_s


def transcribe_with(transcriber, clips, groups=None, **config):
    """``Transcriber.transcribe`` with some of its AsrConfig changed for this call."""
    saved = transcriber.config
    transcriber.config = dataclasses.replace(saved, **config)
    try:
        return transcriber.transcribe(clips, groups)[0]
    finally:
        transcriber.config = saved


def transcribe_no_words(transcriber, clips):
    """Per-clip windows (as ``per-clip``) without word timestamps: what word timings cost."""
    from callcoach.speech.asr import pack

    buffer, _, windows = pack(clips, 0)
    cfg = transcriber.config
    segments, _ = transcriber.pipeline.transcribe(
        buffer, language=cfg.language, task="transcribe", beam_size=cfg.beam_size,
        batch_size=cfg.batch_size, word_timestamps=False, without_timestamps=True,
        initial_prompt=cfg.initial_prompt, clip_timestamps=[{"start": s, "end": e} for s, e in windows],
        vad_filter=False, log_progress=False)
    return " ".join(s.text.strip() for s in segments)


def timed(fn, repeats):
    best = None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        r = (time.process_time() - c0, time.perf_counter() - t0, out)
        if best is None or r[0] < best[0]:
            best = r
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", nargs="*", type=Path)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args(argv)
    files = args.files or default_files()
    T = args.threads

    import torch

    torch.set_num_threads(T)
    import whisperx

    from callcoach.audio import decode
    from callcoach.speech.asr import pack
    from callcoach.speech.stage import SpeechConfig, SpeechStage

    stage = SpeechStage(SpeechConfig(device="cpu", compute_type="int8", cpu_threads=T))
    wx = whisperx.load_model(str(Path(stage.transcriber.config.model_dir)), device="cpu",
                             compute_type="int8", vad_method="pyannote", language="en", threads=T)
    torch.set_num_threads(T)
    # warm-up both (lazy diarizer loads, first-call allocations)
    for f in files[:1] + [f for f in files if f.suffix == ".wav"][:1]:
        a = decode(f.read_bytes())
        stage(a, "warm", sidecar_for(f))
        wx.transcribe(a.mono()[: 15 * 16000], batch_size=8)

    rows = []
    for f in files:
        a = decode(f.read_bytes())
        backend, regions, clips, diarize_s = clips_of(stage, a)
        tr = stage.transcriber
        asis = timed(lambda: transcribe_with(tr, clips, pack_s=0), args.repeats)
        nowords = timed(lambda: transcribe_no_words(tr, clips), args.repeats)
        packed = timed(lambda: transcribe_with(tr, clips), args.repeats)
        n_packed = len(pack(clips)[2])
        wxr = timed(lambda: wx.transcribe(a.mono(), batch_size=8), args.repeats)
        truth = truth_for(f)
        ref = " ".join(t["text"] for t in truth["turns"]) if truth else ""
        texts = {"as-is": " ".join(w.w for ws in asis[2] for w in ws),
                 "no-words": nowords[2],
                 "packed": " ".join(w.w for ws in packed[2] for w in ws),
                 "whisperx": " ".join(s["text"].strip() for s in wxr[2]["segments"])}
        r = {"file": f.name, "audio_s": a.duration_s, "backend": backend, "regions": len(regions),
             "clips": len(clips), "clip_audio_s": sum(len(c.samples) for c in clips) / 16000,
             "windows_asis": len(clips), "windows_packed": n_packed,
             "windows_whisperx": len(wxr[2]["segments"]), "diarize_s": diarize_s,
             "cpu": {"as-is": asis[0], "no-words": nowords[0], "packed": packed[0], "whisperx": wxr[0]},
             "wall": {"as-is": asis[1], "no-words": nowords[1], "packed": packed[1], "whisperx": wxr[1]},
             "wer": {k: wer(ref, v)[0] for k, v in texts.items()} if ref else {},
             "load": loadavg()}
        rows.append(r)
        print(f"  {f.name}: clips {len(clips)} windows packed {n_packed}; cpu as-is {asis[0]:.1f} "
              f"packed {packed[0]:.1f} whisperx {wxr[0]:.1f} (load {loadavg()})", file=sys.stderr, flush=True)

    # cProfile one full stage call on the longest mono file
    target = max(files, key=lambda f: (f.suffix != ".wav", f.stat().st_size))
    a = decode(target.read_bytes())
    prof = cProfile.Profile()
    c0, t0 = time.process_time(), time.perf_counter()
    prof.enable()
    stage(a, target.stem, sidecar_for(target))
    prof.disable()
    stage_cpu, stage_wall = time.process_time() - c0, time.perf_counter() - t0
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
    profile_text = buf.getvalue()

    V = ["as-is", "no-words", "packed", "whisperx"]
    tot_audio = sum(r["audio_s"] for r in rows)
    tot = {v: sum(r["cpu"][v] for r in rows) for v in V}
    totw = {v: sum(r["wall"][v] for r in rows) for v in V}
    ref_rows = [r for r in rows if r["wer"]]
    table = md_table(
        ["file", "audio s", "backend", "regions/clips", "Whisper windows as-is / packed / whisperx",
         "ASR CPU s as-is", "no word ts", "packed", "whisperx", "WER as-is / packed / whisperx", "load avg"],
        [[r["file"], f"{r['audio_s']:.0f}", r["backend"], f"{r['regions']}/{r['clips']}",
          f"{r['windows_asis']} / {r['windows_packed']} / {r['windows_whisperx']}",
          f"{r['cpu']['as-is']:.1f}", f"{r['cpu']['no-words']:.1f}", f"{r['cpu']['packed']:.1f}",
          f"{r['cpu']['whisperx']:.1f}",
          (f"{r['wer']['as-is']:.1%} / {r['wer']['packed']:.1%} / {r['wer']['whisperx']:.1%}" if r["wer"] else "-"),
          r["load"]] for r in rows]
        + [[f"**all**", f"{tot_audio:.0f}", "", "",
            f"{sum(r['windows_asis'] for r in rows)} / {sum(r['windows_packed'] for r in rows)} / "
            f"{sum(r['windows_whisperx'] for r in rows)}",
            f"**{tot['as-is']:.1f}**", f"{tot['no-words']:.1f}", f"**{tot['packed']:.1f}**",
            f"**{tot['whisperx']:.1f}**", "", loadavg()]])
    summary = (f"ASR CPU seconds over {len(rows)} files ({tot_audio:.0f} s audio, {T} threads): as-is "
               f"{tot['as-is']:.1f}, without word timestamps {tot['no-words']:.1f}, packed windows "
               f"{tot['packed']:.1f}, whisperx {tot['whisperx']:.1f} -> as-is/whisperx "
               f"{tot['as-is'] / tot['whisperx']:.2f}, packed/whisperx {tot['packed'] / tot['whisperx']:.2f}. "
               f"Wall (noisy on a shared machine): as-is {totw['as-is']:.1f}, packed {totw['packed']:.1f}, "
               f"whisperx {totw['whisperx']:.1f}.")
    text = [summary, "", table, "",
            f"cProfile of one SpeechStage call on {target.name} ({a.duration_s:.0f} s audio; "
            f"{stage_cpu:.1f} CPU s, {stage_wall:.1f} s wall), top 25 by cumulative time:", "",
            "```", profile_text.strip()[:6000], "```"]
    print("\n".join(text))
    save_result("profile_speech", {"command": command_line(), "rows": rows, "totals_cpu": tot,
                                   "totals_wall": totw, "profile_top": profile_text[:20000],
                                   "markdown": "\n".join(text)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
