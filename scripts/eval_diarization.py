"""Diarization error rate of our backends on the labelled dev calls and pyannote's sample.

    .venv/bin/python scripts/eval_diarization.py [--calls DIR] [--only NAME ...]
        [--layouts mono,stereo,sample] [--bleed 0.05] [--opt key=value ...]

DER is pyannote.metrics' DiarizationErrorRate (missed speech + false alarm + speaker
confusion, over total reference speech), which maps our labels to the reference labels
optimally (Hungarian).  Overlapped reference speech is scored (skip_overlap=False): a
missed second speaker in an overlap counts as missed speech.  Two collars are reported:
0 s (strict: every boundary error counts) and 0.25 s (the usual forgiveness around each
reference boundary).  The target (DER <= 5 %) is judged on the 0.25 s collar column and
reported for 0 s too.

Layouts: ``mono`` = NAME.mono16k.flac through the ``embedded`` backend, ``stereo`` =
NAME.stereo8k.flac through ``channels``, ``sample`` = pyannote.audio's bundled sample.wav
(real two-speaker recording) through ``embedded``.  ``--bleed G`` additionally mixes G x
the other channel into each stereo channel (crosstalk test for the channels backend).
RTF = diarization wall time / audio duration (decode excluded; models preloaded).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from pipelines.audio import Audio, decode  # noqa: E402
from pipelines.speech.diarize import make_diarizer  # noqa: E402


def read_rttm(path: str):
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=Path(path).stem)
    for line in open(path):
        f = line.split()
        if not f or f[0] != "SPEAKER":
            continue
        start, dur = float(f[3]), float(f[4])
        ann[Segment(start, start + dur)] = f[7]
    return ann


def to_annotation(segs, uri: str):
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for i, s in enumerate(segs):
        ann[Segment(s.start, s.end), i] = s.speaker
    return ann


def der(ref, hyp, collar: float) -> tuple[float, dict]:
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    comp = metric(ref, hyp, detailed=True)
    return comp["diarization error rate"], comp


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", default=str(ROOT.parent / "shared" / "dev-calls"))
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--layouts", default="mono,stereo,sample")
    ap.add_argument("--bleed", type=float, default=0.0)
    ap.add_argument("--num-speakers", type=int, default=None)
    ap.add_argument("--opt", action="append", default=[], help="backend option key=value (embedded)")
    ap.add_argument("--copt", action="append", default=[], help="backend option key=value (channels)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    def parse(opts):
        out = {}
        for kv in opts:
            k, v = kv.split("=", 1)
            try:
                out[k] = int(v) if v.lstrip("-").isdigit() else float(v)
            except ValueError:
                out[k] = v
        return out

    layouts = args.layouts.split(",")
    t0 = time.perf_counter()
    emb = make_diarizer("embedded", **parse(args.opt)) if {"mono", "sample"} & set(layouts) else None
    ch = make_diarizer("channels", **parse(args.copt)) if "stereo" in layouts else None
    load_s = time.perf_counter() - t0

    jobs = []
    names = sorted(Path(p).name.split(".")[0] for p in glob.glob(os.path.join(args.calls, "*.rttm")))
    if args.only:
        names = [n for n in names if any(o in n for o in args.only)]
    for n in names:
        rttm = os.path.join(args.calls, n + ".rttm")
        if "mono" in layouts:
            jobs.append(("mono16k", n, os.path.join(args.calls, n + ".mono16k.flac"), rttm, emb))
        if "stereo" in layouts:
            jobs.append(("stereo8k", n, os.path.join(args.calls, n + ".stereo8k.flac"), rttm, ch))
    if "sample" in layouts:
        import pyannote.audio

        sdir = Path(pyannote.audio.__file__).parent / "sample"
        jobs.append(("sample", "pyannote-sample", str(sdir / "sample.wav"), str(sdir / "sample.rttm"), emb))

    rows = []
    for layout, name, path, rttm, dia in jobs:
        audio = decode(open(path, "rb").read())
        if layout == "stereo8k" and args.bleed > 0:
            x = audio.samples
            mixed = np.stack([x[0] + args.bleed * x[1], x[1] + args.bleed * x[0]]).astype(np.float32)
            audio = Audio(mixed, audio.sample_rate, audio.source_rate, audio.codec, audio.sha256)
        ref = read_rttm(rttm)
        t = time.perf_counter()
        segs = dia(audio, num_speakers=args.num_speakers)
        el = time.perf_counter() - t
        hyp = to_annotation(segs, name)
        d0, c0 = der(ref, hyp, 0.0)
        d25, c25 = der(ref, hyp, 0.25)
        n_spk = len({s.speaker for s in segs})
        rows.append(dict(layout=layout, name=name, backend=dia.name, der0=d0, der25=d25,
                         miss=c0["missed detection"] / c0["total"], fa=c0["false alarm"] / c0["total"],
                         conf=c0["confusion"] / c0["total"], spk=n_spk, ref_spk=len(ref.labels()),
                         rtf=el / audio.duration_s, dur=audio.duration_s))
        if args.verbose:
            print(name, layout, [(s.speaker, s.start, s.end) for s in segs], file=sys.stderr)

    print(f"models loaded in {load_s:.1f} s" + (f"; stereo bleed gain {args.bleed}" if args.bleed else ""))
    print()
    print("| layout | call | backend | DER collar 0 | DER collar 0.25 | miss / FA / conf (collar 0) | speakers (ref) | RTF |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['layout']} | {r['name']} | {r['backend']} | {100 * r['der0']:.2f}% | {100 * r['der25']:.2f}% "
              f"| {100 * r['miss']:.1f} / {100 * r['fa']:.1f} / {100 * r['conf']:.1f} | {r['spk']} ({r['ref_spk']}) "
              f"| {r['rtf']:.3f} |")
    for layout in dict.fromkeys(r["layout"] for r in rows):
        sel = [r for r in rows if r["layout"] == layout]
        tot = sum(r["dur"] for r in sel)
        print(f"| **{layout} mean** | {len(sel)} files | | {100 * np.mean([r['der0'] for r in sel]):.2f}% "
              f"| {100 * np.mean([r['der25'] for r in sel]):.2f}% | | "
              f"{sum(r['spk'] == r['ref_spk'] for r in sel)}/{len(sel)} right "
              f"| {sum(r['rtf'] * r['dur'] for r in sel) / tot:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
