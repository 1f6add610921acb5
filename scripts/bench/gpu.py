#!/usr/bin/env python
"""GPU throughput and cost: audio hours per GPU hour, end to end, on one GPU machine.

    # on an H100-class machine (models under --models; see docs/benchmarks.md):
    python -m scripts.bench.gpu --input DIR --models /models \\
        --asr-model faster-whisper-large-v3-turbo --diarization-model pyannote-community-1 \\
        --speech-actors 2 --repeat 20 --usd-per-gpu-hour 3.0

    # CPU smoke test of the script itself (here):
    .venv/bin/python -m scripts.bench.gpu --device cpu --asr-model whisper-base \\
        --diarization-model none --files samples/calls/sample-02-handoff.wav samples/calls/sample-03-standard.mp3

What it does
  * Builds an input folder from --input / --files (plus sidecars), each file copied
    --repeat times under distinct names, so the run is long enough to reach steady state.
  * Runs the real flow, ``callcoach.flow.run`` (read + decode -> N speech actors sharing
    the GPU (``gpus_per_actor = 1/N``) -> score -> writes -> tables), in this process.
  * Samples GPU utilisation and memory every 500 ms with ``nvidia-smi --query-gpu=
    utilization.gpu,memory.used --format=csv -lms 500`` (pynvml if nvidia-smi is absent).
  * Reports audio hours per GPU hour over the whole run (Ray start and model loads
    included: what a job pays) and in steady state (from the first finished call to the
    last), cost per audio hour at --usd-per-gpu-hour, the speech stage's own ASR and
    diarization seconds, and GPU utilisation (mean, median, share of samples >= 50 %).
  * Target: >= 150 audio hours per GPU hour.

Needs on the GPU machine: this repository, its Python deps (faster-whisper, ctranslate2
with CUDA, pyannote.audio, ray, polars, ...), the model directories, and a CUDA GPU.
With --device cuda and no GPU it stops at once with a clear message (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from scripts.bench.common import (OUT, ROOT, command_line, loadavg, machine, md_table, save_result,
                                  timed, verdict)

TARGET_AUDIO_H_PER_GPU_H = 150.0
AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")


class NoGpu(RuntimeError):
    pass


def check_gpu() -> dict:
    """Facts about the GPU, or NoGpu with a message that says what is missing."""
    problems = []
    smi = shutil.which("nvidia-smi")
    info = {}
    if smi:
        p = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True)
        if p.returncode == 0 and p.stdout.strip():
            info["gpus"] = [l.strip() for l in p.stdout.strip().splitlines()]
        else:
            problems.append(f"nvidia-smi failed: {(p.stderr or p.stdout).strip()[:200]}")
    else:
        problems.append("nvidia-smi not found")
    try:
        import ctranslate2

        n = ctranslate2.get_cuda_device_count()
        info["ctranslate2_cuda_devices"] = n
        if n < 1:
            problems.append("CTranslate2 sees no CUDA device (CPU-only build or no driver)")
    except Exception as exc:
        problems.append(f"ctranslate2 not importable: {exc}")
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.cuda.is_available()
        if not torch.cuda.is_available():
            problems.append(f"torch {torch.__version__} reports no CUDA (pyannote runs on torch)")
    except Exception as exc:
        problems.append(f"torch not importable: {exc}")
    if problems or not info.get("gpus"):
        raise NoGpu("no usable CUDA GPU: " + "; ".join(problems or ["no GPU listed"]))
    return info


class GpuSampler:
    """utilization.gpu (%) and memory.used (MiB) every interval_ms, in the background."""

    def __init__(self, interval_ms: int = 500):
        self.interval_ms = interval_ms
        self.samples: list[tuple[float, float, float]] = []
        self._proc = None
        self._thread = None
        self._stop = threading.Event()
        self.t0 = 0.0
        self.method = ""

    def __enter__(self):
        self.t0 = time.perf_counter()
        smi = shutil.which("nvidia-smi")
        if smi:
            self.method = "nvidia-smi"
            self._proc = subprocess.Popen([smi, "--query-gpu=utilization.gpu,memory.used",
                                           "--format=csv,noheader,nounits", f"-lms", str(self.interval_ms)],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._thread = threading.Thread(target=self._read_smi, daemon=True)
        else:
            self.method = "pynvml"
            self._thread = threading.Thread(target=self._poll_nvml, daemon=True)
        self._thread.start()
        return self

    def _read_smi(self):
        for line in self._proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            try:
                # several GPUs print several lines per tick; keep GPU-summed memory, mean util
                self.samples.append((time.perf_counter() - self.t0, float(parts[0]), float(parts[1])))
            except (ValueError, IndexError):
                continue

    def _poll_nvml(self):
        try:
            import pynvml

            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:
            return
        while not self._stop.is_set():
            t = time.perf_counter() - self.t0
            for h in handles:
                u = pynvml.nvmlDeviceGetUtilizationRates(h).gpu
                m = pynvml.nvmlDeviceGetMemoryInfo(h).used / 2**20
                self.samples.append((t, float(u), float(m)))
            self._stop.wait(self.interval_ms / 1000)

    def __exit__(self, *exc):
        self._stop.set()
        if self._proc:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread:
            self._thread.join(5)

    def summary(self, t_from: float = 0.0, t_to: float = float("inf")) -> dict:
        s = [x for x in self.samples if t_from <= x[0] <= t_to]
        if not s:
            return {"samples": 0, "method": self.method}
        u = [x[1] for x in s]
        return {"samples": len(s), "method": self.method, "util_mean": statistics.fmean(u),
                "util_median": statistics.median(u), "util_share_ge_50": sum(v >= 50 for v in u) / len(u),
                "mem_used_max_mib": max(x[2] for x in s)}


def build_input(files: list[Path], repeat: int, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    made = []
    for k in range(repeat):
        for f in files:
            name = f"{f.stem.split('.')[0]}-r{k:03d}{f.suffix}"
            shutil.copy2(f, dest / name)
            side = f.with_suffix(".json")
            if side.is_file() and not side.name.endswith(".truth.json"):
                shutil.copy2(side, (dest / name).with_suffix(".json"))
            made.append(dest / name)
    return made


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, help="folder of call recordings (default: samples/calls)")
    ap.add_argument("--files", nargs="*", type=Path, help="explicit files instead of --input")
    ap.add_argument("--repeat", type=int, default=1, help="copies of each file (more audio, steadier figure)")
    ap.add_argument("--models", default=os.environ.get("CALLCOACH_MODELS", str(ROOT / "models")),
                    help="model root (folder or s3://)")
    ap.add_argument("--asr-model", default="faster-whisper-large-v3-turbo",
                    help="CTranslate2 Whisper dir under --models")
    ap.add_argument("--diarization-model", default="pyannote-speaker-diarization-community-1",
                    help="pyannote pipeline dir under --models ('none': built-in backends)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--compute-type", default=None, help="default: float16 on cuda, int8 on cpu")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--speech-actors", type=int, default=2, help="speech actors sharing the GPU")
    ap.add_argument("--gpus", type=int, default=1, help="GPUs this run may use (cost and per-GPU figures)")
    ap.add_argument("--usd-per-gpu-hour", type=float, default=3.0)
    ap.add_argument("--output", type=Path, default=None, help="run output folder (default: a temp dir)")
    ap.add_argument("--result-name", default=None, help="result file name under scripts/bench/out")
    args = ap.parse_args(argv)

    compute_type = args.compute_type or ("float16" if args.device == "cuda" else "int8")
    gpu_info = {}
    if args.device == "cuda":
        try:
            gpu_info = check_gpu()
        except NoGpu as exc:
            print(f"gpu.py: {exc}.\n  This benchmark needs an NVIDIA GPU with a CUDA build of CTranslate2 and "
                  f"torch.\n  For a smoke test of the script on CPU: --device cpu --asr-model whisper-base "
                  f"--diarization-model none", file=sys.stderr)
            return 2

    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from callcoach import flow
    from callcoach.models import ModelConfig
    from callcoach.speech.stage import SpeechConfig

    diar = None if args.diarization_model in (None, "", "none") else args.diarization_model
    mc = ModelConfig(root=args.models, asr=args.asr_model, diarization=diar)
    for name in filter(None, (mc.asr, mc.diarization)):
        loc = mc.location(name)
        if not loc.startswith("s3://") and not Path(loc).is_dir():
            print(f"gpu.py: model directory not found: {loc} (set --models / --asr-model / "
                  f"--diarization-model)", file=sys.stderr)
            return 2

    if args.files:
        files = list(args.files)
    else:
        folder = args.input or (ROOT / "samples" / "calls")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXT)
    if not files:
        print("gpu.py: no audio files", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    inp = tmp / "in"
    build_input(files, args.repeat, inp)
    out = args.output or (tmp / "out")

    n_act = max(1, args.speech_actors)
    gpa = (args.gpus / n_act) if args.device == "cuda" else 0.0
    speech = SpeechConfig(models=mc, device=args.device, compute_type=compute_type, batch_size=args.batch_size)
    config = flow.RunConfig(input=str(inp), output=str(out), speech=speech, speech_actors=n_act,
                            gpus_per_actor=gpa, cpus_per_actor=1.0)

    phases: dict[str, float] = {}
    flow.init_ray = timed(flow.init_ray, phases, "ray_init_s")
    done_at: list[tuple[float, float, str]] = []   # (t, audio s, status)
    t_start = 0.0

    def progress(done, total, row):
        done_at.append((time.perf_counter() - t_start, float(row.get("duration_s") or 0.0), row["status"]))
        print(f"  [{done}/{total}] {row['call_id']} {row['status']} t={done_at[-1][0]:.1f}s", file=sys.stderr,
              flush=True)

    with GpuSampler() if args.device == "cuda" else _Null() as sampler:
        t_start = time.perf_counter()
        summary = flow.run(config, progress=progress)
        wall = time.perf_counter() - t_start
    try:
        import ray

        ray.shutdown()
    except Exception:
        pass

    audio_s = summary.audio_s
    gpu_h = wall / 3600 * (args.gpus if args.device == "cuda" else 1)
    a_per_g = (audio_s / 3600) / gpu_h if gpu_h else 0.0
    ok_rows = [d for d in done_at if d[2] == "ok"]
    steady = None
    if len(ok_rows) >= 3:
        t_a, t_b = ok_rows[0][0], ok_rows[-1][0]
        a = sum(d[1] for d in ok_rows[1:])
        if t_b > t_a:
            steady = (a / 3600) / ((t_b - t_a) / 3600 * (args.gpus if args.device == "cuda" else 1))
    usd_per_audio_h = args.usd_per_gpu_hour / a_per_g if a_per_g else float("inf")
    gpu_all = sampler.summary() if args.device == "cuda" else {}
    gpu_steady = (sampler.summary(ok_rows[0][0], ok_rows[-1][0]) if args.device == "cuda" and len(ok_rows) >= 3
                  else {})
    unit = "GPU" if args.device == "cuda" else "CPU-machine"
    met = a_per_g >= TARGET_AUDIO_H_PER_GPU_H if args.device == "cuda" else None
    rows = [
        ["device / compute type", f"{args.device} / {compute_type}"],
        ["ASR model / diarization", f"{args.asr_model} / {diar or 'built-in (' + speech.diarization + ')'}"],
        ["speech actors (GPU share each)", f"{n_act} ({gpa:g})"],
        ["calls transcribed / failed", f"{summary.transcribed} / {summary.failed}"],
        ["audio", f"{audio_s / 3600:.3f} h ({audio_s:.0f} s)"],
        ["wall, end to end (Ray start + model loads included)", f"{wall:.1f} s (Ray start {phases.get('ray_init_s', 0):.1f} s)"],
        [f"**audio hours per {unit} hour, end to end**",
         f"**{a_per_g:.1f}** (target >= {TARGET_AUDIO_H_PER_GPU_H:.0f}: {verdict(met)})"],
        [f"audio hours per {unit} hour, steady state (first to last finished call)",
         f"{steady:.1f}" if steady else "-"],
        [f"cost per audio hour at ${args.usd_per_gpu_hour:.2f}/{unit} h", f"${usd_per_audio_h:.4f}"],
        ["speech stage: ASR s / diarization s (sum over calls)", f"{summary.asr_s:.1f} / {summary.diarize_s:.1f}"],
    ]
    if gpu_all:
        rows += [["GPU util mean / median / share >= 50 % (whole run)",
                  f"{gpu_all.get('util_mean', 0):.0f} % / {gpu_all.get('util_median', 0):.0f} % / "
                  f"{gpu_all.get('util_share_ge_50', 0):.0%}"],
                 ["GPU util mean (steady state)", f"{gpu_steady.get('util_mean', 0):.0f} %"],
                 ["GPU memory used, max", f"{gpu_all.get('mem_used_max_mib', 0):.0f} MiB"]]
    rows.append(["load avg", loadavg()])
    table = md_table(["", "value"], rows)
    print(table)
    name = args.result_name or ("gpu" if args.device == "cuda" else "gpu_smoke_cpu")
    save_result(name, {"command": command_line(), "gpu": gpu_info, "device": args.device,
                       "compute_type": compute_type, "files": [str(f) for f in files], "repeat": args.repeat,
                       "speech_actors": n_act, "summary": summary.to_dict(), "wall_s": wall, "phases": phases,
                       "audio_h_per_gpu_h": a_per_g, "steady_audio_h_per_gpu_h": steady,
                       "usd_per_gpu_hour": args.usd_per_gpu_hour, "usd_per_audio_hour": usd_per_audio_h,
                       "gpu_util": gpu_all, "gpu_util_steady": gpu_steady, "target": TARGET_AUDIO_H_PER_GPU_H,
                       "met": met, "done_at": done_at, "markdown": table})
    if args.output is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if summary.failed == 0 else 3


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    sys.exit(main())
