"""Evaluate the speech stage on labeled calls, side by side with plain faster-whisper.

For every call NAME with NAME.truth.json (+ NAME.rttm) beside its audio, prints one row:
WER of callcoach and of plain faster-whisper (same model and compute type, beam 5, VAD on,
the whole file at once), DER of our speaker turns against the RTTM, role accuracy (share
of truth turns whose majority speaker in our transcript has the right role), agent
talk-ratio error, and real-time factors.  WER uses Whisper's English text normaliser.

    .venv/bin/python scripts/eval_speech.py ../shared/dev-calls --pattern '*.mono16k.flac'
    .venv/bin/python scripts/eval_speech.py ../shared/dev-calls --pattern '*.stereo8k.flac' --save out/eval
    .venv/bin/python scripts/eval_speech.py --pyannote-sample

``--pyannote-sample``: pyannote.audio's own sample recording (a real two-speaker
conversation shipped in its wheel, with sample.rttm and sample.stm): WER against the STM
text, DER against the RTTM, same columns.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, os.path.join(str(Path(__file__).resolve().parent.parent), "pipelines"))   # the callcoach package of this tree

import jiwer  # noqa: E402
from whisper_normalizer.english import EnglishTextNormalizer  # noqa: E402

from callcoach.audio import decode  # noqa: E402
from callcoach.models import ModelConfig  # noqa: E402
from callcoach.speech.stage import SpeechConfig, SpeechStage  # noqa: E402

NORMALISE = EnglishTextNormalizer()


def truth_name(path: Path) -> str:
    return path.name.split(".")[0]


def wer(ref: str, hyp: str) -> tuple[float, int]:
    r, h = NORMALISE(ref), NORMALISE(hyp)
    n = len(r.split())
    return (jiwer.wer(r, h) if n else 0.0), n


def der(turns, rttm_path: Path, duration: float, truth_turns=()) -> float:
    """DER against the RTTM, or against the truth file's turns when there is no RTTM
    (calls rendered by scripts/render_calls.py)."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref = Annotation()
    if rttm_path.exists():
        for line in rttm_path.read_text().splitlines():
            f = line.split()
            if f and f[0] == "SPEAKER":
                ref[Segment(float(f[3]), float(f[3]) + float(f[4]))] = f[7]
    else:
        for i, t in enumerate(truth_turns):
            ref[Segment(float(t["start"]), float(t["end"])), i] = t["speaker"]
    hyp = Annotation()
    for i, t in enumerate(turns):
        hyp[Segment(t.start, t.end), i] = t.speaker
    return float(DiarizationErrorRate(collar=0.0)(ref, hyp, uem=Segment(0, duration)))


def role_accuracy(turns, truth_turns) -> float:
    right = 0
    for tt in truth_turns:
        overlap: dict[str, float] = {}
        for t in turns:
            o = min(t.end, tt["end"]) - max(t.start, tt["start"])
            if o > 0:
                overlap[t.speaker] = overlap.get(t.speaker, 0.0) + o
        right += bool(overlap) and max(overlap, key=overlap.get) == tt["speaker"]
    return right / len(truth_turns)


def sidecar(folder: Path, name: str) -> dict:
    """The call's sidecar: NAME.json beside the audio (rendered calls), else what a sidecar
    would carry for a dev call: the company of its script (NAME.yaml)."""
    side = folder / f"{name}.json"
    if side.exists():
        return json.loads(side.read_text())
    script = folder / f"{name}.yaml"
    if not script.exists():
        return {}
    import yaml

    company = (yaml.safe_load(script.read_text()) or {}).get("company")
    return {"company": company} if company else {}


