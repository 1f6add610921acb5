#!/usr/bin/env python
"""Run the CPU benchmarks one after another and write scripts/bench/RESULTS.md and the
PNGs under scripts/bench/out/.

    .venv/bin/python -m scripts.bench.run_all                 # everything (~30-40 min on 2 busy cores)
    .venv/bin/python -m scripts.bench.run_all --only rescore memory
    .venv/bin/python -m scripts.bench.run_all --report-only   # rebuild RESULTS.md from out/*.json

Each benchmark runs in its own process, one at a time (they would disturb each other).
gpu.py needs a GPU and is not run here; its CPU smoke test is run with --gpu-smoke.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from scripts.bench.common import OUT, ROOT, loadavg, machine, md_table, verdict

BENCHES = {
    "speech_cpu": ["--cli"],
    "profile_speech": ["--repeats", "1"],
    "rescore": [],
    "incremental": [],
    "memory": [],
}
GPU_SMOKE = ["--device", "cpu", "--asr-model", "whisper-base", "--diarization-model", "none", "--files",
             "samples/calls/sample-02-handoff.wav", "samples/calls/sample-03-standard.mp3"]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def load(name: str) -> dict | None:
    p = OUT / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def targets_table() -> str:
    rows = []
    sp = load("speech_cpu")
    if sp:
        t = sp["totals"]
        rows.append(["speech stage vs WhisperX, wall ratio (CPU, %d files, %.0f s audio)" % (len(sp["rows"]), t["audio_s"]),
                     f"{t['ratio_wall']:.2f}x (CPU-time ratio {t['ratio_cpu']:.2f}x; RTF {t['cc_rtf']:.3f} vs {t['wx_rtf']:.3f})",
                     f"<= {sp['target_ratio']}x", verdict(sp["met"]), sp["rows"][-1]["load_after"]])
    rs = load("rescore")
    if rs:
        for r in rs["core"]:
            cps = r.get("calls_per_cpu_s")
            extra = f" ({cps:,.0f} per CPU-second: ~{2 * cps:,.0f}/s on 2 idle cores)" if cps else ""
            rows.append([f"rescoring core, {r['n']:,} calls (score_batch, 1 process)",
                         f"{r['calls_per_s']:,.0f} calls/s wall{extra}, peak RSS {r['peak_rss_mb']:.0f} MB",
                         f">= {rs['target_calls_s']:,.0f} calls/s", verdict(r["calls_per_s"] >= rs["target_calls_s"]), r["loadavg"]])
        if rs.get("e2e"):
            e = rs["e2e"]
            rows.append([f"end-to-end `rescore`, {e['summary']['rescored']:,} stored transcripts (Ray, local folder)",
                         f"{e['calls_per_s']:.1f} calls/s ({e['calls_per_s_dataset']:.1f} in the Ray dataset alone)",
                         "(backfill cost)", "-", e["loadavg"]])
    inc = load("incremental")
    if inc:
        rows.append(["incremental: second run / first run (unchanged archive, %d calls)" % len(inc["calls"]),
                     f"{inc['ratio_run']:.1%} (excl. Ray start-up: {inc['ratio_excl_ray_start']:.1%})",
                     "< 5%", verdict(inc["met_ratio"]), inc["runs"][-1]["loadavg"]])
        rows.append(["incremental: ASR calls on the second run", str(inc["asr_calls_second"]), "0",
                     verdict(inc["met_asr"]), inc["runs"][-1]["loadavg"]])
    mem = load("memory")
    if mem:
        a, b = mem["runs"][0], mem["runs"][-1]
        for k, label in (("driver_peak_mb", "driver peak RSS"), ("workers_sum_peak_mb", "Ray workers peak RSS, sum"),
                         ("workers_max_peak_mb", "Ray workers peak RSS, largest")):
            rows.append([f"memory, rescore {a['n']:,} vs {b['n']:,}: {label}",
                         f"{a['memory'][k]:.0f} -> {b['memory'][k]:.0f} MB ({mem['growth'][k]:+.1%})",
                         "within 10%", verdict(mem["met"][k]), b["loadavg"]])
    g = load("gpu")
    if g:
        rows.append(["GPU: audio hours per GPU hour", f"{g['audio_h_per_gpu_h']:.1f}", ">= 150", verdict(g["met"]), "-"])
    else:
        rows.append(["GPU: audio hours per GPU hour", "not run (no GPU here; script ready: scripts/bench/gpu.py)",
                     ">= 150", "n/a", "-"])
    return md_table(["figure", "measured", "target", "verdict", "load avg (1/5/15 min)"], rows)


def write_results(ran: dict[str, float]) -> None:
    m = machine()
    lines = ["# callcoach benchmarks -- latest results", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
             "`.venv/bin/python -m scripts.bench.run_all`. Method and commands: `docs/benchmarks.md`.", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, no GPU; Python {m['python']}; "
             f"git {m['git']}; load average at the end {loadavg()} (a shared machine: other jobs ran beside "
             "these benchmarks; every figure carries the load average it was taken under).", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()), "",
             "## Targets", "", targets_table(), ""]
    sections = [("speech_cpu", "Speech stage vs WhisperX (CPU)", "speech_cpu.png"),
                ("profile_speech", "Speech stage profile: where ASR time goes", None),
                ("rescore", "Rescoring: scoring core and end-to-end `rescore`", "rescore.png"),
                ("incremental", "Incremental runs", "incremental.png"),
                ("memory", "Memory vs archive size (rescore path)", "memory.png"),
                ("gpu_smoke_cpu", "gpu.py smoke test on CPU (proves the script runs; not a GPU figure)", None),
                ("gpu", "GPU", None)]
    for name, title, png in sections:
        d = load(name)
        if not d:
            continue
        lines += [f"## {title}", "", f"`{d.get('command', '')}` -- {d.get('when', '')}", "", d.get("markdown", ""), ""]
        if png and (OUT / png).is_file():
            lines += [f"![{name}](out/{png})", ""]
    if ran:
        lines += ["Benchmark wall times this session: " + ", ".join(f"{k} {v:.0f} s" for k, v in ran.items()), ""]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=list(BENCHES) + ["gpu_smoke"])
    ap.add_argument("--gpu-smoke", action="store_true", help="also run gpu.py --device cpu on 2 sample calls")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    ran: dict[str, float] = {}
    if not args.report_only:
        todo = args.only or list(BENCHES) + (["gpu_smoke"] if args.gpu_smoke else [])
        for name in todo:
            mod, extra = ("gpu", GPU_SMOKE) if name == "gpu_smoke" else (name, BENCHES[name])
            print(f"== {name} (load {loadavg()})", flush=True)
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", f"scripts.bench.{mod}", *extra], cwd=str(ROOT))
            ran[name] = time.perf_counter() - t0
            if p.returncode not in (0, 3):
                print(f"!! {name} failed with exit code {p.returncode}", flush=True)
    write_results(ran)
    total = sum(f.stat().st_size for f in OUT.glob("*.png"))
    print(f"PNGs in {OUT}: {total / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
