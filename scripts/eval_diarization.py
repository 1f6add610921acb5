"""Diarization error rate of our backends on labelled calls, by evaluation set.

    .venv/bin/python scripts/eval_diarization.py [--set tuning,heldout,dev,dev8k,pyannote]
        [--only NAME ...] [--bleed 0.05] [--opt key=value ...] [--copt key=value ...]
        [--two-party | --no-two-party] [--num-speakers N] [--json OUT.json]

Sets (comma-separated, or ``all``):

``tuning`` / ``tuning-extra`` / ``heldout``
    Short two-party calls rendered from ``samples/heldout`` (see its ``splits.yaml``) with
    many voice pairs (same gender, similar pitch, one timbre at two pitches, mp3 32 kbit/s,
    8 kHz stereo downmixed to mono, ~1 s overlaps).  ``tuning`` and ``heldout`` are the two
    splits of ``samples/heldout/scripts``; ``tuning-extra`` re-voices the tuning dialogues
    with 20 more voice pairs (``samples/heldout/tuning-extra``; hx-07 and hx-09 use one
    espeak variant for both parties and are beyond the method).  Rendered with
    ``scripts/render_calls.py`` into the git-ignored ``samples/heldout/audio/`` when missing
    or older than their script.  Thresholds of the ``embedded`` backend (the defaults of
    ``EmbeddedDiarizerConfig``) are calibrated on ``tuning`` + ``tuning-extra`` only;
    ``heldout`` is for reporting.
``dev`` / ``dev8k``
    The 8 shared dev calls (``../shared/dev-calls``): ``NAME.mono16k.flac`` and
    ``NAME.stereo8k.flac`` downmixed to mono, both through ``embedded`` (a second held-out
    set: nothing is tuned on them any more).
``stereo``
    ``NAME.stereo8k.flac`` through ``channels`` (one party per channel; regression check).
``samples``
    The project's own sample calls ``samples/calls/*.truth.json`` (mono or downmixed).
``pyannote``
    pyannote.audio's bundled ``sample.wav`` + ``sample.rttm`` (real two-speaker recording).

DER is pyannote.metrics' DiarizationErrorRate (missed speech + false alarm + speaker
confusion, over total reference speech; labels mapped optimally).  Overlapped reference
speech is scored (skip_overlap=False): a missed second speaker in an overlap counts as
missed speech.  Two collars: 0 s (strict) and 0.25 s (the target column, DER <= 5 %).
RTF = diarization wall time / audio duration (decode excluded; models preloaded); it
varies with the load of the machine, so CPU s/s (process CPU time per audio second, all
threads) is reported beside it.

``--two-party`` (default on) builds the embedded backend with ``two_party=True`` (exactly
two speakers, the option the speech stage passes); ``--no-two-party`` estimates the count
(1..``max_speakers``, default 4).  ``--opt key=value`` sets a field of
``EmbeddedDiarizerConfig`` (``--opt switch_penalty=30 --opt overlap=false``) or the
speaker range (``min_speakers``, ``max_speakers``); ``--copt`` a ``ChannelDiarizer``
argument.  ``--verbose`` / ``--json`` show each call's diagnostics (the embedded backend's
``hook`` steps: num_speakers, pitch_split, centroid_cos, overlap_s ...).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.join(str(ROOT), "pipelines"))   # the callcoach package of this tree

import numpy as np  # noqa: E402

from callcoach.audio import Audio, decode  # noqa: E402
from callcoach.speech.diarize import EmbeddedDiarizerConfig, make_diarizer  # noqa: E402

HELDOUT = ROOT / "samples" / "heldout"
SETS = ("tuning", "tuning-extra", "heldout", "dev", "dev8k", "stereo", "samples", "pyannote")
# rendered sets: split name in samples/heldout/splits.yaml and the folder of its scripts
RENDERED = {"tuning": ("tuning", "scripts"), "tuning-extra": ("tuning_extra", "tuning-extra"),
            "heldout": ("heldout", "scripts")}


# --------------------------------------------------------------------------------------
# references

def read_rttm(path: str):
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=Path(path).stem)
    for line in open(path):
        f = line.split()
        if not f or f[0] != "SPEAKER":
            continue
        start, dur = float(f[3]), float(f[4])
        ann[Segment(start, start + dur), len(ann)] = f[7]
    return ann


def read_truth(path: str):
    """Reference turns of a rendered call's NAME.truth.json."""
    from pyannote.core import Annotation, Segment

    truth = json.loads(Path(path).read_text())
    ann = Annotation(uri=truth["call_id"])
    for i, t in enumerate(truth["turns"]):
        ann[Segment(float(t["start"]), float(t["end"])), i] = t["speaker"]
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