def pyannote_sample_folder() -> Path:
    """A temp folder holding pyannote's sample as a labelled call: sample.wav, sample.rttm
    and sample.truth.json (turns from sample.stm; no roles, so role accuracy reads 'n/a')."""
    import tempfile

    import pyannote.audio

    src = Path(pyannote.audio.__file__).parent / "sample"
    dst = Path(tempfile.mkdtemp(prefix="pyannote-sample-"))
    for name in ("sample.wav", "sample.rttm"):
        (dst / name).write_bytes((src / name).read_bytes())
    turns = []
    for line in (src / "sample.stm").read_text().splitlines():
        f = line.split(maxsplit=5)
        if len(f) == 6:
            turns.append({"speaker": f[2], "start": float(f[3]), "end": float(f[4]), "text": f[5]})
    (dst / "sample.truth.json").write_text(json.dumps({"turns": turns, "talk_ratio": None}))
    return dst


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path, nargs="?")
    ap.add_argument("--pyannote-sample", action="store_true",
                    help="evaluate on pyannote.audio's bundled sample.wav (+ rttm, stm)")
    ap.add_argument("--pattern", default="*.mono16k.flac")
    ap.add_argument("--diarization", default="auto")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--no-context", action="store_true",
                    help="send no sidecar (no company name for the decoder's prompt)")
    ap.add_argument("--save", type=Path, help="write transcripts here (for scripts/eval_coaching.py)")
    args = ap.parse_args()
    if args.pyannote_sample:
        args.folder = pyannote_sample_folder()
        args.pattern = "sample.wav"
    elif args.folder is None:
        ap.error("a folder of calls, or --pyannote-sample")

    stage = SpeechStage(SpeechConfig(diarization=args.diarization))
    baseline = None
    if not args.no_baseline:
        from faster_whisper import WhisperModel

        mc = ModelConfig()
        baseline = WhisperModel(str(mc.local_dir(mc.asr)), device="cpu", compute_type="int8")
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)

    rows, totals = [], {"err": 0.0, "n": 0, "berr": 0.0, "audio": 0.0, "wall": 0.0, "bwall": 0.0}
    for path in sorted(args.folder.glob(args.pattern)):
        name = truth_name(path)
        truth = json.loads((path.parent / f"{name}.truth.json").read_text())
        audio = decode(path.read_bytes())
        t0 = time.perf_counter()
        transcript, _ = stage(audio, name, {} if args.no_context else sidecar(path.parent, name))
        wall = time.perf_counter() - t0
        if args.save:
            (args.save / f"{name}.json").write_bytes(transcript.to_json())
        ref = " ".join(t["text"] for t in truth["turns"])
        hyp = " ".join(t.text for t in transcript.turns)
        w, n = wer(ref, hyp)
        row = {"call": name, "wer": w, "n": n, "wall": wall, "dur": audio.duration_s,
               "der": der(transcript.turns, path.parent / f"{name}.rttm", audio.duration_s,
                          truth["turns"]),
               "roles": (role_accuracy(transcript.turns, truth["turns"])
                         if {t["speaker"] for t in truth["turns"]} <= {"agent", "customer"}
                         else float("nan"))}
        ag, cu = transcript.speech_time("agent"), transcript.speech_time("customer")
        if truth.get("talk_ratio"):
            row["tr_err"] = abs(ag / (ag + cu) - truth["talk_ratio"]["agent"]) if ag + cu else 1.0
        else:
            row["tr_err"] = float("nan")     # no roles in the truth (pyannote's sample)
        if baseline is not None:
            t0 = time.perf_counter()
            segs, _ = baseline.transcribe(audio.mono(), beam_size=5, vad_filter=True, language="en")
            bhyp = " ".join(s.text for s in segs)
            row["bwall"] = time.perf_counter() - t0
            row["bwer"], _ = wer(ref, bhyp)
            totals["berr"] += row["bwer"] * n
            totals["bwall"] += row["bwall"]
        totals["err"] += w * n
        totals["n"] += n
        totals["audio"] += audio.duration_s
        totals["wall"] += wall
        rows.append(row)
        print(f"{name}: WER {w:.3f} DER {row['der']:.3f} roles {row['roles']:.2f} "
              f"RTF {wall / audio.duration_s:.3f}", file=sys.stderr, flush=True)

    print(f"\n| call | WER callcoach | WER plain faster-whisper | DER | roles right | talk-ratio error | RTF callcoach | RTF plain |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['call']} | {r['wer']:.1%} | {r.get('bwer', float('nan')):.1%} | {r['der']:.1%} | "
              f"{r['roles']:.0%} | {r['tr_err']:.3f} | {r['wall'] / r['dur']:.3f} | "
              f"{r.get('bwall', float('nan')) / r['dur']:.3f} |")
    n = max(1, totals["n"])
    bwer = f"{totals['berr'] / n:.1%}" if baseline is not None else "-"
    brtf = f"{totals['bwall'] / max(totals['audio'], 1e-9):.3f}" if baseline is not None else "-"
    print(f"| **all ({len(rows)} calls, {totals['audio']:.0f} s)** | **{totals['err'] / n:.1%}** | "
          f"**{bwer}** | | | | **{totals['wall'] / max(totals['audio'], 1e-9):.3f}** | **{brtf}** |")
    print(f"\nmodels: {json.dumps({'asr': stage.transcriber.version})}; WER over all words "
          f"(Whisper English normaliser); DER collar 0, overlaps scored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
