#!/usr/bin/env python
"""Incremental runs: a first run over an archive, then a second run over the same,
unchanged archive.

    .venv/bin/python -m scripts.bench.incremental [--calls sample-02-handoff.wav ...]

Each run is a fresh process (as a nightly job is) running ``flow.run(RunConfig(input,
output))``; phases are timed from outside by wrapping ``flow.init_ray``, ``flow._execute``
and friends.  Figures: process wall (imports included) and ``run()`` wall, second/first
ratio, ``RunSummary.transcribed`` on the second run (ASR calls made), Ray start-up time
of each run, and the ratio with Ray start-up taken out of the first run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from scripts.bench.common import (ROOT, command_line, loadavg, md_table, run_child, save_result,
                                  small_png, verdict)

DEFAULT_CALLS = ["sample-02-handoff.wav", "sample-03-standard.mp3", "sample-04-handoff-good.ogg"]
TARGET_RATIO = 0.05


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", nargs="*", default=DEFAULT_CALLS, help="files under samples/calls")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-incr-"))
    inp, out = tmp / "in", tmp / "out"
    inp.mkdir()
    for name in args.calls:
        src = ROOT / "samples" / "calls" / name
        shutil.copy2(src, inp / name)
        side = src.with_suffix(".json")
        if side.is_file():
            shutil.copy2(side, inp / side.name)

    runs = []
    for label in ("first", "second"):
        print(f"{label} run ... (load {loadavg()})", file=sys.stderr, flush=True)
        r = run_child(["--mode", "score", "--input", str(inp), "--output", str(out)])
        r["label"] = label
        r["loadavg"] = loadavg()
        runs.append(r)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)

    first, second = runs
    f_ray = first["phases"].get("ray_init_s", 0.0)
    s_ray = second["phases"].get("ray_init_s", 0.0)
    ratio_run = second["run_s"] / first["run_s"]
    ratio_proc = second["process_wall_s"] / first["process_wall_s"]
    ratio_ex_ray = (second["run_s"] - s_ray) / (first["run_s"] - f_ray)
    asr_second = second["summary"]["transcribed"]
    met_ratio = ratio_run < TARGET_RATIO
    met_asr = asr_second == 0

    def row(r):
        s, ph = r["summary"], r["phases"]
        return [r["label"], s["calls"], s["transcribed"], s["unchanged"], s["failed"],
                f"{r['process_wall_s']:.1f}", f"{r['import_s']:.1f}", f"{r['run_s']:.2f}",
                f"{ph.get('ray_init_s', 0):.1f}",
                f"{ph.get('execute_s', 0) - ph.get('ray_init_s', 0):.1f}",
                f"{ph.get('finish_tables_s', 0):.2f}", f"{r['ray_shutdown_s']:.1f}", r["loadavg"]]

    table = md_table(["run", "calls", "transcribed", "unchanged", "failed", "process wall s", "imports s",
                      "run() s", "Ray start s", "Ray dataset s", "tables+ledger s", "Ray shutdown s",
                      "load avg"], [row(first), row(second)])
    audio_h = first["summary"]["audio_hours"]
    summary = (f"{len(args.calls)} calls ({audio_h * 3600:.0f} s audio). Second/first run() time "
               f"**{ratio_run:.1%}** (target < {TARGET_RATIO:.0%}: {verdict(met_ratio)}); whole process "
               f"{ratio_proc:.1%} (imports dominate a no-op run); with Ray start-up taken out of the first run "
               f"{ratio_ex_ray:.1%}. ASR calls on the second run: **{asr_second}** (target 0: {verdict(met_asr)}). "
               f"The second run starts no Ray at all (nothing to do: Ray start {s_ray:.1f} s); the first "
               f"spent {f_ray:.1f} s starting Ray.")
    text = summary + "\n\n" + table
    print(text)

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 2.6))
        parts = [("imports", lambda r: r["import_s"]),
                 ("Ray start", lambda r: r["phases"].get("ray_init_s", 0)),
                 ("Ray dataset (ASR+scoring)", lambda r: r["phases"].get("execute_s", 0) - r["phases"].get("ray_init_s", 0)),
                 ("tables+ledger", lambda r: r["phases"].get("finish_tables_s", 0)),
                 ("other (listing, plan, summary)", lambda r: r["run_s"] - r["phases"].get("execute_s", 0)
                  - r["phases"].get("finish_tables_s", 0))]
        colors = ["#bbbbbb", "#e07b39", "#1f5f8b", "#7aa6c2", "#444444"]
        for i, r in enumerate(runs):
            left = 0.0
            for (name, fn), c in zip(parts, colors):
                v = max(0.0, fn(r))
                ax.barh(i, v, left=left, color=c, label=name if i == 0 else None)
                left += v
            ax.text(left, i, f" {left:.1f} s", va="center", fontsize=8)
        ax.set_yticks([0, 1], ["first run", "second run\n(unchanged)"])
        ax.set_xlabel("seconds")
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title(f"Incremental run: second/first = {ratio_run:.1%}", fontsize=9)
        small_png(fig, "incremental")
    except Exception as exc:
        print(f"(plot failed: {exc})", file=sys.stderr)

    for r in runs:
        r.pop("log_tail", None)
    save_result("incremental", {"command": command_line(), "calls": args.calls, "runs": runs,
                                "ratio_run": ratio_run, "ratio_process": ratio_proc,
                                "ratio_excl_ray_start": ratio_ex_ray, "asr_calls_second": asr_second,
                                "target_ratio": TARGET_RATIO, "met_ratio": met_ratio, "met_asr": met_asr,
                                "markdown": text, "loadavg_end": loadavg()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