# --------------------------------------------------------------------------------------
# sets

def heldout_split(set_name: str) -> list[str]:
    import yaml

    splits = yaml.safe_load((HELDOUT / "splits.yaml").read_text())
    return list(splits[RENDERED[set_name][0]])


def render_scripts(scripts: list[Path], out_dir: Path) -> None:
    """Render scripts whose audio is missing or older than the script (render_calls.py
    renders a whole folder: link the stale ones into a temporary one)."""
    stale = [s for s in scripts
             if not (out_dir / f"{s.stem}.truth.json").exists()
             or (out_dir / f"{s.stem}.truth.json").stat().st_mtime < s.stat().st_mtime]
    if not stale:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for s in stale:
            os.symlink(s.resolve(), os.path.join(tmp, s.name))
        subprocess.run([sys.executable, str(ROOT / "scripts" / "render_calls.py"), tmp,
                        str(out_dir)], check=True, stdout=subprocess.DEVNULL)


def rendered_audio(out_dir: Path, name: str) -> str:
    truth = json.loads((out_dir / f"{name}.truth.json").read_text())
    return str(out_dir / truth["audio"]["file"])


def jobs_for(set_name: str, calls_dir: str, audio_dir: Path, only):
    """(set, name, audio path, reference path, backend kind) per file."""
    out = []

    def keep(n):
        return not only or any(o in n for o in only)

    if set_name in RENDERED:
        names = [n for n in heldout_split(set_name) if keep(n)]
        folder = HELDOUT / RENDERED[set_name][1]
        render_scripts([folder / f"{n}.yaml" for n in names], audio_dir)
        for n in names:
            out.append((set_name, n, rendered_audio(audio_dir, n),
                        str(audio_dir / f"{n}.truth.json"), "embedded"))
    elif set_name in ("dev", "dev8k", "stereo"):
        names = sorted(Path(p).name.split(".")[0]
                       for p in glob.glob(os.path.join(calls_dir, "*.rttm")))
        layout = "mono16k" if set_name == "dev" else "stereo8k"
        for n in filter(keep, names):
            out.append((set_name, n, os.path.join(calls_dir, f"{n}.{layout}.flac"),
                        os.path.join(calls_dir, f"{n}.rttm"),
                        "channels" if set_name == "stereo" else "embedded"))
    elif set_name == "samples":
        sdir = ROOT / "samples" / "calls"
        for t in sorted(sdir.glob("*.truth.json")):
            n = t.name.split(".")[0]
            if keep(n):
                truth = json.loads(t.read_text())
                out.append((set_name, n, str(sdir / truth["audio"]["file"]), str(t), "embedded"))
    elif set_name == "pyannote":
        import pyannote.audio

        sdir = Path(pyannote.audio.__file__).parent / "sample"
        out.append((set_name, "pyannote-sample", str(sdir / "sample.wav"),
                    str(sdir / "sample.rttm"), "embedded"))
    else:
        raise SystemExit(f"unknown set {set_name!r}; expected one of {SETS} or all")
    return out


def parse_opts(opts):
    out = {}
    for kv in opts:
        k, v = kv.split("=", 1)
        if v.lower() in ("true", "false"):
            out[k] = v.lower() == "true"
            continue
        if v.lower() == "none":           # e.g. trim_db=none: edges not tightened
            out[k] = None
            continue
        try:
            out[k] = int(v) if v.lstrip("-").isdigit() else float(v)
        except ValueError:
            out[k] = v
    return out


def embedded_options(opts) -> dict:
    """``--opt`` pairs as make_diarizer("embedded") arguments: the speaker range stays a
    constructor argument, everything else is a field of the one config."""
    opts = parse_opts(opts)
    ctor = {k: opts.pop(k) for k in ("min_speakers", "max_speakers") if k in opts}
    return {"config": EmbeddedDiarizerConfig(**opts), **ctor}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="tuning,tuning-extra,heldout,dev,dev8k,pyannote",
                    help=f"comma-separated sets from {SETS}, or all")
    ap.add_argument("--calls", default=str(ROOT.parent / "shared" / "dev-calls"))
    ap.add_argument("--audio-dir", default=str(HELDOUT / "audio"),
                    help="where the samples/heldout scripts are rendered (git-ignored)")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--bleed", type=float, default=0.0,
                    help="stereo set: mix G x the other channel into each channel")
    ap.add_argument("--num-speakers", type=int, default=None)
    ap.add_argument("--two-party", dest="two_party", action="store_true", default=True)
    ap.add_argument("--no-two-party", dest="two_party", action="store_false")
    ap.add_argument("--opt", action="append", default=[], help="embedded option key=value")
    ap.add_argument("--copt", action="append", default=[], help="channels option key=value")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    sets = list(SETS) if args.set == "all" else args.set.split(",")
    audio_dir = Path(args.audio_dir)
    jobs = [j for s in sets for j in jobs_for(s, args.calls, audio_dir, args.only)]

    t0 = time.perf_counter()
    kinds = {j[4] for j in jobs}
    backends = {}
    if "embedded" in kinds:
        backends["embedded"] = make_diarizer("embedded", two_party=args.two_party,
                                             **embedded_options(args.opt))
    if "channels" in kinds:
        backends["channels"] = make_diarizer("channels", **parse_opts(args.copt))
    load_s = time.perf_counter() - t0

    rows = []
    for set_name, name, path, ref_path, kind in jobs:
        audio = decode(open(path, "rb").read())
        if set_name == "stereo" and args.bleed > 0:
            x = audio.samples
            mixed = np.stack([x[0] + args.bleed * x[1], x[1] + args.bleed * x[0]]).astype(np.float32)
            audio = Audio(mixed, audio.sample_rate, audio.source_rate, audio.codec, audio.sha256)
        ref = read_truth(ref_path) if ref_path.endswith(".json") else read_rttm(ref_path)
        dia = backends[kind]
        info: dict = {}      # the embedded backend's diagnostics of this call (its hook)
        hook = {"hook": info.__setitem__} if kind == "embedded" else {}
        t, c = time.perf_counter(), time.process_time()
        segs = dia(audio, num_speakers=args.num_speakers, **hook)
        el, cpu = time.perf_counter() - t, time.process_time() - c
        hyp = to_annotation(segs, name)
        d0, c0 = der(ref, hyp, 0.0)
        d25, _ = der(ref, hyp, 0.25)
        rows.append(dict(set=set_name, name=name, backend=dia.name, der0=d0, der25=d25,
                         miss=c0["missed detection"] / c0["total"],
                         fa=c0["false alarm"] / c0["total"],
                         conf=c0["confusion"] / c0["total"],
                         spk=len({s.speaker for s in segs}), ref_spk=len(ref.labels()),
                         rtf=el / audio.duration_s, cpu=cpu / audio.duration_s,
                         dur=audio.duration_s, info=info))
        if args.verbose:
            print(name, set_name, rows[-1]["info"],
                  [(s.speaker, s.start, s.end) for s in segs], file=sys.stderr)

    versions = "; ".join(f"{k}: {b.version}" for k, b in backends.items())
    print(f"models loaded in {load_s:.1f} s; {versions}"
          + (f"; stereo bleed gain {args.bleed}" if args.bleed else ""))
    print()
    print("| set | call | backend | DER collar 0 | DER collar 0.25 | miss / FA / conf (collar 0) "
          "| speakers (ref) | RTF | CPU s/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['name']} | {r['backend']} | {100 * r['der0']:.2f}% "
              f"| {100 * r['der25']:.2f}% | {100 * r['miss']:.1f} / {100 * r['fa']:.1f} / "
              f"{100 * r['conf']:.1f} | {r['spk']} ({r['ref_spk']}) | {r['rtf']:.3f} "
              f"| {r['cpu']:.3f} |")
    print()
    print("| set | files | mean DER collar 0 | mean DER collar 0.25 | worst DER collar 0.25 "
          "| speaker count right | RTF | CPU s/s |")
    print("|---|---|---|---|---|---|---|---|")
    for s in dict.fromkeys(r["set"] for r in rows):
        sel = [r for r in rows if r["set"] == s]
        tot = sum(r["dur"] for r in sel)
        print(f"| {s} | {len(sel)} | {100 * np.mean([r['der0'] for r in sel]):.2f}% "
              f"| {100 * np.mean([r['der25'] for r in sel]):.2f}% "
              f"| {100 * max(r['der25'] for r in sel):.2f}% "
              f"| {sum(r['spk'] == r['ref_spk'] for r in sel)}/{len(sel)} "
              f"| {sum(r['rtf'] * r['dur'] for r in sel) / tot:.3f} "
              f"| {sum(r['cpu'] * r['dur'] for r in sel) / tot:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
